"""The session's outbox and its replay log.

Why an outbox: the daemon must never wait on the network. Everything it sends (microphone audio,
text, activity markers, tool answers) goes into one ordered, bounded queue that a sender task
drains into whichever connection is current. While connecting or reconnecting the queue simply
holds, so no audio from the wake word on is lost and nothing is sent twice or out of order.

Why a replay log: a resumed session continues from the newest resumption handle, which has not
heard the input sent after it. That input is kept here and put back at the front of the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from speakerd.events import SAMPLE_RATE_IN
from speakerd.live.policy import SessionStats

log = logging.getLogger("speakerd.live")

MAX_BUFFERED_AUDIO_SECONDS = 30.0
MAX_REPLAY_AUDIO_SECONDS = 30.0
REALTIME = frozenset({"audio", "audio_end", "text", "activity_start", "activity_end"})

Item = tuple[str, Any]


class Outbox:
    """Ordered input for the service, with an audio budget, and the log of what no handle covers."""

    def __init__(self, stats: SessionStats) -> None:
        self.stats = stats
        self.items: deque[Item] = deque()
        self.audio_bytes = 0
        self.wake = asyncio.Event()
        self.closed = False
        self._warned_overflow = False
        # Input sent that no stored handle covers yet. Items sent before the model began its answer
        # are covered by the handle after that turn's turnComplete; input sent while it answered
        # (a barge-in) belongs to the next.
        self.since_handle: deque[Item] = deque()
        self._since_handle_audio = 0
        self._covered = 0
        self._answered = 0  # len(since_handle) when the model's current or last answer began

    def put(self, kind: str, value: Any) -> None:
        if self.closed:
            return
        if kind == "video":  # latest frame wins: an old frame still queued is worthless
            for i in range(len(self.items) - 1, -1, -1):
                if self.items[i][0] == "video":
                    del self.items[i]
                    break
        self.items.append((kind, value))
        if kind == "audio":
            self.audio_bytes += len(value)
            limit = int(MAX_BUFFERED_AUDIO_SECONDS * SAMPLE_RATE_IN * 2)
            while self.audio_bytes > limit:
                self._drop_oldest_audio()
        self.wake.set()

    def _drop_oldest_audio(self) -> None:
        for i, (kind, value) in enumerate(self.items):
            if kind == "audio":
                del self.items[i]
                self.audio_bytes -= len(value)
                self.stats.dropped_audio_bytes += len(value)
                if not self._warned_overflow:
                    log.warning("offline for too long: dropping the oldest buffered microphone audio")
                    self._warned_overflow = True
                return

    def pop(self, *, sent: bool) -> None:
        """The front item is done: ``sent`` (remembered for a replay) or refused/held back."""
        kind, value = self.items.popleft()
        if kind == "audio":
            self.audio_bytes -= len(value)
        if sent and kind in REALTIME:
            self._remember(kind, value)

    def _remember(self, kind: str, value: Any) -> None:
        self.since_handle.append((kind, value))
        if kind == "audio":
            self._since_handle_audio += len(value)
            limit = int(MAX_REPLAY_AUDIO_SECONDS * SAMPLE_RATE_IN * 2)
            while self._since_handle_audio > limit and self.since_handle:
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        kind, value = self.since_handle.popleft()
        if kind == "audio":
            self._since_handle_audio -= len(value)
        self._covered = max(0, self._covered - 1)
        self._answered = max(0, self._answered - 1)

    def answer_started(self) -> None:
        """The model began answering: what was sent so far belongs to this turn."""
        self._answered = len(self.since_handle)

    def turn_complete(self) -> None:
        self._covered = self._answered

    def handle_saved(self) -> None:
        """A new resumable handle: the turns it includes need no replay any more."""
        while self._covered and self.since_handle:
            self._forget_oldest()

    def forget_all(self) -> None:
        """A fresh session after rejected turns: replaying what was rejected would not help."""
        self.since_handle.clear()
        self._since_handle_audio = self._covered = self._answered = 0

    def replay(self) -> int:
        """Put what the resumed session has not heard back at the front, in order; returns how many."""
        items = list(self.since_handle)
        self.stats.replayed_items += len(items)
        self.forget_all()
        for kind, value in reversed(items):
            self.items.appendleft((kind, value))
            if kind == "audio":
                self.audio_bytes += len(value)
        return len(items)
