"""What a close code means for the next connection, how long to wait, and the figures kept.

Why separate: the rules come from what production does (reference live-service-behaviours.md), not
from the protocol document, and they change as reports come in; the connection loop only acts on
the outcome. Outcomes: "retry" (back off, then resume), "resume" (at once, with the handle and a
replay), "fresh" (drop the handle), "fresh_token", "switch" (planned move), or a LiveError.
"""

from __future__ import annotations

import logging
import random
import re
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("speakerd.live")

STATS_KEPT = 256  # recent reconnect figures kept in SessionStats
QUOTA_RE = re.compile(r"quota|resource[_ ]?exhausted|rate[ -]?limit", re.IGNORECASE)
QUOTA_BACKOFF_FACTOR = 8.0  # the first wait after a quota close, relative to an ordinary one
QUOTA_CAP_FACTOR = 4.0  # and its cap, relative to live.reconnect_max_seconds


class LiveError(Exception):
    """The session cannot be had. ``fatal``: retrying will not help (key, model, configuration)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass
class SessionStats:
    connects: int = 0
    reconnects: int = 0
    last_connect_seconds: float | None = None
    go_aways: int = 0
    dropped_audio_bytes: int = 0
    # The latest only: a speaker runs for months, and these are for benches and diagnostics.
    reconnect_gaps: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_KEPT))
    backoffs: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_KEPT))
    replayed_items: int = 0
    # For `speakerctl status`: why the last connection ended and how long the session waited.
    last_close_code: int | None = None
    last_close_reason: str | None = None
    last_backoff_seconds: float | None = None
    last_backoff_quota: bool = False
    held_back_audio_bytes: int = 0  # mic audio dropped while a BLOCKING tool call was pending
    stalls: int = 0  # response watchdog firings
    rejected_turns: int = 0

    def status(self) -> dict[str, object]:
        """The figures ``speakerctl status`` shows, JSON-ready."""
        return {
            "connects": self.connects,
            "reconnects": self.reconnects,
            "go_aways": self.go_aways,
            "last_close_code": self.last_close_code,
            "last_close_reason": self.last_close_reason,
            "last_backoff_seconds": None if self.last_backoff_seconds is None
            else round(self.last_backoff_seconds, 2),
            "last_backoff_quota": self.last_backoff_quota,
            "stalls": self.stalls,
            "rejected_turns": self.rejected_turns,
            "held_back_audio_bytes": self.held_back_audio_bytes,
        }


def duration(text: str | None) -> float:
    """A protobuf Duration string ("5s", "1.5s") in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", text or "")
    return float(m[1]) if m else 0.0


def reason_of(e: BaseException) -> str:
    text = str(getattr(e, "details", None) or e).strip() or type(e).__name__
    return text.splitlines()[0][:160]


def is_quota(reason: str) -> bool:
    return QUOTA_RE.search(reason) is not None


def backoff(attempt: int, cap: float, *, quota: bool) -> float:
    """A bounded, jittered wait before reconnect ``attempt`` (1-based); longer after a quota close,
    because reconnecting at once only spends the quota that ran out."""
    base, ceiling = 0.25, cap
    if quota:
        base, ceiling = base * QUOTA_BACKOFF_FACTOR, cap * QUOTA_CAP_FACTOR
    delay = min(ceiling, base * 2.0 ** min(attempt - 1, 10))
    return delay * random.uniform(0.5, 1.0)  # jitter, so a fleet does not reconnect in step


@dataclass
class ClosePolicy:
    """Decides on a close code, remembering which one-time retries were spent."""

    stats: SessionStats
    abort_retry_used: bool = False  # a 1008 after setup: resumed once
    fresh_retry_used: bool = False  # a 1007 with a handle: one fresh session
    token_retry_used: bool = False  # a 1008 with a broker token: one fresh token
    quota: bool = False  # the last close was a quota close

    def decide(self, code: int | None, reason: str, *, after_setup: bool, has_handle: bool,
               has_token_source: bool, go_away_pending: bool) -> str:
        self.stats.last_close_code = code
        self.stats.last_close_reason = reason
        self.quota = False
        if code == 1000 and go_away_pending:
            return "switch"
        if code == 1008:
            if has_token_source and not self.token_retry_used:
                # A token out of uses or expired: one fresh token, then it is the configuration.
                log.warning("the Live service refused the token (%s); fetching a new one", reason)
                self.token_retry_used = True
                return "fresh_token"
            if after_setup and not self.abort_retry_used:
                # The key and model were accepted at setup: this is the service aborting an
                # operation (mic audio during a blocking tool call), not a configuration problem.
                log.warning("the Live service aborted the session after setup (1008: %s); "
                            "resuming once", reason)
                self.abort_retry_used = True
                return "resume"
            raise LiveError(f"the Live service refused the session (1008): {reason}", fatal=True)
        if code == 1007:
            if has_handle and not self.fresh_retry_used:
                log.warning("the stored conversation cannot be resumed (%s); starting a new one", reason)
                self.fresh_retry_used = True
                return "fresh"
            raise LiveError(f"the Live service rejected the request (1007): {reason}", fatal=True)
        if is_quota(reason):
            self.quota = True
            log.warning("Live service quota exhausted (%s): %s; backing off longer than usual", code, reason)
            return "retry"
        log.warning("Live connection closed (%s): %s; reconnecting", code, reason)
        return "retry"

    def turn_done(self) -> None:
        """A whole turn worked: a later 1008 after setup may be resumed once again."""
        self.abort_retry_used = False
