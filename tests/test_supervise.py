"""Supervised worker threads: a crash is logged once, reported each time, and the work restarted."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from speakerd.supervise import Supervised


def wait_for(pred: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_crashing_body_is_restarted_with_backoff_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[float] = []
    reports: list[str] = []
    done = threading.Event()

    def body() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise RuntimeError(f"inference exploded #{len(runs)}")
        done.wait()  # the fourth run works until it is told to stop

    worker = Supervised("speakerd-test", body, on_crash=reports.append, first_delay=0.02, max_delay=1.0)
    worker.start()
    wait_for(lambda: len(runs) == 4)
    assert worker.alive and worker.crashes == 3
    assert reports == [f"speakerd-test failed: RuntimeError: inference exploded #{i}" for i in (1, 2, 3)]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "inference exploded #1" in str(tracebacks[0].exc_info[1])  # type: ignore[index]
    assert sum("failed again" in r.getMessage() for r in caplog.records) == 2
    assert list(worker.delays) == [0.02, 0.04, 0.08]  # the backoff doubles
    worker.stop()
    done.set()
    assert worker.join(2) and not worker.alive


def test_a_body_that_returns_is_not_restarted() -> None:
    runs: list[int] = []
    worker = Supervised("speakerd-once", lambda: runs.append(1))
    worker.start()
    assert worker.join(2) and runs == [1] and worker.crashes == 0


def test_stop_during_the_backoff_ends_the_thread_at_once() -> None:
    def body() -> None:
        raise ValueError("always")

    logging.getLogger("speakerd").setLevel(logging.CRITICAL)
    try:
        worker = Supervised("speakerd-failing", body, first_delay=30.0)
        worker.start()
        wait_for(lambda: worker.crashes == 1)
        worker.stop()
        assert worker.join(2)
    finally:
        logging.getLogger("speakerd").setLevel(logging.NOTSET)


def test_the_led_animator_comes_back_after_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from speakerd.hw import patterns
    from speakerd.hw.leds import Driver, Leds, Pixel

    class Strip(Driver):
        pixels = 3

        def __init__(self) -> None:
            self.frames: list[list[Pixel]] = []

        def draw(self, pixels: list[Pixel]) -> None:
            self.frames.append(pixels)

    real = patterns.frames
    calls: list[int] = []

    def flaky(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a pattern bug")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(patterns, "frames", flaky)
    strip = Strip()
    leds = Leds(strip, patterns.patterns_for(False, {}))
    try:
        leds.show("listening")
        wait_for(lambda: strip.frames != [], within=5)  # drawn after the restart
        assert leds.crashes == 1 and leds.running
    finally:
        leds.close()


def test_progress_calls_a_worker_stuck_only_when_it_has_work_and_does_not_move() -> None:
    from speakerd.daemon import metrics

    now = [1000.0]
    count, work = [0], [False]
    check = metrics.Progress("the wake-word detector", lambda: count[0], lambda: work[0], limit=10.0,
                             clock=lambda: now[0])
    health = metrics.Health(checks=[check])
    assert health.problem() is None
    now[0] += 60
    assert health.problem() is None  # idle for a minute: nothing to do is not stuck
    work[0] = True
    count[0] += 1
    assert health.problem() is None
    now[0] += 5
    assert health.problem() is None
    now[0] += 6
    assert health.problem() == "the wake-word detector has made no progress for 11 s"
    count[0] += 1
    assert health.problem() is None  # moving again
