"""Playback through real PyAudio into ALSA software speakers: a file (exact samples) or a FIFO drained
in real time (a paced device, for flushing mid-reply)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speakerd.audio import earcons
from speakerd.audio.resample import resample_once
from tests.audio.child import run_child

FADE = 120  # 5 ms at 24 kHz


def faded(x: np.ndarray, n: int = FADE) -> np.ndarray:
    """What the player does to a reply: float32 ramps of ``n`` samples in and out."""
    y = x.astype(np.float32)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def test_exact_samples_at_each_volume_and_the_volume_survives_a_restart(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    faults = []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=50)
    player = Player(s, D, loop, faults.append); player.start()
    rng = np.random.default_rng(5)
    x = rng.integers(-20000, 20000, 24000).astype(np.int16)
    y = rng.integers(-20000, 20000, 12000).astype(np.int16)
    for i in range(0, len(x), 1920):  # in 80 ms pieces, as replies arrive
        player.play(x[i:i + 1920].tobytes())
    player.end_of_reply()
    await player.drain()
    player.volume = 25
    player.play(y.tobytes()); player.end_of_reply()
    await player.drain()
    player.close()
    again = Player(config.AudioSettings(volume=70), D, loop, faults.append)
    np.save(D / "x.npy", x); np.save(D / "y.npy", y)
    report(faults=[f.message for f in faults], persisted=again.volume, underruns=player.stats.underruns,
           written=player.stats.samples_written, rate=player.stats.device_rate)
asyncio.run(main())
""", tmp_path, mic="zero")
    assert out["faults"] == [] and out["rate"] == 24000
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    expected = np.concatenate([np.round(faded(x) * 0.5), np.round(faded(y) * 0.25)])
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected) == out["written"]  # every sample, nothing more
    assert np.abs(spk - expected).max() <= 1
    assert json.loads((tmp_path / "volume.json").read_text()) == {"volume": 25}
    assert out["persisted"] == 25  # the saved volume wins over the configured default
    assert out["underruns"] == 0


def test_flush_mid_reply_leaves_at_most_one_period_faded_to_silence(tmp_path: Path) -> None:
    out = run_child("""
sink = SpeakerSink(dev.speaker_file, 24000)  # before PortAudio opens the FIFO
async def main():
    loop = asyncio.get_running_loop()
    faults, first = [], []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=50)
    player = Player(s, D, loop, faults.append, on_first_audio=first.append); player.start()
    player.play(np.full(24000 * 5, 9000, dtype=np.int16).tobytes())
    while player.stats.samples_written < 12000:  # half a second into a five-second reply
        await asyncio.sleep(0.01)
    written_at_flush = player.stats.samples_written
    player.flush()
    await player.drain()
    st = player.stats
    result = dict(after=st.written_after_flush, period=player.period, buffer_ms=st.device_buffer_ms,
                  flush_seconds=st.last_flush_seconds, written=st.samples_written, at_flush=written_at_flush,
                  first_calls=len(first), first_cleared=st.first_write_monotonic is None, underruns=st.underruns)
    player.close()
    await asyncio.sleep(0.3)  # the sink reads what the device still held
    (D / "heard.raw").write_bytes(sink.snapshot()); sink.close()
    report(faults=[f.message for f in faults], **result)
asyncio.run(main())
""", tmp_path, mic="zero", speaker_fifo=True)
    assert out["faults"] == []
    assert 0 < out["buffer_ms"] <= 60  # the device holds at most playback_buffer_ms
    assert 0 < out["after"] <= out["period"]  # after flush(): only the fade, under one period
    assert out["written"] - out["at_flush"] <= 2 * out["period"]  # the period in flight + the fade
    assert out["written"] < 24000 * 2  # the rest of the five seconds never reached the speaker
    assert out["flush_seconds"] is not None and out["first_calls"] == 1 and out["first_cleared"]
    assert out["underruns"] == 0  # a flush is not the network falling behind
    heard = np.frombuffer((tmp_path / "heard.raw").read_bytes(), dtype="<i2").astype(np.int32)
    assert len(heard) == out["written"]  # the paced speaker played what was written, in full
    assert (heard[FADE : len(heard) - out["after"]] == 4500).all()
    tail = heard[-out["after"] :]
    assert tail[-1] == 0 and np.abs(np.diff(tail)).max() <= 4500 // 100  # a ramp, not a click


def test_earcons_at_48k_and_earcons_off(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    faults = []
    s = config.AudioSettings(output_device="speakerd_speaker", output_rate=48000, volume=100, earcon_volume=60)
    player = Player(s, D, loop, faults.append); player.start()
    player.play_earcon("wake")
    await player.drain()
    quiet = Player(s.model_copy(update={"earcons": False}), D / "q", loop, faults.append)
    quiet.play_earcon("wake")
    player.close()
    report(faults=[f.message for f in faults], rate=player.stats.device_rate, quiet_idle=quiet.idle)
asyncio.run(main())
""", tmp_path, mic="zero", speaker_rate=48000)
    assert out["faults"] == [] and out["rate"] == 48000 and out["quiet_idle"]
    pcm, rate = earcons.load("wake", None)
    expected = np.round(resample_once(pcm, rate, 48000).astype(np.float32) * np.float32(0.6))
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected)
    assert np.abs(spk - expected).max() <= 1


def test_alarm_sound_plays_at_its_volume_with_earcons_off(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    faults = []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=100, earcons=False)
    player = Player(s, D, loop, faults.append); player.start()
    player.play_sound("alarm", 80)
    await player.drain()
    player.close()
    report(faults=[f.message for f in faults], rate=player.stats.device_rate)
asyncio.run(main())
""", tmp_path, mic="zero")
    assert out["faults"] == []
    pcm, rate = earcons.load("alarm", None)
    expected = np.round(resample_once(pcm, rate, out["rate"]).astype(np.float32) * np.float32(0.8))
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected)
    assert np.abs(spk - expected).max() <= 1


def test_a_reply_that_runs_dry_counts_one_underrun(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    s = config.AudioSettings(output_device="speakerd_speaker")
    player = Player(s, D, loop, print); player.start()
    player.play(np.full(2400, 100, dtype=np.int16).tobytes())
    await player.drain()  # no end_of_reply: the model fell behind
    await asyncio.sleep(0.2)
    dry = player.stats.underruns
    player.play(np.full(2400, 100, dtype=np.int16).tobytes()); player.end_of_reply()
    await player.drain()
    player.play(np.full(2400, 100, dtype=np.int16).tobytes()); player.end_of_reply()
    await player.drain()
    player.close()
    report(dry=dry, total=player.stats.underruns)
asyncio.run(main())
""", tmp_path, mic="zero")
    assert out == {"dry": 1, "total": 1}
