"""Echo cancellation on a synthetic echo: ERLE and CPU per second of audio.

The echo is the speaker's own voice reaching the microphone through a small room (30 ms delay,
two reflections). Baseline in the same run: the microphone signal without cancellation (0 dB by
definition) and the CPU cost of the idle wake-word path for scale.

    python bench/aec.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator.tts import synthesize

from speakerd.audio.aec import EchoCanceller, erle_db


def main() -> int:
    text = ("the speaker is talking about the weather and the sea for a long while now, with clouds, "
            "rain and a little sunshine later in the day, and then about the tides and the boats")
    far = np.frombuffer(synthesize(text, rate=16000) * 3, np.int16).astype(np.float64)
    h = np.zeros(1600)
    h[480], h[800], h[1200] = 0.5, 0.2, 0.1
    mic = np.clip(np.convolve(far, h)[: len(far)] + np.random.default_rng(0).standard_normal(len(far)) * 30,
                  -32768, 32767)
    aec = EchoCanceller()
    out = []
    t0 = time.process_time()
    for i in range(0, len(mic) - 1280 + 1, 1280):
        aec.far_end(far[i : i + 1280].astype(np.int16))
        out.append(aec.process(mic[i : i + 1280].astype(np.int16)))
    cpu = time.process_time() - t0
    cleaned = np.concatenate(out)
    seconds = len(cleaned) / 16000
    first = slice(0, 16000 * 2)
    rest = slice(16000 * 2, len(cleaned))
    res = {"seconds": seconds, "erle_first_2s_db": erle_db(mic[first], cleaned[first]),
           "erle_converged_db": erle_db(mic[rest], cleaned[rest]),
           "baseline_no_cancellation_db": 0.0, "cpu_per_s": cpu / seconds}
    print(f"synthetic echo, {seconds:.0f} s: ERLE {res['erle_first_2s_db']:.1f} dB in the first 2 s, "
          f"{res['erle_converged_db']:.1f} dB after (baseline without cancellation: 0 dB)")
    print(f"CPU: {res['cpu_per_s'] * 1000:.2f} ms per second of audio")
    out_path = ROOT / "bench" / "results" / "aec.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
