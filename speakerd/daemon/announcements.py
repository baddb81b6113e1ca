"""Announcements: a chime, then a text said verbatim by the model, queued behind a conversation.

Why through Live: the speaker has no voice of its own; the model says the text in the voice the
household knows. It is asked to read the text word for word, and its output transcript is checked
against the text, so a paraphrase is logged. An announcement opens a short session of its own that
neither streams the microphone nor touches the kept conversation, and waits until a running
conversation is over.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from speakerd.events import Announce

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

log = logging.getLogger("speakerd")

PROMPT = "Read this announcement aloud exactly as written, word for word, and say nothing else: "


def verbatim_prompt(text: str) -> str:
    return PROMPT + text


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


@dataclass
class _Pending:
    text: str
    done: asyncio.Future[str]
    heard: list[str] = field(default_factory=list)  # the output transcript, fragment by fragment


class Announcements:
    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self._queue: deque[_Pending] = deque()
        self.current: _Pending | None = None

    def announce(self, text: str) -> asyncio.Future[str]:
        """Queue ``text``; the future gets the model's transcript when it was said (or an error)."""
        pending = _Pending(text, self._d.loop.create_future())
        self._queue.append(pending)
        self.pump()
        return pending.done

    async def say_and_wait(self, text: str) -> None:
        await self.announce(text)

    def pump(self) -> None:
        """Start the next announcement if the speaker is free (called when a conversation ends)."""
        machine = self._d.machine
        if self.current is not None or not self._queue or machine.in_conversation or machine.alarm:
            return
        self.current = self._queue.popleft()
        self._d.post(Announce(verbatim_prompt(self.current.text)))

    def heard(self, text: str) -> None:
        if self.current is not None:
            self.current.heard.append(text)

    def finished(self, error: str | None = None) -> None:
        """The announcement's session ended: check what was said, then the next one."""
        current, self.current = self.current, None
        if current is None:
            return
        said = " ".join(current.heard).strip()
        if not current.done.done():
            if error:
                current.done.set_exception(RuntimeError(error))
            else:
                if _words(said) != _words(current.text):
                    log.warning("announcement not said verbatim: asked %r, said %r", current.text, said)
                current.done.set_result(said)
        self._d.loop.call_soon(self.pump)
