"""What the emulator records and shares between its parts: connections, messages, events, the
state a session carries across resumption, and the exception that ends a connection."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from speakerd_workshop.emulator.scenario import Turn
from speakerd_workshop.emulator.wire import Json

DEFAULT_REASONS = {
    1000: "",
    1007: "Request contains an invalid argument.",
    1008: "Operation is not implemented, or supported, or enabled.",
    1011: "Internal error encountered.",
}
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY = "API key not valid. Please pass a valid API key."


@dataclass(frozen=True)
class Received:
    connection: int
    message: Json
    time: float


@dataclass
class ConnectionInfo:
    id: int
    path: str
    api_version: str
    method: str
    auth: str  # header-key, query-key, token-header, query-token or none
    credential: str | None
    headers: dict[str, str]
    opened: float
    model: str | None = None
    setup: Json | None = None  # effective setup (token constraints applied)
    resumed_handle: str | None = None
    close_code: int | None = None
    closed_reason: str | None = None
    closed_by: str | None = None  # server, client or drop
    closed: float | None = None


@dataclass(frozen=True)
class ServerEvent:
    connection: int
    kind: str
    time: float
    detail: Json = field(default_factory=dict)


@dataclass
class Conversation:
    history: list[Json] = field(default_factory=list)
    turn_index: int = 0  # user turns of any kind
    spoken_index: int = 0  # spoken user turns (what ``hears`` counts)
    # The session's clock and media carry over resumption: the length limits are per session.
    started: float = field(default_factory=time.monotonic)
    had_audio: bool = False
    had_video: bool = False


@dataclass
class Handle:
    conversation: Conversation
    model: str
    connection: int
    issued: float


@dataclass
class Pending:
    id: str
    name: str
    non_blocking: bool
    turn: Turn
    future: asyncio.Future[Json]


class Closing(Exception):
    """Raised inside message handling to end the connection with a close code."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.reason = DEFAULT_REASONS.get(code, "") if reason is None else reason


@dataclass
class Behaviour:
    """Production's behaviours switched on for one connection (see :class:`Fault`)."""

    pong_delay: float = 0.0
    abort_on_input: bool = False
    stall_replies: int = 0
    stall_seconds: float = 0.0
    reject_turns: int = 0
    turn_complete_delay: float = 0.0
    silent: bool = False
    unresumable: bool = False
    chunk_seconds: float | None = None
    pace: float | None = None
    call_sent_at: float = 0.0  # the latest toolCall
