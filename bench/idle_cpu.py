"""Idle listening cost of the whole daemon process vs a bare openWakeWord loop, in real time.

The daemon runs through the test rig as on a Pi (emulator, ALSA software devices, mock GPIO with
LEDs and a button), listening to a room: quiet noise with ordinary speech now and then, no wake
word, fed into its microphone in real time. Its CPU time is that of the whole process, every
thread (capture, wake word, LEDs, button, playback, the event loop, the watchdog).

The baseline is a bare loop in a process of its own: PyAudio reading the same kind of ALSA
software microphone, fed the same audio in real time, and openWakeWord's ``Model.predict`` on
each 80 ms block, with openWakeWord's own session options. Target: daemon / bare <= 1.15.

Rounds alternate which goes first; the medians are compared.

    python bench/idle_cpu.py              # 3 rounds of 30 s each
    python bench/idle_cpu.py --seconds 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.rig import MicFeeder, Rig
from speakerd_workshop.softdev import SoftDevices

TARGET = 1.15
SETTLE = 5.0

BARE = r"""
import sys
import numpy as np
import pyaudio
from speakerd.audio.devices import quiet_alsa
from speakerd.wakeword import _openwakeword, _resources, model_path
quiet_alsa()  # as the daemon does: no JACK/ALSA probe noise
_openwakeword()  # the package without its training code; the model code is openwakeword's own
from openwakeword.model import Model
res = _resources()
model = Model(wakeword_models=[str(model_path(sys.argv[1]))], inference_framework="onnx",
              melspec_model_path=str(res / "melspectrogram.onnx"),
              embedding_model_path=str(res / "embedding_model.onnx"))
pa = pyaudio.PyAudio()
index = next(i for i in range(pa.get_device_count())
             if pa.get_device_info_by_index(i)["name"] == "speakerd_mic")
stream = pa.open(format=pyaudio.paInt16, channels=1, rate=16000, input=True,
                 input_device_index=index, frames_per_buffer=1280)
print("listening", flush=True)
while True:
    model.predict(np.frombuffer(stream.read(1280, exception_on_overflow=False), dtype=np.int16))
"""


def room(seconds: float) -> bytes:
    """Quiet noise with ordinary speech every 10 s (no wake word)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(int(seconds * 16000)) * 300).astype(np.int16)
    talk = np.frombuffer(synthesize("we should leave at seven so we are not late for the concert", rate=16000),
                         dtype=np.int16)
    for start in range(16000 * 3, len(x) - len(talk), 16000 * 10):
        x[start : start + len(talk)] += talk
    return x.tobytes()


def cpu_seconds(pid: int) -> float:
    """User + system time of a whole process (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, feeder: MicFeeder, audio: bytes, seconds: float) -> float:
    """CPU seconds per second of wall time over ``seconds`` of real-time audio, after settling."""
    feeder.say(audio)
    time.sleep(SETTLE)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0)


def daemon_round(workdir: Path, audio: bytes, seconds: float) -> tuple[float, dict[str, int]]:
    with Rig(workdir) as rig:
        assert rig.proc is not None and rig.mic is not None
        frac = measure(rig.proc.pid, rig.mic, audio, seconds)
        status = rig.ctl("status")
        assert status["state"] == "idle", status  # it listened; nothing woke it
    return frac, {k: int(v) for k, v in status.items() if k in ("wake_dropped", "overflows")}


def bare_round(workdir: Path, audio: bytes, seconds: float, model: str) -> float:
    dev = SoftDevices(workdir / "alsa")
    feeder = MicFeeder(dev.mic_fifo)  # before PortAudio opens the FIFO
    proc = subprocess.Popen([sys.executable, "-c", BARE, model], env={**os.environ, **dev.env()},
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "listening", f"bare loop did not start: {line!r}"
        return measure(proc.pid, feeder, audio, seconds)
    finally:
        proc.kill()
        proc.wait()
        feeder.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="hey_jarvis", help="the daemon's default wake word")
    args = p.parse_args()
    audio = room(args.seconds + SETTLE + 5)
    bare_runs: list[float] = []
    daemon_runs: list[float] = []
    counters: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="speakerd-idle-") as tmp:
        for r in range(args.rounds):
            order = ("daemon", "bare") if r % 2 == 0 else ("bare", "daemon")
            for which in order:
                work = Path(tmp) / f"{which}{r}"
                if which == "daemon":
                    frac, extra = daemon_round(work, audio, args.seconds)
                    daemon_runs.append(frac)
                    counters.append(extra)
                else:
                    bare_runs.append(bare_round(work, audio, args.seconds, args.model))
            print(f"  round {r + 1}: daemon {daemon_runs[-1] * 100:.2f} %, bare {bare_runs[-1] * 100:.2f} % "
                  f"of a core", file=sys.stderr, flush=True)
    b, d = statistics.median(bare_runs), statistics.median(daemon_runs)
    ratio = d / b
    print(f"{args.rounds} rounds of {args.seconds:.0f} s in real time, model {args.model} (medians):")
    print(f"bare openWakeWord loop : {b * 100:6.2f} % of a core")
    print(f"whole daemon process   : {d * 100:6.2f} % of a core")
    print(f"ratio daemon/bare      : {ratio:.3f}  (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    out = ROOT / "bench" / "results" / "idle_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds": args.seconds, "rounds": args.rounds, "model": args.model,
                               "bare_cpu_fraction": b, "daemon_cpu_fraction": d, "ratio": ratio,
                               "bare_runs": bare_runs, "daemon_runs": daemon_runs, "daemon_counters": counters,
                               "target_met": ratio <= TARGET}, indent=2) + "\n")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
