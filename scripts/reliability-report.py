#!/usr/bin/env python3
"""Run the fault matrix against the real daemon and regenerate docs/reliability.md.

Usage: .venv/bin/python scripts/reliability-report.py [--area network] [--only ID ...] [--no-write]

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
    "READY on start, `systemctl reload` (RELOADING=1, then running), a watchdog restart of a frozen daemon, "
    "the key delivered as a credential and absent from the journal, no restart after exit 78, and the "
    "control socket serving the speakerd group only. It runs with the test suite where the machine can boot "
    "a container.",
    "Bad input fuzzing: `tests/reliability/test_fuzz.py` (hypothesis: mutated server frames through the real "
    "SDK and Live client) and `tests/foundation/test_config.py` (hypothesis: generated config files and "
    "arbitrary bytes).",
    "Security outside this table: `systemd-analyze security` at or under 2.0 (tests/foundation); tool "
    "arguments, no shell, timeouts and the output cap (tests/live); secret masking in check-config "
    "(tests/foundation).",
    "Heavy variants: `SPEAKERD_SOAK=1` makes the goAway storm 60 in a row and the kill test 100 runs, and "
    "enables the soak test (`pytest -m soak tests/reliability`).",
]

NOT_COVERED = [
    "A microphone or speaker on a real card: ALSA software devices and a PulseAudio server stand in.",
]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def soak_section() -> list[str]:
    if not SOAK.exists():
        return ["No soak figures yet: run `.venv/bin/python bench/soak.py`."]
    data = json.loads(SOAK.read_text())
    out = [
        f"`bench/soak.py` ({data.get('conversations')} conversations, {data.get('go_aways')} goAways, "
        f"{data.get('barge_ins')} barge-ins, {data.get('reconnects')} reconnects, emulator pace "
        f"{data.get('pace')}, {data.get('seconds', 0):.0f} s wall clock):",
        "",
        "| figure | start | end | end / start |",
        "|---|---|---|---|",
    ]
    for name in ("rss_kb", "fds", "threads"):
        start, end = data["start"][name], data["end"][name]
        out.append(f"| {name} | {start} | {end} | {end / start:.3f} |")
    if "after_warmup" in data:
        w, e = data["after_warmup"]["rss_kb"], data["end"]["rss_kb"]
        out.append("")
        out.append(f"RSS after the first {data.get('warmup')} conversations: {w} kB; growth after that: "
                   f"{(e - w) / max(1, w) * 100:.1f} %.")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--area", action="append", help="only this area (network, security, state, process, devices)")
    p.add_argument("--only", nargs="*", help="only these case ids")
    p.add_argument("--no-write", action="store_true", help="print the table, do not write docs/reliability.md")
    args = p.parse_args(argv)
    cases = [c for c in ALL_CASES if (not args.area or c.area in args.area) and (not args.only or c.id in args.only)]
    rows = []
    for case in cases:
        print(f"== {case.area}/{case.id} ...", file=sys.stderr, flush=True)
        ok, observed, seconds = run_case(case)
        word = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
        print(f"   {word} ({seconds:.0f} s): {observed}", file=sys.stderr, flush=True)
        rows.append((case, ok, observed))
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
    for case, ok, observed in rows:
        lines.append(f"| {case.area} | {case.id} | {cell(case.fault)} | {cell(case.expected)} | "
                     f"{ {True: 'pass', False: '**FAIL**', None: 'not run'}[ok]} | {cell(observed)} |")
    lines += ["", "## Soak", "", *soak_section(), ""]
    lines += ["## Covered elsewhere", "", *(f"- {x}" for x in ELSEWHERE), ""]
    lines += ["## Not covered", "", *(f"- {x}" for x in NOT_COVERED), ""]
    passed = sum(1 for _, ok, _ in rows if ok)
    skipped = sum(1 for _, ok, _ in rows if ok is None)
    lines += [f"{passed} of {len(rows)} cases passed" + (f", {skipped} not run." if skipped else "."), ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write and not args.only and not args.area:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0 if passed + skipped == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
