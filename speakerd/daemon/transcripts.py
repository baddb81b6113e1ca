"""Transcripts as people read them: one line per turn per role, and the answer to a typed question.

Why gather: the service sends transcripts a fragment (often a word) at a time. A journal of
single words is unreadable, so fragments are joined and logged once per turn, with the session id.
The latest exchange and the tokens used so far are kept for ``speakerctl status``, and
``speakerctl say --wait`` gets the text of the answer when its turn ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from speakerd import systemd

log = logging.getLogger("speakerd")

Role = Literal["user", "model"]
LABEL: dict[Role, str] = {"user": "you", "model": "speaker"}


class Transcripts:
    def __init__(self, session_id: Callable[[], str], enabled: Callable[[], bool]) -> None:
        self._session_id = session_id
        self._enabled = enabled
        self._parts: dict[Role, list[str]] = {"user": [], "model": []}
        self.last: dict[str, str] = {}  # label -> the latest whole line
        self.tokens: dict[str, int] = {}  # running totals of usageMetadata's counts
        self._waiters: list[asyncio.Future[str]] = []

    def add(self, role: Role, text: str) -> None:
        if role == "model" and self._parts["user"]:
            self.flush("user")  # the answer began: the question is complete
        if text.strip():
            self._parts[role].append(text.strip())

    def flush(self, role: Role, **fields: str) -> str:
        """Log and keep what the role said this turn; returns it ('' if nothing)."""
        line = " ".join(self._parts[role]).strip()
        self._parts[role] = []
        if not line:
            return ""
        self.last[LABEL[role]] = line
        if self._enabled():
            log.info("%s: %s", LABEL[role], line,
                     extra=systemd.fields(role=role, session_id=self._session_id(), **fields))
        return line

    def turn_complete(self, usage: dict[str, Any]) -> None:
        """The turn is over: its lines (the answer's with the turn's token counts as fields)."""
        counts = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
        for key, value in counts.items():
            self.tokens[key] = self.tokens.get(key, 0) + value
        self.flush("user")
        answer = self.flush("model", **{f"usage_{k}": str(v) for k, v in counts.items()})
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(answer)

    def interrupted(self) -> None:
        self.flush("user")
        self.flush("model")

    def ended(self, error: str | None) -> None:
        """The conversation is over: log what is left; a waiting question gets the error."""
        self.interrupted()
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(RuntimeError(error or "the conversation ended before an answer"))

    def next_answer(self) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut
