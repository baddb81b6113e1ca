"""Wake-word accuracy on a generated corpus: detection rate and false wakes per hour.

Positives: the wake phrase spoken by several espeak-ng voices at several speeds, mixed with
noise at several levels. Negatives: ordinary sentences and noise with no wake phrase. Detection
goes through the daemon's own WakeWordDetector (thresholds, patience, refractory period), so
the figures are those of speakerd's defaults. The baseline printed beside them is the bare model
at the same threshold, frame by frame, on the same audio.

    python bench/wake_accuracy.py                 # hey_jarvis, 10 minutes of negatives
    python bench/wake_accuracy.py --quick         # 3 minutes of negatives
    python bench/wake_accuracy.py --model alexa --phrase alexa
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator.tts import synthesize

from speakerd import config
from speakerd.events import FRAME_SAMPLES, AudioFrame, WakeDetected
from speakerd.wakeword import WakeWordDetector, load_model, model_key

VOICES = ("en", "en-us", "en-gb", "en-gb-scotland", "en-029")
SPEEDS = (130, 165, 200)
NOISE_RMS = (0, 300, 1000)
SENTENCES = (
    "the weather today is mild with a light breeze from the west",
    "please remember to buy bread milk and a few apples on the way home",
    "my favourite film is about a lighthouse keeper and his cat",
    "we should leave at seven so we are not late for the concert",
    "can you pass me the salt and the pepper please",
    "the children are playing football in the garden",
    "jars of jam are on the top shelf in the kitchen",
    "they say harvest will be early this year",
)


def padded(pcm: bytes, rng: np.random.Generator, noise: float) -> npt.NDArray[np.int16]:
    silence = np.zeros(16000, np.float64)
    x: npt.NDArray[np.float64] = np.concatenate([silence, np.frombuffer(pcm, np.int16).astype(np.float64), silence])
    if noise:
        x += rng.standard_normal(len(x)) * noise
    return np.clip(x, -32768, 32767).astype(np.int16)


async def detect(chunks: list[npt.NDArray[np.int16]], settings: config.WakewordSettings) -> list[int]:
    """Detections per chunk through the daemon's detector (fresh state between chunks)."""
    loop = asyncio.get_running_loop()
    counts = []
    for audio in chunks:
        found: list[WakeDetected] = []
        det = WakeWordDetector(settings, loop, found.append)
        t = 0.0
        for n, i in enumerate(range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)):
            t += 0.08
            det.feed(AudioFrame(audio[i : i + FRAME_SAMPLES].tobytes(), n, t))
            while det.pending > 20:
                await asyncio.sleep(0.001)
        while det.pending:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)
        await asyncio.to_thread(det.close)
        counts.append(len(found))
    return counts


def bare_counts(chunks: list[npt.NDArray[np.int16]], settings: config.WakewordSettings) -> list[int]:
    """Bare model: rising edges over the threshold, no patience or refractory period."""
    model = load_model(settings)
    key = model_key(settings.models[0])
    out = []
    for audio in chunks:
        model.reset()
        above, n = False, 0
        for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            s = model.predict(audio[i : i + FRAME_SAMPLES])[key] >= settings.threshold
            n += int(s and not above)
            above = bool(s)
        out.append(n)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="hey_jarvis")
    p.add_argument("--phrase", default="hey jarvis")
    args = p.parse_args()
    rng = np.random.default_rng(2)
    settings = config.WakewordSettings(models=[args.model])
    t0 = time.monotonic()
    positives = [padded(synthesize(args.phrase, rate=16000, voice=v, speed=s), rng, n)
                 for v in VOICES for s in SPEEDS for n in NOISE_RMS]
    neg_minutes = 3.0 if args.quick else 10.0
    negatives: list[npt.NDArray[np.int16]] = []
    total = 0.0
    i = 0
    while total < neg_minutes * 60:
        text = SENTENCES[i % len(SENTENCES)]
        chunk = padded(synthesize(text, rate=16000, voice=VOICES[i % len(VOICES)], speed=SPEEDS[i % 3]),
                       rng, NOISE_RMS[i % 3])
        negatives.append(chunk)
        total += len(chunk) / 16000
        i += 1
    pos = asyncio.run(detect(positives, settings))
    neg = asyncio.run(detect(negatives, settings))
    bare_pos, bare_neg = bare_counts(positives, settings), bare_counts(negatives, settings)
    hours = total / 3600
    result = {
        "model": args.model, "phrase": args.phrase, "threshold": settings.threshold,
        "positives": len(positives), "negative_hours": hours,
        "detection_rate": sum(c > 0 for c in pos) / len(pos),
        "false_wakes_per_hour": sum(neg) / hours,
        "bare_detection_rate": sum(c > 0 for c in bare_pos) / len(bare_pos),
        "bare_false_wakes_per_hour": sum(bare_neg) / hours,
        "multiple_wakes_on_one_phrase": sum(c > 1 for c in pos),
        "bare_multiple_triggers_on_one_phrase": sum(c > 1 for c in bare_pos),
        "seconds": time.monotonic() - t0,
    }
    by_voice = {v: 0 for v in VOICES}
    for k, c in enumerate(pos):
        by_voice[VOICES[k // (len(SPEEDS) * len(NOISE_RMS))]] += int(c > 0)
    result["detected_by_voice"] = by_voice
    print(f"{args.model}: {len(positives)} phrases ({len(VOICES)} voices x {len(SPEEDS)} speeds x "
          f"{len(NOISE_RMS)} noise levels), {total / 60:.1f} min of other speech and noise")
    print(f"detection rate        : {result['detection_rate']:.1%}   (bare model: {result['bare_detection_rate']:.1%})")
    print(f"false wakes per hour  : {result['false_wakes_per_hour']:.1f}   "
          f"(bare model: {result['bare_false_wakes_per_hour']:.1f})")
    print(f"double wakes on one phrase: {result['multiple_wakes_on_one_phrase']} "
          f"(bare model re-triggers: {result['bare_multiple_triggers_on_one_phrase']})")
    print(f"detected per voice ({len(SPEEDS) * len(NOISE_RMS)} each): {by_voice}")
    out = ROOT / "bench" / "results" / "wake_accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
