"""State on disk and configuration reloads: bad files cost at most the conversation, never the speaker."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.reliability.harness import (
    Case,
    answered,
    ask,
    fill,
    follow_up,
    make_rig,
    no_tracebacks,
    small_filesystem,
    wait_until,
)
from tests.sounds import SCENARIO

ANSWER = SCENARIO.turns[0].reply_text


def state_dir_unusable(workdir: Path) -> str:
    """Root ignores mode bits, so the state directory's path is made a regular file instead."""
    workdir.mkdir(parents=True, exist_ok=True)
    blocker = workdir / "not-a-directory"
    blocker.write_text("a file where the state directory should be\n")
    with make_rig(workdir, config=f'[state]\ndirectory = "{blocker}"\n') as rig:
        assert rig.emulator is not None
        rig.wait_log(r"state directory .* is not usable", timeout=10)
        mark = ask(rig, "what time is it")
        answered(rig, mark, ANSWER)
        rig.wait_log(r"cannot store the session handle", timeout=20)
        warnings = sum(1 for x in rig.lines if "cannot store the session handle" in x.message)
        assert warnings == 1, f"warned {warnings} times"
        assert rig.ctl("status")["state"] != "error"
        no_tracebacks(rig)
        return "READY anyway; one warning at start, one when the first handle could not be stored; answered"


def _stored(content: bytes, expect: str) -> object:
    def run(workdir: Path) -> str:
        state = workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        (state / "resumption.json").write_bytes(content)
        with make_rig(workdir) as rig:
            assert rig.emulator is not None
            mark = ask(rig, "what time is it")
            answered(rig, mark, ANSWER)
            first = rig.emulator.connections[0]
            assert first.resumed_handle is None, "a bad stored handle was sent"
            line = rig.wait_log(expect, timeout=10)
            no_tracebacks(rig)
            return f"started fresh (no handle sent); warned: {rig.lines[line].message.split(':')[0]!r}"

    return run


def reload_invalid_config(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        assert rig.notify is not None
        good = rig.config_path.read_text()
        rig.config_path.write_text(good + "\n[audio]\nvolume = 900\n")  # a duplicate table and a bad value
        n0 = len(rig.notify.messages)
        mark = len(rig.lines)
        rig.send_signal(signal.SIGHUP)
        rig.wait_log(r"reload refused, keeping the running configuration", timeout=10, start=mark)
        reloading = rig.notify.wait_for(lambda m: m.get("RELOADING") == "1", start=n0)
        rig.notify.wait_for(lambda m: m.get("READY") == "1", start=reloading)
        assert rig.proc is not None and rig.proc.poll() is None
        answered(rig, ask(rig, "what time is it"), ANSWER)
        # And a good change is taken: the volume is applied without a restart.
        rig.config_path.write_text(good.replace("[audio]", "[audio]\nvolume = 23", 1))
        mark = len(rig.lines)
        rig.send_signal(signal.SIGHUP)
        rig.wait_log(r"^configuration reloaded", timeout=10, start=mark)
        wait_until(rig, lambda: rig.ctl("status")["volume"] == 23, timeout=10, what="volume 23 after the reload")
        no_tracebacks(rig)
        return "invalid: refused in one line, RELOADING=1 then READY=1, still answers; valid: volume 23 applied"


def _handle(path: Path) -> str:
    return str(json.loads(path.read_text())["handle"])


def state_dir_broken(mode: str) -> Callable[[Path], str]:
    """The state directory on a real filesystem that fills up or turns read-only after a conversation.

    Expected: the stored conversation is still resumed, nothing on disk is damaged, one warning, the
    speaker answers; when space comes back (full), handles are stored again.
    """

    def run(workdir: Path) -> str:
        rig = make_rig(workdir)
        with small_filesystem(rig.state_dir, 256), rig:
            assert rig.emulator is not None
            answered(rig, ask(rig, "what time is it"), ANSWER)
            rig.stop()
            stored = rig.state_dir / "resumption.json"
            old = _handle(stored)
            filler = None
            if mode == "full":
                filler = fill(rig.state_dir)
            else:
                r = subprocess.run(["mount", "-o", "remount,ro", str(rig.state_dir)], capture_output=True,
                                   text=True, check=False)
                assert r.returncode == 0, r.stderr
            conns = len(rig.emulator.connections)
            mark = len(rig.lines)
            rig.start()
            if mode == "read-only":
                rig.wait_log(r"state directory .* is not writable", timeout=10, start=mark)
            asked = ask(rig, "and tomorrow")
            answered(rig, asked, SCENARIO.turns[1].reply_text)
            assert rig.emulator.connections[conns].resumed_handle == old, "the stored conversation was not resumed"
            rig.wait_log(r"cannot store the session handle", timeout=20, start=mark)
            assert rig.ctl("volume", 31)["ok"]  # the volume is applied even though it cannot be stored
            rig.wait_log(r"cannot remember the volume", timeout=10, start=mark)
            assert rig.ctl("status")["volume"] == 31
            assert _handle(stored) == old, "the stored handle was damaged"
            warned = sum(1 for x in rig.lines[mark:] if "cannot store the session handle" in x.message)
            assert warned == 1, f"warned {warned} times"
            outcome = (f"resumed the stored conversation, answered; one warning "
                       f"({rig.lines[rig.wait_log(r'cannot store', start=mark)].message.split(';')[0]!r}); "
                       f"old handle intact; volume applied, not stored")
            if filler is not None:  # space comes back: the next handle is stored, said once
                filler.unlink()
                back = len(rig.lines)
                answered(rig, follow_up(rig, "tell me a story"), SCENARIO.turns[2].reply_text)
                rig.wait_log(r"the resumption file is writable again", timeout=20, start=back)
                assert _handle(stored) != old
                outcome += "; space freed: 'writable again', newer handle stored"
            no_tracebacks(rig)
            rig.stop()
            return outcome

    return run


CASES = [
    Case("state-dir-unusable", "state", "state directory path is a regular file",
         "warn once, run without memory, answer", state_dir_unusable),
    Case("state-dir-full", "state", "state filesystem full (real tmpfs, ENOSPC)",
         "resume the stored conversation, warn once, old handle intact; stored again when space is back",
         state_dir_broken("full")),
    Case("state-dir-read-only", "state", "state filesystem remounted read-only",
         "resume the stored conversation, warn once, old handle intact", state_dir_broken("read-only")),
    Case("resumption-corrupt", "state", "resumption.json is not JSON",
         "warn, start fresh", _stored(b"{\x00garbage", r"resumption file .* corrupt")),  # type: ignore[arg-type]
    Case("resumption-truncated", "state", "resumption.json cut in half",
         "warn, start fresh", _stored(b'{"handle": "emu-abc", "model": "gemini-3.8-li',  # type: ignore[arg-type]
                                      r"resumption file .* corrupt")),
    Case("resumption-other-model", "state", "resumption.json from another model",
         "warn, start fresh",
         _stored(json.dumps({"handle": "emu-abc", "model": "gemini-2.5-flash-native-audio",  # type: ignore[arg-type]
                             "saved_at": time.time()}).encode(), r"stored conversation: it was with")),
    Case("reload-invalid-config", "state", "config made invalid, then SIGHUP",
         "old config kept, READY again, still answers", reload_invalid_config),
]
