"""Capture, playback and the wake word through real PyAudio, ALSA software devices and real models.

Each test runs its audio part in a child process, because ALSA reads its configuration once per
process and each test needs its own software devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakerd import config
from speakerd.emulator.tts import synthesize
from speakerd.events import FRAME_BYTES, AudioFrame, WakeDetected
from speakerd.wakeword import WakeWordDetector, WakeWordError, load_model

ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """Run ``code`` (which prints one JSON line last) with soft devices set up by ``kw``."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "CHILD_ARGS": json.dumps({k: str(v) for k, v in kw.items()}),
           "CHILD_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


PRELUDE = """
import asyncio, json, os, sys, time
from pathlib import Path
import numpy as np
from speakerd.audio.softdev import SoftDevices
ARGS = json.loads(os.environ["CHILD_ARGS"]); D = Path(os.environ["CHILD_DIR"])
dev = SoftDevices(D / "alsa", speaker_rate=int(ARGS.get("speaker_rate", 24000)))
os.environ.update(dev.env())
from speakerd import config
from speakerd.audio import Capture, Player, PrerollBuffer
from speakerd.rig import MicFeeder
"""


def test_fifo_capture_is_byte_identical_and_preroll_covers_a_slow_connect(tmp_path: Path) -> None:
    out = run_child(PRELUDE + """
pcm = (np.random.default_rng(7).integers(-8000, 8000, 16000 * 3)).astype(np.int16).tobytes()
async def main():
    loop = asyncio.get_running_loop()
    frames, faults = [], []
    pre = PrerollBuffer(2.0)
    def on_frame(f):
        frames.append(f); pre.push(f)
    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker")
    feeder = MicFeeder(dev.mic_fifo)
    cap = Capture(s, loop, on_frame, faults.append); cap.start()
    await asyncio.sleep(0.5)
    feeder.say(pcm)
    head = pcm[:2560]
    while not any(f.pcm == head for f in frames):  # the "wake word" ends in this frame
        await asyncio.sleep(0.01)
    wake_index = next(f.index for f in frames if f.pcm == head)
    await asyncio.sleep(0.5)  # a slow connect
    late = b"".join(f.pcm for f in pre.since(wake_index))
    feeder.wait_idle(); await asyncio.sleep(0.4)
    got = b"".join(f.pcm for f in frames)
    start = got.find(pcm[:2560])
    cap.stop(); feeder.close()
    print(json.dumps({"identical": start >= 0 and got[start:start+len(pcm)] == pcm,
                      "faults": [f.message for f in faults],
                      "indices_in_order": [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames))),
                      "preroll_has_all": len(late) >= 0.4 * 32000 and late == pcm[:len(late)]}))
asyncio.run(main())
""", tmp_path)
    assert out["faults"] == []
    assert out["identical"] and out["indices_in_order"]
    assert out["preroll_has_all"]


