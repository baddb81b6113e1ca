"""Capture and the wake word through real PyAudio, ALSA software devices and real models.

Audio parts run in a child process (tests/audio/child.py): ALSA reads its configuration once per
process and each test needs its own software devices.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from speakerd_workshop.emulator.tts import synthesize

from speakerd import config
from speakerd.events import FRAME_BYTES, AudioFrame, WakeDetected
from speakerd.wakeword import WakeWordDetector, WakeWordError, load_model
from tests.audio.child import run_child
from tests.support import until


@pytest.mark.slow
def test_fifo_capture_is_byte_identical_and_preroll_covers_a_slow_connect(tmp_path: Path) -> None:
    out = run_child("fifo_capture_and_preroll", tmp_path)
    assert out["faults"] == []
    assert out["identical"] and out["indices_in_order"]
    assert out["preroll_has_all"]


@pytest.mark.slow
def test_hey_jarvis_through_the_fifo_microphone_wakes_and_the_preroll_keeps_the_words(tmp_path: Path) -> None:
    """The daemon's idle path end to end: FIFO mic -> Capture -> pre-roll + detector -> wake, then
    a 500 ms connect: every frame from the wake word's start on is still there, byte for byte."""
    said = b"\0\0" * 16000 + synthesize("hey jarvis", rate=16000) + synthesize("what time is it", rate=16000)
    said += b"\0" * (-len(said) % FRAME_BYTES) + b"\0\0" * 16000
    (tmp_path / "said.raw").write_bytes(said)
    out = run_child("hey_jarvis_wakes_and_preroll_keeps_the_words", tmp_path)
    assert out["faults"] == []
    assert out["captured_identical"]  # every byte fed came out, in whole frames
    assert [m for m, _ in out["wakes"]] == ["hey_jarvis"]
    assert 12 <= out["wakes"][0][1] <= 30  # after the 1 s lead-in, where the words end
    assert out["contiguous"] and out["reaches_now"] and out["matches"]


