"""systemd integration: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING) and journald.

Why: a speaker on a shelf is supervised by systemd, not a person. READY tells systemd the
daemon really listens; STATUS shows the state in ``systemctl status``; the watchdog ping is sent
only while the event loop turns *and* microphone frames arrive, so a live process with a dead
microphone loop is restarted rather than left deaf.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("speakerd.systemd")

try:  # systemd-python is a required dependency, but a broken build must not stop the daemon.
    from systemd import daemon as _sd_daemon
    from systemd import journal as _sd_journal
except ImportError:  # pragma: no cover - exercised only on a broken install
    _sd_daemon = None
    _sd_journal = None


class Notifier:
    """sd_notify through systemd-python; a silent no-op when not started by systemd."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET")) and _sd_daemon is not None
        self._last_status = ""

    def _send(self, *fields: str) -> bool:
        if not self.enabled or _sd_daemon is None:
            return False
        return bool(_sd_daemon.notify("\n".join(fields)))

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1"]
        if status is not None:
            fields.append(f"STATUS={status}")
            self._last_status = status
        return self._send(*fields)

    def status(self, text: str) -> bool:
        if text == self._last_status:
            return False
        self._last_status = text
        return self._send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self._send("WATCHDOG=1")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets Type=notify-reload units (systemd >= 253) match the reload; older
        # systemd ignores the field.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str = "stopping") -> bool:
        return self._send("STOPPING=1", f"STATUS={status}")


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is asked for."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a whole number", usec)
        return None
    return value / 2 / 1_000_000 if value > 0 else None


async def run_watchdog(
    notifier: Notifier,
    interval: float,
    healthy: Callable[[], str | None],
) -> None:
    """Ping while ``healthy()`` returns None; otherwise log why (once) and withhold the ping.

    The task itself running proves the loop turns; ``healthy`` adds what the loop alone cannot
    prove, such as microphone frames still arriving.
    """
    last_problem: str | None = None
    while True:
        problem = healthy()
        if problem is None:
            notifier.watchdog()
            if last_problem is not None:
                log.info("healthy again; watchdog pings resumed")
        elif problem != last_problem:
            log.error("unhealthy, withholding watchdog ping: %s", problem)
        last_problem = problem
        await asyncio.sleep(interval)


# Logging -----------------------------------------------------------------------------------------


class RedactSecrets(logging.Filter):
    """Replaces every known secret in a record's text, so no code path can log the API key."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if len(s) >= 4}

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "**********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key.isupper() and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class _FieldsFormatter(logging.Formatter):
    """stderr format: the message, then any SPEAKERD_* structured fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{k.removeprefix('SPEAKERD_').lower()}={v}"
            for k, v in vars(record).items()
            if k.startswith("SPEAKERD_")
        ]
        return f"{text} [{' '.join(fields)}]" if fields else text


def journald_available(environ: dict[str, str] | None = None) -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM to its dev:ino)."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM")
    if not stream or _sd_journal is None:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str = "info", *, redact: RedactSecrets | None = None) -> RedactSecrets:
    """Journal with structured fields under systemd, plain stderr otherwise. Returns the redactor."""
    redactor = redact or RedactSecrets()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if journald_available():
        assert _sd_journal is not None
        handler = _sd_journal.JournalHandler(SYSLOG_IDENTIFIER="speakerd")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FieldsFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("websockets", "httpx", "httpcore", "google_genai", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redactor


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured journal fields named SPEAKERD_<KEY>."""
    return {f"SPEAKERD_{k.upper()}": v for k, v in values.items() if v is not None}
