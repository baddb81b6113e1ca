"""Security: the key is never shown, unsafe permissions are named, strangers are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from speakerd_workshop.emulator import Fault, Scenario
from speakerd_workshop.rig import API_KEY

from tests.reliability.harness import Case, answered, make_rig, no_key, no_tracebacks, wait_until
from tests.sounds import silence, speech, wake

NOBODY = 65534


def _cli(args: list[str], env: dict[str, str], user: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=60,
                          user=user, check=False)


def key_never_shown(workdir: Path) -> str:
    """Error reasons that quote the key, then every output a person or the journal can see."""
    with make_rig(workdir) as rig:
        assert rig.emulator is not None and rig.notify is not None and rig.mic is not None
        # A service (or proxy) that echoes the key back in its close reason, first transient, then fatal.
        rig.emulator.inject(Fault("close", code=1011, during="setup", reason=f"bad key {API_KEY}"))
        rig.emulator.inject(Fault("close", code=1011, during="reply", reason=f"key={API_KEY}"))
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what time is it") + silence(2.0))
        answered(rig, mark, "It is time for a test.")
        # A 1008 after setup is resumed once; the second in a row is fatal (network.fatal_close).
        emulator = rig.emulator
        count = len(emulator.connections)
        emulator.inject(Fault("close", code=1008, target="current", during="now",
                              reason=f"API key {API_KEY} not valid"))
        wait_until(rig, lambda: len(emulator.connections) > count and emulator.connections[-1].setup is not None,
                   what="the resume")
        emulator.inject(Fault("close", code=1008, target="current", during="now",
                              reason=f"API key {API_KEY} not valid"))
        rig.wait_state("error", timeout=30, start=mark)
        status = rig.ctl("status")
        env = rig.env()
        outputs = {
            "daemon log": rig.log_text(),
            "sd_notify": json.dumps(rig.notify.messages),
            "control status": json.dumps(status),
        }
        check = _cli(["speakerd", "check-config", "--config", str(rig.config_path)], env)
        outputs["check-config"] = check.stdout + check.stderr
        ctl = _cli(["speakerd.control", "--socket", str(rig.socket_path), "--json", "status"], env)
        outputs["speakerctl status --json"] = ctl.stdout + ctl.stderr
        bad = rig.workdir / "bad.toml"
        bad.write_text('[live]\nmodel = 3\n[audio]\nvolume = "loud"\n')
        broken = _cli(["speakerd", "check-config", "--config", str(bad)], env)
        outputs["check-config (invalid)"] = broken.stdout + broken.stderr
        for path in rig.state_dir.rglob("*"):
            if path.is_file():
                outputs[f"state file {path.name}"] = path.read_text(errors="replace")
        rig.stop()
        outputs["daemon log (after stop)"] = rig.log_text()
        assert "check-config" in outputs and "api key: **********" in check.stdout, check.stdout
        assert "last_error" in status and "1008" in str(status["last_error"]), status
        assert ctl.returncode == 0, ctl.stderr
        for where, text in outputs.items():
            no_key(text, where)
        assert "**********" in outputs["daemon log"], "the reasons quoting the key were not masked"
        no_tracebacks(rig)
        return f"key quoted in 3 close reasons; absent from {len(outputs)} outputs ({', '.join(outputs)})"


def _check_config(workdir: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from tests.conftest import base_env

    env = base_env(**env_extra)
    return _cli(["speakerd", "check-config", "--config", str(workdir / "speakerd.toml")], env)


def unsafe_permissions(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "speakerd.toml"
    cfg.write_text("[logging]\nlevel = \"info\"\n")
    creds = workdir / "credentials"
    creds.mkdir()
    key = creds / "gemini-api-key"
    key.write_text(API_KEY + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    os.chmod(cfg, 0o644)
    os.chmod(key, 0o600)
    clean = _check_config(workdir, env)
    assert clean.returncode == 0 and "warning" not in clean.stderr, clean.stderr
    os.chmod(cfg, 0o666)
    loose_cfg = _check_config(workdir, env)
    os.chmod(cfg, 0o644)
    os.chmod(key, 0o644)
    loose_key = _check_config(workdir, env)
    for r in (clean, loose_cfg, loose_key):
        no_key(r.stdout + r.stderr, "check-config")
    assert "writable by every user" in loose_cfg.stderr, loose_cfg.stderr
    assert "gemini-api-key" in loose_key.stderr and "readable" in loose_key.stderr, loose_key.stderr
    def first(text: str) -> str:
        return next(line for line in text.splitlines() if "warning" in line)

    return f"0666 config: {first(loose_cfg.stderr)!r}; 0644 key: {first(loose_key.stderr)!r}"


def _as_stranger(path: Path, request: bytes) -> bytes:
    """Send ``request`` from a forked child that has become uid/gid 65534, and return the reply.

    A fork, not an exec: the interpreter may live where 65534 cannot read it.
    """
    import socket

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level clean-up, only the socket
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(str(path))
                s.sendall(request)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            os.write(w, data)
            os._exit(0)
        except BaseException as e:
            os.write(w, json.dumps({"child_error": repr(e)}).encode())
            os._exit(1)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out


def stranger_refused(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        os.chmod(rig.socket_path, 0o666)  # only the peer check is left between a stranger and the speaker
        parent = rig.workdir
        for p in (parent, *parent.parents):
            if p == Path("/"):
                break
            os.chmod(p, os.stat(p).st_mode | 0o011)  # let uid 65534 reach the socket
        reply = json.loads(_as_stranger(rig.socket_path, b'{"command": "mute"}\n'))
        assert reply == {"ok": False, "error": "permission denied"}, reply
        rig.wait_log(r"refused uid 65534", timeout=10)
        assert rig.ctl("status")["muted"] is False, "the stranger's command ran"
        own = rig.ctl("status")
        assert own["ok"], own
        return f"uid 65534 on a 0666 socket got {reply}; the owner is still served"


def bad_tool_arguments(workdir: Path) -> str:
    scenario = Scenario.from_dict({"turns": [{
        "user_transcript": "what time is it",
        "tool_calls": [{"name": "set_volume", "args": {"level": "$(reboot); rm -rf /"}}],
        "after_tool_text": "Done.",
    }]})
    with make_rig(workdir, scenario=scenario) as rig:
        assert rig.emulator is not None and rig.mic is not None
        before = rig.ctl("status")["volume"]
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what time is it") + silence(2.0))
        responses = rig.emulator.wait_for(lambda: rig.emulator.messages("toolResponse"), timeout=40)  # type: ignore[union-attr]
        answered(rig, mark, "Done.")
        text = json.dumps(responses)
        assert "invalid arguments" in text, text
        assert rig.ctl("status")["volume"] == before
        wait_until(rig, lambda: rig.proc is not None and rig.proc.poll() is None, what="daemon alive")
        no_tracebacks(rig)
        return ("set_volume(level='$(reboot); rm -rf /') refused as invalid arguments, volume unchanged, "
                "answer spoken (argv/no-shell, timeout and output cap: tests/live/test_units.py)")


CASES = [
    Case("key-never-shown", "security", "API key quoted in close reasons; every output searched",
         "key masked everywhere (log, STATUS, status, check-config, speakerctl, state files)", key_never_shown),
    Case("unsafe-permissions", "security", "config 0666, credential file 0644",
         "one warning line each from check-config", unsafe_permissions),
    Case("stranger-refused", "security", "uid 65534 connects to a 0666 control socket",
         "\"permission denied\", logged, command not run", stranger_refused),
    Case("bad-tool-arguments", "security", "model calls set_volume with a shell string",
         "refused as invalid arguments; nothing runs; conversation goes on", bad_tool_arguments),
]