@pytest.mark.slow
def test_44k1_stereo_microphone_and_48k_speaker(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(44100 * 2) / 44100
    left = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    right = (rng.standard_normal(len(t)) * 3000).astype(np.int16)
    # A plain file as the microphone: every open reads it from the start (PortAudio's probe too).
    stereo = np.stack([left, right], axis=1).reshape(-1).astype("<i2").tobytes() + b"\0" * 44100 * 4 * 5
    (tmp_path / "mic44.raw").write_bytes(stereo)
    out = run_child("stereo_44k1_microphone_and_48k_speaker", tmp_path, mic="mic44.raw", speaker_rate=48000)
    import soxr

    assert out["faults"] == []
    assert (out["rate"], out["channels"]) == (44100, 2)
    got = np.load(tmp_path / "got.npy").astype(float)
    ref = soxr.resample(right.astype(np.float32), 44100, 16000, quality="LQ").astype(float)
    n = 16000
    corr = float(np.corrcoef(got[200:n], ref[200:n])[0, 1])
    assert corr > 0.99  # the right channel, properly resampled (not the 440 Hz left one)
    assert out["player_rate"] == 48000
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(float)
    assert abs(len(spk) - 48000) <= 48000 // 50  # one second of 24 kHz audio at 48 kHz
    peak_hz = float(np.argmax(np.abs(np.fft.rfft(spk))) * 48000 / len(spk))
    assert abs(peak_hz - 300) < 3


@pytest.mark.slow
def test_missing_device_is_a_clear_fault_and_recovers_when_named_right(tmp_path: Path) -> None:
    out = run_child("missing_device_reported_once", tmp_path)
    assert len(out["faults"]) == 1  # reported once, retried quietly
    assert out["faults"][0].startswith("audio.input_device: no input device matches 'no-such-mic' (found: ")


def test_invalid_and_unknown_models_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not onnx")
    with pytest.raises(WakeWordError) as e:
        load_model(config.WakewordSettings(models=[str(bad)]))
    assert str(e.value) == f"wakeword.models: {bad} is not a valid ONNX model"
    with pytest.raises(WakeWordError) as e:
        load_model(config.WakewordSettings(models=["hey_computer"]))
    assert "unknown model 'hey_computer'" in str(e.value) and "\n" not in str(e.value)


def _frames(pcm: bytes) -> list[AudioFrame]:
    pcm += b"\0" * (-len(pcm) % FRAME_BYTES)
    return [AudioFrame(pcm[i : i + FRAME_BYTES], n, n * 0.08) for n, i in enumerate(range(0, len(pcm), FRAME_BYTES))]


async def _drained(det: WakeWordDetector) -> None:
    """Wait until no frame is queued for inference."""
    await until(lambda: not det.pending, "the detector to drain its queue")


async def _detect(pcm: bytes, models: list[str]) -> list[WakeDetected]:
    loop = asyncio.get_running_loop()
    found: list[WakeDetected] = []
    det = WakeWordDetector(config.WakewordSettings(models=models), loop, found.append)
    for f in _frames(pcm):
        det.feed(f)
        if det.pending > 10:
            await asyncio.sleep(0.03)
    await _drained(det)
    await asyncio.sleep(0.1)
    await asyncio.to_thread(det.close)
    return found


def _said(text: str) -> bytes:
    quiet = b"\0\0" * 16000
    return quiet + synthesize(text, rate=16000, voice="en") + quiet


@pytest.mark.parametrize(("text", "model"), [("hey jarvis", "hey_jarvis"), ("alexa", "alexa")])
async def test_wake_words_detected_by_their_model_only(text: str, model: str) -> None:
    found = await _detect(_said(text), ["alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy"])
    assert [f.model for f in found] == [model]
    assert 12 <= found[0].frame_index <= 40  # the frame where the word ended, not a stale one


@pytest.mark.slow
async def test_sixty_seconds_of_silence_noise_and_speech_never_wake() -> None:
    rng = np.random.default_rng(11)
    noise = (rng.standard_normal(16000 * 20) * 1500).astype(np.int16).tobytes()
    talk = b"".join(synthesize(t, rate=16000) for t in (
        "the weather today is mild with a light breeze from the west",
        "please remember to buy bread milk and a few apples on the way home",
        "my favourite film is about a lighthouse keeper and his cat",
        "we should leave at seven so we are not late for the concert",
    ))
    talk = (talk * 6)[: 16000 * 2 * 20]
    found = await _detect(b"\0\0" * 16000 * 20 + noise + talk, ["alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy"])
    assert found == []


async def test_no_second_wake_after_pause_and_resume() -> None:
    loop = asyncio.get_running_loop()
    found: list[WakeDetected] = []
    det = WakeWordDetector(config.WakewordSettings(), loop, found.append)
    frames = _frames(_said("hey jarvis"))
    for f in frames:
        det.feed(f)
        await asyncio.sleep(0.004)
    await _drained(det)
    await asyncio.sleep(0.1)
    det.pause()
    det.resume()
    for f in _frames(b"\0\0" * 16000 * 3):
        det.feed(AudioFrame(f.pcm, f.index + 1000, f.monotonic + 100))
        await asyncio.sleep(0.004)
    await _drained(det)
    await asyncio.to_thread(det.close)
    assert len(found) == 1


@pytest.mark.slow
def test_speakerd_devices_lists_the_soft_devices(tmp_path: Path) -> None:
    from speakerd_workshop.softdev import SoftDevices

    dev = SoftDevices(tmp_path / "alsa", mic_infile=Path("/dev/zero"))
    res = subprocess.run([sys.executable, "-m", "speakerd", "devices"], env={**os.environ, **dev.env()},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["index", "in", "out", "rate", "rates", "use", "name"]
    rows = {line.split()[-1]: line.split() for line in lines[1:] if line.strip() and line.split()[0].isdigit()}
    assert "speakerd_mic" in rows and "speakerd_speaker" in rows
    assert "16000" in rows["speakerd_mic"][4].split(",") and "48000" in rows["speakerd_speaker"][4].split(",")
    broken = tmp_path / "broken.conf"
    broken.write_text("pcm.x { type\n")
    res = subprocess.run([sys.executable, "-m", "speakerd", "devices"],
                         env={**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{broken}"},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("speakerd devices: the ALSA configuration cannot be read")
