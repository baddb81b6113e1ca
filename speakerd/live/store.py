"""The resumption store: the newest resumable session handle, kept across restarts.

Why atomic and paranoid: a power cut or kill -9 can land at any moment on a Pi, and a restart
must then either resume the conversation or start fresh, never crash on a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from speakerd.atomic import write_atomic

log = logging.getLogger("speakerd.live")

FILENAME = "resumption.json"
MAX_AGE_SECONDS = 2 * 3600  # the service keeps a handle for 2 hours after the session ended


class ResumptionStore:
    def __init__(self, state_dir: Path, model: str, max_age_seconds: float = MAX_AGE_SECONDS,
                 now: Callable[[], float] = time.time) -> None:
        self.path = state_dir / FILENAME
        self.model = model
        self.max_age_seconds = max_age_seconds
        self._now = now
        self.writable = True

    def load(self) -> str | None:
        """The stored handle when it is for this model and young enough; otherwise None (warned)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("ignoring the resumption file %s: %s", self.path, e.strerror or e)
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
            handle, model, saved = data["handle"], data["model"], float(data["saved_at"])
            if not isinstance(handle, str) or not handle or not isinstance(model, str):
                raise ValueError("bad field types")
            if not math.isfinite(saved):
                raise ValueError("bad time")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring the resumption file %s: it is corrupt; starting a new conversation",
                        self.path)
            return None
        if model != self.model:
            log.warning("ignoring the stored conversation: it was with %s, now %s", model, self.model)
            return None
        age = self._now() - saved
        if age > self.max_age_seconds or age < -300:
            log.warning("ignoring the stored conversation: it ended %.0f minutes ago (handles last %.0f)",
                        age / 60, self.max_age_seconds / 60)
            return None
        return handle

    def save(self, handle: str) -> None:
        """temp file, fsync, rename, fsync the directory: the old or the new, never half of one."""
        data = json.dumps({"handle": handle, "model": self.model, "saved_at": self._now()})
        try:
            write_atomic(self.path, data)
            if not self.writable:
                log.info("the resumption file is writable again")
            self.writable = True
        except OSError as e:
            if self.writable:  # say it once, not on every handle
                log.warning("cannot store the session handle in %s (%s); a restart will not resume "
                            "this conversation", self.path.parent, e.strerror or e)
            self.writable = False

    def touch(self) -> None:
        """The session just ended: its 2-hour validity starts now."""
        handle = self.load()
        if handle is not None:
            self.save(handle)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


class NoStore(ResumptionStore):
    """Remembers nothing: an announcement's short session neither resumes nor replaces the
    conversation the speaker is keeping."""

    def load(self) -> str | None:
        return None

    def save(self, handle: str) -> None:
        pass

    def touch(self) -> None:
        pass

    def clear(self) -> None:
        pass
