"""systemd: READY, STATUS, WATCHDOG, RELOADING and STOPPING on a real notify socket; journald fallback."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from speakerd_workshop.rig import MicFeeder, NotifySocket
from speakerd_workshop.softdev import SoftDevices

from speakerd import systemd
from tests.conftest import base_env


@pytest.fixture
def quiet_room(tmp_path: Path) -> Iterator[SoftDevices]:
    """A microphone fed silence in real time and a file speaker: ALSA software devices, no sound card.

    Not /dev/zero: a microphone without a clock floods the loop (hundreds of percent CPU), which
    no real card does and which starves signal delivery.
    """
    devices = SoftDevices(tmp_path / "alsa")
    feeder = MicFeeder(devices.mic_fifo)
    yield devices
    feeder.close()


def _start(cfg: Path, ns: NotifySocket, devices: SoftDevices, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "speakerd", "run", "--config", str(cfg)],
        env=base_env(NOTIFY_SOCKET=str(ns.path), **devices.env(), **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def daemon_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "speakerd.toml"
    path.write_text(
        f"[state]\ndirectory = '{tmp_path / 'state'}'\n"
        f"[control]\nsocket = '{tmp_path / 'control.sock'}'\ngroup = ''\n"
        f"[audio]\ninput_device = '{SoftDevices.mic_name}'\noutput_device = '{SoftDevices.speaker_name}'\n"
        "[gpio]\nenabled = 'off'\n" + extra
    )
    return path


@pytest.mark.slow
def test_ready_status_watchdog_reload_and_stop(tmp_path: Path, notify_socket: NotifySocket,
                                               quiet_room: SoftDevices) -> None:
    cfg = daemon_config(tmp_path)
    proc = _start(cfg, notify_socket, quiet_room, WATCHDOG_USEC="300000")
    try:
        ready = notify_socket.wait_for(lambda m: m.get("READY") == "1")
        assert notify_socket.messages[ready].get("STATUS", "").startswith("idle")
        notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", start=ready)

        # A bad new file: RELOADING then READY, the old configuration kept and the process alive.
        cfg.write_text(cfg.read_text().replace("[audio]\n", "[audio]\nvolume = 170\n"))
        proc.send_signal(signal.SIGHUP)
        r1 = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", start=ready + 1)
        notify_socket.wait_for(lambda m: m.get("READY") == "1", start=r1)
        assert proc.poll() is None

        cfg.write_text(daemon_config(tmp_path).read_text() + "[logging]\nlevel = 'debug'\n")
        proc.send_signal(signal.SIGHUP)
        r2 = notify_socket.wait_for(lambda m: m.get("RELOADING") == "1", start=r1 + 1)
        notify_socket.wait_for(lambda m: m.get("READY") == "1", start=r2)

        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for(lambda m: m.get("STOPPING") == "1", start=r2)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "audio.volume: must be <= 100 (got 170)" in err
    assert "reload refused" in err and "configuration reloaded" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_bad_config_at_start_exits_78_with_one_line(tmp_path: Path, notify_socket: NotifySocket,
                                                    quiet_room: SoftDevices) -> None:
    cfg = daemon_config(tmp_path, "[wakeword]\nthreshold = 1.5\n")
    proc = _start(cfg, notify_socket, quiet_room)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 78
    assert err == "speakerd.toml: wakeword.threshold: must be < 1.0 (got 1.5)\n"
    assert notify_socket.count("READY") == 0


def test_watchdog_interval_is_half_and_honours_pid() -> None:
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert systemd.watchdog_interval({}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_notifier_without_socket_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = systemd.Notifier()
    assert n.ready("idle") is False and n.watchdog() is False


def test_notifier_status_is_sent_once_per_change(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    n = systemd.Notifier()
    assert n.status("listening") is True
    assert n.status("listening") is False
    assert n.status("speaking") is True
    notify_socket.wait_for(lambda m: m.get("STATUS") == "speaking")
    assert [m["STATUS"] for m in notify_socket.messages] == ["listening", "speaking"]


async def test_watchdog_withholds_pings_while_unhealthy(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    problem: list[str | None] = ["no microphone frames for 9.0 s"]
    task = asyncio.create_task(systemd.run_watchdog(systemd.Notifier(), 0.01, lambda: problem[0]))
    await asyncio.sleep(0.2)
    assert notify_socket.count("WATCHDOG") == 0
    problem[0] = None
    await asyncio.sleep(0.2)
    task.cancel()
    notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1")


def test_redaction_covers_message_args_fields_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    redactor = systemd.setup_logging("debug")
    redactor.add("AIzaSECRET123")
    log = logging.getLogger("speakerd.test")
    log.info("key is %s", "AIzaSECRET123", extra=systemd.fields(detail="x AIzaSECRET123"))
    try:
        raise RuntimeError("failed with AIzaSECRET123")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert "AIzaSECRET123" not in err
    assert "key is **********" in err and "detail=x **********" in err and "RuntimeError" in err
    logging.getLogger().handlers.clear()


def test_journald_only_when_stderr_is_the_journal() -> None:
    assert systemd.journald_available({}) is False
    assert systemd.journald_available({"JOURNAL_STREAM": "0:0"}) is False
