"""The daemon's lifecycle and wiring: build the parts, feed their events to the machine, stop.

Why one loop: audio, inference and GPIO run on their own threads, but every decision is taken
here, in order, from typed events; nothing else mutates state, so there are no locks to get wrong.
The rules live in ``state.Machine``; ``executor`` performs the effects it returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any, cast, get_args

from google.genai import types

from speakerd import config, state, systemd
from speakerd.audio import AudioDeviceError, PrerollBuffer
from speakerd.daemon import parts as parts_
from speakerd.daemon.alarms import Alarms
from speakerd.daemon.announcements import Announcements
from speakerd.daemon.commands import Commands
from speakerd.daemon.conversation import Conversation
from speakerd.daemon.executor import Executor
from speakerd.daemon.home import Home
from speakerd.daemon.metrics import Health, Metrics, Progress, SpeechDetector, dbfs
from speakerd.daemon.parts import Parts, StartupError
from speakerd.daemon.tasks import Tasks
from speakerd.daemon.tools import CameraLook, make_tools
from speakerd.effects import State
from speakerd.events import (
    Action,
    AudioFrame,
    ButtonEvent,
    DeviceFault,
    LiveEvent,
    Started,
    UserAction,
    UserPaused,
    UserSpeech,
    WakeDetected,
)
from speakerd.hw.button import action_for
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry
from speakerd.live.store import NoStore
from speakerd.mcp.tools import McpTools
from speakerd.ports import Backends, LiveSessionPort, SessionFactory, ToolProvider

log = logging.getLogger("speakerd")

__all__ = ["Daemon", "StartupError", "main"]

ACTIONS: tuple[str, ...] = get_args(Action)


def timings(s: config.Settings) -> state.Timings:
    c = s.conversation
    return state.Timings(
        follow_up_seconds=c.follow_up_seconds,
        idle_timeout_seconds=c.idle_timeout_seconds,
        max_session_seconds=c.max_session_seconds,
        push_to_talk=s.gpio.push_to_talk,
    )


class Daemon:
    """Owns the loop's state; its collaborators each hold one job and a reference back."""

    def __init__(
        self,
        cfg: config.Config,
        *,
        redactor: systemd.RedactSecrets | None = None,
        http_options: types.HttpOptions | None = None,
        backends: Backends | None = None,
    ) -> None:
        self.cfg = cfg
        self.backends = backends or Backends()
        self.sessions: SessionFactory = self.backends.sessions or self._live_session
        self.redactor = redactor or systemd.RedactSecrets()
        self.http_options = http_options
        self.notifier = systemd.Notifier()
        self.health = Health()
        self.metrics = Metrics()
        self.speech = SpeechDetector(self.metrics, pause_frames=max(1, cfg.settings.live.vad.silence_duration_ms // 80))
        self.machine = state.Machine(timings(cfg.settings))
        self.started_at = time.monotonic()
        self.parts = Parts()
        self.tasks = Tasks()
        self.conversation = Conversation(self)
        self.executor = Executor(self)
        self.commands = Commands(self)
        self.alarms = Alarms(self)
        self.announcements = Announcements(self)
        self.home = Home(self)
        self.preroll = PrerollBuffer(cfg.settings.audio.preroll_seconds)
        c = cfg.settings.conversation
        self.store = ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model,
                                     max_age_seconds=c.resume_minutes * 60)
        self.mcp = McpTools(cfg.settings.tools.mcp, on_secret=self.redactor.add)
        self.tool_providers: list[ToolProvider] = [CameraLook(self), self.alarms, self.mcp]
        self.tools: ToolRegistry = self.make_tools()
        self.streaming = False
        self.wake_listening = False
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_frame_index = -1

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the daemon is not running"
        return self._loop

    def make_tools(self) -> ToolRegistry:
        return make_tools(self)

    def _live_session(
        self, cfg: config.Config, report: Callable[[LiveEvent], None], *, tools: ToolRegistry, force_compression: bool,
        fresh: bool = False,
    ) -> LiveSessionPort:
        store = NoStore(self.store.path.parent, self.store.model) if fresh else self.store
        return LiveSession(cfg, report, store=store, tools=tools, http_options=self.http_options,
                           force_compression=force_compression)

    # Lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> int:
        if not await self.start():
            return config.EX_CONFIG
        await self._stop.wait()
        await self.shutdown()
        return 0

    async def start(self) -> bool:
        """Start every part and tell systemd READY; False (after cleaning up) on a startup error."""
        loop = self._loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                             (signal.SIGHUP, self.request_reload)):
            loop.add_signal_handler(sig, handler)
        self.show("booting")
        try:
            await parts_.start(self)
        except StartupError as e:
            log.error("%s", e)
            self.notifier.stopping(f"error: {e}")
            await parts_.stop(self.parts)
            return False
        self._watch_progress()
        self.alarms.start()  # after the speaker: a timer that came due while down rings now
        self.tasks.spawn(self.mcp.refresh(), "mcp-refresh")  # a server that is down must not delay READY
        await self.home.start()  # returns at once, whatever the broker does
        self.tools = self.make_tools()
        interval = systemd.watchdog_interval()
        if interval is not None:
            self.tasks.spawn(systemd.run_watchdog(self.notifier, interval, self.health.problem), "watchdog")
        self.post(Started())
        self.notifier.ready(self.status_line())
        took = time.monotonic() - self.started_at
        log.info("speakerd ready in %.2f s", took,
                 extra=systemd.fields(state=self.machine.state, start_to_ready=f"{took:.3f}"))
        return True

    def _watch_progress(self) -> None:
        """Workers that have work but stop moving hold back the watchdog (a crash is restarted)."""
        p = self.parts
        if p.detector is not None:
            detector = p.detector
            self.health.checks.append(Progress("the wake-word detector", lambda: detector.frames,
                                               lambda: detector.pending > 0))
        if p.player is not None:
            player = p.player
            self.health.checks.append(Progress("the speaker", lambda: player.stats.periods,
                                               lambda: player.has_work, limit=30.0))

    async def shutdown(self) -> None:
        self.notifier.stopping()
        log.info("stopping", extra=systemd.fields(state=self.machine.state))
        if self.machine.in_conversation:
            self.post(UserAction("end"))
        await self.tasks.drain(exclude={"watchdog"})
        await self.alarms.close()
        await self.mcp.close()
        await self.home.close()
        await parts_.stop(self.parts)
        self.executor.cancel_all_timers()
        await self.tasks.cancel_all()
        log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = config.load(self.cfg.path)
        except config.ConfigError as e:
            for line in e.lines:
                log.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready(self.status_line())
            return
        if new.api_key is not None:
            self.redactor.add(new.api_key.get_secret_value())
        for warning in new.warnings:
            log.warning("%s", warning)
        old, self.cfg = self.cfg.settings, new
        s = new.settings
        logging.getLogger().setLevel(s.logging.level.upper())
        self.machine.timings = timings(s)
        self.store.max_age_seconds = s.conversation.resume_minutes * 60
        self.alarms.reload()
        self.tasks.spawn(self.mcp.reconfigure(s.tools.mcp), "mcp-reconfigure")
        self.tools = self.make_tools()
        if self.parts.player is not None and s.audio.volume != old.audio.volume:
            self.parts.player.volume = s.audio.volume
        if s.wakeword != old.wakeword:
            self.tasks.spawn(self._reload_detector(), "reload-wakeword")
        restart = [name for name in ("audio", "gpio", "control", "state") if getattr(s, name) != getattr(old, name)]
        if restart:
            log.warning("changes to [%s] take effect after a restart", "], [".join(restart))
        log.info("configuration reloaded from %s", new.path)
        self.notifier.ready(self.status_line())

    async def _reload_detector(self) -> None:
        try:
            detector = await parts_.make_detector(self, self.cfg.settings.wakeword, self.on_wake)
        except StartupError as e:
            log.error("reload: keeping the old wake-word models: %s", e)
            return
        old, self.parts.detector = self.parts.detector, detector
        if not self.wake_listening:
            detector.pause()
        if old is not None:
            await asyncio.to_thread(old.close)
        log.info("wake-word models reloaded: %s", ", ".join(self.cfg.settings.wakeword.models))

    # Events from the parts (all on the loop) ------------------------------------------------------

    def post(self, event: state.Event) -> None:
        self.executor.apply_all(self.machine.handle(event))

    def on_frame(self, frame: AudioFrame) -> None:
        self.health.last_frame = frame.monotonic
        self._last_frame_index = frame.index
        self.preroll.push(frame)
        p = self.parts
        if self.wake_listening and p.detector is not None:
            p.detector.feed(frame)
        elif p.stop_detector is not None and self.machine.in_conversation:
            # The stop word is heard over a reply: what the canceller left, not the gate's zeros.
            ungated = frame if frame.ungated is None else AudioFrame(frame.ungated, frame.index, frame.monotonic)
            p.stop_detector.feed(ungated)
        session = self.conversation.session
        if self.streaming and session is not None:
            session.send_audio(frame.pcm)
            heard = self.speech.feed(frame)
            if heard == "paused":
                session.user_turn_ended()  # a reply is due now: the session's response watchdog starts
            if heard is not None:
                self.post(UserSpeech() if heard == "speech" else UserPaused())

    def on_wake(self, event: WakeDetected) -> None:
        log.info("wake word %s (score %.2f)", event.model, event.score,
                 extra=systemd.fields(wake_model=event.model, wake_score=f"{event.score:.3f}"))
        if not self.machine.in_conversation:
            self.metrics.wake_at = time.monotonic()
        level = dbfs(b"".join(f.pcm for f in self.preroll.since(max(0, event.frame_index - 12))))
        self.home.woke(event, level)

    def on_stop_word(self, event: WakeDetected) -> None:
        log.info("stop word %s (score %.2f)", event.model, event.score,
                 extra=systemd.fields(wake_model=event.model, wake_score=f"{event.score:.3f}"))
        self.post(UserAction("end"))

    def on_fault(self, event: DeviceFault) -> None:
        """The one place a device fault is logged: the audio threads report, the daemon tells."""
        if event.recovered:
            log.info("%s", event.message)
        else:
            log.error("%s device: %s", event.kind, event.message)
            self.conversation.last_error = event.message
        if event.kind == "input":
            self.health.expect_frames(event.recovered and not self.machine.muted)
        self.post(event)

    def on_button(self, event: ButtonEvent) -> None:
        if self.machine.alarm:  # whatever the gesture means otherwise, a press stops the alarm
            log.info("button %s -> stop", event.gesture, extra=systemd.fields(button=event.gesture))
            self.post(UserAction("stop"))
            return
        action = action_for(event.gesture, self.machine.state, self.cfg.settings.gpio)
        log.info("button %s -> %s", event.gesture, action, extra=systemd.fields(button=event.gesture))
        self.user_action(action, event.monotonic)

    def user_action(self, action: str, at: float | None = None) -> None:
        """A gesture or command by name ("none" does nothing); times wakes and interrupts."""
        at = at if at is not None else time.monotonic()
        if action in ("none", ""):
            return
        if action not in ACTIONS:
            log.warning("unknown action %r ignored", action)
            return
        act = cast(Action, action)
        if act in ("wake", "ptt_start") and not self.machine.in_conversation:
            self.metrics.wake_at = at
            self.post(UserAction(act, frame_index=self._last_frame_index + 1))
            return
        if act == "interrupt" and self.parts.player is not None:
            was_speaking = self.machine.state == "speaking"
            self.post(UserAction("interrupt"))
            if was_speaking:
                self.metrics.record("interrupt_to_silence", time.monotonic() - at)
            return
        self.post(UserAction(act))

    # What the effects and the owner see -----------------------------------------------------------

    def set_wake_listening(self, on: bool) -> None:
        self.wake_listening = on
        p = self.parts
        if p.detector is not None:
            (p.detector.resume if on else p.detector.pause)()
        if p.stop_detector is not None:
            (p.stop_detector.pause if on else p.stop_detector.resume)()

    def show(self, name: State) -> None:
        if self.parts.leds is not None:
            self.parts.leds.show(name)
        self.notifier.status(self.status_line(name))
        self.home.refresh()
        log.info("state %s", name, extra=systemd.fields(state=name, session_id=self.conversation.session_id or ""))

    def status(self) -> dict[str, Any]:
        p, m = self.parts, self.machine
        return {
            "state": m.shown,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
            "session": self.conversation.session_id if m.in_conversation else None,
            "muted": m.muted,
            "leds": p.leds.state if p.leds is not None else None,  # what the owner sees on the device
            "volume": p.player.volume if p.player is not None else None,
            "conversations": self.metrics.conversations,
            "reconnects": self.metrics.reconnects,
            "live": self.conversation.live_status(),
            "last_error": m.error or self.conversation.last_error,
            "metrics": dict(self.metrics.latest),
            "last_exchange": dict(self.conversation.transcripts.last),
            "last_sources": [{"uri": uri, "title": title} for uri, title in self.conversation.sources],
            "tokens": dict(self.conversation.transcripts.tokens),
            "model": self.cfg.settings.live.model,
            "timers": self.alarms.listing(),
            "audio": {
                "frames": p.capture.stats.frames if p.capture else 0,
                "overflows": p.capture.stats.overflows if p.capture else 0,
                "wake_frames": p.detector.frames if p.detector else 0,
                "wake_dropped": p.detector.dropped if p.detector else 0,
                "played_samples": p.player.stats.samples_written if p.player else 0,
                "underruns": p.player.stats.underruns if p.player else 0,
            },
        }

    def status_line(self, name: str | None = None) -> str:
        current = name or self.machine.shown
        error = self.machine.error or self.conversation.last_error
        if current == "error" and error:
            return f"error: {error}"
        return current


def main(cfg: config.Config, *, redactor: systemd.RedactSecrets | None = None) -> int:
    try:
        return asyncio.run(Daemon(cfg, redactor=redactor).run())
    except KeyboardInterrupt:
        return 130
    except AudioDeviceError as e:  # only if a part raises outside its own retry loop
        log.error("%s", e)
        return 1
