"""The audio tests' child-process parts, one scene per test, run by ``python -m tests.audio.child SCENE``.

Why a child process: ALSA and PortAudio read their configuration once per process, and each test
needs its own software devices. ``tests/audio/child.py`` sets those devices up and the environment
that points at them BEFORE importing this module, so importing PyAudio here sees them. A scene
returns what it observed (JSON-able); the test in the parent process makes the assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
from speakerd_workshop.rig import MicFeeder
from speakerd_workshop.softdev import SoftDevices, SpeakerSink

from speakerd import config
from speakerd.audio import Capture, Player, PrerollBuffer
from speakerd.events import AudioFrame, DeviceFault, WakeDetected
from tests.support import until

Report = dict[str, Any]
Scene = Callable[[SoftDevices, Path], Coroutine[Any, Any, Report]]
SCENES: dict[str, Scene] = {}

# A scene waits for audio paced in real time on a shared machine: a bound on a hang, not a speed test.
WAIT = 60.0


def scene(fn: Scene) -> Scene:
    """Register ``fn`` under its name, for ``python -m tests.audio.child NAME``."""
    SCENES[fn.__name__] = fn
    return fn


def messages(faults: list[DeviceFault]) -> list[str]:
    return [f.message for f in faults]


# --- capture: tests/audio/test_audio_path.py and test_capture.py ---------------------------------


@scene
async def fifo_capture_and_preroll(dev: SoftDevices, d: Path) -> Report:
    pcm = (np.random.default_rng(7).integers(-8000, 8000, 16000 * 3)).astype(np.int16).tobytes()
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    pre = PrerollBuffer(2.0)

    def on_frame(f: AudioFrame) -> None:
        frames.append(f)
        pre.push(f)

    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker")
    feeder = MicFeeder(dev.mic_fifo)
    cap = Capture(s, loop, on_frame, faults.append)
    cap.start()
    await asyncio.sleep(0.5)
    feeder.say(pcm)
    head = pcm[:2560]
    # the "wake word" ends in this frame
    await until(lambda: any(f.pcm == head for f in frames), "the first fed frame to be captured", timeout=WAIT,
                interval=0.01)
    wake_index = next(f.index for f in frames if f.pcm == head)
    await asyncio.sleep(0.5)  # a slow connect
    late = b"".join(f.pcm for f in pre.since(wake_index))
    feeder.wait_idle()
    await asyncio.sleep(0.4)
    got = b"".join(f.pcm for f in frames)
    start = got.find(pcm[:2560])
    cap.stop()
    feeder.close()
    first = frames[0].index
    return {"identical": start >= 0 and got[start:start + len(pcm)] == pcm,
            "faults": messages(faults),
            "indices_in_order": [f.index for f in frames] == list(range(first, first + len(frames))),
            "preroll_has_all": len(late) >= 0.4 * 32000 and late == pcm[:len(late)]}


@scene
async def hey_jarvis_wakes_and_preroll_keeps_the_words(dev: SoftDevices, d: Path) -> Report:
    from speakerd.wakeword import WakeWordDetector  # here: the other scenes need not load the models

    said = (d / "said.raw").read_bytes()
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    wakes: list[WakeDetected] = []
    pre = PrerollBuffer(2.0)
    det = WakeWordDetector(config.WakewordSettings(models=["hey_jarvis", "alexa"]), loop, wakes.append)

    def on_frame(f: AudioFrame) -> None:
        frames.append(f)
        pre.push(f)
        det.feed(f)

    feeder = MicFeeder(dev.mic_fifo)
    cap = Capture(config.AudioSettings(input_device="speakerd_mic"), loop, on_frame, faults.append)
    cap.start()
    await until(lambda: len(frames) >= 3, "the first captured frames", timeout=WAIT)
    first = len(frames)
    feeder.say(said)
    await until(lambda: wakes, "a wake word", timeout=WAIT)
    det.pause()
    await asyncio.sleep(0.5)  # connecting
    wake = wakes[0]
    sent = pre.since(wake.frame_index - 15)  # 1.2 s back: the start of "hey jarvis"
    await until(lambda: len(frames) >= first + len(said) // 2560 + 3, "all the fed audio to be captured",
                timeout=WAIT)
    cap.stop()
    feeder.close()
    det.close()
    got = b"".join(f.pcm for f in frames)
    at = got.find(said)  # where the fed audio starts, in bytes (whole frames)
    base = frames[at // 2560].index if at >= 0 else 0
    idx = [f.index for f in sent]
    return {"faults": messages(faults), "wakes": [(w.model, w.frame_index - base) for w in wakes],
            "contiguous": idx == list(range(idx[0], idx[0] + len(idx))), "reaches_now": idx[-1] > wake.frame_index + 4,
            "matches": b"".join(f.pcm for f in sent) == said[(idx[0] - base) * 2560:][:len(sent) * 2560],
            "captured_identical": at >= 0 and at % 2560 == 0}


@scene
async def stereo_44k1_microphone_and_48k_speaker(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker",
                             input_rate=44100, input_channel=1, output_rate=48000, volume=100)
    cap = Capture(s, loop, frames.append, faults.append)
    cap.start()
    player = Player(s, d, loop, faults.append)
    player.start()
    tone = (0.25 * np.sin(2 * np.pi * 300 * np.arange(24000) / 24000) * 32767).astype(np.int16)
    player.play(tone.tobytes())
    player.end_of_reply()  # as the daemon does at turn end: the resampler hands out its last ms
    await until(lambda: len(frames) >= 30, "30 captured frames", timeout=WAIT, interval=0.05)
    cap.stop()
    await player.drain()
    player.close()
    np.save(d / "got.npy", np.frombuffer(b"".join(f.pcm for f in frames[:30]), dtype=np.int16))
    return {"faults": messages(faults), "rate": cap.stats.device_rate,
            "channels": cap.stats.device_channels, "player_rate": player.stats.device_rate}


@scene
async def no_microphone_then_one_plugged_in(dev: SoftDevices, d: Path) -> Report:
    """input_device unset and ALSA's default cannot capture: a fault, retries, then the new device."""
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    logging.getLogger("speakerd").addHandler(Keep())
    logging.getLogger("speakerd").setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    cap = Capture(config.AudioSettings(reopen_max_seconds=0.3), loop, frames.append, faults.append)
    cap.start()
    await until(lambda: cap.stats.reopens >= 3, "three quiet retries", timeout=WAIT, interval=0.02)
    alive = cap.alive
    dev.with_mic = True  # a USB microphone plugged in
    dev.write()
    await until(lambda: len(frames) >= 3, "frames from the new microphone", timeout=WAIT, interval=0.02)
    cap.stop()
    return {"faults": [(f.message, f.recovered) for f in faults], "alive": alive, "logged": logged}


