"""Memory footprint of the real daemon: idle RSS after READY, after many conversations, and why.

The daemon runs through the test rig (emulator, ALSA software devices, mock GPIO), as on a Pi.
Printed and written to bench/results/footprint.json:
  - idle RSS 5 s after READY (target: at most 120 MiB), and after ``--conversations``
    conversations (target: flat, within 2 MiB from the 10th conversation to the last: the first
    conversation loads the Live session's code and TLS state once);
  - start to READY, and the time to import what the daemon imports;
  - the top modules by memory: resident-memory growth while each package is imported (its own
    share, not its dependencies'), in a child interpreter that imports what the daemon does and
    loads the wake-word models;
  - the baseline, in the same run: a bare interpreter importing only google-genai, onnxruntime
    and numpy (RSS and import time).

    python bench/footprint.py                      # 100 conversations
    python bench/footprint.py --conversations 10   # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator import Scenario

from tests.reliability.harness import make_rig, proc_figures
from tests.sounds import silence, speech, wake

TARGET_MIB = 120.0
FLAT_MIB = 2.0  # growth allowed from the 10th conversation to the last
REPLY = "It is time for a test, and this reply is a little longer than one word."
SCENARIO = Scenario.from_dict({"default_reply": REPLY})
CONFIG = "[conversation]\nfollow_up_seconds = 0.5\n[live.vad]\nsilence_duration_ms = 500\n"

# Run in a child: RSS growth per imported package, its own share (children subtracted).
PROFILE = r"""
import builtins, json, sys, time
PAGE = 4096
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
own, stack, real = {}, [], builtins.__import__
def tracking(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0] if level == 0 else None
    if top is None or top in sys.modules:
        return real(name, globals, locals, fromlist, level)
    stack.append([top, rss(), 0])
    try:
        return real(name, globals, locals, fromlist, level)
    finally:
        top, start, children = stack.pop()
        inclusive = rss() - start
        own[top] = own.get(top, 0) + inclusive - children
        if stack:
            stack[-1][2] += inclusive
t0 = time.perf_counter()
base = rss()
builtins.__import__ = tracking
MODULES
builtins.__import__ = real
imported = time.perf_counter() - t0
EXTRA
print(json.dumps({"import_s": imported, "rss": rss(), "base_rss": base, "own": own}))
"""
DAEMON_IMPORTS = "import speakerd.cli\nimport speakerd.daemon\n"
DAEMON_EXTRA = """
from speakerd import config
from speakerd.wakeword import load_model
before = rss()
load_model(config.WakewordSettings())
own["(wake-word models loaded)"] = rss() - before
"""
BARE_IMPORTS = "import google.genai\nimport onnxruntime\nimport numpy\n"


def child_profile(modules: str, extra: str = "") -> dict[str, Any]:
    code = PROFILE.replace("MODULES", modules).replace("EXTRA", extra)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def conversation(rig: Any) -> None:
    assert rig.mic is not None
    mark = len(rig.lines)
    rig.mic.say(wake() + speech("what time is it") + silence(1.0))
    speaking = rig.wait_state("speaking", timeout=60, start=mark)
    rig.wait_state("idle", timeout=60, start=speaking)
    rig.mic.wait_idle()


def settle_rss(pid: int, seconds: float = 5.0) -> float:
    time.sleep(seconds)
    return proc_figures(pid)["rss_kb"] / 1024


def mib(b: float) -> float:
    return b / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--conversations", type=int, default=100)
    p.add_argument("--pace", type=float, default=4.0, help="emulator reply pace (x real time)")
    args = p.parse_args()
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="speakerd-footprint-") as tmp, \
            make_rig(Path(tmp) / "rig", scenario=SCENARIO, config=CONFIG,
                     emulator_options={"pace": args.pace}) as rig:
        assert rig.proc is not None and rig.ready_at is not None
        pid = rig.proc.pid
        start_to_ready = rig.ready_at - rig.started_at
        idle = settle_rss(pid)
        print(f"idle RSS after READY: {idle:.1f} MiB", flush=True)
        for i in range(args.conversations):
            conversation(rig)
            if (i + 1) % 10 == 0:
                samples.append({"conversations": i + 1, "rss_mib": proc_figures(pid)["rss_kb"] / 1024})
                print(f"  {i + 1} conversations: RSS {samples[-1]['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        after = settle_rss(pid)
        tracebacks = rig.log_text().count("Traceback")
    daemon = child_profile(DAEMON_IMPORTS, DAEMON_EXTRA)
    bare = child_profile(BARE_IMPORTS)
    top = sorted(daemon["own"].items(), key=lambda kv: -kv[1])[:12]
    print(f"RSS after {args.conversations} conversations: {after:.0f} MiB ({after - idle:+.1f} MiB)")
    print(f"start to READY: {start_to_ready:.2f} s")
    print(f"import time: daemon {daemon['import_s']:.2f} s, bare (google-genai, onnxruntime, numpy) "
          f"{bare['import_s']:.2f} s")
    print(f"RSS of the imports: daemon {mib(daemon['rss']):.0f} MiB with models loaded, "
          f"bare {mib(bare['rss']):.0f} MiB (interpreter alone {mib(bare['base_rss']):.0f} MiB)")
    print("top modules by memory (own RSS growth while imported):")
    for name, size in top:
        print(f"  {name:32s} {mib(size):6.1f} MiB")
    warm = samples[0]["rss_mib"] if samples else idle
    met = idle <= TARGET_MIB and after - warm <= FLAT_MIB
    print(f"flat: {after - warm:+.1f} MiB from conversation {samples[0]['conversations'] if samples else 0} "
          f"to {args.conversations} (the first conversations load the Live session's code and TLS once)")
    print(f"target idle <= {TARGET_MIB:.0f} MiB and flat within {FLAT_MIB:.0f} MiB: {'met' if met else 'NOT met'}")
    out = ROOT / "bench" / "results" / "footprint.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "idle_rss_mib": idle, "conversations": args.conversations, "rss_after_mib": after,
        "rss_growth_mib": after - idle, "rss_growth_after_warmup_mib": after - warm, "samples": samples,
        "start_to_ready_s": start_to_ready,
        "daemon_import_s": daemon["import_s"], "bare_import_s": bare["import_s"],
        "daemon_import_rss_mib": mib(daemon["rss"]), "bare_import_rss_mib": mib(bare["rss"]),
        "top_modules_mib": {k: mib(v) for k, v in top}, "tracebacks": tracebacks, "target_met": met,
    }, indent=2) + "\n")
    return 0 if met and tracebacks == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
