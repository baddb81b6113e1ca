"""Button interrupt latency: from a driven button release to playback flushed, p50/p95.

The button is a gpiozero mock pin driven from another thread, as lgpio's callback thread would
on a Pi; the gesture goes through the real GestureButton (debounce, hand-over to the asyncio
loop), action_for(), and then the audio Player's flush() while it is playing a reply through an
ALSA software device. The press is held past the debounce lock-out like a real press, and the
clock starts at the release, which is when a short press is recognised.

The baseline, measured in the same run, is a bare thread -> loop.call_soon_threadsafe round trip:
the floor for any hand-over from a GPIO thread to the loop. Figures are printed as ratios to it.

    python bench/interrupt_latency.py            # 100 presses
    python bench/interrupt_latency.py --quick    # 20 presses
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpiozero.pins.mock import MockFactory, MockPWMPin

from speakerd.config import AudioSettings, GpioSettings
from speakerd.events import ButtonEvent
from speakerd.hw import GestureButton, action_for

RESULTS = ROOT / "bench" / "results" / "interrupt_latency.json"
PIN = 17


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(xs, 0.5) * 1e3, "p95_ms": pct(xs, 0.95) * 1e3,
            "mean_ms": statistics.fmean(xs) * 1e3, "max_ms": max(xs) * 1e3}


async def baseline(loop: asyncio.AbstractEventLoop, n: int) -> list[float]:
    """Thread -> call_soon_threadsafe -> callback on the loop, n times."""
    out: list[float] = []
    done = threading.Event()

    def arrived(t0: float) -> None:
        out.append(time.perf_counter() - t0)
        done.set()

    def driver() -> None:
        for _ in range(n):
            done.clear()
            loop.call_soon_threadsafe(arrived, time.perf_counter())
            done.wait(5)
            time.sleep(0.002)

    await asyncio.to_thread(driver)
    return out


class Audio:
    """The real Player on ALSA software devices, if speakerd.audio provides them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from speakerd_workshop import softdev

        from speakerd.audio.playback import Player

        self.tmp = tempfile.TemporaryDirectory(prefix="speakerd-bench-")
        work = Path(self.tmp.name)
        # A silent microphone: PortAudio opens every PCM while probing, and a FIFO would block it.
        self.devices = softdev.SoftDevices(work / "alsa", mic_infile=Path("/dev/zero"))
        self._restore_env = {k: os.environ.get(k) for k in self.devices.env()}
        os.environ.update(self.devices.env())
        settings = AudioSettings(output_device=self.devices.speaker_name, earcons=False)
        self.player = Player(settings, work, loop,
                             lambda fault: print(f"audio fault: {fault}", file=sys.stderr))
        self.player.start()
        self.reply = b"\x00\x10" * 24_000 * 10  # 10 s of 24 kHz s16le, queued before each press
        self.busy_at_flush = 0  # presses that found reply audio still queued or being written
        self.after_flush: list[int] = []  # samples the writer still wrote after flush() returned
        self._mark: int | None = None

    def play(self) -> None:
        if self._mark is not None:
            self.after_flush.append(self.player.stats.samples_written - self._mark)
            self._mark = None
        self.player.play(self.reply)

    def flush(self) -> None:
        self.busy_at_flush += not self.player.idle
        self.player.flush()
        self._mark = self.player.stats.samples_written

    def close(self) -> None:
        self.player.close()
        for k, v in self._restore_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.tmp.cleanup()


