"""Timers, alarms and reminders in the daemon: the scheduler, the ringer, their tools and commands.

Why here: ``speakerd.timers`` keeps time and sequences a ring without knowing any device. This
binds it to the daemon: the ringer's sound goes to the speaker at the alarm volume (whatever the
speaker's volume), its showing becomes ``AlarmRinging`` for the state machine (which pauses a
conversation and shows ``alarm``), and what a labelled item was for is said as an announcement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from speakerd.audio import earcons
from speakerd.events import AlarmRinging
from speakerd.live.tools import Handler, ToolSpec
from speakerd.timers import Ringer, Scheduler, TimerStore, TimezoneError, resolve_timezone, views

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

log = logging.getLogger("speakerd.timers")


class Alarms:
    """Started with the daemon; also the ToolProvider of the timer tools."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.scheduler: Scheduler | None = None
        self.ringer: Ringer | None = None

    def start(self) -> None:
        d = self._d
        s = d.cfg.settings
        self.ringer = Ringer(s.timers, play=self._play, stop_sound=self._stop_sound,
                             show=lambda on: d.post(AlarmRinging(on)), speak=d.announcements.say_and_wait)
        self.scheduler = Scheduler(TimerStore(s.state.directory), s.timers, self._timezone(), self.ringer.on_due)
        self.scheduler.start()

    def _timezone(self) -> Any:
        zone = self._d.cfg.settings.clock.timezone
        try:
            return resolve_timezone(zone)
        except TimezoneError as e:  # validated at load; the zone database may still lack it
            log.warning("%s; using UTC", e)
            return resolve_timezone("UTC")

    def reload(self) -> None:
        s = self._d.cfg.settings
        if self.scheduler is not None:
            self.scheduler.settings = s.timers
            self.scheduler.set_timezone(self._timezone())
        if self.ringer is not None:
            self.ringer.settings = s.timers

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self.ringer is not None:
            await self.ringer.close()

    @property
    def ringing(self) -> bool:
        return self.ringer is not None and self.ringer.ringing

    def dismiss(self) -> list[str]:
        """Stop the ringing; returns the ids of what rang."""
        if self.ringer is None:
            return []
        return [item.id for item in self.ringer.dismiss()]

    # The ringer's sound -----------------------------------------------------------------------------

    async def _play(self) -> None:
        """The alarm sound once, at the alarm volume; returns when it has played."""
        player = self._d.parts.player
        if player is None:
            await asyncio.sleep(1.0)  # no speaker: the LEDs still ring at a sane pace
            return
        player.play_sound("alarm", self._d.cfg.settings.timers.alarm_volume, absolute=True)
        await player.drain()
        await asyncio.sleep(0.3)  # a breath between rings

    def _stop_sound(self) -> None:
        if self._d.parts.player is not None:
            self._d.parts.player.drop_sounds()

    # As a tool provider and for speakerctl ----------------------------------------------------------

    def tools(self) -> Mapping[str, tuple[ToolSpec, Handler]]:
        if self.scheduler is None or not self._d.cfg.settings.timers.enabled:
            return {}
        from speakerd.timers.tools import timer_tools

        return timer_tools(self.scheduler)

    def listing(self) -> list[dict[str, Any]]:
        if self.scheduler is None:
            return []
        return [dict(v) for v in views(self.scheduler.items(), self.scheduler)]

    def cancel(self, item_id: str) -> list[dict[str, Any]]:
        if self.scheduler is None:
            return []
        return [dict(v) for v in views(self.scheduler.cancel([item_id]), self.scheduler)]


def sound_seconds(earcon_dir: Any) -> float:
    """How long one ring lasts (for the demo and tests)."""
    pcm, rate = earcons.load("alarm", earcon_dir)
    return len(pcm) / rate
