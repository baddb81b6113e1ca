"""End to end: the real daemon process, the emulator, ALSA soft devices, scripted conversations.

For each conversation: "hey jarvis", a question, the spoken reply, and (every third one) a
button interrupt. Printed, p50 and p95:
  - wake to first frame sent: the daemon's wake-word log line to the emulator receiving audio;
  - speech end to first audio on the speaker, minus the emulator's own delay (its VAD silence
    and reply start): speaker-file growth minus the emulator's first reply audio send time;
  - interrupt to silence: the daemon's own measurement, press to playback flushed;
and once: start to READY, idle RSS and idle CPU. Baselines measured in the same run: a bare
Python interpreter start with the same imports (for start-to-READY) and bare openWakeWord CPU
per second of audio (for idle CPU), so the figures read as ratios on any machine.

    python bench/e2e.py            # 30 conversations
    python bench/e2e.py --quick    # 6 conversations
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator import EmulatorThread, Received, Scenario, ServerEvent
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.rig import Rig

from speakerd import config
from speakerd.events import FRAME_SAMPLES
from speakerd.wakeword import load_model

SCENARIO = Scenario.from_dict({"default_reply": (
    "Here is a fairly long answer, so that there is time to interrupt it with the button if you like.")})


def new_connection(emu: EmulatorThread, before: int) -> bool:
    return len(emu.connections) > before


def first_audio_received(emu: EmulatorThread, connection: int) -> Received | None:
    """The first microphone audio the emulator got on ``connection``, once there is one."""
    return next((r for r in emu.received if r.connection == connection and "realtimeInput" in r.message
                 and "audio" in r.message["realtimeInput"]), None)


def first_reply_audio(emu: EmulatorThread, connection: int) -> ServerEvent | None:
    """The emulator's first reply audio on ``connection``, once it sent some."""
    return next((e for e in emu.events if e.connection == connection and e.kind == "firstAudio"), None)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


class SpeakerWatch:
    """Notes the first moment the speaker file grows after ``arm()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.armed_size = 0
        self.grew_at: float | None = None
        self._armed = threading.Event()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def arm(self) -> None:
        self.armed_size, self.grew_at = self.size(), None
        self._armed.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._armed.is_set() and self.size() > self.armed_size:
                self.grew_at = time.monotonic()
                self._armed.clear()
            time.sleep(0.001)

    def close(self) -> None:
        self._stop.set()


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def bare_start_seconds() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import speakerd.daemon, speakerd.wakeword, onnxruntime"],
                   check=True, cwd=ROOT)
    return time.monotonic() - t0


def bare_wake_cpu_per_second() -> float:
    model = load_model(config.WakewordSettings())
    x = (np.random.default_rng(0).standard_normal(16000 * 10) * 300).astype(np.int16)
    t0 = time.process_time()
    for i in range(0, len(x) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        model.predict(x[i : i + FRAME_SAMPLES])
    return (time.process_time() - t0) / 10


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    n = 6 if args.quick else 30
    wake = np.frombuffer(b"\0\0" * 8000 + synthesize("hey jarvis", rate=16000) + b"\0\0" * 6000, np.int16)
    question = synthesize("what is the weather like?", rate=16000)
    wake_to_sent, reply_overhead, interrupts = [], [], []
    with tempfile.TemporaryDirectory() as tmp, Rig(
        Path(tmp), scenario=SCENARIO,
        config="[conversation]\nfollow_up_seconds = 0.5\n[live.vad]\nsilence_duration_ms = 500\n",
    ) as rig:
        assert rig.mic is not None and rig.emulator is not None and rig.devices is not None
        assert rig.proc is not None and rig.ready_at is not None
        emu = rig.emulator
        start_to_ready = rig.ready_at - rig.started_at
        time.sleep(2.0)
        rss0, cpu0 = proc_stats(rig.proc.pid)
        time.sleep(10.0)
        rss1, cpu1 = proc_stats(rig.proc.pid)
        idle_cpu = (cpu1 - cpu0) / 10.0
        speaker = SpeakerWatch(rig.devices.speaker_file)
        for i in range(n):
            mark = len(rig.lines)
            conns = len(emu.connections)
            rig.mic.say(wake.tobytes() + question)
            w = rig.wait_log(r"^wake word ", timeout=30, start=mark)
            t_wake = rig.lines[w].at
            emu.wait_for(partial(new_connection, emu, conns), timeout=30)
            cid = emu.connections[-1].id
            first: Received = emu.wait_for(partial(first_audio_received, emu, cid), timeout=30)
            wake_to_sent.append(first.time - t_wake)
            speaker.arm()
            ev: ServerEvent = emu.wait_for(partial(first_reply_audio, emu, cid), timeout=30)
            deadline = time.monotonic() + 10
            while speaker.grew_at is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if speaker.grew_at is not None:
                reply_overhead.append(speaker.grew_at - ev.time)
            s = rig.wait_state("speaking", timeout=30, start=mark)
            if i % 3 == 2:
                time.sleep(0.5)
                rig.ctl("press", 0.05)
                k = rig.wait_log(r"^interrupt to silence", timeout=10, start=s)
                interrupts.append(float(rig.lines[k].message.split()[3]))
            rig.wait_state("idle", timeout=60, start=s)
            rig.mic.wait_idle()
        speaker.close()
    bare_start = bare_start_seconds()
    bare_cpu = bare_wake_cpu_per_second()
    latencies = {
        "wake_to_first_frame_sent_s": {"p50": pct(wake_to_sent, 0.5), "p95": pct(wake_to_sent, 0.95)},
        "reply_overhead_s": {"p50": pct(reply_overhead, 0.5), "p95": pct(reply_overhead, 0.95)},
        "interrupt_to_silence_s": {"p50": pct(interrupts, 0.5), "p95": pct(interrupts, 0.95)},
    }
    res = {
        "conversations": n,
        **latencies,
        "start_to_ready_s": start_to_ready, "bare_python_imports_s": bare_start,
        "start_to_ready_ratio": start_to_ready / bare_start,
        "idle_rss_mib": rss1, "idle_rss_growth_mib": rss1 - rss0,
        "idle_cpu_fraction": idle_cpu, "bare_wakeword_cpu_fraction": bare_cpu,
        "idle_cpu_ratio": idle_cpu / bare_cpu if bare_cpu else None,
    }
    print(f"{n} conversations against the emulator (p50 / p95):")
    for key, label in (("wake_to_first_frame_sent_s", "wake word -> first frame sent"),
                       ("reply_overhead_s", "first reply audio sent -> on the speaker"),
                       ("interrupt_to_silence_s", "button interrupt -> silence")):
        print(f"  {label:42s} {latencies[key]['p50'] * 1000:7.1f} ms / {latencies[key]['p95'] * 1000:7.1f} ms")
    print(f"  start -> READY                             {start_to_ready:.2f} s "
          f"({res['start_to_ready_ratio']:.2f}x a bare interpreter importing the same modules)")
    print(f"  idle: RSS {rss1:.0f} MiB, CPU {idle_cpu * 100:.1f} % of a core "
          f"({res['idle_cpu_ratio']:.2f}x bare openWakeWord)")
    out = ROOT / "bench" / "results" / "e2e.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
