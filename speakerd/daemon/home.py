"""The daemon's side of Home Assistant: what it may ask, what it is told, and wake-word arbitration.

Why a bridge: ``speakerd.home`` speaks MQTT and knows nothing of the daemon. Commands from Home
Assistant become the same actions the button and ``speakerctl`` take (so the state machine
decides, as always); what the LEDs show, the volume, mute, timers and wakes are published as they
change. The link never blocks the voice path: publishing is fire-and-forget, and a wake word
waits for the arbitration window only when ``[mqtt] arbitration`` is on.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Literal

from speakerd.events import WakeDetected
from speakerd.home.settings import MqttCredentialError, load_mqtt_password

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon
    from speakerd.home.link import HomeLink

log = logging.getLogger("speakerd.home")


class Home:
    """Off unless ``[mqtt] host`` is set; then one HomeLink on the daemon's loop."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.link: HomeLink | None = None
        self._published: dict[str, Any] = {}

    async def start(self) -> None:
        s = self._d.cfg.settings
        if not s.mqtt.enabled:
            return
        from speakerd.home.link import HomeLink  # the MQTT client loads only when it is used

        try:
            password = load_mqtt_password()
        except MqttCredentialError as e:
            log.error("mqtt: %s; the home link is off", e)
            return
        if password is not None:
            self._d.redactor.add(password.get_secret_value())
        self.link = HomeLink(s.mqtt, password, self, announce_max_chars=s.conversation.announce_max_chars)
        await self.link.start()
        self.refresh()

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()

    # What Home Assistant may ask (HomeCommands) ----------------------------------------------------

    async def set_mute(self, muted: bool) -> None:
        self._d.user_action("mute" if muted else "unmute")

    async def set_volume(self, volume: int) -> None:
        if self._d.parts.player is not None:
            self._d.parts.player.volume = volume
        self.refresh()

    async def announce(self, text: str) -> None:
        if self._d.machine.muted:
            log.warning("mqtt: announcement refused: the speaker is muted")
            return
        self._d.announcements.announce(" ".join(text.split()))

    async def wake(self) -> None:
        if not self._d.machine.in_conversation:
            self._d.user_action("wake")

    async def interrupt(self) -> None:
        self._d.user_action("interrupt")

    # What it is told ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Publish what changed since the last call (state, volume, mute, timers): cheap to call often."""
        link = self.link
        if link is None:
            return
        d = self._d
        now: dict[str, Any] = {
            "state": d.machine.shown,
            "muted": d.machine.muted,
            "volume": d.parts.player.volume if d.parts.player is not None else None,
            "timers": tuple((t["id"], t["kind"], t.get("rings_at", ""), t.get("label", ""))
                            for t in d.alarms.listing()),
        }
        changed = {k: v for k, v in now.items() if self._published.get(k, object()) != v}
        self._published.update(now)
        if "state" in changed:
            link.publish_state(now["state"])
        if "muted" in changed:
            link.publish_muted(now["muted"])
        if "volume" in changed and now["volume"] is not None:
            link.publish_volume(now["volume"])
        if "timers" in changed:
            link.publish_timers(self._timers())

    def _timers(self) -> list[Any]:
        from speakerd.home.discovery import HomeTimer

        out = []
        for t in self._d.alarms.listing():
            try:
                ends = dt.datetime.fromisoformat(str(t.get("rings_at")))
            except ValueError:
                continue
            out.append(HomeTimer(str(t["id"]), t["kind"], ends, str(t.get("label") or "")))
        return out

    def transcript(self, role: Literal["user", "model"], line: str) -> None:
        if self.link is not None:
            self.link.publish_transcript(role, line)

    # Several speakers, one answer -----------------------------------------------------------------

    def woke(self, event: WakeDetected, level: float) -> None:
        """Answer the wake word now, or after the arbitration window if this speaker heard it best."""
        if self.link is not None:
            self.link.publish_last_wake(dt.datetime.now(dt.UTC))
        if self.link is None or not self._d.cfg.settings.mqtt.arbitration:
            self._d.post(event)
            return
        self._d.tasks.spawn(self._arbitrate(event, level), "arbitrate")

    async def _arbitrate(self, event: WakeDetected, level: float) -> None:
        assert self.link is not None
        try:
            won = await self.link.arbitrate(event.score, level)
        except (TimeoutError, OSError) as e:
            log.warning("mqtt: arbitration failed (%s); answering", e)
            won = True
        if won:
            self._d.post(event)  # the pre-roll still holds the words from the wake word on
        else:
            log.info("another speaker answered the wake word")
            if self._d.parts.leds is not None:
                self._d.parts.leds.overlay("elsewhere", True)
                self._d.loop.call_later(1.5, self._d.parts.leds.overlay, "elsewhere", False)
