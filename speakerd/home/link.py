"""The speaker's link to the home: MQTT on the daemon's event loop, for Home Assistant and its peers.

Why it is shaped this way: the voice path must never wait for the broker. Every ``publish_*``
method is synchronous and O(1): it records the latest value of a retained topic (or queues an
event in a bounded queue) and returns; one sender task drains that while connected. A broker that
is down, slow or refusing only delays that task. Retained values are republished on every
(re)connect and when Home Assistant comes online, so a broker restart loses no state. Commands
are validated, then applied one at a time in arrival order by one worker. Connection problems
are logged once per kind (a wrong password is one line, not one per retry), and the link keeps
retrying with jittered, capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from speakerd.home.arbitration import Arbiter
from speakerd.home.discovery import (
    COMMANDS,
    OFFLINE,
    ONLINE,
    SWITCH_OFF,
    SWITCH_ON,
    CommandName,
    CommandRefused,
    HomeTimer,
    Topics,
    discovery_payload,
    home_state,
    iso,
    parse_command,
    timers_payload,
)
from speakerd.home.settings import MqttSettings

log = logging.getLogger("speakerd.home")
# paho logs every packet at debug level; the journal at "debug" would drown in keep-alives.
_PAHO_LOG = logging.getLogger("speakerd.home.paho")
_PAHO_LOG.setLevel(logging.INFO)
EVENTS_MAX = 100
COMMANDS_MAX = 32
CLOSE_SECONDS = 2.0


class HomeCommands(Protocol):
    """What Home Assistant can ask of the speaker. Each should return promptly (queue long work):
    commands are applied one at a time, so a slow one would hold back an interrupt."""

    async def set_mute(self, muted: bool) -> None: ...
    async def set_volume(self, volume: int) -> None: ...
    async def announce(self, text: str) -> None: ...
    async def wake(self) -> None: ...
    async def interrupt(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: doubling from ``first`` up to ``cap``, each scaled by a random 0.5..1."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.first * 2.0 ** min(attempt, 30)) * random.uniform(0.5, 1.0))


class _Outbox:
    """The latest payload of each retained topic, and a bounded queue of events (transcripts),
    sent in the order they were first queued."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.dirty: dict[str, int] = {}  # topic -> when it was queued: an ordered set of topics to (re)send
        self.events: deque[tuple[int, str, bytes]] = deque(maxlen=EVENTS_MAX)
        self.wakeup = asyncio.Event()
        self.dropped = 0
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def put(self, topic: str, payload: bytes) -> None:
        if self.retained.get(topic) == payload and topic not in self.dirty:
            return
        self.retained[topic] = payload
        self.dirty.setdefault(topic, self._next())
        self.wakeup.set()

    def put_event(self, topic: str, payload: bytes) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append((self._next(), topic, payload))
        self.wakeup.set()

    def resend_all(self) -> None:
        self.dirty = {topic: self._next() for topic in self.retained}
        self.wakeup.set()

    def take(self) -> tuple[str, bytes, bool] | None:
        first = next(iter(self.dirty.items()), None)
        if first is not None and (not self.events or first[1] < self.events[0][0]):
            del self.dirty[first[0]]
            return first[0], self.retained[first[0]], True
        if self.events:
            _, topic, payload = self.events.popleft()
            return topic, payload, False
        return None

    def put_back(self, item: tuple[str, bytes, bool]) -> None:
        topic, payload, retained = item
        if retained:
            self.dirty = {topic: 0, **self.dirty}
        else:
            self.events.appendleft((0, topic, payload))


def _problem(e: BaseException) -> tuple[str, str]:
    """(kind, one-line reason) of a connection failure; the kind decides what is logged again."""
    rc = getattr(e, "rc", None)
    if isinstance(e, MqttConnectError) and (rc in (4, 5) or getattr(rc, "value", None) in (134, 135)):
        return "auth", "the broker refused the user name or password"
    text = " ".join(str(e).split()) or type(e).__name__
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return "tls", f"TLS failed: {text}"
    return "unreachable", text


