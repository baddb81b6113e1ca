"""Capture states through real PyAudio: mute closes the microphone, and a microphone that appears
late (a USB mic plugged in after boot) is found by the retries and reported as recovered."""

from __future__ import annotations

from pathlib import Path

from tests.audio.child import run_child


def test_mute_stops_frames_and_unmute_brings_them_back(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    frames, faults = [], []
    feeder = MicFeeder(dev.mic_fifo)
    s = config.AudioSettings(input_device="speakerd_mic")
    cap = Capture(s, loop, frames.append, faults.append); cap.start()
    while len(frames) < 5:
        await asyncio.sleep(0.02)
    cap.set_muted(True)
    while cap.stats.stream_open:
        await asyncio.sleep(0.02)
    at_mute = len(frames)
    await asyncio.sleep(0.6)  # about seven frames' time with the feeder still talking
    muted_frames = len(frames) - at_mute
    cap.set_muted(False)
    while len(frames) < at_mute + 5:
        await asyncio.sleep(0.02)
    cap.stop(); feeder.close()
    idx = [f.index for f in frames]
    report(faults=[f.message for f in faults], muted_frames=muted_frames, open_after_stop=cap.stats.stream_open,
           in_order=idx == list(range(len(idx))), opens=cap.stats.opens)
asyncio.run(main())
""", tmp_path)
    assert out["faults"] == []
    assert out["muted_frames"] == 0  # the stream was closed, not merely ignored
    assert out["in_order"] and out["opens"] == 2 and not out["open_after_stop"]


def test_a_microphone_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    out = run_child("""
async def main():
    loop = asyncio.get_running_loop()
    frames, faults = [], []
    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker", reopen_max_seconds=0.3)
    cap = Capture(s, loop, frames.append, faults.append); cap.start()
    while not faults:
        await asyncio.sleep(0.02)
    while cap.stats.reopens < 3:  # retried quietly with backoff
        await asyncio.sleep(0.02)
    dev.with_mic = True; dev.write()  # plugged in
    while not frames:
        await asyncio.sleep(0.02)
    cap.stop()
    report(faults=[(f.message, f.recovered) for f in faults], frames=len(frames))
asyncio.run(main())
""", tmp_path, mic="zero", with_mic=False)
    (first, recovered0), (back, recovered1) = out["faults"]
    assert first.startswith("audio.input_device: no input device matches 'speakerd_mic'") and not recovered0
    assert back == "microphone is back" and recovered1
    assert out["frames"] >= 1
