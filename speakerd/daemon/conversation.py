"""The Live session of the current conversation, and the rule that only it may speak.

Why a session's events are bound to it: closing a session takes a moment (audioStreamEnd, the
handle, the socket), and a new conversation may start meanwhile. What a superseded session says
then (its final "closed", reply audio it was still receiving) belongs to a conversation that is
over; passed on, it ended or talked over the new one. Each session reports through its own
callback, and only the current session's events reach the state machine.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from speakerd import events as ev
from speakerd import systemd
from speakerd.daemon.transcripts import Transcripts
from speakerd.live import LiveError
from speakerd.ports import LiveSessionPort

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

log = logging.getLogger("speakerd")


class Conversation:
    """Opens, feeds and closes the session; tells the machine only what the current one says."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.session: LiveSessionPort | None = None
        self.session_id: str | None = None
        self.last_error: str | None = None
        self.ignored_events = 0  # from superseded sessions (diagnostics and tests)
        self.forget_on_close = False
        self._reply_open = False  # reply audio came since the last end of a reply
        self.stop_requested = False  # a button stopped the reply: the service's "interrupted" confirms it
        self.sources: list[tuple[str, str]] = []
        self._last_status: dict[str, object] = {}  # the web pages the latest grounded answer used
        self._camera_announced = False
        self.transcripts = Transcripts(lambda: self.session_id or "",
                                       lambda: daemon.cfg.settings.logging.transcripts,
                                       on_line=lambda role, line: daemon.home.transcript(role, line))

    def open(self, frame_index: int | None, *, fresh: bool = False) -> None:
        d = self._d
        d.metrics.conversations += 1
        session: LiveSessionPort | None = None

        def report(event: ev.LiveEvent) -> None:
            if session is not None and session is self.session:
                self._on_live(event)
            else:
                self.ignored_events += 1
                log.debug("ignored %s from a superseded session", type(event).__name__)

        d.tools = d.make_tools()  # providers are asked again: a server back up, a camera gone
        session = d.sessions(
            d.cfg, report, tools=d.tools, fresh=fresh,
            force_compression=d.parts.camera is not None,  # audio+video sessions end at 2 min without it
        )
        self.session = session
        self._camera_announced = False
        self.session_id = f"c{d.metrics.conversations}-{os.getpid()}"
        camera = d.parts.camera
        if camera is not None and d.cfg.settings.camera.send == "always":
            camera.start(d.loop, session.send_video)
            if camera.active:  # the light stayed on from the conversation before: tell the room again
                self.camera_active(True)
        if frame_index is not None:
            for frame in d.preroll.since(frame_index):
                session.send_audio(frame.pcm)
        d.tasks.spawn(self._open(session), "open-session")

    async def _open(self, session: LiveSessionPort) -> None:
        try:
            await session.open()
        except LiveError as err:
            if self.session is session:
                self._d.post(ev.SessionState("failed", str(err), fatal=err.fatal))

    def live_status(self) -> dict[str, object]:
        """The current session's connection figures, or the last one's: what status shows."""
        if self.session is not None:
            self._last_status = self.session.status()
        return self._last_status

    def close(self) -> None:
        if self.session is not None:
            self._last_status = self.session.status()
        session, self.session = self.session, None
        self.transcripts.ended(self._d.machine.error)
        if self._d.announcements.current is not None:
            self._d.announcements.finished(self._d.machine.error)
        else:
            self._d.loop.call_soon(self._d.announcements.pump)  # one may have waited for this conversation
        camera = self._d.parts.camera
        if camera is not None and camera.running:
            self._d.tasks.spawn(camera.stop(), "camera-stop")
        if session is not None:
            self._d.tasks.spawn(self._close(session, forget=self.forget_on_close), "close-session")
        elif self.forget_on_close:
            self._d.store.clear()
        self.forget_on_close = False
        self._reply_open = False  # reply audio came since the last end of a reply

    async def _close(self, session: LiveSessionPort, *, forget: bool) -> None:
        await session.close()
        if forget:  # after the close, which stores the last handle
            self._d.store.clear()
            log.info("conversation forgotten: the next one starts fresh")

    def forget(self) -> None:
        """Drop the kept conversation now, or as soon as the open one has closed."""
        if self.session is None:
            self._d.store.clear()
            log.info("conversation forgotten: the next one starts fresh")
        else:
            self.forget_on_close = True

    def camera_active(self, on: bool) -> None:
        """People in the room must be able to tell: an LED overlay, and an earcon once."""
        parts = self._d.parts
        if parts.leds is not None:
            parts.leds.overlay("camera", on)
        log.info("camera %s", "on: sending frames" if on else "off", extra=systemd.fields(camera="on" if on else "off"))
        if on and not self._camera_announced and parts.player is not None:
            self._camera_announced = True
            parts.player.play_earcon("camera")

    # What the current session says ----------------------------------------------------------------

    def _on_live(self, event: ev.LiveEvent) -> None:
        d = self._d
        match event:
            case ev.Transcript(role=role, text=text):
                if role == "model":
                    d.announcements.heard(text)
                self.transcripts.add(role, text)
            case ev.ToolCall(name=name, args=args):
                log.info("tool %s(%s)", name, ", ".join(f"{k}={v!r}" for k, v in args.items()),
                         extra=systemd.fields(tool=name))
            case ev.GoAway(time_left_seconds=left):
                log.info("server asked to reconnect within %.1f s", left)
            case ev.SessionState():
                self._session_state(event)
            case ev.Interrupted():
                self.transcripts.interrupted()
                log.info("the service stopped the reply" if self.stop_requested else "interrupted by voice")
                self.stop_requested = False
            case ev.Sources(pages=pages):
                self.sources = list(pages)
                log.info("sources: %s", " ; ".join(uri for uri, _ in pages),
                         extra=systemd.fields(sources=" ".join(uri for uri, _ in pages)))
            case ev.GenerationComplete():
                self._end_of_reply()  # the rest of the turn may come seconds later
            case ev.TurnComplete(usage=usage):
                self.transcripts.turn_complete(usage)
                self._end_of_reply()
            case ev.TurnRejected(reason=reason, in_a_row=n, fresh_session=fresh):
                log.warning("the model gave no answer (%s, %d in a row)%s", reason, n,
                            "; starting a fresh session" if fresh else "",
                            extra=systemd.fields(turn_rejected=reason))
            case ev.ResponseStalled(waited_seconds=waited, retrying=retrying):
                if retrying:
                    log.warning("no answer %.0f s after the question; resuming and asking again", waited)
                else:
                    log.error("no answer from the service after %.0f s; giving up on this question", waited)
            case ev.ToolResult(name=name, response=response):
                outcome = "failed" if "error" in response else "done"
                log.info("tool %s %s", name, outcome, extra=systemd.fields(tool=name))
            case ev.ReplyAudio():
                self._reply_open = True
                d.metrics.first_reply_audio()
        d.post(event)

    def _end_of_reply(self) -> None:
        """Once per reply: the player plays out its tail and knows the reply is complete."""
        if self._reply_open and self._d.parts.player is not None:
            self._d.parts.player.end_of_reply()
        self._reply_open = False

    def _session_state(self, state: ev.SessionState) -> None:
        extra = systemd.fields(session_phase=state.phase, session_id=self.session_id or "")
        if state.phase == "ready":
            log.info("Live session ready%s", " (resumed)" if state.resumed else "", extra=extra)
            self._d.metrics.session_ready()
        elif state.phase == "reconnecting":
            self._d.metrics.reconnects += 1
            log.warning("Live session reconnecting: %s", state.detail, extra=extra)
        elif state.phase == "failed":
            self.last_error = state.detail
            log.error("Live session failed: %s", state.detail, extra=extra)
        else:
            log.info("Live session %s%s", state.phase, f": {state.detail}" if state.detail else "", extra=extra)
