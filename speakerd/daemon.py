"""The daemon: one asyncio loop that owns all state and wires the parts together.

Why one loop: audio, inference and GPIO run on their own threads, but every decision is taken
here, in order, from typed events; nothing else mutates state, so there are no locks to get wrong.
The rules themselves live in ``state.Machine``; this module performs the effects it returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.genai import types

from speakerd import config, state, systemd
from speakerd.audio import AudioDeviceError, Capture, Player, PrerollBuffer
from speakerd.audio.aec import EchoCanceller, EchoCancellerUnavailable
from speakerd.camera import LOOK_SPEC, Camera, CameraError, look_handler, open_camera
from speakerd.control import ControlError, ControlServer
from speakerd.events import (
    AudioFrame,
    ButtonEvent,
    DeviceFault,
    GoAway,
    Interrupted,
    LiveEvent,
    ReplyAudio,
    SessionState,
    ToolCall,
    ToolResult,
    Transcript,
    TurnComplete,
    WakeDetected,
)
from speakerd.hw import GestureButton, GpioUnavailable, Leds, make_leds, select_pin_factory
from speakerd.hw.button import action_for
from speakerd.live import LiveError, LiveSession, ResumptionStore, ToolRegistry
from speakerd.wakeword import WakeWordDetector, WakeWordError

log = logging.getLogger("speakerd")

SPEECH_DBFS = -38.0  # local speech detector: louder than this for SPEECH_FRAMES frames in a row
SPEECH_FRAMES = 3
SPEECH_EVENT_EVERY = 0.5  # seconds between UserSpeech events while talking


class StartupError(Exception):
    """A part could not start for a reason the owner must fix (one line, exit 78)."""


@dataclass
class Health:
    """What the watchdog needs to know; parts update it from the loop."""

    started: float = field(default_factory=time.monotonic)
    last_frame: float | None = None  # monotonic time of the newest microphone frame
    mic_expected: bool = False  # False while muted, failed, or before capture starts
    frame_timeout: float = 5.0

    def expect_frames(self, on: bool) -> None:
        if on and not self.mic_expected:
            self.last_frame = time.monotonic()  # the clock starts now, not at the last frame
        self.mic_expected = on

    def problem(self) -> str | None:
        if not self.mic_expected:
            return None
        now = time.monotonic()
        last = self.last_frame if self.last_frame is not None else self.started
        if now - last > self.frame_timeout:
            return f"no microphone frames for {now - last:.1f} s"
        return None


@dataclass
class Metrics:
    """Latency figures of the current and previous conversations, for journald and speakerctl."""

    conversations: int = 0
    reconnects: int = 0
    wake_at: float | None = None
    speech_end_at: float | None = None  # last loud microphone frame before a reply
    waiting_first_audio: bool = False
    latest: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.latest[name] = round(seconds, 4)
        log.info("%s %.3f s", name.replace("_", " "), seconds, extra=systemd.fields(**{name: f"{seconds:.4f}"}))


def _dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    if samples.size == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -120.0


class Daemon:
    def __init__(
        self,
        cfg: config.Config,
        *,
        redactor: systemd.RedactSecrets | None = None,
        http_options: types.HttpOptions | None = None,
    ) -> None:
        self.cfg = cfg
        self.redactor = redactor or systemd.RedactSecrets()
        self.http_options = http_options
        self.notifier = systemd.Notifier()
        self.health = Health()
        self.metrics = Metrics()
        self.machine = state.Machine(self._timings(cfg.settings))
        self.started_at = time.monotonic()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.streaming = False
        self.wake_listening = False
        self.session: LiveSession | None = None
        self.session_id: str | None = None
        self.last_error: str | None = None
        self.capture: Capture | None = None
        self.player: Player | None = None
        self.detector: WakeWordDetector | None = None
        self.stop_detector: WakeWordDetector | None = None  # "stop" during a conversation
        self.leds: Leds | None = None
        self.button: GestureButton | None = None
        self.pin_factory: Any = None
        self.control: ControlServer | None = None
        self.camera: Camera | None = None
        self._camera_announced = False  # the camera earcon plays once per conversation
        self.preroll = PrerollBuffer(cfg.settings.audio.preroll_seconds)
        self.store = ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model)
        self.tools = self._make_tools()
        self._loud_frames = 0
        self._last_speech_event = 0.0
        self._last_frame_index = -1
        self._pending_text: list[str] = []

    @staticmethod
    def _timings(s: config.Settings) -> state.Timings:
        c = s.conversation
        return state.Timings(
            follow_up_seconds=c.follow_up_seconds,
            idle_timeout_seconds=c.idle_timeout_seconds,
            max_session_seconds=c.max_session_seconds,
            push_to_talk=s.gpio.push_to_talk,
        )

    # Lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            loop.add_signal_handler(sig, handler)
        self._show("booting")
        try:
            await self._start_parts(loop)
        except StartupError as e:
            log.error("%s", e)
            self.notifier.stopping(f"error: {e}")
            await self._stop_parts()
            return config.EX_CONFIG
        interval = systemd.watchdog_interval()
        if interval is not None:
            self._spawn(systemd.run_watchdog(self.notifier, interval, self._health_problem), "watchdog")
        self.post(state.Started())
        self.notifier.ready(self.status_line())
        log.info(
            "speakerd ready in %.2f s", time.monotonic() - self.started_at,
            extra=systemd.fields(state=self.machine.state, start_to_ready=f"{time.monotonic() - self.started_at:.3f}"),
        )
        await self._stop.wait()
        self.notifier.stopping()
        log.info("stopping", extra=systemd.fields(state=self.machine.state))
        if self.machine.in_conversation:
            self._apply_all(self.machine.handle(state.UserAction("end")))
        await self._drain_tasks(exclude={"watchdog"})
        await self._stop_parts()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("stopped")
        return 0

    async def _start_parts(self, loop: asyncio.AbstractEventLoop) -> None:
        s = self.cfg.settings
        try:
            s.state.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.warning("state directory %s is not usable (%s); nothing will be remembered",
                        s.state.directory, e.strerror)
        else:
            if not os.access(s.state.directory, os.W_OK):  # a read-only mount stops root too
                log.warning("state directory %s is not writable; what is stored there is used, but "
                            "nothing new will be remembered", s.state.directory)
        self._setup_gpio(loop)
        try:
            self.camera = open_camera(s.camera, on_active=self._camera_active)
        except CameraError as e:
            raise StartupError(str(e)) from None
        self.tools = self._make_tools()
        try:
            self.detector = await asyncio.to_thread(
                WakeWordDetector, s.wakeword, loop, self._on_wake
            )
        except WakeWordError as e:
            raise StartupError(str(e)) from None
        if s.wakeword.stop_model:
            stop_settings = s.wakeword.model_copy(update={"models": [s.wakeword.stop_model]})
            try:
                self.stop_detector = await asyncio.to_thread(
                    WakeWordDetector, stop_settings, loop, self._on_stop_word
                )
            except WakeWordError as e:
                raise StartupError(str(e).replace("wakeword.models", "wakeword.stop_model")) from None
            self.stop_detector.pause()
        echo = None
        if s.audio.echo_cancellation:
            try:
                echo = EchoCanceller()
                log.info("echo cancellation on (Speex)")
            except EchoCancellerUnavailable as e:
                log.warning("%s; running without echo cancellation", e)
        self.player = Player(s.audio, s.state.directory, loop, self._on_fault, echo=echo)
        self.player.start()
        self.capture = Capture(s.audio, loop, self._on_frame, self._on_fault, echo=echo)
        self.capture.start()
        self.health.expect_frames(True)
        self.wake_listening = True
        c = s.control
        self.control = ControlServer(c.socket, c.group, self._control)
        try:
            await self.control.start()
        except OSError as e:
            log.warning("control socket %s unavailable (%s); speakerctl will not work", c.socket, e.strerror)
            self.control = None

    def _setup_gpio(self, loop: asyncio.AbstractEventLoop) -> None:
        g = self.cfg.settings.gpio
        try:
            self.pin_factory = select_pin_factory(g)
        except GpioUnavailable as e:
            raise StartupError(str(e)) from None
        if self.pin_factory is None:
            if g.enabled != "off" and (g.led_profile != "none" or g.button_pin is not None):
                log.warning("no GPIO pin factory available here; running without LEDs and button")
            return
        try:
            self.leds = make_leds(g, self.pin_factory)
            if g.button_pin is not None:
                self.button = GestureButton(g, self.pin_factory, loop, self._on_button)
        except GpioUnavailable as e:
            if g.enabled == "on":
                raise StartupError(str(e)) from None
            log.warning("%s; running without LEDs and button", e)

    async def _stop_parts(self) -> None:
        if self.camera is not None:
            await self.camera.close()
        if self.control is not None:
            await self.control.close()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.stop)
        for detector in (self.detector, self.stop_detector):
            if detector is not None:
                await asyncio.to_thread(detector.close)
        if self.player is not None:
            await asyncio.to_thread(self.player.close)
        if self.button is not None:
            self.button.close()
        if self.leds is not None:
            self.leds.close()
        for handle in self._timers.values():
            handle.cancel()

    async def _drain_tasks(self, exclude: set[str]) -> None:
        pending = [t for t in self._tasks if t.get_name() not in exclude]
        if pending:
            await asyncio.wait(pending, timeout=10)

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
        old = self.cfg.settings
        self.cfg = new
        s = new.settings
        logging.getLogger().setLevel(s.logging.level.upper())
        self.machine.timings = self._timings(s)
        self.tools = self._make_tools()
        if self.player is not None and s.audio.volume != old.audio.volume:
            self.player.volume = s.audio.volume
        if s.wakeword != old.wakeword:
            self._spawn(self._reload_detector(), "reload-wakeword")
        restart = [name for name in ("audio", "gpio", "control", "state") if getattr(s, name) != getattr(old, name)]
        if restart:
            log.warning("changes to [%s] take effect after a restart", "], [".join(restart))
        log.info("configuration reloaded from %s", new.path)
        self.notifier.ready(self.status_line())

    async def _reload_detector(self) -> None:
        assert self._loop is not None
        try:
            detector = await asyncio.to_thread(
                WakeWordDetector, self.cfg.settings.wakeword, self._loop, self._on_wake
            )
        except WakeWordError as e:
            log.error("reload: keeping the old wake-word models: %s", e)
            return
        old, self.detector = self.detector, detector
        if not self.wake_listening:
            detector.pause()
        if old is not None:
            await asyncio.to_thread(old.close)
        log.info("wake-word models reloaded: %s", ", ".join(self.cfg.settings.wakeword.models))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)

    def _health_problem(self) -> str | None:
        return self.health.problem()

    # Events from the parts (all on the loop) ------------------------------------------------------

    def post(self, event: state.Event) -> None:
        self._apply_all(self.machine.handle(event))

    def _on_frame(self, frame: AudioFrame) -> None:
        self.health.last_frame = frame.monotonic
        self._last_frame_index = frame.index
        self.preroll.push(frame)
        if self.wake_listening and self.detector is not None:
            self.detector.feed(frame)
        elif self.stop_detector is not None and self.machine.in_conversation:
            self.stop_detector.feed(frame)
        if self.streaming and self.session is not None:
            self.session.send_audio(frame.pcm)
            self._detect_speech(frame)

    def _detect_speech(self, frame: AudioFrame) -> None:
        if _dbfs(frame.pcm) > SPEECH_DBFS:
            self._loud_frames += 1
            if self._loud_frames >= SPEECH_FRAMES:
                self.metrics.speech_end_at = frame.monotonic
                self.metrics.waiting_first_audio = True
                if frame.monotonic - self._last_speech_event >= SPEECH_EVENT_EVERY:
                    self._last_speech_event = frame.monotonic
                    self.post(state.UserSpeech())
        else:
            self._loud_frames = 0

    def _on_wake(self, event: WakeDetected) -> None:
        log.info("wake word %s (score %.2f)", event.model, event.score,
                 extra=systemd.fields(wake_model=event.model, wake_score=f"{event.score:.3f}"))
        if not self.machine.in_conversation:
            self.metrics.wake_at = time.monotonic()
        self.post(event)

    def _on_stop_word(self, event: WakeDetected) -> None:
        log.info("stop word %s (score %.2f)", event.model, event.score,
                 extra=systemd.fields(wake_model=event.model, wake_score=f"{event.score:.3f}"))
        self.post(state.UserAction("end"))

    def _on_fault(self, event: DeviceFault) -> None:
        """The one place a device fault is logged: the audio threads report, the daemon tells."""
        if event.recovered:
            log.info("%s", event.message)
        else:
            log.error("%s device: %s", event.kind, event.message)
            self.last_error = event.message
        if event.kind == "input":
            self.health.expect_frames(event.recovered and not self.machine.muted)
        self.post(event)

    def _on_button(self, event: ButtonEvent) -> None:
        action = action_for(event.gesture, self.machine.state, self.cfg.settings.gpio)
        log.info("button %s -> %s", event.gesture, action, extra=systemd.fields(button=event.gesture))
        self._user_action(action, event.monotonic)

    def _user_action(self, action: str, at: float | None = None) -> None:
        at = at if at is not None else time.monotonic()
        if action in ("none", ""):
            return
        if action in ("wake", "ptt_start") and not self.machine.in_conversation:
            self.metrics.wake_at = at
            self.post(state.UserAction(action, frame_index=self._last_frame_index + 1))  # type: ignore[arg-type]
            return
        if action == "interrupt" and self.player is not None:
            was_speaking = self.machine.state == "speaking"
            self.post(state.UserAction("interrupt"))
            if was_speaking:
                self.metrics.record("interrupt_to_silence", time.monotonic() - at)
            return
        self.post(state.UserAction(action))  # type: ignore[arg-type]

    def _on_live(self, event: LiveEvent) -> None:
        match event:
            case Transcript(role=role, text=text):
                if self.cfg.settings.logging.transcripts and text.strip():
                    log.info("%s: %s", "you" if role == "user" else "speaker", text.strip(),
                             extra=systemd.fields(role=role, session_id=self.session_id or ""))
            case ToolCall(name=name, args=args):
                log.info("tool %s(%s)", name, ", ".join(f"{k}={v!r}" for k, v in args.items()),
                         extra=systemd.fields(tool=name))
            case GoAway(time_left_seconds=left):
                log.info("server asked to reconnect within %.1f s", left)
            case SessionState(phase=phase, detail=detail, fatal=fatal, resumed=resumed):
                self._session_state(phase, detail, fatal, resumed)
            case Interrupted():
                log.info("interrupted by voice")
            case TurnComplete():
                if self.player is not None:
                    self.player.end_of_reply()
            case ToolResult(name=name, response=response):
                outcome = "failed" if "error" in response else "done"
                log.info("tool %s %s", name, outcome, extra=systemd.fields(tool=name))
            case ReplyAudio() if self.metrics.waiting_first_audio and self.metrics.speech_end_at is not None:
                self.metrics.waiting_first_audio = False
                self.metrics.record("speech_end_to_first_audio", time.monotonic() - self.metrics.speech_end_at)
        self.post(event)

    def _session_state(self, phase: str, detail: str, fatal: bool, resumed: bool) -> None:
        extra = systemd.fields(session_phase=phase, session_id=self.session_id or "")
        if phase == "ready":
            log.info("Live session ready%s", " (resumed)" if resumed else "", extra=extra)
            if self.metrics.wake_at is not None:
                self.metrics.record("wake_to_streaming", time.monotonic() - self.metrics.wake_at)
                self.metrics.wake_at = None
        elif phase == "reconnecting":
            self.metrics.reconnects += 1
            log.warning("Live session reconnecting: %s", detail, extra=extra)
        elif phase == "failed":
            self.last_error = detail
            log.error("Live session failed: %s", detail, extra=extra)
        else:
            log.info("Live session %s%s", phase, f": {detail}" if detail else "", extra=extra)

    # Effects --------------------------------------------------------------------------------------

    def _apply_all(self, effects: list[state.Effect]) -> None:
        for effect in effects:
            try:
                self._apply(effect)
            except Exception:  # one failing effect must not stop the rest
                log.exception("effect %s failed", effect.kind)

    def _apply(self, e: state.Effect) -> None:
        k = e.kind
        if k == "show":
            assert e.state is not None
            self._show(e.state)
        elif k == "earcon":
            if self.player is not None and e.name:
                self.player.play_earcon(e.name)
        elif k == "open_session":
            self._open_session(e.frame_index)
        elif k == "stream":
            self.streaming = bool(e.on)
            self._loud_frames = 0
        elif k == "end_audio_stream":
            if self.session is not None:
                self.session.end_audio_stream()
        elif k == "close_session":
            session, self.session = self.session, None
            if self.camera is not None and self.camera.running:
                self._spawn(self.camera.stop(), "camera-stop")
            if session is not None:
                self._spawn(session.close(), "close-session")
        elif k == "activity_start":
            if self.session is not None:
                self.session.activity_start()
        elif k == "activity_end":
            if self.session is not None:
                self.session.activity_end()
        elif k == "send_text":
            if self.session is not None and e.text:
                self.session.send_text(e.text)
        elif k == "flush_playback":
            if self.player is not None:
                self.player.flush()
        elif k == "play":
            if self.player is not None and e.pcm:
                self.player.play(e.pcm)
                self._watch_drain()
        elif k == "wake_listening":
            self.wake_listening = bool(e.on)
            if self.detector is not None:
                (self.detector.resume if e.on else self.detector.pause)()
            if self.stop_detector is not None:
                (self.stop_detector.pause if e.on else self.stop_detector.resume)()
        elif k == "mic":
            if self.capture is not None:
                self.capture.set_muted(not e.on)
            self.health.expect_frames(bool(e.on) and not self.machine.mic_failed)
        elif k == "start_timer":
            assert e.timer is not None and e.seconds is not None
            self._start_timer(e.timer, e.seconds)
        elif k == "cancel_timer":
            handle = self._timers.pop(e.timer or "", None)
            if handle is not None:
                handle.cancel()
        elif k == "log":
            log.info("%s", e.text)

    def _show(self, name: state.State) -> None:
        if self.leds is not None:
            self.leds.show(name)
        self.notifier.status(self.status_line(name))
        log.info("state %s", name, extra=systemd.fields(state=name, session_id=self.session_id or ""))

    def _start_timer(self, name: state.TimerName, seconds: float) -> None:
        assert self._loop is not None
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(name, None)
            self.post(state.TimerFired(name))

        self._timers[name] = self._loop.call_later(seconds, fire)

    def _watch_drain(self) -> None:
        """After a turn completes the machine waits for PlaybackDrained; one watcher at a time."""
        if any(t.get_name() == "drain" for t in self._tasks) or self.player is None:
            return

        async def drain() -> None:
            assert self.player is not None
            while True:
                await self.player.drain()
                await asyncio.sleep(0)
                if self.machine.reply_done or not self.machine.in_conversation:
                    break
                await asyncio.sleep(0.05)
            self.post(state.PlaybackDrained())

        self._spawn(drain(), "drain")

    def _open_session(self, frame_index: int | None) -> None:
        self.metrics.conversations += 1
        session = LiveSession(
            self.cfg, self._on_live, store=self.store, tools=self.tools, http_options=self.http_options,
            force_compression=self.camera is not None,  # audio+video sessions end at 2 min without it
        )
        self.session = session
        self._camera_announced = False
        if self.camera is not None and self.cfg.settings.camera.send == "always":
            assert self._loop is not None
            self.camera.start(self._loop, session.send_video)
        self.session_id = f"c{self.metrics.conversations}-{os.getpid()}"
        if frame_index is not None:
            for frame in self.preroll.since(frame_index):
                session.send_audio(frame.pcm)

        async def open_it() -> None:
            try:
                await session.open()
            except LiveError as err:
                if self.session is session:
                    self.post(SessionState("failed", str(err), fatal=err.fatal))

        self._spawn(open_it(), "open-session")

    # Tools the model can call ---------------------------------------------------------------------

    def _make_tools(self) -> ToolRegistry:
        extra = {}
        if self.camera is not None and self.cfg.settings.camera.send == "on_look":

            async def send(jpeg: bytes) -> None:
                if self.session is not None:
                    self.session.send_video(jpeg)

            extra["look"] = (LOOK_SPEC, look_handler(self.camera, send))
        return ToolRegistry(self.cfg.settings.tools, self._tool_handlers(), extra=extra)

    def _camera_active(self, on: bool) -> None:
        """People in the room must be able to tell: an LED overlay, and an earcon once."""
        if self.leds is not None:
            self.leds.overlay("camera", on)
        log.info("camera %s", "on: sending frames" if on else "off", extra=systemd.fields(camera="on" if on else "off"))
        if on and not self._camera_announced and self.player is not None:
            self._camera_announced = True
            self.player.play_earcon("camera")

    def _tool_handlers(self) -> dict[str, Callable[..., Awaitable[dict[str, Any]]]]:
        async def set_volume(level: int) -> dict[str, Any]:
            if self.player is None:
                return {"error": "no speaker"}
            self.player.volume = max(0, min(100, int(level)))
            return {"volume": self.player.volume}

        async def end_conversation() -> dict[str, Any]:
            return {"result": "the conversation will end after this reply"}

        return {"set_volume": set_volume, "end_conversation": end_conversation}

    # Control socket -------------------------------------------------------------------------------

    async def _control(self, command: str, argument: Any) -> dict[str, Any]:
        if command == "status":
            return self.status()
        if command in ("mute", "unmute", "interrupt", "wake"):
            if command == "wake" and self.machine.in_conversation:
                return {"message": "already in a conversation"}
            self._user_action(command)
            return {"message": f"{command}: now {self.machine.state}"}
        if command == "say":
            if not isinstance(argument, str) or not argument.strip():
                raise ControlError("say needs some text")
            if self.machine.muted:
                raise ControlError("the microphone is muted; unmute first")
            if not self.machine.in_conversation:
                self.metrics.wake_at = time.monotonic()
            self.post(state.SayText(argument.strip()))
            return {"message": "sent"}
        if command == "volume":
            if not isinstance(argument, int) or isinstance(argument, bool) or not 0 <= argument <= 100:
                raise ControlError("volume must be a whole number from 0 to 100")
            if self.player is None:
                raise ControlError("no speaker")
            self.player.volume = argument
            return {"message": f"volume {argument}"}
        if command == "press":
            return await self._press(argument)
        raise ControlError(f"unknown command {command!r}")

    async def _press(self, argument: Any) -> dict[str, Any]:
        """Drive the mock button pin as a finger would: the real gpiozero Button sees the edges."""
        from speakerd.hw.pins import is_mock

        if self.button is None or self.pin_factory is None or not is_mock(self.pin_factory):
            raise ControlError("press works only with the mock pin factory and a button_pin")
        hold = float(argument) if isinstance(argument, int | float) and not isinstance(argument, bool) else 0.1
        if not 0 < hold <= 10:
            raise ControlError("press takes a hold time from 0 to 10 seconds")
        pin = self.pin_factory.pin(self.cfg.settings.gpio.button_pin)
        pressed, released = (pin.drive_low, pin.drive_high) if self.cfg.settings.gpio.button_pull_up \
            else (pin.drive_high, pin.drive_low)
        await asyncio.to_thread(pressed)
        await asyncio.sleep(hold)
        await asyncio.to_thread(released)
        return {"message": f"pressed for {hold:.2f} s"}

    def status(self) -> dict[str, Any]:
        return {
            "state": self.machine.state,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
            "session": self.session_id if self.machine.in_conversation else None,
            "muted": self.machine.muted,
            "leds": self.leds.state if self.leds is not None else None,  # what the owner sees on the device
            "volume": self.player.volume if self.player is not None else None,
            "conversations": self.metrics.conversations,
            "reconnects": self.metrics.reconnects,
            "last_error": self.machine.error or self.last_error,
            "metrics": dict(self.metrics.latest),
            "model": self.cfg.settings.live.model,
            "audio": {
                "frames": self.capture.stats.frames if self.capture else 0,
                "overflows": self.capture.stats.overflows if self.capture else 0,
                "wake_frames": self.detector.frames if self.detector else 0,
                "wake_dropped": self.detector.dropped if self.detector else 0,
                "played_samples": self.player.stats.samples_written if self.player else 0,
                "underruns": self.player.stats.underruns if self.player else 0,
            },
        }

    def status_line(self, name: str | None = None) -> str:
        current = name or self.machine.state
        if current == "error" and (self.machine.error or self.last_error):
            return f"error: {self.machine.error or self.last_error}"
        return current


def main(cfg: config.Config, *, redactor: systemd.RedactSecrets | None = None) -> int:
    try:
        return asyncio.run(Daemon(cfg, redactor=redactor).run())
    except KeyboardInterrupt:
        return 130
    except AudioDeviceError as e:  # only if a part raises outside its own retry loop
        log.error("%s", e)
        return 1
