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


def test_a_pi_with_no_microphone_reports_it_and_finds_one_plugged_in_later(tmp_path: Path) -> None:
    """input_device unset and ALSA's default cannot capture (card 0 is the headphone jack): a fault
    that says so and retries with backoff, never a dead thread; a microphone plugged in is used."""
    out = run_child("""
import logging
logged = []
class Keep(logging.Handler):
    def emit(self, record):
        logged.append(record.getMessage())
logging.getLogger("speakerd").addHandler(Keep()); logging.getLogger("speakerd").setLevel(logging.INFO)
async def main():
    loop = asyncio.get_running_loop()
    frames, faults = [], []
    s = config.AudioSettings(reopen_max_seconds=0.3)
    cap = Capture(s, loop, frames.append, faults.append); cap.start()
    while cap.stats.reopens < 3:
        await asyncio.sleep(0.02)
    alive = cap._thread.is_alive()
    dev.with_mic = True; dev.write()  # a USB microphone plugged in
    while len(frames) < 3:
        await asyncio.sleep(0.02)
    cap.stop()
    report(faults=[(f.message, f.recovered) for f in faults], alive=alive, logged=logged)
asyncio.run(main())
""", tmp_path, mic="zero", with_mic=False, playback_only=True)
    (first, recovered0), (back, recovered1) = out["faults"]  # one fault per outage, not per retry
    assert first.startswith("no microphone found: no audio device can capture") and not recovered0
    assert out["alive"]
    assert back == "microphone is back" and recovered1
    assert "microphone: input_device is unset; using 'speakerd_mic' (index 0)" in out["logged"]


def test_speakerd_devices_marks_what_an_unset_device_would_use(tmp_path: Path) -> None:
    code = """
import contextlib, io
from speakerd.audio import devices
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = devices.main(["--no-probe"])
report(rc=rc, rows={line.split()[-1]: line.split()[-2] for line in buf.getvalue().splitlines()[1:]
                     if line[:5].strip().isdigit()}, text=buf.getvalue())
"""
    out = run_child(code, tmp_path, mic="zero", playback_only=True)
    assert out["rc"] == 0
    assert out["rows"] == {"speakerd_mic": "in", "speakerd_speaker": "-", "default": "out"}
    (tmp_path / "none").mkdir()
    out = run_child(code, tmp_path / "none", mic="zero", with_mic=False, playback_only=True)
    assert out["rows"] == {"speakerd_speaker": "-", "default": "out"}
    assert "no microphone found" in out["text"]
