"""Does the speaker interrupt itself? The real daemon in the rig's room, per echo level and mode.

For each echo level (dB of the speaker's echo over a person at the microphone) and each echo
handling mode, one rig (a room with its own device delay, RT60 and drift) runs a conversation of
``--replies`` long replies (5-20 s, some containing the wake word and the stop word). On every
``--barge-every``-th reply a person says a sentence 1-4 s into it. Counted from the daemon's log:

- self-interruptions: ``interrupted by voice`` with nobody speaking, and self-turns: a new reply
  starting with nobody having spoken (the service took the echo for the user);
- barge-ins honoured: interrupted while the person spoke, and the delay from the start of their
  speech to silence (the interrupt line plus the daemon's own "interrupt to silence");
- wake- and stop-word firings on the speaker's own voice;
- the pipeline's ERLE, time to 10 dB, delay found and CPU per second of audio, from its log line.
The CPU of the wake-word path on the same audio is measured offline in the same run for scale.

    python bench/self_interruption.py                    # the full table (long: hours at 50 replies)
    python bench/self_interruption.py --replies 4 --levels 0 10 --modes default none

Writes bench/results/self_interruption.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator import Scenario
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.rig import Rig
from speakerd_workshop.room import Room

from speakerd.audio.echo import EchoSettings

LEVELS = [-10.0, -5.0, 0.0, 5.0, 10.0, 15.0]
DEFAULT = EchoSettings()
MODES: dict[str, EchoSettings | None] = {
    "none": None,
    "speex": EchoSettings(canceller="speex", gate="off"),
    "webrtc": EchoSettings(canceller="webrtc", gate="off"),
    "gate": EchoSettings(canceller="none", gate="residual"),
    "half_duplex": EchoSettings(canceller="none", gate="half_duplex"),
    "webrtc+gate": EchoSettings(canceller="webrtc", gate="residual"),
    "default": DEFAULT,
}
SENTENCES = [
    "The weather tomorrow will be mild with a light wind from the west.",
    "In the morning there may be some fog along the coast and near the river.",
    "By the afternoon the clouds will clear and the sun will come out for a while.",
    "If you are going out in the evening you might want to take a light jacket.",
    "The tides will be high just after noon, so the beach walk is best in the morning.",
    "Hey jarvis is the name I answer to, and alexa is a word I listen for to stop.",
    "The boats in the harbour will stay in, because the sea is expected to be rough.",
    "Later in the week it will get warmer again, with temperatures in the low twenties.",
]
QUESTIONS = ["and what about tomorrow", "tell me more about that", "what else can you say", "go on please"]
BARGE = "stop, that is enough, thank you"


def reply_text(rng: random.Random) -> str:
    """Five to twenty seconds of speech; every third one says the wake word and the stop word."""
    n = rng.randint(2, 6)
    picked = rng.sample(SENTENCES, n)
    return " ".join(picked)


def speech(text: str) -> bytes:
    return synthesize(text, rate=16000)


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * 16000))


@dataclass
class Cell:
    mode: str
    echo_db: float
    room: dict[str, float]
    replies: int = 0
    self_interruptions: int = 0
    self_turns: int = 0
    barge_attempts: int = 0
    barge_honoured: int = 0
    barge_delays: list[float] = field(default_factory=list)
    wake_on_own_voice: int = 0
    stop_on_own_voice: int = 0
    erle_db: list[float] = field(default_factory=list)
    converged_s: list[float] = field(default_factory=list)
    delay_ms: list[float] = field(default_factory=list)
    cpu_ms_per_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        d = self.barge_delays
        within = sum(1 for x in d if x <= 0.7)
        return {
            "self_interruptions": self.self_interruptions, "self_turns": self.self_turns, "replies": self.replies,
            "barge_honoured": f"{self.barge_honoured}/{self.barge_attempts}",
            "barge_within_700ms": f"{within}/{self.barge_attempts}",
            "barge_delay_median_s": float(np.median(d)) if d else None,
            "own_wake": self.wake_on_own_voice, "own_stop": self.stop_on_own_voice,
            "erle_db": float(np.median(self.erle_db)) if self.erle_db else None,
            "converged_s": float(np.median(self.converged_s)) if self.converged_s else None,
            "delay_ms": float(np.median(self.delay_ms)) if self.delay_ms else None,
            "cpu_ms_per_s": float(np.median(self.cpu_ms_per_s)) if self.cpu_ms_per_s else None,
        }


def run_cell(mode: str, echo_db: float, replies: int, barge_every: int, seed: int, workdir: Path,
             log_dir: Path | None = None) -> Cell:
    rng = random.Random(seed)
    room = Room(echo_db=echo_db, delay_ms=rng.uniform(10, 150), rt60=rng.uniform(0.2, 0.6),
                drift_ppm=rng.uniform(-100, 100), seed=seed)
    texts = [reply_text(rng) for _ in range(replies + 2)]
    scenario = Scenario.from_dict({"default_reply": texts[-1],
                                   "turns": [{"user_transcript": "q", "reply_text": t} for t in texts]})
    cell = Cell(mode, echo_db, {"delay_ms": room.delay_ms, "rt60": room.rt60, "drift_ppm": room.drift_ppm})
    config = ("[conversation]\nfollow_up_seconds = 8.0\n[wakeword]\nstop_model = \"alexa\"\n"
              "[logging]\nlevel = \"debug\"\n")
    with Rig(workdir, scenario=scenario, room=room, echo=MODES[mode], config=config) as rig:
        assert rig.mic is not None
        mic = rig.mic
        start = len(rig.lines)
        mic.say(silence(1.0) + speech("hey jarvis") + silence(0.4) + speech("tell me something") + silence(0.5))
        person: list[tuple[float, float]] = []  # when the person spoke (monotonic start, end)
        barges: list[tuple[float, float]] = []  # of which talking over a reply
        t_wake = time.monotonic()
        person.append((t_wake, t_wake + mic.pending_seconds()))
        for k in range(replies):
            try:
                s = rig.wait_state("speaking", timeout=40, start=start)
            except TimeoutError:
                cell.errors.append(f"reply {k}: never started")
                break
            cell.replies += 1
            barge = barge_every > 0 and k % barge_every == barge_every - 1
            if barge:
                cell.barge_attempts += 1
                time.sleep(rng.uniform(1.0, 4.0))
                said_at = time.monotonic() + 0.08  # the feeder sends it from its next period
                seconds = mic.say(speech(BARGE))
                person.append((said_at, said_at + seconds))
                barges.append(person[-1])
            try:
                end = rig.wait_log(r"^state (listening|idle)$", timeout=60, start=s + 1)
            except TimeoutError:
                cell.errors.append(f"reply {k}: never ended")
                break
            start = end
            mic.wait_idle(10)
            if barge:  # the service answers what the person said over it: that is the next reply
                start = len(rig.lines)
                continue
            time.sleep(2.5)  # quiet after the reply: a turn starting now is the speaker answering itself
            q = speech(QUESTIONS[k % len(QUESTIONS)]) + silence(0.3)
            if rig.states(end)[-1:] == ["idle"]:
                q = speech("hey jarvis") + silence(0.4) + q
            said_at = time.monotonic() + 0.08
            person.append((said_at, said_at + mic.say(q)))
            start = len(rig.lines)
        time.sleep(1.0)
        lines = list(rig.lines)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{mode}{echo_db:+.0f}.log").write_text(
                "\n".join(f"{x.at - t_wake:8.2f} {x.level} {x.message}" for x in lines)
                + "\nperson: " + " ".join(f"{a - t_wake:.2f}-{b - t_wake:.2f}" for a, b in person) + "\n")
    tally(cell, lines, person, barges)
    return cell


def tally(cell: Cell, lines: list[Any], person: list[tuple[float, float]],
          barges: list[tuple[float, float]]) -> None:
    def speaking_person(at: float, slack: float = 1.2, among: list[tuple[float, float]] | None = None
                        ) -> tuple[float, float] | None:
        for a, b in person if among is None else among:
            if a - 0.1 <= at <= b + slack:
                return a, b
        return None

    wake_seen = 0
    honoured: set[tuple[float, float]] = set()
    for i, line in enumerate(lines):
        msg = line.message
        if msg == "interrupted by voice":
            who = speaking_person(line.at, among=barges)
            if who is None and speaking_person(line.at) is None:
                cell.self_interruptions += 1
            elif who is not None and who not in honoured:
                honoured.add(who)
                cell.barge_honoured += 1
                silence_s = 0.0
                for later in lines[i + 1 : i + 40]:
                    m = re.match(r"^interrupt to silence ([\d.]+) s", later.message)
                    if m:
                        silence_s = float(m.group(1))
                        break
                cell.barge_delays.append(line.at - who[0] + silence_s)
        elif msg.startswith("speech end to first audio") and speaking_person(line.at, slack=2.0) is None:
            cell.self_turns += 1
        elif msg.startswith("wake word"):
            wake_seen += 1
            if speaking_person(line.at, slack=0.5) is None:
                cell.wake_on_own_voice += 1
        elif msg.startswith("stop word") and speaking_person(line.at, slack=0.5) is None:
            cell.stop_on_own_voice += 1
        elif msg.startswith("echo over"):
            f = line.fields
            cell.erle_db.append(float(f.get("erle_db", "nan")))
            if f.get("converged_s") not in (None, "never"):
                cell.converged_s.append(float(f["converged_s"]))
            cell.delay_ms.append(float(f.get("delay_ms", "nan")))
            cell.cpu_ms_per_s.append(float(f.get("cpu_ms_per_s", "nan")))


def wakeword_cpu_ms_per_s(seconds: float = 20.0) -> float:
    """The wake-word path (openWakeWord, as the daemon runs it) on reply speech, for scale."""
    from openwakeword.model import Model

    model = Model(wakeword_models=["hey_jarvis"], inference_framework="onnx")
    x = np.frombuffer(speech(" ".join(SENTENCES)), dtype="<i2")
    x = np.tile(x, int(np.ceil(seconds * 16000 / len(x))))[: int(seconds * 16000)]
    t0 = time.process_time()
    for i in range(0, len(x) - 1280 + 1, 1280):
        model.predict(x[i : i + 1280])
    return 1000 * (time.process_time() - t0) / seconds


def table(cells: list[Cell], wake_cpu: float) -> str:
    head = (f"{'mode':<12} {'echo':>5} {'self-int':>8} {'self-turn':>9} {'barge ok':>8} {'<=700ms':>7} "
            f"{'median':>6} {'own wake/stop':>13} {'ERLE':>5} {'conv':>5} {'delay':>5} {'CPU':>5}")
    out = [head, "-" * len(head)]
    for c in cells:
        s = c.summary()

        def f(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        mark = " *" if c.mode == "default" else ""
        out.append(
            f"{c.mode + mark:<12} {c.echo_db:>+5.0f} {s['self_interruptions']:>4}/{s['replies']:<3} "
            f"{s['self_turns']:>9} {s['barge_honoured']:>8} {s['barge_within_700ms']:>7} "
            f"{f(s['barge_delay_median_s'], '.2f'):>6} {s['own_wake']:>6}/{s['own_stop']:<6} "
            f"{f(s['erle_db'], '.0f'):>5} {f(s['converged_s'], '.1f'):>5} {f(s['delay_ms'], '.0f'):>5} "
            f"{f(s['cpu_ms_per_s'], '.1f'):>5}")
    out.append(f"(* the default configuration; CPU in ms per second of audio, the wake-word path: "
               f"{wake_cpu:.1f} ms/s; ERLE in dB, conv = s to 10 dB, delay in ms as found)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--levels", type=float, nargs="+", default=LEVELS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--replies", type=int, default=50, help="replies per cell (the issue asks 50)")
    p.add_argument("--barge-every", type=int, default=2, help="a person talks over every Nth reply (0: never)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--logs", type=Path, default=None, help="write each cell's daemon log here")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "self_interruption.json")
    args = p.parse_args(argv)
    wake_cpu = wakeword_cpu_ms_per_s()
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="self-int-") as tmp:
        for li, level in enumerate(args.levels):
            for mode in args.modes:
                t0 = time.monotonic()
                cell = run_cell(mode, level, args.replies, args.barge_every, args.seed + li,
                                Path(tmp) / f"{mode}{level:+.0f}", args.logs)
                cells.append(cell)
                print(f"{mode:>12} {level:+5.0f} dB: {cell.summary()} ({time.monotonic() - t0:.0f} s)"
                      + (f" errors: {cell.errors}" if cell.errors else ""), flush=True)
    print()
    print(table(cells, wake_cpu))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "replies_per_cell": args.replies, "barge_every": args.barge_every, "seed": args.seed,
        "wakeword_cpu_ms_per_s": wake_cpu, "default": DEFAULT.model_dump(),
        "cells": [{**asdict(c), "summary": c.summary()} for c in cells],
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
