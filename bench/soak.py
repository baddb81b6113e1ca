#!/usr/bin/env python3
"""Soak: many short conversations with goAways, barge-ins and dropped connections, against the real
daemon; RSS, open file descriptors and threads of the daemon at the start and the end.

Usage: .venv/bin/python bench/soak.py [--conversations 20] [--mic-speed 1.0]
(``SPEAKERD_SOAK=1 pytest -m soak tests/reliability`` runs it with 500 conversations.)

Figures are ratios to the start of the same run (after ``--warmup`` conversations, when the models
and the SDK are loaded), written to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator import Fault, Scenario

from tests.reliability.harness import answered, make_rig, proc_figures, said, wait_until
from tests.sounds import silence, speech, wake

REPLY = "Here is a fairly long answer, so that there is time to interrupt it politely if you like."
SCENARIO = Scenario.from_dict({"default_reply": REPLY, "default_user_transcript": "a question"})
CONFIG = "[conversation]\nfollow_up_seconds = 1.0\nidle_timeout_seconds = 4.0\n[logging]\ntranscripts = true\n"


def conversation(rig: Any, i: int, counts: dict[str, int]) -> None:
    assert rig.mic is not None and rig.emulator is not None
    mark = len(rig.lines)
    rig.mic.say(wake() + speech("what time is it") + silence(1.5))
    speaking = rig.wait_state("speaking", timeout=60, start=mark)
    if i % 4 == 1:  # the server asks us to move, mid-reply
        rig.emulator.inject(Fault("go_away", target="current", during="now"))
        counts["go_aways"] += 1
    if i % 5 == 2:  # the connection drops mid-reply
        rig.emulator.inject(Fault("drop", target="current", during="now"))
        counts["drops"] += 1
    if i % 3 == 0:  # the person interrupts the reply (as the button does; voice barge-in: tests/e2e)
        rig.ctl("interrupt")
        if any(x.message.startswith("interrupt to silence") for x in rig.lines[speaking:]):
            counts["barge_ins"] += 1
    else:
        answered(rig, mark, REPLY, timeout=60)
    rig.wait_state("idle", timeout=60, start=mark)
    rig.mic.wait_idle()
    assert said(rig, mark) or i % 3 == 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Soak the real daemon with many conversations.")
    p.add_argument("--conversations", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--pace", type=float, default=4.0, help="emulator reply pace (x real time)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = p.parse_args(argv)
    counts = {"go_aways": 0, "drops": 0, "barge_ins": 0}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="speakerd-soak-") as tmp, \
            make_rig(Path(tmp) / "rig", scenario=SCENARIO, config=CONFIG,
                     emulator_options={"pace": args.pace, "go_away_before_seconds": 1.0}) as rig:
        assert rig.proc is not None and rig.emulator is not None
        pid = rig.proc.pid
        start = proc_figures(pid)
        warm: dict[str, int] | None = None
        samples: list[dict[str, int]] = []  # every 10 conversations: flat, or growing, and how
        for i in range(args.conversations):
            conversation(rig, i, counts)
            if i + 1 == args.warmup:
                warm = proc_figures(pid)
            if (i + 1) % 10 == 0:
                samples.append({"conversations": i + 1, **proc_figures(pid)})
                print(f"{i + 1} conversations, {samples[-1]}", file=sys.stderr, flush=True)
        wait_until(rig, lambda: rig.ctl("status")["state"] == "idle", what="idle")
        end = proc_figures(pid)
        status = rig.ctl("status")
        tracebacks = rig.log_text().count("Traceback")
        connections = len(rig.emulator.connections)
    result: dict[str, Any] = {
        "conversations": args.conversations,
        "warmup": args.warmup,
        "pace": args.pace,
        "seconds": round(time.monotonic() - started, 1),
        "go_aways": counts["go_aways"],
        "drops": counts["drops"],
        "barge_ins": counts["barge_ins"],
        "reconnects": status.get("reconnects"),
        "connections": connections,
        "tracebacks": tracebacks,
        "start": start,
        "end": end,
        "samples": samples,
    }
    if warm is not None:
        result["after_warmup"] = warm
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    base = warm or start
    print(f"soak: {args.conversations} conversations in {result['seconds']:.0f} s "
          f"({counts['go_aways']} goAways, {counts['drops']} drops, {counts['barge_ins']} barge-ins, "
          f"{connections} connections, {tracebacks} tracebacks)")
    for name in ("rss_kb", "fds", "threads"):
        print(f"  {name:8} start {start[name]:>8}  after warm-up {base[name]:>8}  end {end[name]:>8}  "
              f"end/after-warm-up {end[name] / base[name]:.3f}")
    print(f"wrote {args.out}")
    return 0 if tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
