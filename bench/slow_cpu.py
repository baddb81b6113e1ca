"""A slow CPU: one whole conversation with the daemon held to a fraction of one core.

Why: a Pi Zero 2 W or a Pi 3 has cores several times slower than this machine's. A cgroup CPU
quota (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``) caps the daemon process - all its
threads - at N % of one core; stepping N down finds where real-time audio starts to break.

For each quota a fresh daemon starts at full speed (start-up is not what is measured), is moved
into the cgroup once READY with the unit's priority (Nice=-5), idles 5 s, then hears
"hey jarvis, what is the weather like?" and plays the emulator's reply. Counted, for that conversation:
  - the daemon's own ``audio`` counters (``speakerctl status --json``): capture overflows,
    wake-word frames dropped, playback underruns (the reply ran dry before it ended);
  - at the rig, what a sound card would suffer: microphone periods that found the capture
    buffer full (the daemon did not read in time; the pipe holds ~256 ms, about what PortAudio
    asks ALSA for at 80 ms periods), and stretches of over 10 ms inside the reply when the
    speaker, drained in real time, found nothing to play.
A quota passes when the conversation completed and every count is 0, except the daemon's
playback_underruns: it counts its queue running empty during a reply, which happens once at the
start of every reply at any quota while the device buffer is still full (see the JSON's rows at
100 %), so the speaker's own underruns are the playback measure.

    sudo .venv/bin/python bench/slow_cpu.py                 # 100 50 35 25 15 10 7 5 %
    sudo .venv/bin/python bench/slow_cpu.py --quotas 25,20  # others
Needs root (to make the cgroup) and espeak-ng (the rig's speech). Writes bench/results/slow_cpu.json.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd_workshop.emulator import EmulatorThread, Scenario
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.rig import API_KEY, MicFeeder, Rig
from speakerd_workshop.softdev import F_SETPIPE_SZ, SoftDevices, SpeakerSink

from speakerd.events import FRAME_BYTES, SAMPLE_RATE_IN

QUOTAS = (100, 50, 35, 25, 15, 10, 7, 5)
PERIOD_US = 100_000
NICE_MINUS_5_WEIGHT = 3121  # the kernel's CFS weight for nice -5 (nice 0 is 1024)
MIC_PIPE_BYTES = 8192  # 256 ms of 16 kHz s16 mono: roughly 3 periods of 80 ms, as a card's ring
UNDERRUN_S = 0.010  # silence the speaker had to insert, in one stretch, to count as an underrun
SCENARIO = Scenario.from_dict({"default_reply": "It is sunny and mild today, with a light breeze from the west."})


class CpuQuota:
    """A cgroup with a CPU bandwidth limit, on cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us)."""

    def __init__(self, name: str) -> None:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        v1 = Path("/sys/fs/cgroup/cpu")
        if v2.exists() and "cpu" in v2.read_text().split():
            control = Path("/sys/fs/cgroup/cgroup.subtree_control")
            if "cpu" not in control.read_text().split():
                control.write_text("+cpu")
            self.path, self.version = Path("/sys/fs/cgroup") / name, 2
        elif (v1 / "cpu.cfs_quota_us").exists():
            self.path, self.version = v1 / name, 1
        else:
            raise SystemExit("no cgroup CPU controller here (neither v2 cpu.max nor v1 cpu.cfs_quota_us)")
        self.path.mkdir(exist_ok=True)

    def set(self, percent: int) -> None:
        quota = PERIOD_US * percent // 100
        if self.version == 2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """Move the whole process (every thread; threads it starts later are born inside).

        With the priority the shipped unit gives it (Nice=-5): every thread reniced, and the
        cgroup weighted as a nice -5 task, since a cgroup competes with the rest of the machine
        as one entity whatever its threads' nice values.
        """
        (self.path / "cgroup.procs").write_text(str(pid))
        if self.version == 2:
            (self.path / "cpu.weight").write_text(str(NICE_MINUS_5_WEIGHT * 100 // 1024))
        else:
            (self.path / "cpu.shares").write_text(str(NICE_MINUS_5_WEIGHT))
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(task.name), -5)

    def throttled(self) -> float:
        """Seconds the cgroup spent throttled so far."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if " " in line)
        if "throttled_usec" in stat:
            return int(stat["throttled_usec"]) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