class HomeLink:
    """MQTT for Home Assistant discovery, state, commands and wake-word arbitration.

    Build it and call every method on the daemon's event loop thread (it is not thread-safe)."""

    def __init__(self, settings: MqttSettings, password: SecretStr | None, commands: HomeCommands,
                 *, backoff: Backoff | None = None, announce_max_chars: int = 400) -> None:
        self.settings = settings
        self.announce_max_chars = announce_max_chars  # [conversation] announce_max_chars
        self.topics = Topics.of(settings)
        self._password = password
        self._commands = commands
        self._backoff = backoff or Backoff()
        self._outbox = _Outbox()
        self._client: aiomqtt.Client | None = None
        self._queue: asyncio.Queue[tuple[CommandName, Any]] = asyncio.Queue(COMMANDS_MAX)
        self._tasks: list[asyncio.Task[None]] = []
        self._fire_tasks: set[asyncio.Task[None]] = set()
        self._logged_kind: str | None = None
        self._ever_connected = False
        self._retained_cmd_logged = False
        self._up = asyncio.Event()
        self.arbiter = Arbiter(settings.device_id, settings.arbitration_window_ms,
                               self._send_arbitration, lambda: self.connected)
        self._outbox.put(self.topics.discovery, json.dumps(discovery_payload(settings, self.topics)).encode())

    # --- the daemon's side -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        """Start connecting in the background; returns at once, whatever the broker does."""
        if not self.settings.enabled:
            log.info("mqtt: no [mqtt] host set; the home link is off")
            return
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(), name="mqtt-link"),
                           asyncio.create_task(self._apply_commands(), name="mqtt-commands")]

    async def close(self) -> None:
        """Say offline (a clean disconnect sends no last will), then stop; bounded in time."""
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(client.publish(self.topics.availability, OFFLINE, qos=1, retain=True),
                                       CLOSE_SECONDS / 2)
        tasks = [*self._tasks, *self._fire_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        self._tasks = []
        self._client = None
        self._up.clear()

    async def wait_connected(self) -> None:
        """Returns once connected (for tests and benches: wrap it in ``asyncio.timeout``)."""
        await self._up.wait()

    def publish_state(self, state: str) -> None:
        value = home_state(state)
        if value is not None:
            self._outbox.put(self.topics.state, value.encode())

    def publish_volume(self, volume: int) -> None:
        self._outbox.put(self.topics.volume, str(max(0, min(100, int(volume)))).encode())

    def publish_muted(self, muted: bool) -> None:
        self._outbox.put(self.topics.muted, (SWITCH_ON if muted else SWITCH_OFF).encode())

    def publish_timers(self, timers: Sequence[HomeTimer]) -> None:
        body, next_alarm = timers_payload(list(timers))
        self._outbox.put(self.topics.timers, body.encode())
        self._outbox.put(self.topics.next_alarm, next_alarm.encode())

    def publish_last_wake(self, when: datetime) -> None:
        self._outbox.put(self.topics.last_wake, iso(when).encode())

    def publish_transcript(self, role: Literal["user", "model"], text: str) -> None:
        if self.settings.publish_transcripts:
            self._outbox.put_event(self.topics.transcript, json.dumps({"role": role, "text": text}).encode())

    async def arbitrate(self, score: float, level: float) -> bool:
        """True: this speaker answers the wake word (always, with arbitration off or no broker)."""
        if not self.settings.arbitration:
            return True
        return await self.arbiter.arbitrate(score, level)

    # --- the connection ------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not s.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.client_cert and s.client_key:
            ctx.load_cert_chain(str(s.client_cert), str(s.client_key))
        return ctx

    async def _run(self) -> None:
        s = self.settings
        try:
            tls = await asyncio.to_thread(self._tls_context)
        except (OSError, ssl.SSLError) as e:
            log.error("mqtt: cannot load the TLS files (%s); the home link is off, the speaker works without it",
                      " ".join(str(e).split()))
            return
        attempt = 0
        while True:
            try:
                async with aiomqtt.Client(
                    s.host or "", s.effective_port, username=s.username,
                    password=self._password.get_secret_value() if self._password else None,
                    identifier=f"speakerd-{s.device_id}", clean_session=True, keepalive=s.keepalive_seconds,
                    will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
                    tls_context=tls, timeout=5, max_queued_incoming_messages=256, logger=_PAHO_LOG,
                ) as client:
                    attempt = 0
                    await self._session(client)
            except (aiomqtt.MqttError, OSError) as e:
                self._report(e)
            finally:
                self._client = None
                self._up.clear()
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1

    def _report(self, e: BaseException) -> None:
        kind, reason = _problem(e)
        where = f"{self.settings.host}:{self.settings.effective_port}"
        if kind == self._logged_kind:
            log.debug("mqtt: %s: %s (still retrying)", where, reason)
            return
        self._logged_kind = kind
        if kind == "auth":
            log.error("mqtt: %s: %s (user %r); check [mqtt] username and the mqtt-password credential; "
                      "retrying quietly, the speaker works without it", where, reason, self.settings.username)
        elif self._ever_connected:
            log.warning("mqtt: lost the broker at %s (%s); reconnecting in the background", where, reason)
        else:
            log.warning("mqtt: cannot connect to %s (%s); retrying in the background, the speaker works without it",
                        where, reason)

    async def _session(self, client: aiomqtt.Client) -> None:
        t = self.topics
        granted = await client.subscribe([(t.command_prefix + "+", 1), (t.ha_status, 1), (t.arbitration, 0)])
        if any((g.value if isinstance(g, ReasonCode) else g) >= 0x80 for g in granted):
            log.warning("mqtt: the broker refused a subscription (check its ACL): commands or arbitration may not work")
        await client.publish(t.availability, ONLINE, qos=1, retain=True)
        self._client = client
        self._up.set()
        self._outbox.resend_all()
        if self._logged_kind is not None or not self._ever_connected:
            log.info("mqtt: connected to %s:%d as %s", self.settings.host, self.settings.effective_port,
                     self.settings.device_id)
        self._logged_kind = None
        self._ever_connected = True
        await _first_failure(self._send_outbox(client), self._receive(client))

    async def _send_outbox(self, client: aiomqtt.Client) -> None:
        box = self._outbox
        while True:
            item = box.take()
            if item is None:
                box.wakeup.clear()
                await box.wakeup.wait()
                continue
            try:
                await client.publish(item[0], item[1], qos=1, retain=item[2])
            except BaseException:
                box.put_back(item)
                raise
            if box.dropped:
                log.warning("mqtt: %d transcript messages dropped while the broker was slow", box.dropped)
                box.dropped = 0

    def _send_arbitration(self, payload: bytes) -> None:
        """Fire and forget: a claim must leave now, not behind the state updates."""
        client = self._client
        if client is None:
            return

        async def send() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topics.arbitration, payload, qos=0)

        task = asyncio.create_task(send())
        self._fire_tasks.add(task)
        task.add_done_callback(self._fire_tasks.discard)

    async def _receive(self, client: aiomqtt.Client) -> None:
        t = self.topics
        async for msg in client.messages:
            topic = msg.topic.value
            raw = msg.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw if raw is not None else "").encode()
            if topic == t.arbitration:
                self.arbiter.receive(payload)
            elif topic == t.ha_status:
                if payload == ONLINE.encode():
                    self._outbox.resend_all()  # Home Assistant restarted: it wants discovery and states again
            elif topic.startswith(t.command_prefix):
                self._command(topic.removeprefix(t.command_prefix), payload, retained=msg.retain)

    def _command(self, name: str, payload: bytes, *, retained: bool) -> None:
        if retained:  # a retained command would be applied again at every reconnect
            if not self._retained_cmd_logged:
                log.warning("mqtt: ignoring a retained %r command (publish commands without retain)", name[:40])
                self._retained_cmd_logged = True
            return
        if name not in COMMANDS:
            log.warning("mqtt: refused an unknown command %r", name[:40])
            return
        cmd: CommandName = name
        try:
            arg = parse_command(cmd, payload, self.announce_max_chars)
        except CommandRefused as e:
            log.warning("mqtt: refused the %s command: %s", cmd, e)
            return
        try:
            self._queue.put_nowait((cmd, arg))
        except asyncio.QueueFull:
            log.warning("mqtt: refused the %s command: %d commands are already waiting", cmd, COMMANDS_MAX)

    async def _apply_commands(self) -> None:
        c = self._commands
        while True:
            name, arg = await self._queue.get()
            try:
                if name == "mute":
                    await c.set_mute(arg)
                elif name == "volume":
                    await c.set_volume(arg)
                elif name == "announce":
                    await c.announce(arg)
                elif name == "wake":
                    await c.wake()
                else:
                    await c.interrupt()
            except Exception as e:  # the daemon's bug must not stop the next command
                log.error("mqtt: the %s command failed: %s: %s", name, type(e).__name__, e)


async def _first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run together; the first to end (or fail) cancels the others, and its error is raised."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (e := task.exception()) is not None:
            raise e
    raise aiomqtt.MqttError("the connection ended")