async def presses(
    loop: asyncio.AbstractEventLoop, n: int, audio: Audio | None
) -> tuple[list[float], list[float]]:
    """Driven release -> playback flushed; and driven release -> the ButtonEvent on the loop.

    Double presses are off so that presses can follow each other quickly; a short press is
    reported at release whatever the double-press window, so this does not flatter the figure.
    """
    settings = GpioSettings(pin_factory="mock", button_pin=PIN, button_double_seconds=0.0)
    factory = MockFactory(pin_class=MockPWMPin)
    to_flush: list[float] = []
    to_event: list[float] = []
    released_at = [0.0]
    done = threading.Event()

    def on_event(event: ButtonEvent) -> None:
        if event.gesture != "short":
            raise RuntimeError(f"expected a short press, got {event.gesture}")
        to_event.append(time.perf_counter() - released_at[0])
        if action_for(event.gesture, "speaking", settings) == "interrupt":
            if audio is not None:
                audio.flush()
            to_flush.append(time.perf_counter() - released_at[0])
        done.set()

    button = GestureButton(settings, factory, loop, on_event)
    pin = factory.pin(PIN)
    hold = settings.button_bounce_seconds + 0.01

    def driver(call: Callable[[Callable[[], Any]], None]) -> None:
        for _ in range(n):
            if audio is not None:
                call(audio.play)
            done.clear()
            pin.drive_low()
            time.sleep(hold)  # held past the debounce lock-out, as a finger does
            released_at[0] = time.perf_counter()
            pin.drive_high()
            if not done.wait(5):
                raise RuntimeError("no button event within 5 s")
            time.sleep(hold)  # let the release's debounce lock-out end before the next press

    def call(fn: Callable[[], Any]) -> None:
        fut = asyncio.run_coroutine_threadsafe(_run(fn), loop)
        fut.result(5)

    try:
        await asyncio.to_thread(driver, call)
    finally:
        button.close()
        factory.reset()
    return to_flush, to_event


async def _run(fn: Callable[[], Any]) -> None:
    fn()


async def main_async(n: int, use_audio: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    base = await baseline(loop, n)
    audio: Audio | None = None
    note = "press -> Player.flush() returned, with a reply playing through an ALSA software device"
    if use_audio:
        try:
            audio = Audio(loop)
        except (ImportError, AttributeError, OSError) as exc:
            note = f"press -> flush callback only: speakerd.audio Player/softdev not available ({exc})"
    else:
        note = "press -> flush callback only (--no-audio)"
    try:
        flush, event = await presses(loop, n, audio)
    finally:
        if audio is not None:
            with contextlib.suppress(Exception):
                audio.close()
    b = summary(base)
    f = summary(flush)
    e = summary(event)
    period_ms = AudioSettings().playback_buffer_ms
    extra: dict[str, Any] = {}
    if audio is not None:
        rate = audio.player.stats.device_rate or 24_000
        if audio.player.stats.samples_written == 0:
            note = ("press -> Player.flush() returned on a queued reply; the Player wrote no audio to the "
                    "ALSA software device in this run, so the device side is not included")
        extra = {
            "presses_with_reply_queued": audio.busy_at_flush,
            "player_samples_written": audio.player.stats.samples_written,
            "written_after_flush_max_ms": max(audio.after_flush, default=0) * 1e3 / rate,
        }
    return {
        **extra,
        "presses": n,
        "measured": note,
        "baseline_call_soon_threadsafe": b,
        "release_to_event": e,
        "release_to_flushed": f,
        "ratio_p50": f["p50_ms"] / b["p50_ms"],
        "ratio_p95": f["p95_ms"] / b["p95_ms"],
        "audio_period_ms": period_ms,
        "within_one_period_p95": f["p95_ms"] < period_ms,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="20 presses")
    ap.add_argument("--no-audio", action="store_true", help="measure up to the flush call only")
    args = ap.parse_args()
    n = 20 if args.quick else args.presses
    r = asyncio.run(main_async(n, not args.no_audio))
    b, e, f = r["baseline_call_soon_threadsafe"], r["release_to_event"], r["release_to_flushed"]
    print(f"interrupt latency over {n} presses ({r['measured']})")
    print(f"  baseline thread->loop hand-over  p50 {b['p50_ms']:.3f} ms  p95 {b['p95_ms']:.3f} ms")
    print(f"  release -> ButtonEvent on loop   p50 {e['p50_ms']:.3f} ms  p95 {e['p95_ms']:.3f} ms")
    print(f"  release -> playback flushed      p50 {f['p50_ms']:.3f} ms  p95 {f['p95_ms']:.3f} ms")
    print(f"  ratio to baseline                p50 {r['ratio_p50']:.1f}x  p95 {r['ratio_p95']:.1f}x")
    print(f"  within one audio period ({r['audio_period_ms']} ms) at p95: {r['within_one_period_p95']}")
    if "player_samples_written" in r:
        print(f"  presses that found the reply still queued: {r['presses_with_reply_queued']}/{n}; "
              f"reply audio written after flush: at most {r['written_after_flush_max_ms']:.1f} ms; "
              f"player wrote {r['player_samples_written']} samples in all")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")
    print(f"  written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