class DroppingMic(MicFeeder):
    """A microphone that drops a period when the daemon has not read the last ones, as a card would."""

    def __init__(self, fifo: Path, speed: float = 1.0) -> None:
        self.dropped = 0
        super().__init__(fifo, speed)

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, MIC_PIPE_BYTES)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        period = FRAME_BYTES / 2 / SAMPLE_RATE_IN / self.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                chunk = bytes(self._queue[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
                del self._queue[:FRAME_BYTES]
            try:
                os.write(self._fd, chunk)
                self.sent += chunk
            except BlockingIOError:
                self.dropped += 1  # the period is lost, speech included: the daemon was too slow
            except OSError:
                return
            self.periods += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


class SlowRig(Rig):
    """The rig with a real-time speaker FIFO and the dropping microphone."""

    sink: SpeakerSink | None = None

    def __enter__(self) -> SlowRig:
        self.emulator = EmulatorThread(scenario=self.scenario, api_key=API_KEY)
        self.emulator.start()
        self.devices = SoftDevices(self.workdir / "alsa", speaker_fifo=True)
        self.sink = SpeakerSink(self.devices.speaker_file, self.devices.speaker_rate)  # before PortAudio
        self.mic = DroppingMic(self.devices.mic_fifo)
        self.write_config()
        self.start()
        return self

    def close(self) -> None:
        super().close()
        if self.sink is not None:
            self.sink.close()


def speaker_underruns(sink: SpeakerSink, start: float, end: float) -> tuple[int, float]:
    """Silences inside the reply (its first to its last audio between ``start`` and ``end``):
    (stretches longer than UNDERRUN_S, seconds of silence in all)."""
    times = [t for t, _ in sink.arrivals if start <= t <= end]
    if not times:
        return 0, 0.0
    inside = [(t, n / sink.bytes_per_second) for t, n in sink.silences if times[0] < t < times[-1]]
    stretches: list[float] = []
    last = -1.0
    for t, seconds in inside:  # the sink looks every ~2 ms: entries closer than 20 ms are one stretch
        if stretches and t - last < 0.02:
            stretches[-1] += seconds
        else:
            stretches.append(seconds)
        last = t
    return sum(1 for x in stretches if x > UNDERRUN_S), round(sum(stretches), 3)


def conversation(rig: SlowRig, cg: CpuQuota, percent: int, say: bytes) -> dict[str, Any]:
    """One "hey jarvis ..." and its reply, counted from the daemon's and the rig's side."""
    assert rig.mic is not None and rig.sink is not None
    mic = rig.mic
    assert isinstance(mic, DroppingMic)
    before = rig.ctl("status")["audio"]
    dropped0, throttled0, t0 = mic.dropped, cg.throttled(), time.monotonic()
    mark = len(rig.lines)
    mic.say(say)
    out: dict[str, Any] = {"quota_percent": percent, "completed": False}
    try:
        w = rig.wait_log(r"^wake word ", timeout=30, start=mark)
        out["wake_s"] = round(rig.lines[w].at - (t0 + 0.5), 2)  # from the word's start, 0.5 s in
        s = rig.wait_state("speaking", timeout=60, start=w)
        speaking_at = rig.lines[s].at
        e = rig.wait_log(r"^state (?!speaking$)", timeout=90, start=s + 1)  # played out
        reply_end_at = rig.lines[e].at
        rig.wait_state("idle", timeout=90, start=s)
        out["completed"] = True
    except TimeoutError as exc:
        out["error"] = str(exc).splitlines()[0]
        speaking_at = reply_end_at = time.monotonic()
    mic.wait_idle(timeout=30)
    after = rig.ctl("status")["audio"]
    gaps, silent = speaker_underruns(rig.sink, speaking_at, reply_end_at)
    out.update(
        capture_overflows=after["overflows"] - before["overflows"],
        wake_frames_dropped=after["wake_dropped"] - before["wake_dropped"],
        playback_underruns=after["underruns"] - before["underruns"],
        mic_periods_lost=mic.dropped - dropped0,
        speaker_underruns=gaps, speaker_silence_s=silent,
        played_seconds=round((after["played_samples"] - before["played_samples"]) / 24000, 2),
        throttled_s=round(cg.throttled() - throttled0, 2),
        conversation_s=round(time.monotonic() - t0, 1),
    )
    # The daemon's playback_underruns counts its queue running empty while a reply lasts, and it
    # does so once at the start of most replies at any quota (the first chunk goes straight into
    # the device buffer before the next arrives): reported, but the speaker's own underruns decide.
    out["passed"] = bool(out["completed"]) and all(out[k] == 0 for k in COUNTS) and out["played_seconds"] > 0
    return out


COUNTS = ("capture_overflows", "wake_frames_dropped", "mic_periods_lost", "speaker_underruns")


def one_quota(percent: int, cg: CpuQuota, say: bytes, rounds: int) -> list[dict[str, Any]]:
    """A fresh daemon, moved under the quota once READY, idle 5 s, then ``rounds`` conversations."""
    with tempfile.TemporaryDirectory() as tmp, SlowRig(
        Path(tmp), scenario=SCENARIO,
        config="[conversation]\nfollow_up_seconds = 0.5\n[live.vad]\nsilence_duration_ms = 500\n",
    ) as rig:
        assert rig.proc is not None
        cg.set(percent)
        cg.add(rig.proc.pid)
        time.sleep(5.0)  # idle under the quota: the wake-word path alone
        out = []
        for _ in range(rounds):
            out.append(conversation(rig, cg, percent, say))
            if not out[-1]["completed"]:
                break  # it could not keep up at all: more rounds would say nothing new
        return out


def lowest(rows: list[dict[str, Any]], ok: Any) -> int | None:
    """The lowest quota at and above which every tried quota was ``ok``."""
    best = None
    for q in sorted({r["quota_percent"] for r in rows}, reverse=True):
        if not ok([r for r in rows if r["quota_percent"] == q]):
            break
        best = q
    return best


def section(res: dict[str, Any]) -> str:
    """The slow-CPU part of docs/platforms.md (scripts/platforms.py keeps it when it rewrites)."""
    lines = [
        "## A slow CPU",
        "",
        f"Measured by `bench/slow_cpu.py` on {res['date']} ({res['cpu']}, cgroup {res['cgroup']},",
        f"load average {res['load_average_1m']:.1f} on this shared 2-core machine). The daemon process,",
        "all its threads, is held to a CPU quota of a fraction of one core from READY on, with the",
        "unit's priority (Nice=-5, and the cgroup weighted alike), idles 5 s, then has",
        f"{res['rounds']} spoken conversations per quota. Counted per conversation: the daemon's capture",
        "overflows and dropped wake-word frames (`speakerctl status --json`, `audio`), microphone",
        f"periods a sound card would have lost (the capture buffer holds {res['mic_buffer_ms']:.0f} ms), and",
        "speaker underruns (a stretch of over 10 ms inside the reply when the speaker, drained in real",
        "time, found nothing to play).",
        "",
        "| quota of one core | conversations passed | wake after | capture overflows | wake frames dropped "
        "| mic periods lost | speaker underruns | daemon `underruns` | throttled |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for q in sorted({r["quota_percent"] for r in res["rows"]}, reverse=True):
        rs = [r for r in res["rows"] if r["quota_percent"] == q]
        wakes = [r["wake_s"] for r in rs if r.get("wake_s") is not None]

        def total(key: str, rs: list[dict[str, Any]] = rs) -> str:
            return str(sum(int(r[key]) for r in rs))

        lines.append(f"| {q} % | {sum(r['passed'] for r in rs)} of {res['rounds']}"
                     f"{' (gave up: no reply)' if not rs[-1]['completed'] else ''} | "
                     f"{(f'{max(wakes):.2f} s' if wakes else '–')} | {total('capture_overflows')} | "
                     f"{total('wake_frames_dropped')} | {total('mic_periods_lost')} | {total('speaker_underruns')} | "
                     f"{total('playback_underruns')} | {sum(r['throttled_s'] for r in rs):.1f} s |")
    every, most = res["lowest_every_round"], res["lowest_majority"]
    lines += [
        "",
        f"**Lowest quota with 0 overflows, 0 dropped wake frames and 0 underruns in every conversation: "
        f"{every if every is not None else 'none'} % of one core** of this machine"
        f" ({most if most is not None else 'none'} % when two of three conversations must pass).",
        "",
    ]
    base = [r["wake_s"] for r in res["rows"] if r["quota_percent"] == max(r["quota_percent"] for r in res["rows"])
            and r.get("wake_s") is not None]
    prompt = lowest(res["rows"], lambda rs: bool(base) and all(
        r.get("wake_s") is not None and r["wake_s"] <= max(base) + 0.2 for r in rs))
    lines += [
        "Nothing lost is not the same as prompt: the wake word is answered within 0.2 s of the",
        f"unthrottled time down to {prompt if prompt is not None else 'none'} %, and later below that (the table's",
        "\"wake after\" is from the start of \"hey jarvis\" to the daemon's log line, the slowest of the",
        "three). The microphone's buffer here is generous; a card with a smaller one loses frames sooner.",
        "",
        "The daemon's own `underruns` counter is not used for the verdict: it counts the player's queue",
        "running empty while a reply lasts, and that happens at the start of most replies at any quota,",
        "100 % included, while the device buffer still holds audio (the first chunk goes straight into",
        "it before the second arrives). It over-counts; the speaker's own clock is the measure here.",
        "",
        "What it means for a Pi, as an estimate (not measured on a Pi): published single-core",
        "benchmarks (Geekbench 5 class) put a Raspberry Pi 4 (Cortex-A72, 1.5-1.8 GHz) at roughly a",
        "quarter to a fifth of a current x86-64 server core, and a Pi Zero 2 W or Pi 3 (Cortex-A53,",
        "1.0-1.4 GHz) at roughly a tenth to a fifteenth; vectorised inference (onnxruntime on NEON",
        "against AVX2) can fall further behind than that. So a quota of N % here is very roughly",
        "4-5 N % of one Pi 4 core and 10-15 N % of one Pi Zero 2 W core. The quota caps all the",
        "daemon's threads together on one core's worth of time; a Pi's four cores can run them side",
        "by side, so this errs on the safe side for the CPU, not for memory (the Zero 2 W has 512 MB).",
    ]
    if every is not None:
        lines += [
            "",
            f"At {every} % here: about {4 * every}-{5 * every} % of a Pi 4 core, which leaves plenty of room, "
            f"and about {10 * every}-{15 * every} % of a Pi Zero 2 W core, which "
            + ("should fit." if 15 * every <= 60
               else "is tight: the Zero 2 W is the model to try first on real hardware."),
        ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    doc = ROOT / "docs" / "platforms.md"
    old = doc.read_text() if doc.exists() else "# Platforms\n\n"
    head = old[: old.index("## A slow CPU")] if "## A slow CPU" in old else old.rstrip("\n") + "\n\n"
    doc.write_text(head + text)


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quotas", default=",".join(map(str, QUOTAS)), help="percent of one core, comma list")
    p.add_argument("--rounds", type=int, default=3, help="conversations per quota")
    p.add_argument("--render", action="store_true", help="only rewrite the docs section from the JSON")
    args = p.parse_args()
    if args.render:
        write_section(section(json.loads((ROOT / "bench" / "results" / "slow_cpu.json").read_text())))
        return 0
    if os.geteuid() != 0:
        print("needs root: it makes a cgroup to hold the daemon to a CPU quota", file=sys.stderr)
        return 2
    quotas = [int(q) for q in args.quotas.split(",")]
    say = (b"\0\0" * 8000 + synthesize("hey jarvis", rate=16000) + b"\0\0" * 6000
           + synthesize("what is the weather like?", rate=16000))
    cg = CpuQuota(f"speakerd-slow-cpu-{os.getpid()}")
    rows: list[dict[str, Any]] = []
    try:
        for q in quotas:
            for row in one_quota(q, cg, say, args.rounds):
                rows.append(row)
                print(f"{q:4d} % of a core: {'pass' if row['passed'] else 'FAIL'}  " + "  ".join(
                    f"{k}={row.get(k)}" for k in ("completed", "wake_s", *COUNTS, "playback_underruns",
                                                  "speaker_silence_s", "throttled_s")), flush=True)
    finally:
        cg.close()
    every = lowest(rows, lambda rs: len(rs) == args.rounds and all(r["passed"] for r in rs))
    most = lowest(rows, lambda rs: 2 * sum(r["passed"] for r in rs) > args.rounds)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    res = {"cpu": cpu, "cgroup": f"v{cg.version}", "mic_buffer_ms": MIC_PIPE_BYTES / 32,
           "underrun_threshold_s": UNDERRUN_S, "load_average_1m": os.getloadavg()[0], "rounds": args.rounds,
           "rows": rows, "lowest_every_round": every, "lowest_majority": most, "date": time.strftime("%Y-%m-%d")}
    print(f"lowest quota with 0 overflows, 0 dropped wake frames, 0 underruns: {every} % of one core "
          f"in every conversation, {most} % in most ({cpu})")
    out = ROOT / "bench" / "results" / "slow_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    write_section(section(res))
    return 0 if every is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
