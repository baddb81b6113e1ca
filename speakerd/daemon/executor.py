"""Carries out the state machine's effects, in order, on the loop.

Why a match over typed effects: every effect the machine can return has exactly one place here,
and ``assert_never`` makes mypy prove none is forgotten when a new one is added.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, assert_never

from speakerd import effects as fx
from speakerd.events import PlaybackDrained, TimerFired

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

log = logging.getLogger("speakerd")


class Executor:
    """One method per concern; ``apply_all`` never lets one failing effect stop the rest."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self._timers: dict[fx.TimerName, asyncio.TimerHandle] = {}

    def apply_all(self, effects: list[fx.Effect]) -> None:
        for effect in effects:
            try:
                self.apply(effect)
            except Exception:
                log.exception("effect %s failed", effect.kind)

    def apply(self, effect: fx.Effect) -> None:
        d = self._d
        parts = d.parts
        session = d.conversation.session
        match effect:
            case fx.Show(state=name):
                d.show(name)
            case fx.Earcon(name=name):
                if parts.player is not None:
                    parts.player.play_earcon(name)
            case fx.OpenSession(frame_index=index, fresh=fresh):
                d.conversation.open(index, fresh=fresh)
            case fx.CloseSession():
                d.conversation.close()
            case fx.Stream(on=on):
                d.streaming = on
                d.speech.reset()
            case fx.EndAudioStream():
                if session is not None:
                    session.end_audio_stream()
            case fx.ActivityStart():
                if session is not None:
                    session.activity_start()
            case fx.ActivityEnd():
                if session is not None:
                    session.activity_end()
            case fx.SendText(text=text):
                if session is not None and text:
                    session.send_text(text)
            case fx.FlushPlayback():
                if parts.player is not None:
                    parts.player.flush()
            case fx.Play(pcm=pcm):
                if parts.player is not None and pcm:
                    parts.player.play(pcm)
                    self._watch_drain()
            case fx.WakeListening(on=on):
                d.set_wake_listening(on)
            case fx.Mic(on=on):
                if parts.capture is not None:
                    parts.capture.set_muted(not on)
                d.health.expect_frames(on and not d.machine.mic_failed)
            case fx.StartTimer(timer=timer, seconds=seconds):
                self.start_timer(timer, seconds)
            case fx.CancelTimer(timer=timer):
                self.cancel_timer(timer)
            case fx.Log(text=text):
                log.info("%s", text)
            case fx.HoldPlayback(on=on):
                if parts.player is not None:
                    parts.player.hold(on)
            case fx.StopReply():
                if session is not None:
                    d.conversation.stop_requested = True
                    session.interrupt()
            case fx.DismissAlarm():
                d.alarms.dismiss()
            case _:
                assert_never(effect)

    # Conversation timers --------------------------------------------------------------------------

    def start_timer(self, name: fx.TimerName, seconds: float) -> None:
        self.cancel_timer(name)

        def fire() -> None:
            self._timers.pop(name, None)
            self._d.post(TimerFired(name))

        self._timers[name] = self._d.loop.call_later(seconds, fire)

    def cancel_timer(self, name: fx.TimerName) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _watch_drain(self) -> None:
        """After a turn completes the machine waits for PlaybackDrained; one watcher at a time."""
        d = self._d
        if d.tasks.running("drain") or d.parts.player is None:
            return
        player = d.parts.player

        async def drain() -> None:
            while True:
                await player.drain()
                await asyncio.sleep(0)
                if d.machine.reply_done or not d.machine.in_conversation:
                    break
                await asyncio.sleep(0.05)
            d.post(PlaybackDrained())

        d.tasks.spawn(drain(), "drain")
