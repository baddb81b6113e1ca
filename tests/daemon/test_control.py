"""The control socket and speakerctl, with a fake daemon behind the socket."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from speakerd import control


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "control.sock"


async def _serve(path: Path, calls: list[tuple[str, Any]]) -> control.ControlServer:
    async def handler(command: str, argument: Any) -> dict[str, Any]:
        calls.append((command, argument))
        if command == "volume" and not isinstance(argument, int):
            raise control.ControlError("volume needs a number")
        if command == "status":
            return {"state": "idle", "uptime_seconds": 3.25, "metrics": {"wake_to_streaming": 0.123}}
        return {"message": f"{command} done"}

    server = control.ControlServer(path, None, handler)
    await server.start()
    return server


async def test_socket_mode_requests_and_errors(sock_path: Path) -> None:
    calls: list[tuple[str, Any]] = []
    server = await _serve(sock_path, calls)
    try:
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o660
        reply = await asyncio.to_thread(control.request, sock_path, "say", "hello there")
        assert reply == {"ok": True, "message": "say done"}
        bad = await asyncio.to_thread(control.request, sock_path, "volume", "loud")
        assert bad == {"ok": False, "error": "volume needs a number"}
        unknown = await asyncio.to_thread(control.request, sock_path, "reboot")
        assert unknown["ok"] is False and "unknown command 'reboot'" in unknown["error"]
        assert calls == [("say", "hello there"), ("volume", "loud")]
    finally:
        await server.close()
    assert not sock_path.exists()


async def test_speakerctl_status_text_and_json(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = await _serve(sock_path, [])
    try:
        rc = await asyncio.to_thread(control.main, ["--socket", str(sock_path), "status"])
        out = capsys.readouterr().out
        assert rc == 0 and "state: idle" in out and "wake to streaming: 0.123 s" in out
        rc = await asyncio.to_thread(control.main, ["--socket", str(sock_path), "--json", "volume", "40"])
        assert rc == 0 and json.loads(capsys.readouterr().out)["message"] == "volume done"
    finally:
        await server.close()


def test_speakerctl_without_daemon(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert control.main(["--socket", str(sock_path), "status"]) == 3
    assert capsys.readouterr().err == f"speakerctl: speakerd is not running (no socket at {sock_path})\n"


def test_volume_out_of_range_is_refused_by_speakerctl(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        control.main(["--socket", "/nonexistent", "volume", "170"])
    assert e.value.code == 2


def test_peer_policy() -> None:
    me = os.geteuid()
    assert control.peer_allowed(0, 0, None)
    assert control.peer_allowed(me, 12345, None)
    assert not control.peer_allowed(me + 4242, 4242, None)
    assert control.peer_allowed(me + 4242, 777, 777)  # primary group matches
    assert not control.peer_allowed(me + 4242, 4242, 777)  # unknown user, not a member
