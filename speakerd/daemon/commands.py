"""The control socket's command set: what ``speakerctl`` may ask of the running daemon.

Why here and not in ``control.py``: the socket (permissions, framing, peers) is transport; what a
command means is the daemon's business. Every argument is checked and a refusal is one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from speakerd.control import ControlError
from speakerd.events import SayText, UserAction

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

Command = Callable[[Any], Awaitable[dict[str, Any]]]


class Commands:
    """``handle(command, argument)`` is the ControlServer's handler."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self._table: dict[str, Command] = {
            "status": self._status,
            "mute": self._action("mute"),
            "unmute": self._action("unmute"),
            "interrupt": self._action("interrupt"),
            "wake": self._wake,
            "say": self._say,
            "volume": self._volume,
            "press": self._press,
            "stop": self._stop,
            "timers": self._timers,
            "cancel": self._cancel,
            "announce": self._announce,
            "forget": self._forget,
        }

    async def handle(self, command: str, argument: Any) -> dict[str, Any]:
        run = self._table.get(command)
        if run is None:
            raise ControlError(f"unknown command {command!r}")
        return await run(argument)

    async def _status(self, _argument: Any) -> dict[str, Any]:
        return self._d.status()

    def _action(self, name: str) -> Command:
        async def run(_argument: Any) -> dict[str, Any]:
            self._d.user_action(name)
            return {"message": f"{name}: now {self._d.machine.state}"}

        return run

    async def _wake(self, argument: Any) -> dict[str, Any]:
        if self._d.machine.in_conversation:
            return {"message": "already in a conversation"}
        return await self._action("wake")(argument)

    async def _say(self, argument: Any) -> dict[str, Any]:
        """A text or ``{"text", "wait", "timeout"}``: with ``wait``, the answer's text when its turn ends."""
        d = self._d
        text, wait, timeout = (argument.get("text"), bool(argument.get("wait")), argument.get("timeout", 30.0)) \
            if isinstance(argument, dict) else (argument, False, 30.0)
        if not isinstance(text, str) or not text.strip():
            raise ControlError("say needs some text")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 600:
            raise ControlError("say --timeout takes 1 to 600 seconds")
        if d.machine.muted:
            raise ControlError("the microphone is muted; unmute first")
        if not d.machine.in_conversation:
            d.metrics.wake_at = time.monotonic()
        answer = d.conversation.transcripts.next_answer() if wait else None
        d.post(SayText(text.strip()))
        if answer is None:
            return {"message": "sent"}
        try:
            said = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise ControlError(f"no answer within {timeout:g} s") from None
        except RuntimeError as e:
            raise ControlError(f"no answer: {e}") from None
        return {"message": said, "answer": said}

    async def _volume(self, argument: Any) -> dict[str, Any]:
        if not isinstance(argument, int) or isinstance(argument, bool) or not 0 <= argument <= 100:
            raise ControlError("volume must be a whole number from 0 to 100")
        player = self._d.parts.player
        if player is None:
            raise ControlError("no speaker")
        player.volume = argument
        return {"message": f"volume {argument}"}

    async def _stop(self, _argument: Any) -> dict[str, Any]:
        if not self._d.machine.alarm:
            return {"message": "nothing is ringing"}
        self._d.post(UserAction("stop"))
        return {"message": "alarm stopped"}

    async def _timers(self, _argument: Any) -> dict[str, Any]:
        from speakerd.timers import format_timers

        items = self._d.alarms.listing()
        return {"message": format_timers(items), "timers": items}

    async def _cancel(self, argument: Any) -> dict[str, Any]:
        if not isinstance(argument, str) or not argument.strip():
            raise ControlError("cancel needs the id of a timer, alarm or reminder (see speakerctl timers)")
        cancelled = self._d.alarms.cancel(argument.strip())
        if not cancelled:
            raise ControlError(f"no timer, alarm or reminder has the id {argument.strip()!r}")
        return {"message": f"cancelled {argument.strip()}", "cancelled": cancelled}

    async def _announce(self, argument: Any) -> dict[str, Any]:
        """``{"text": ..., "force": bool}``: said after a chime, behind a running conversation."""
        text, force = (argument.get("text"), bool(argument.get("force"))) if isinstance(argument, dict) \
            else (argument, False)
        if not isinstance(text, str) or not text.strip():
            raise ControlError("announce needs some text")
        limit = self._d.cfg.settings.conversation.announce_max_chars
        if len(text) > limit:
            raise ControlError(f"an announcement is at most {limit} characters (got {len(text)})")
        if self._d.machine.muted and not force:
            raise ControlError("the speaker is muted; unmute first or use --force")
        self._d.announcements.announce(" ".join(text.split()))
        return {"message": "queued" if self._d.machine.in_conversation else "announcing"}

    async def _forget(self, _argument: Any) -> dict[str, Any]:
        in_conversation = self._d.machine.in_conversation
        self._d.conversation.forget()
        if in_conversation:
            self._d.user_action("end")
        return {"message": "forgotten: the next conversation starts fresh"}

    async def _press(self, argument: Any) -> dict[str, Any]:
        """Drive the mock button pin as a finger would: the real gpiozero Button sees the edges."""
        from speakerd.hw.pins import is_mock

        parts, gpio = self._d.parts, self._d.cfg.settings.gpio
        if parts.button is None or parts.pin_factory is None or not is_mock(parts.pin_factory):
            raise ControlError("press works only with the mock pin factory and a button_pin")
        hold = float(argument) if isinstance(argument, int | float) and not isinstance(argument, bool) else 0.1
        if not 0 < hold <= 10:
            raise ControlError("press takes a hold time from 0 to 10 seconds")
        pin = parts.pin_factory.pin(gpio.button_pin)
        pressed, released = (pin.drive_low, pin.drive_high) if gpio.button_pull_up else (pin.drive_high, pin.drive_low)
        await asyncio.to_thread(pressed)
        await asyncio.sleep(hold)
        await asyncio.to_thread(released)
        return {"message": f"pressed for {hold:.2f} s"}
