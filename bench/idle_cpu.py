"""Idle listening cost: CPU seconds per second of audio, the daemon's path vs bare openWakeWord.

The daemon's idle path is: every 80 ms frame goes into the pre-roll ring and to the
WakeWordDetector, which hands it to its inference thread through a bounded queue, runs
openWakeWord (ONNX) and checks thresholds, patience and the refractory period. The baseline,
measured in the same run on the same audio, is a bare ``Model.predict`` loop. Target: the
daemon's path costs at most 1.15 times the baseline.

Process CPU time (all threads) is used, not wall time, so a busy machine skews it less; the
two are run alternately several times and the medians compared.

    python bench/idle_cpu.py            # 60 s of audio, 3 rounds
    python bench/idle_cpu.py --quick    # 20 s of audio, 2 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator.tts import synthesize

from speakerd import config
from speakerd.audio import PrerollBuffer
from speakerd.events import FRAME_SAMPLES, AudioFrame, WakeDetected
from speakerd.wakeword import WakeWordDetector, load_model


def corpus(seconds: float) -> np.ndarray:
    """Room-like audio: quiet noise with ordinary speech now and then (no wake word)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(int(seconds * 16000)) * 300).astype(np.int16)
    talk = np.frombuffer(synthesize("we should leave at seven so we are not late for the concert", rate=16000),
                         dtype=np.int16)
    for start in range(16000 * 3, len(x) - len(talk), 16000 * 10):
        x[start : start + len(talk)] += talk
    return x


def bare(audio: np.ndarray, settings: config.WakewordSettings) -> float:
    model = load_model(settings)
    t0 = time.process_time()
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        model.predict(audio[i : i + FRAME_SAMPLES])
    return time.process_time() - t0


async def daemon_path(audio: np.ndarray, settings: config.WakewordSettings) -> float:
    loop = asyncio.get_running_loop()
    found: list[WakeDetected] = []
    detector = WakeWordDetector(settings, loop, found.append)
    preroll = PrerollBuffer(2.0)
    frames = [AudioFrame(audio[i : i + FRAME_SAMPLES].tobytes(), n, time.monotonic())
              for n, i in enumerate(range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES))]
    t0 = time.process_time()
    for frame in frames:
        preroll.push(frame)
        detector.feed(frame)
        while detector.pending > 20:  # keep up without dropping, as real time would
            await asyncio.sleep(0.02)  # coarse: the bench's own polling must not count much
    while detector.pending or detector.frames < len(frames) - detector.dropped:
        await asyncio.sleep(0.02)
    spent = time.process_time() - t0
    await asyncio.to_thread(detector.close)
    if detector.dropped:
        print(f"  warning: {detector.dropped} frames dropped", file=sys.stderr)
    return spent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default="hey_jarvis")
    args = p.parse_args()
    seconds, rounds = (20.0, 2) if args.quick else (60.0, 3)
    settings = config.WakewordSettings(models=args.models.split(","))
    audio = corpus(seconds)
    bare_runs, daemon_runs = [], []
    for _ in range(rounds):
        bare_runs.append(bare(audio, settings) / seconds)
        daemon_runs.append(asyncio.run(daemon_path(audio, settings)) / seconds)
    b, d = statistics.median(bare_runs), statistics.median(daemon_runs)
    ratio = d / b
    print(f"audio: {seconds:.0f} s, models: {args.models}, rounds: {rounds}")
    print(f"bare openwakeword : {b * 1000:7.2f} ms CPU per s of audio ({b * 100:.2f} % of a core)")
    print(f"daemon idle path  : {d * 1000:7.2f} ms CPU per s of audio ({d * 100:.2f} % of a core)")
    print(f"ratio daemon/bare : {ratio:.3f}  (target <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})")
    out = ROOT / "bench" / "results" / "idle_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "models": args.models, "bare_cpu_per_s": b,
                               "daemon_cpu_per_s": d, "ratio": ratio, "bare_runs": bare_runs,
                               "daemon_runs": daemon_runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
