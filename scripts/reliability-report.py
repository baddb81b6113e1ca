#!/usr/bin/env python3
"""Run the fault matrix against the real daemon and regenerate docs/reliability.md.

Usage: .venv/bin/python scripts/reliability-report.py [--area network] [--only ID ...] [--no-write]
       [--render-only]

A partial run (--area, --only) replaces its rows in the last full run's results and rewrites the page.

Every case starts the real daemon with the emulator and ALSA software devices (tests/reliability/),
injects its fault and checks the outcome; the table shows what was expected and what was observed.
The soak figures come from bench/results/soak.json (run ``bench/soak.py`` to refresh them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.harness import CannotSimulate, Case  # noqa: E402
from tests.reliability.matrix import ALL_CASES  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
SOAK = ROOT / "bench" / "results" / "soak.json"
RESULTS = ROOT / "bench" / "results" / "reliability.json"  # the last full run, for --render-only


def run_case(case: Case) -> tuple[bool | None, str, float]:
    """(passed, observed, seconds); passed is None when this machine could not stage the fault."""
    started = time.monotonic()
    ok: bool | None
    with tempfile.TemporaryDirectory(prefix="speakerd-rel-") as tmp:
        try:
            observed = case.run(Path(tmp) / case.id)
            ok = True
        except CannotSimulate as e:
            observed, ok = f"not run here: {e}", None
        except Exception as e:  # a failed expectation or a broken rig: both are reported, not hidden
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            observed = f"{type(e).__name__}: {first}"
            ok = False
            traceback.print_exc(file=sys.stderr)
        observed = observed.replace(tmp, "<tmp>")
    observed = re.sub(re.escape(tempfile.gettempdir()) + r"/[\w./-]+", "<tmp>", observed)
    return ok, observed, time.monotonic() - started


ELSEWHERE = [
    "Real systemd: `tests/reliability/test_nspawn.py` boots the shipped unit in systemd-nspawn and shows "
    "READY on start, `systemctl reload` (RELOADING=1, then running), a watchdog restart of a daemon whose event loop hangs, "
    "the key delivered as a credential and absent from the journal, no restart after exit 78, and the "
    "control socket serving the speakerd group only. It runs with the test suite where the machine can boot "
    "a container.",
    "Bad input fuzzing: `tests/reliability/test_fuzz.py` (hypothesis: mutated server frames through the real "
    "SDK and Live client) and `tests/foundation/test_config.py` (hypothesis: generated config files and "
    "arbitrary bytes).",
    "Security outside this table: `systemd-analyze security` at or under 2.0 (tests/foundation); tool "
    "arguments, no shell, timeouts and the output cap (tests/live); secret masking in check-config "
    "(tests/foundation).",
    "Heavy variants: `SPEAKERD_SOAK=1` makes the kill test 100 runs and the fuzzing 1100 examples instead of 90, and "
    "enables the soak test (`pytest -m soak tests/reliability`).",
]

NOT_COVERED = [
    "A microphone or speaker on a real card: ALSA software devices and a PulseAudio server stand in.",
    "A loop stuck inside the daemon's own code: the hang is made by a test-only signal handler that blocks "
    "the loop's thread, which is what a stuck call looks like from outside.",
]

KNOWN_LIMITS = [
    "Delivery after a drop is at least once: input the stored handle does not cover is sent again, so a "
    "question can reach the model twice and a tool can run twice (drop-mid-tool-call). Tools with side "
    "effects should be idempotent.",
    "A goAway switch closes the old connection before opening the new one; microphone audio is held in "
    "the outbox meanwhile (bench/live_latency.py: gap p50 8.4 ms against the emulator).",
]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def soak_section() -> list[str]:
    if not SOAK.exists():
        return ["No soak figures yet: run `.venv/bin/python bench/soak.py`."]
    data = json.loads(SOAK.read_text())
    warm = data.get("after_warmup", data["start"])
    out = [
        f"`bench/soak.py` ({data.get('conversations')} conversations with {data.get('go_aways')} goAways, "
        f"{data.get('drops')} dropped connections and {data.get('barge_ins')} barge-ins; "
        f"{data.get('connections')} connections, {data.get('reconnects')} reconnects, "
        f"{data.get('tracebacks')} tracebacks; emulator pace {data.get('pace')}, "
        f"{data.get('seconds', 0):.0f} s wall clock). The baseline is the same process after "
        f"{data.get('warmup')} conversations, when the models and the SDK are loaded:",
        "",
        "| figure | start | after warm-up (baseline) | end | end / baseline |",
        "|---|---|---|---|---|",
    ]
    for name in ("rss_kb", "fds", "threads"):
        start, base, end = data["start"][name], warm[name], data["end"][name]
        out.append(f"| {name} | {start} | {base} | {end} | {end / base:.3f} |")
    n = max(1, int(data.get("conversations", 0)) - int(data.get("warmup", 0)))
    grew = data["end"]["rss_kb"] - warm["rss_kb"]
    out += ["", f"RSS grew {grew / n:.1f} kB per conversation after the warm-up."]
    after = [x for x in data.get("samples", []) if x["conversations"] >= int(data.get("warmup", 0))]
    if len(after) >= 3:  # is the growth slowing down (a warming cache) or steady (a leak)?
        mid = after[len(after) // 2]
        halves = [(after[0], mid), (mid, after[-1])]
        slopes = [(b["rss_kb"] - a["rss_kb"]) / max(1, b["conversations"] - a["conversations"]) for a, b in halves]
        out[-1] += (f" By halves: {slopes[0]:.1f} kB per conversation from {after[0]['conversations']} to "
                    f"{mid['conversations']}, {slopes[1]:.1f} from {mid['conversations']} to "
                    f"{after[-1]['conversations']}. Open files ranged {min(x['fds'] for x in after)} to "
                    f"{max(x['fds'] for x in after)}, threads {min(x['threads'] for x in after)} to "
                    f"{max(x['threads'] for x in after)}.")
    return out


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        "# Reliability",
        "",
        "Generated by `.venv/bin/python scripts/reliability-report.py`; do not edit by hand.",
        "Each row started the real daemon (`speakerd run`) against the Live emulator over TLS, with ALSA",
        "software devices, mock GPIO and a real `NOTIFY_SOCKET`, injected the fault and checked the outcome",
        "(the same cases run as `pytest tests/reliability`). The observed column is what the run saw.",
        "",
        "| area | case | fault | expected | result | observed |",
        "|---|---|---|---|---|---|",
    ]
    words = {True: "pass", False: "**FAIL**", None: "not run"}
    for r in rows:
        word = words[r["ok"]]  # type: ignore[index]
        if r["ok"] is False and r.get("wiring"):
            word = f"open: {r['wiring']}"
        lines.append(f"| {r['area']} | {r['id']} | {cell(str(r['fault']))} | {cell(str(r['expected']))} | "
                     f"{cell(word)} | {cell(str(r['observed']))} |")
    lines += ["", "## Soak", "", *soak_section(), ""]
    lines += ["## Covered elsewhere", "", *(f"- {x}" for x in ELSEWHERE), ""]
    lines += ["## Not covered", "", *(f"- {x}" for x in NOT_COVERED), ""]
    lines += ["## Known limits", "", *(f"- {x}" for x in KNOWN_LIMITS), ""]
    passed = sum(1 for r in rows if r["ok"] is True)
    skipped = sum(1 for r in rows if r["ok"] is None)
    waiting = sum(1 for r in rows if r["ok"] is False and r.get("wiring"))
    lines += [f"{passed} of {len(rows)} cases passed" + (f", {waiting} open (daemon wiring)" if waiting else "")
              + (f", {skipped} not run." if skipped else "."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--area", action="append", help="only this area (network, security, state, process, devices)")
    p.add_argument("--only", nargs="*", help="only these case ids")
    p.add_argument("--no-write", action="store_true", help="print the table, do not write docs/reliability.md")
    p.add_argument("--render-only", action="store_true",
                   help=f"do not run: rewrite the page from {RESULTS.relative_to(ROOT)} and the soak figures")
    args = p.parse_args(argv)
    if args.render_only:
        rows = json.loads(RESULTS.read_text())
    else:
        cases = [c for c in ALL_CASES
                 if (not args.area or c.area in args.area) and (not args.only or c.id in args.only)]
        rows = []
        for case in cases:
            print(f"== {case.area}/{case.id} ...", file=sys.stderr, flush=True)
            ok, observed, seconds = run_case(case)
            word = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
            print(f"   {word} ({seconds:.0f} s): {observed}", file=sys.stderr, flush=True)
            rows.append({"area": case.area, "id": case.id, "fault": case.fault, "expected": case.expected,
                         "ok": ok, "observed": observed, "seconds": round(seconds, 1), "wiring": case.wiring})
    whole = not args.only and not args.area
    if not whole and RESULTS.exists():  # a partial run updates its rows of the last full run
        fresh = {r["id"]: r for r in rows}
        rows = [fresh.pop(str(r["id"]), r) for r in json.loads(RESULTS.read_text())] + list(fresh.values())
    text = render(rows)
    print(text)
    if not args.no_write and (whole or RESULTS.exists()):
        if not args.render_only:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    failed = sum(1 for r in rows if r["ok"] is False and not r.get("wiring"))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
