"""Shared test helpers: a real sd_notify socket and paths. Area fixtures live in each test dir."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
        self._thread = threading.Thread(target=self._read, daemon=True)
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
                    raise AssertionError(f"no matching notify message; got {self.messages[start:]}")
                self._cond.wait(left)

    def count(self, key: str, value: str = "1") -> int:
        with self._cond:
            return sum(1 for m in self.messages if m.get(key) == value)

    def close(self) -> None:
        self._closed = True
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for a daemon subprocess: no inherited keys or systemd variables."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "ALSA_CONFIG_PATH", "GPIOZERO_PIN_FACTORY",
            "GPIOZERO_MOCK_PIN_CLASS", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env
