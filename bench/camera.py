"""Camera frames: CPU time to encode one JPEG at 640x480 and 1280x720, with the camera's own encoder.

Baselines measured in the same run on the same frame: a raw copy of its pixels (the least any
capture path costs) and Pillow decoding the same JPEG (the work a viewer does). Also: scaling a
1920x1080 frame down and encoding it, which is what a camera that cannot deliver the configured
size costs. The frame is a synthetic "photo" (gradients, shapes and sensor-like noise), since flat
images compress unrealistically well.

    python bench/camera.py            # quick
    python bench/camera.py --full     # more repetitions
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd.camera import encode_jpeg

SIZES = [(640, 480), (1280, 720)]
QUALITY = 80


def photo(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 160 + 50], -1)
    noisy = base + rng.normal(0, 6, base.shape)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for i in range(24):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        box = (x0, y0, x0 + int(rng.integers(20, width // 4)), y0 + int(rng.integers(20, height // 4)))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=fill)
    return img


def cpu_per_call(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm caches and lazy imports
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="more repetitions (slower, steadier)")
    args = ap.parse_args()
    reps = 100 if args.full else 15
    big = photo(1920, 1080)
    sizes: dict[str, dict[str, float]] = {}
    for w, h in SIZES:
        frame = photo(w, h)
        raw = frame.tobytes()
        jpeg = encode_jpeg(frame, w, h, QUALITY)

        def decode(data: bytes = jpeg) -> None:
            with Image.open(io.BytesIO(data)) as img:
                img.load()

        copy_s = cpu_per_call(partial(bytearray, raw), reps * 4)
        decode_s = cpu_per_call(decode, reps)
        encode_s = cpu_per_call(partial(encode_jpeg, frame, w, h, QUALITY), reps)
        scale_s = cpu_per_call(partial(encode_jpeg, big, w, h, QUALITY), reps)
        key = f"{w}x{h}"
        sizes[key] = {
            "jpeg_bytes": len(jpeg),
            "encode_cpu_ms": encode_s * 1000,
            "scale_from_1080p_and_encode_cpu_ms": scale_s * 1000,
            "baseline_raw_copy_cpu_ms": copy_s * 1000,
            "baseline_decode_cpu_ms": decode_s * 1000,
            "encode_vs_decode": encode_s / decode_s,
            "encode_vs_raw_copy": encode_s / copy_s,
            "cpu_share_at_1_fps": encode_s,
        }
        print(f"{key}: encode {encode_s * 1000:.2f} ms CPU per frame "
              f"({len(jpeg) // 1024} KiB at q{QUALITY}) = "
              f"{encode_s / decode_s:.2f}x Pillow decode of the same JPEG ({decode_s * 1000:.2f} ms), "
              f"{encode_s / copy_s:.0f}x a raw copy of its pixels ({copy_s * 1000:.3f} ms); "
              f"from 1920x1080 with scaling {scale_s * 1000:.2f} ms; "
              f"at 1 fps {encode_s * 100:.1f} % of a core")
    results = {"quality": QUALITY, "reps": reps, "sizes": sizes}
    out = ROOT / "bench" / "results" / "camera.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
