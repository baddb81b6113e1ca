"""bench/slow_cpu.py's verdicts: what counts as a speaker underrun, and which quota is the figure.

The bench itself needs root and minutes (python bench/slow_cpu.py); these check its arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support import load_script

PROJECT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(PROJECT / "bench" / "slow_cpu.py", "speakerd_bench_slow_cpu")


slow_cpu = load()


class FakeSink:
    """What the FIFO speaker (SpeakerSink) records, written by hand: 48000 bytes per second (24 kHz s16)."""

    bytes_per_second = 48000.0

    def __init__(self, arrivals: list[float], silences: list[tuple[float, float]]) -> None:
        self.arrivals = [(t, i) for i, t in enumerate(arrivals)]
        self.silences = [(t, int(seconds * 48000)) for t, seconds in silences]


def test_silence_inside_the_reply_is_an_underrun_but_not_before_or_after_it() -> None:
    arrivals = [10.0 + 0.002 * i for i in range(1000)]  # the reply: 10.0 .. 12.0 s
    before_and_after = [(9.5, 0.05), (12.5, 0.3)]  # waiting for the reply, and after its end
    one_stretch = [(11.0 + 0.002 * i, 0.002) for i in range(10)]  # 20 ms of silence in the middle
    short = [(11.5, 0.004)]  # 4 ms: under the threshold
    sink = FakeSink(arrivals, before_and_after + one_stretch + short)
    count, silent = slow_cpu.speaker_underruns(sink, 10.0, 13.0)
    assert count == 1
    assert abs(silent - 0.024) < 1e-3


def test_no_reply_audio_means_no_underrun_counted() -> None:
    assert slow_cpu.speaker_underruns(FakeSink([], [(1.0, 1.0)]), 0.0, 2.0) == (0, 0.0)


def row(q: int, passed: bool) -> dict[str, Any]:
    return {"quota_percent": q, "passed": passed}


def test_the_figure_is_the_lowest_quota_with_every_higher_one_passing() -> None:
    rows = [row(100, True), row(50, True), row(25, False), row(15, True), row(10, False)]
    assert slow_cpu.lowest(rows, lambda rs: all(r["passed"] for r in rs)) == 50  # 15 % passing is luck
    assert slow_cpu.lowest([row(100, False)], lambda rs: all(r["passed"] for r in rs)) is None
