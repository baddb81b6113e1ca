"""The ringer: what happens when something comes due, with or without a conversation open.

The LEDs go to ``alarm``, the alarm sound plays again and again until dismissed or for at most
``ring_max_seconds``, the LEDs go back, and then the labels and reminder texts are said (unless
``[timers] speak = false``), so a dismissed reminder still tells what it was.

Why callables and not the devices: the daemon owns the speaker, the LEDs and the Live session and
decides how the alarm shares them with a conversation (pause or duck the reply); the ringer only
sequences, so it is tested with recorders and a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from speakerd.timers.model import Item
from speakerd.timers.settings import TimersSettings

log = logging.getLogger("speakerd.timers")


def spoken_text(item: Item, late: bool) -> str | None:
    """What is said after the sound: a label or a reminder's text; None when there is nothing."""
    if not item.label:
        return None
    what = {"timer": "Timer", "alarm": "Alarm", "reminder": "Reminder"}[item.kind]
    text = f"{what}: {item.label.rstrip('.!?')}."
    return f"Missed while I was off. {text}" if late else text


class Ringer:
    def __init__(self, settings: TimersSettings, *, play: Callable[[], Awaitable[None]],
                 stop_sound: Callable[[], None], show: Callable[[bool], None],
                 speak: Callable[[str], Awaitable[None]] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        """``play`` plays the alarm sound once at ``alarm_volume`` and returns when it has played;
        ``stop_sound`` drops it at once; ``show(True)`` puts the LEDs in ``alarm``, ``show(False)``
        back to the state before; ``speak`` says a text verbatim (a short Live session)."""
        self.settings = settings
        self._play, self._stop_sound, self._show, self._speak = play, stop_sound, show, speak
        self._now = now
        self._batch: list[tuple[Item, bool]] = []
        self._dismissed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rung = 0  # times the sound was played (diagnostics and tests)

    @property
    def ringing(self) -> bool:
        """True while the sound repeats: a button press or the stop word should then dismiss."""
        return self._task is not None and not self._task.done() and not self._dismissed.is_set()

    def on_due(self, item: Item, late: bool) -> None:
        """The scheduler's callback: ring (joining a ring already going on)."""
        self._batch.append((item, late))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._ring(), name="speakerd-ringer")

    def dismiss(self) -> list[Item]:
        """Stop the sound; the labels and reminder texts are said next. Returns what was ringing."""
        if not self.ringing:
            return []
        self._dismissed.set()
        self._stop_sound()
        items = [i for i, _ in self._batch]
        log.info("timers: dismissed %s", ", ".join(i.id for i in items))
        return items

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _ring(self) -> None:
        while self._batch:  # another item may come due while the last words are said
            self._dismissed.clear()
            start = self._now()
            self._show(True)
            try:
                while not self._dismissed.is_set() and self._now() - start < self.settings.ring_max_seconds:
                    self.rung += 1
                    await self._play()
                if not self._dismissed.is_set():
                    self._dismissed.set()
                    log.info("timers: stopped ringing after %.0f s without a dismissal",
                             self.settings.ring_max_seconds)
            finally:
                self._show(False)
            batch, self._batch = self._batch, []
            if self.settings.speak and self._speak is not None:
                for item, late in batch:
                    text = spoken_text(item, late)
                    if text is None:
                        continue
                    try:
                        await self._speak(text)
                    except Exception as e:  # offline: the sound was the important part
                        log.warning("timers: could not say what %s %s was: %s", item.kind, item.id, e)