@scene
async def devices_listing(dev: SoftDevices, d: Path) -> Report:
    """`speakerd devices --no-probe`: which device an unset input_device would use."""
    from speakerd.audio import devices

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = devices.main(["--no-probe"])
    text = buf.getvalue()
    rows = {line.split()[-1]: line.split()[-2] for line in text.splitlines()[1:] if line[:5].strip().isdigit()}
    return {"rc": rc, "rows": rows, "text": text}


@scene
async def missing_device_reported_once(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    faults: list[DeviceFault] = []
    s = config.AudioSettings(input_device="no-such-mic", output_device="speakerd_speaker", reopen_max_seconds=0.2)
    feeder = MicFeeder(dev.mic_fifo)  # PortAudio opens every PCM while probing; a FIFO needs a writer
    cap = Capture(s, loop, lambda f: None, faults.append)
    cap.start()
    await until(lambda: faults and cap.stats.reopens >= 1, "the fault and a first retry", timeout=WAIT,
                interval=0.05)
    await asyncio.sleep(0.6)  # more retries, no more reports
    cap.stop()
    feeder.close()
    return {"faults": messages(faults), "reopens": cap.stats.reopens}


@scene
async def mute_closes_the_microphone(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    feeder = MicFeeder(dev.mic_fifo)
    s = config.AudioSettings(input_device="speakerd_mic")
    cap = Capture(s, loop, frames.append, faults.append)
    cap.start()
    await until(lambda: len(frames) >= 5, "the first captured frames", timeout=WAIT)
    cap.set_muted(True)
    await until(lambda: not cap.stats.stream_open, "the stream to close on mute", timeout=WAIT)
    at_mute = len(frames)
    await asyncio.sleep(0.6)  # about seven frames' time with the feeder still talking
    muted_frames = len(frames) - at_mute
    cap.set_muted(False)
    await until(lambda: len(frames) >= at_mute + 5, "frames after the unmute", timeout=WAIT)
    cap.stop()
    feeder.close()
    idx = [f.index for f in frames]
    return {"faults": messages(faults), "muted_frames": muted_frames, "open_after_stop": cap.stats.stream_open,
            "in_order": idx == list(range(len(idx))), "opens": cap.stats.opens}


@scene
async def microphone_that_appears_later(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    frames: list[AudioFrame] = []
    faults: list[DeviceFault] = []
    s = config.AudioSettings(input_device="speakerd_mic", output_device="speakerd_speaker", reopen_max_seconds=0.3)
    cap = Capture(s, loop, frames.append, faults.append)
    cap.start()
    await until(lambda: faults, "the missing microphone's fault", timeout=WAIT)
    await until(lambda: cap.stats.reopens >= 3, "three quiet retries", timeout=WAIT)  # retried with backoff
    dev.with_mic = True  # plugged in
    dev.write()
    await until(lambda: frames, "frames from the plugged-in microphone", timeout=WAIT)
    cap.stop()
    return {"faults": [(f.message, f.recovered) for f in faults], "frames": len(frames)}


# --- playback: tests/audio/test_playback.py ------------------------------------------------------


@scene
async def exact_samples_at_each_volume(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    faults: list[DeviceFault] = []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=50)
    player = Player(s, d, loop, faults.append)
    player.start()
    rng = np.random.default_rng(5)
    x = rng.integers(-20000, 20000, 24000).astype(np.int16)
    y = rng.integers(-20000, 20000, 12000).astype(np.int16)
    for i in range(0, len(x), 1920):  # in 80 ms pieces, as replies arrive
        player.play(x[i:i + 1920].tobytes())
    player.end_of_reply()
    await player.drain()
    player.volume = 25
    player.play(y.tobytes())
    player.end_of_reply()
    await player.drain()
    player.close()
    again = Player(config.AudioSettings(volume=70), d, loop, faults.append)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return {"faults": messages(faults), "persisted": again.volume, "underruns": player.stats.underruns,
            "written": player.stats.samples_written, "rate": player.stats.device_rate}


@scene
async def flush_mid_reply(dev: SoftDevices, d: Path) -> Report:
    sink = SpeakerSink(dev.speaker_file, 24000)  # before PortAudio opens the FIFO
    loop = asyncio.get_running_loop()
    faults: list[DeviceFault] = []
    first: list[float] = []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=50)
    player = Player(s, d, loop, faults.append, on_first_audio=first.append)
    player.start()
    player.play(np.full(24000 * 5, 9000, dtype=np.int16).tobytes())
    # half a second into a five-second reply
    await until(lambda: player.stats.samples_written >= 12000, "half a second written", timeout=WAIT, interval=0.01)
    written_at_flush = player.stats.samples_written
    player.flush()
    await player.drain()
    st = player.stats
    result = {"after": st.written_after_flush, "period": player.period, "buffer_ms": st.device_buffer_ms,
              "flush_seconds": st.last_flush_seconds, "written": st.samples_written, "at_flush": written_at_flush,
              "first_calls": len(first), "first_cleared": st.first_write_monotonic is None,
              "underruns": st.underruns}
    player.close()
    await asyncio.sleep(0.3)  # the sink reads what the device still held
    (d / "heard.raw").write_bytes(sink.snapshot())
    sink.close()
    return {"faults": messages(faults), **result}


@scene
async def earcons_at_48k_and_earcons_off(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    faults: list[DeviceFault] = []
    s = config.AudioSettings(output_device="speakerd_speaker", output_rate=48000, volume=100, earcon_volume=60)
    player = Player(s, d, loop, faults.append)
    player.start()
    player.play_earcon("wake")
    await player.drain()
    quiet = Player(s.model_copy(update={"earcons": False}), d / "q", loop, faults.append)
    quiet.play_earcon("wake")
    player.close()
    return {"faults": messages(faults), "rate": player.stats.device_rate, "quiet_idle": quiet.idle}


@scene
async def alarm_at_its_volume_with_earcons_off(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    faults: list[DeviceFault] = []
    s = config.AudioSettings(output_device="speakerd_speaker", volume=100, earcons=False)
    player = Player(s, d, loop, faults.append)
    player.start()
    player.play_sound("alarm", 80)
    await player.drain()
    player.close()
    return {"faults": messages(faults), "rate": player.stats.device_rate}


@scene
async def a_reply_that_runs_dry(dev: SoftDevices, d: Path) -> Report:
    loop = asyncio.get_running_loop()
    # No pre-buffer: the 100 ms piece plays at once, so the dry spell after it is counted.
    s = config.AudioSettings(output_device="speakerd_speaker", playback_prebuffer_ms=0)
    player = Player(s, d, loop, print)
    player.start()
    player.play(np.full(2400, 100, dtype=np.int16).tobytes())
    await player.drain()  # no end_of_reply: the model fell behind
    await asyncio.sleep(0.2)
    dry = player.stats.underruns
    player.play(np.full(2400, 100, dtype=np.int16).tobytes())
    player.end_of_reply()
    await player.drain()
    player.play(np.full(2400, 100, dtype=np.int16).tobytes())
    player.end_of_reply()
    await player.drain()
    player.close()
    return {"dry": dry, "total": player.stats.underruns}