def test_44k1_stereo_microphone_and_48k_speaker(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(44100 * 2) / 44100
    left = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    right = (rng.standard_normal(len(t)) * 3000).astype(np.int16)
    # A plain file as the microphone: every open reads it from the start (PortAudio's probe too).
    stereo = np.stack([left, right], axis=1).reshape(-1).astype("<i2").tobytes() + b"\0" * 44100 * 4 * 5
    (tmp_path / "mic44.raw").write_bytes(stereo)
    out = run_child("""
import asyncio, json, os, sys, time
from pathlib import Path
import numpy as np
from speakerd.audio.softdev import SoftDevices
D = Path(os.environ["CHILD_DIR"])
dev = SoftDevices(D / "alsa", speaker_rate=48000, mic_infile=D / "mic44.raw")
os.environ.update(dev.env())
from speakerd import config
from speakerd.audio import Capture, Player
async def main():
    loop = asyncio.get_running_loop()
    frames, faults = [], []
    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker",
                             input_rate=44100, input_channel=1, output_rate=48000, volume=100)
    cap = Capture(s, loop, frames.append, faults.append); cap.start()
    player = Player(s, D, loop, faults.append); player.start()
    tone = (0.25 * np.sin(2 * np.pi * 300 * np.arange(24000) / 24000) * 32767).astype(np.int16)
    player.play(tone.tobytes())
    while len(frames) < 30:
        await asyncio.sleep(0.05)
    cap.stop()
    await player.drain(); player.close()
    np.save(D / "got.npy", np.frombuffer(b"".join(f.pcm for f in frames[:30]), dtype=np.int16))
    print(json.dumps({"faults": [f.message for f in faults], "rate": cap.stats.device_rate,
                      "channels": cap.stats.device_channels, "player_rate": player.stats.device_rate}))
asyncio.run(main())
""", tmp_path)
    from scipy.signal import resample_poly

    assert out["faults"] == []
    assert (out["rate"], out["channels"]) == (44100, 2)
    got = np.load(tmp_path / "got.npy").astype(float)
    ref = resample_poly(right.astype(float), 160, 441)
    n = 16000
    corr = float(np.corrcoef(got[200:n], ref[200:n])[0, 1])
    assert corr > 0.99  # the right channel, properly resampled (not the 440 Hz left one)
    assert out["player_rate"] == 48000
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(float)
    assert abs(len(spk) - 48000) <= 48000 // 50  # one second of 24 kHz audio at 48 kHz
    peak_hz = float(np.argmax(np.abs(np.fft.rfft(spk))) * 48000 / len(spk))
    assert abs(peak_hz - 300) < 3


def test_playback_exact_samples_volume_and_flush(tmp_path: Path) -> None:
    out = run_child(PRELUDE + """
async def main():
    loop = asyncio.get_running_loop()
    faults = []
    s = config.AudioSettings(output_device="speakerd_speaker", input_device="speakerd_mic", volume=50)
    feeder = MicFeeder(dev.mic_fifo)  # PortAudio opens every PCM while probing; a FIFO needs a writer
    player = Player(s, D, loop, faults.append); player.start()
    x = (np.random.default_rng(5).integers(-20000, 20000, 24000)).astype(np.int16)
    player.play(x.tobytes())
    await player.drain()
    first = dev.speaker_file.read_bytes() if dev.speaker_file.exists() else b""
    written_before = player.stats.samples_written
    player.play(np.full(24000 * 5, 9000, dtype=np.int16).tobytes())
    await asyncio.sleep(0.3)
    player.flush()
    at_flush = player.stats.samples_written
    await asyncio.sleep(0.5)
    after = player.stats.samples_written - at_flush
    player.volume = 35
    player.close(); feeder.close()
    print(json.dumps({"faults": [f.message for f in faults], "period": player._period,
                      "after_flush": after, "volume_file": json.loads((D / "volume.json").read_text()),
                      "scaled_ok": player.stats.samples_written >= 24000 and written_before == 24000,
                      "x": x.tolist()[:2000]}))
    np.save(D / "x.npy", x)
asyncio.run(main())
""", tmp_path)
    assert out["faults"] == []
    x = np.load(tmp_path / "x.npy").astype(np.int32)
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.int32)
    fade = int(0.005 * 24000)
    expected = np.round(x * 0.5)
    expected[:fade] = np.round(x[:fade] * np.linspace(0, 1, fade) * 0.5)
    assert np.abs(spk[fade:24000] - expected[fade:]).max() <= 1  # the samples, at half volume
    assert out["after_flush"] <= out["period"]  # at most one period after flush
    assert out["volume_file"] == {"volume": 35}


def test_missing_device_is_a_clear_fault_and_recovers_when_named_right(tmp_path: Path) -> None:
    out = run_child(PRELUDE + """
async def main():
    loop = asyncio.get_running_loop()
    faults = []
    s = config.AudioSettings(input_device="no-such-mic", output_device="speakerd_speaker", reopen_max_seconds=0.2)
    feeder = MicFeeder(dev.mic_fifo)  # PortAudio opens every PCM while probing; a FIFO needs a writer
    cap = Capture(s, loop, lambda f: None, faults.append); cap.start()
    for _ in range(200):
        if faults and cap.stats.reopens >= 1:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)  # more retries, no more reports
    cap.stop(); feeder.close()
    print(json.dumps({"faults": [f.message for f in faults], "reopens": cap.stats.reopens}))
asyncio.run(main())
""", tmp_path)
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


async def _detect(pcm: bytes, models: list[str]) -> list[WakeDetected]:
    loop = asyncio.get_running_loop()
    found: list[WakeDetected] = []
    det = WakeWordDetector(config.WakewordSettings(models=models), loop, found.append)
    for f in _frames(pcm):
        det.feed(f)
        if det._queue.qsize() > 10:
            await asyncio.sleep(0.03)
    while det._queue.qsize():
        await asyncio.sleep(0.02)
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
    while det._queue.qsize():
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    det.pause()
    det.resume()
    for f in _frames(b"\0\0" * 16000 * 3):
        det.feed(AudioFrame(f.pcm, f.index + 1000, f.monotonic + 100))
        await asyncio.sleep(0.004)
    while det._queue.qsize():
        await asyncio.sleep(0.02)
    await asyncio.to_thread(det.close)
    assert len(found) == 1


def test_speakerd_devices_lists_the_soft_devices(tmp_path: Path) -> None:
    from speakerd.audio.softdev import SoftDevices

    dev = SoftDevices(tmp_path / "alsa", mic_infile=Path("/dev/zero"))
    res = subprocess.run([sys.executable, "-m", "speakerd", "devices"], env={**os.environ, **dev.env()},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["index", "in", "out", "rate", "name"]
    assert any(line.split()[-1] == "speakerd_mic" for line in lines[1:] if line.strip())
