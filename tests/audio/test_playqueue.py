"""The player's queue on its own, no device: what each period holds while an alarm rings."""

from __future__ import annotations

import numpy as np

from speakerd import config
from speakerd.audio.playqueue import PlayQueue


def queue(volume: int = 50, prebuffer_ms: int = 0) -> PlayQueue:
    q = PlayQueue(config.AudioSettings(volume=volume, earcons=False, playback_prebuffer_ms=prebuffer_ms))
    q._rate, q._period = 24000, 480  # as the writer thread sets them when the device opens
    return q


def periods(q: PlayQueue, n: int) -> list[np.ndarray]:
    """Up to ``n`` periods, as the writer thread takes them, while something is playable."""
    out: list[np.ndarray] = []
    while len(out) < n and q._playable() is not None:
        got = q._next_period()
        assert got is not None
        out.append(got[0])
    return out


def test_a_held_reply_waits_while_a_sound_plays_at_its_own_level() -> None:
    q = queue(volume=50)
    q.play((np.full(2400, 1000, dtype="<i2")).tobytes())  # 100 ms of reply
    q.hold(True)
    q.play_sound("alarm", 80, absolute=True)
    sound = periods(q, 10_000)
    assert sound, "the alarm did not play while the reply was held"
    assert q._playable() is None and len(q._queue) >= 1  # only the held reply is left
    level = max(float(np.abs(p).max()) for p in sound)
    assert level > 0.5 * 0.8 * 32767 * 0.6  # 80 % of a clip peaking near 0.6: not scaled by the 50 % volume
    q.hold(False)
    reply = np.concatenate(periods(q, 10))
    assert len(reply) == 2400 and abs(float(reply[1200]) - 500.0) <= 1  # the reply, at the 50 % volume


def test_dropping_sounds_keeps_the_reply() -> None:
    q = queue()
    q.play((np.full(480, 1000, dtype="<i2")).tobytes())
    q.play_sound("alarm", 80)
    q.drop_sounds()
    assert [c.is_reply for c in q._queue] == [True]


async def test_drain_returns_when_dropped_audio_never_reached_the_device() -> None:
    """The ringer waits for its sound; dismissed before the device even opened, it must not wait forever."""
    import asyncio

    q = PlayQueue(config.AudioSettings())  # no device open yet: nothing is being written
    q.play_sound("alarm", 80)
    waiting = asyncio.ensure_future(q.drain())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    q.drop_sounds()
    await asyncio.wait_for(waiting, 2)
    q.play((np.full(480, 1000, dtype="<i2")).tobytes())
    waiting = asyncio.ensure_future(q.drain())
    await asyncio.sleep(0.05)
    q.flush()
    await asyncio.wait_for(waiting, 2)


def test_a_reply_starts_once_its_pre_buffer_is_queued() -> None:
    q = queue(prebuffer_ms=200)
    q.play((np.full(2400, 1000, dtype="<i2")).tobytes())  # 100 ms: not enough to start
    assert q._playable() is None
    q.play((np.full(2400, 1000, dtype="<i2")).tobytes())  # 200 ms queued: it starts
    assert len(np.concatenate(periods(q, 100))) == 4800
    assert q.stats.underruns == 0  # waiting for the first 200 ms is not an underrun
    short = queue(prebuffer_ms=200)
    short.play((np.full(480, 1000, dtype="<i2")).tobytes())  # a 20 ms reply...
    assert short._playable() is None
    short.end_of_reply()  # ...that has ended plays at once, whatever its length
    assert short._playable() is not None
