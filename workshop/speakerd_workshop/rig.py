"""A whole speaker on any machine: the real daemon process, the Live emulator, ALSA software
devices, mock GPIO pins and a real NOTIFY_SOCKET.

Why it lives in the package: ``speakerd demo``, the end-to-end tests and ``bench/e2e.py`` all
need exactly this, and a newcomer's first run should use the same parts the tests trust.
Nothing here reaches the network; every server is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerd.audio.echo import EchoSettings
from speakerd.config import toml
from speakerd.events import FRAME_BYTES, SAMPLE_RATE_IN
from speakerd_workshop.emulator import EmulatorThread, Scenario
from speakerd_workshop.room import EchoPath, Room
from speakerd_workshop.softdev import F_SETPIPE_SZ, SoftDevices, SpeakerSink

API_KEY = "rig-test-key-0123456789"


class NotifySocket:
    """A datagram socket bound where NOTIFY_SOCKET points, as systemd's would be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.messages.append(fields)
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict[str, str]], bool], timeout: float = 30.0, start: int = 0) -> int:
        """Index of the first message from ``start`` on that satisfies ``pred``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.messages)):
                    if pred(self.messages[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching notify message; got {self.messages[start:]}")
                self._cond.wait(left)

    def count(self, key: str, value: str = "1") -> int:
        with self._cond:
            return sum(1 for m in self.messages if m.get(key) == value)

    def close(self) -> None:
        self._closed = True
        self.sock.close()


@dataclass(frozen=True)
class LogLine:
    at: float  # monotonic, when the rig read it
    level: str
    message: str
    fields: dict[str, str]


_LINE = re.compile(r"^(?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<msg>.*?)(?: \[(?P<fields>[^\]]*)\])?$")


class MicFeeder:
    """Writes whole 80 ms periods into the microphone FIFO on a real-time schedule.

    Queued speech goes out first; silence fills the gaps, as a quiet room would. ``sent`` keeps
    every byte written, so tests can compare what the emulator received with what was "said".
    """

    def __init__(self, fifo: Path, speed: float = 1.0, room: EchoPath | None = None) -> None:
        self.fifo = fifo
        self.speed = speed
        self.room = room  # the speaker's echo and room noise, mixed into every period
        self.person = bytearray()  # what the person said (with the room, ``sent`` holds the mix)
        self._queue = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sent = bytearray()
        self.periods = 0
        self._fd = os.open(fifo, os.O_RDWR)
        if room is not None:
            # A pipe holds 64 kB (2 s) by default: a microphone that far behind would put seconds
            # between the speaker and its echo. One page keeps the latency a sound card's.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._fd, F_SETPIPE_SZ, 4096)
        self._thread = threading.Thread(target=self._run, name="mic-feeder", daemon=True)
        self._thread.start()

    def say(self, pcm: bytes) -> float:
        """Queue 16 kHz s16le mono audio; returns its length in seconds."""
        pcm = pcm + b"\0" * (-len(pcm) % FRAME_BYTES)
        with self._lock:
            self._queue += pcm
        return len(pcm) / 2 / SAMPLE_RATE_IN

    def pending_seconds(self) -> float:
        with self._lock:
            return len(self._queue) / 2 / SAMPLE_RATE_IN

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending_seconds() > 0 and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        period = FRAME_BYTES / 2 / SAMPLE_RATE_IN / self.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                chunk = bytes(self._queue[:FRAME_BYTES])
                del self._queue[:FRAME_BYTES]
            chunk = chunk.ljust(FRAME_BYTES, b"\0")
            self.person += chunk
            if self.room is not None:
                chunk = self.room.mix(chunk)
            try:
                os.write(self._fd, chunk)
            except OSError:
                return
            self.sent += chunk
            self.periods += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # far behind (a stopped reader): do not burst

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._fd)


class Rig:
    """Emulator + soft devices + the daemon in a subprocess. Use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        scenario: Scenario | Path | None = None,
        config: str = "",
        emulator: EmulatorThread | None = None,
        emulator_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        room: Room | None = None,
        echo: EchoSettings | None = None,
    ) -> None:
        self.workdir = workdir
        self.room = room  # an acoustic path from the speaker back to the microphone
        self.echo = echo  # the daemon's echo handling ([audio.echo]); None: the daemon's own config
        self.echo_path: EchoPath | None = None
        self.sink: SpeakerSink | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenario = scenario
        self.extra_config = config
        self.extra_env = env or {}
        self.emulator = emulator
        self._own_emulator = emulator is None
        self.emulator_options = dict(emulator_options or {})
        if room is not None:  # a room needs turn detection that hears speech the way the service does
            self.emulator_options.setdefault("vad", "silero")
        self.proc: subprocess.Popen[str] | None = None
        self.notify: NotifySocket | None = None
        self.mic: MicFeeder | None = None
        self.lines: list[LogLine] = []
        self._lines_cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self.devices: SoftDevices | None = None
        self.config_path = workdir / "speakerd.toml"
        self.state_dir = workdir / "state"
        self.socket_path = workdir / "control.sock"
        self.started_at = 0.0
        self.ready_at: float | None = None

    # Set-up ---------------------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        if self.emulator is None:
            self.emulator = EmulatorThread(scenario=self.scenario, api_key=API_KEY, **self.emulator_options)
            self.emulator.start()
        # With a room the speaker is a FIFO drained in real time: what it plays, when, is what echoes.
        self.devices = SoftDevices(self.workdir / "alsa", speaker_fifo=self.room is not None)
        if self.room is not None:
            self.echo_path = EchoPath(self.room, self.devices.speaker_rate)
            self.sink = SpeakerSink(self.devices.speaker_file, self.devices.speaker_rate,
                                    on_played=self.echo_path.push)
        self.write_config()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_config(self) -> None:
        assert self.emulator is not None and self.devices is not None
        base = f"""
[live]
endpoint = "{self.emulator.base_url}"
ca_file = "{self.emulator.ca_file}"
connect_timeout_seconds = 10.0
reconnect_max_seconds = 2.0

[audio]
input_device = "{self.devices.mic_name}"
output_device = "{self.devices.speaker_name}"

[state]
directory = "{self.state_dir}"

[control]
socket = "{self.socket_path}"
group = ""

[gpio]
enabled = "on"
pin_factory = "mock"
led_profile = "rgb"
rgb_pins = [5, 6, 13]
button_pin = 17
"""
        # Echo handling: what the test asked for; in a rig with no room there is no echo to handle,
        # so it is off (the person's voice reaches the service while the speaker plays).
        echo = self.echo if self.echo is not None else (None if self.room is not None else EchoSettings(
            canceller="none", gate="off"))
        if echo is not None:
            base = toml.dumps(toml.overlay(tomllib.loads(base), {"audio": {"echo": echo.model_dump()}}))
        self.config_path.write_text(merge_toml(base, self.extra_config))

    def env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        assert self.devices is not None and self.notify is not None
        env.update(self.devices.env())
        env.update(
            GEMINI_API_KEY=API_KEY,
            NOTIFY_SOCKET=str(self.notify.path),
            GPIOZERO_MOCK_PIN_CLASS="mockpwmpin",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> None:
        """Start (or restart) the daemon process."""
        assert self.devices is not None
        if self.notify is None:
            self.notify = NotifySocket(self.workdir / "notify.sock")
        if self.mic is None:
            self.mic = MicFeeder(self.devices.mic_fifo, room=self.echo_path)
        self.started_at = time.monotonic()
        self.ready_at = None
        start_index = len(self.notify.messages)
        line_index = len(self.lines)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speakerd", "run", "--config", str(self.config_path)],
            env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self._reader = threading.Thread(target=self._read_log, args=(self.proc,), daemon=True)
        self._reader.start()
        if wait_ready:
            self.notify.wait_for(lambda m: m.get("READY") == "1", timeout=timeout, start=start_index)
            self.ready_at = time.monotonic()
            # The READY datagram can beat the log reader: wait for the boot lines too, so a line
            # index taken after start() is past them (a test's "state idle" must be its own).
            self.wait_log(r"^speakerd ready in ", timeout=timeout, start=line_index)

    def _read_log(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            raw = raw.rstrip("\n")
            m = _LINE.match(raw)
            if m:
                fields = dict(f.split("=", 1) for f in (m["fields"] or "").split() if "=" in f)
                line = LogLine(time.monotonic(), m["level"], m["msg"], fields)
            else:
                line = LogLine(time.monotonic(), "RAW", raw, {})
            with self._lines_cond:
                self.lines.append(line)
                self._lines_cond.notify_all()

    # Driving and observing ------------------------------------------------------------------------

    def wait_log(self, pattern: str, *, timeout: float = 30.0, start: int = 0) -> int:
        """Index of the first log line from ``start`` on whose message matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lines_cond:
            while True:
                for i in range(start, len(self.lines)):
                    if rx.search(self.lines[i].message):
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and i >= len(self.lines) - 1):
                    tail = "\n".join(f"  {x.level} {x.message}" for x in self.lines[-25:])
                    raise TimeoutError(f"no log line matching {pattern!r}; last lines:\n{tail}")
                self._lines_cond.wait(min(left, 0.5))

    def wait_state(self, name: str, *, timeout: float = 30.0, start: int = 0) -> int:
        return self.wait_log(rf"^state {re.escape(name)}$", timeout=timeout, start=start)

    def states(self, start: int = 0) -> list[str]:
        with self._lines_cond:
            return [x.message.split(" ", 1)[1] for x in self.lines[start:] if x.message.startswith("state ")]

    def ctl(self, command: str, argument: Any = None) -> dict[str, Any]:
        from speakerd.control import request

        return request(self.socket_path, command, argument)

    def speaker_pcm(self) -> bytes:
        assert self.devices is not None
        if self.sink is not None:
            return self.sink.snapshot()
        return self.devices.speaker_file.read_bytes() if self.devices.speaker_file.exists() else b""

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait_exit(5)

    def close(self) -> None:
        self.stop()
        if self.mic is not None:
            self.mic.close()
            self.mic = None
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if self._own_emulator and self.emulator is not None:
            self.emulator.stop()

    def log_text(self) -> str:
        with self._lines_cond:
            return "\n".join(f"{x.level} {x.message}" for x in self.lines)


def merge_toml(base: str, extra: str) -> str:
    """Overlay ``extra`` TOML on ``base`` by section: later keys win, so tests can override."""
    import tomllib

    return toml.dumps(toml.overlay(tomllib.loads(base), tomllib.loads(extra)))


def frames(pcm: bytes) -> Iterator[bytes]:
    for i in range(0, len(pcm) - len(pcm) % FRAME_BYTES, FRAME_BYTES):
        yield pcm[i : i + FRAME_BYTES]
