"""Live session client latency against the local emulator, p50/p95, as ratios to a bare SDK loop.

Three figures, each measured for speakerd's LiveSession and for a bare google-genai loop (the
baseline: ``connect()``, ``send_realtime_input`` awaited in line, ``async for m in receive()``)
in the same run, against the same emulator:

- connect: from asking for a session to setupComplete in hand;
- overhead: what the client adds around a turn: last microphone chunk handed over -> the emulator
  has it, plus the emulator sending the first reply audio -> the client's code has it. Both clocks
  are the same process's time.monotonic(), so these are direct differences;
- goAway gap: from the goAway arriving to the new (resumed) connection taking audio again.

    python bench/live_latency.py            # 50 turns
    python bench/live_latency.py --quick    # 10 turns
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
from google import genai
from google.genai import types
from pydantic import SecretStr
from speakerd_workshop.emulator import EmulatorThread, Fault, Scenario

from speakerd import config
from speakerd.events import GoAway, ReplyAudio, SessionState, TurnComplete
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry, build_connect_config

RESULTS = ROOT / "bench" / "results" / "live_latency.json"
KEY = "bench-key"
RATE = 16000
CHUNK = 2560  # 80 ms, what the daemon sends
SCENARIO = Scenario(default_reply="Fine.", default_user_transcript="hello")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": pct(xs, 0.5) * 1e3, "p95_ms": pct(xs, 0.95) * 1e3,
            "mean_ms": statistics.fmean(xs) * 1e3}


def settings(state: Path, emu: EmulatorThread) -> config.Config:
    s = config.Settings(
        live=config.LiveSettings(endpoint=emu.base_url, ca_file=emu.ca_file, google_search=False,
                                 vad=config.VadSettings(silence_duration_ms=300)),
        state=config.StateSettings(directory=state),
    )
    return config.Config(settings=s, path=state / "bench.toml", api_key=SecretStr(KEY), api_key_source="bench")


def utterance() -> list[bytes]:
    """A voiced 0.48 s then 0.32 s of silence: the emulator's VAD (300 ms) ends the turn exactly
    in the last chunk, so "last audio in" is the chunk that ends the turn."""
    t = np.arange(int(0.48 * RATE)) / RATE
    voiced = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    pcm = voiced + b"\0\0" * int(0.32 * RATE)
    return [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]


def last_audio_time(emu: EmulatorThread, connection: int) -> float:
    return max(r.time for r in emu.received if r.connection == connection and "realtimeInput" in r.message
               and "audio" in r.message["realtimeInput"])


def first_audio_sent(emu: EmulatorThread, connection: int, nth: int) -> float:
    """When the emulator wrote the first reply audio of its ``nth`` reply on ``connection``."""
    times = [e.time for e in emu.events if e.connection == connection and e.kind == "firstAudio"]
    return times[nth]


# speakerd's client ----------------------------------------------------------------------------------


async def client_run(emu: EmulatorThread, cfg: config.Config, turns: int, gaps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"connect": [], "send": [], "receive": [], "go_away_gap": []}
    chunks = utterance()
    for _ in range(max(3, turns // 5)):  # connects (each a fresh conversation)
        ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model).clear()
        session = LiveSession(cfg, lambda e: None, store=ResumptionStore(cfg.settings.state.directory,
                              cfg.settings.live.model), tools=ToolRegistry(cfg.settings.tools, {}))
        t0 = time.monotonic()
        await session.open()
        out["connect"].append(time.monotonic() - t0)
        await session.close()

    first_audio_at: list[float] = []
    completes = asyncio.Event()
    go_away_at: list[float] = []
    ready_at: list[float] = []

    def on_event(e: Any) -> None:
        now = time.monotonic()
        if isinstance(e, ReplyAudio) and waiting[0]:
            waiting[0] = False
            first_audio_at.append(now)
        elif isinstance(e, TurnComplete):
            completes.set()
        elif isinstance(e, GoAway):
            go_away_at.append(now)
        elif isinstance(e, SessionState) and e.phase == "ready":
            ready_at.append(now)

    waiting = [False]
    store = ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model)
    store.clear()
    session = LiveSession(cfg, on_event, store=store, tools=ToolRegistry(cfg.settings.tools, {}))
    await session.open()
    conn = len(emu.connections)
    for n in range(turns):
        completes.clear()
        waiting[0] = True
        for c in chunks[:-1]:
            session.send_audio(c)
        await asyncio.sleep(0.05)  # let the body go out: time only the last chunk's hand-over
        handed = time.monotonic()
        session.send_audio(chunks[-1])
        await asyncio.wait_for(completes.wait(), 30)
        out["send"].append(last_audio_time(emu, conn) - handed)
        out["receive"].append(first_audio_at[-1] - first_audio_sent(emu, conn, n))
    for _ in range(gaps):
        before = len(ready_at)
        emu.inject(Fault("go_away", target="current", during="now"))
        while len(ready_at) == before:
            await asyncio.sleep(0.001)
        out["go_away_gap"].append(ready_at[-1] - go_away_at[-1])
    await session.close()
    return out


# The bare SDK loop ----------------------------------------------------------------------------------


async def bare_run(emu: EmulatorThread, cfg: config.Config, turns: int, gaps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"connect": [], "send": [], "receive": [], "go_away_gap": []}
    chunks = utterance()
    client = genai.Client(api_key=KEY, http_options=emu.http_options(cfg.settings.live.api_version))
    model = cfg.settings.live.model

    def setup(handle: str | None = None) -> types.LiveConnectConfig:
        return build_connect_config(cfg.settings.live, handle=handle)

    for _ in range(max(3, turns // 5)):
        t0 = time.monotonic()
        async with client.aio.live.connect(model=model, config=setup()):
            out["connect"].append(time.monotonic() - t0)

    async with client.aio.live.connect(model=model, config=setup()) as s:
        conn = len(emu.connections)
        handle = None
        for n in range(turns):
            for c in chunks[:-1]:
                await s.send_realtime_input(audio=types.Blob(data=c, mime_type="audio/pcm;rate=16000"))
            await asyncio.sleep(0.05)
            handed = time.monotonic()
            await s.send_realtime_input(audio=types.Blob(data=chunks[-1], mime_type="audio/pcm;rate=16000"))
            first = None
            done = False
            while not done:
                async for m in s.receive():
                    if first is None and m.data:
                        first = time.monotonic()
                    if m.session_resumption_update and m.session_resumption_update.new_handle:
                        handle = m.session_resumption_update.new_handle
                    if m.server_content and m.server_content.turn_complete:
                        done = True
            assert first is not None
            out["send"].append(last_audio_time(emu, conn) - handed)
            out["receive"].append(first - first_audio_sent(emu, conn, n))
        while handle is None or not emu.events or emu.events[-1].kind != "handle":  # the post-turn handle
            try:
                m = await asyncio.wait_for(s._receive(), 0.2)
                if m.session_resumption_update and m.session_resumption_update.new_handle:
                    handle = m.session_resumption_update.new_handle
            except TimeoutError:
                break
    for _ in range(gaps):  # bare: connect, wait for goAway, reconnect with the handle at once
        async with client.aio.live.connect(model=model, config=setup(handle)) as s:
            emu.inject(Fault("go_away", target="current", during="now"))
            while True:
                m = await s._receive()
                if m.session_resumption_update and m.session_resumption_update.new_handle:
                    handle = m.session_resumption_update.new_handle
                if m.go_away is not None:
                    t0 = time.monotonic()
                    break
            async with client.aio.live.connect(model=model, config=setup(handle)):
                out["go_away_gap"].append(time.monotonic() - t0)
    return out


async def main_async(turns: int, gaps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="speakerd-bench-") as tmp, \
            EmulatorThread(SCENARIO, api_key=KEY, cert_dir=Path(tmp) / "certs", pace=50.0,
                           go_away_before_seconds=5.0) as emu:
        cfg = settings(Path(tmp) / "state", emu)
        bare = await bare_run(emu, cfg, turns, gaps)
        ours = await client_run(emu, cfg, turns, gaps)
    figures: dict[str, Any] = {}
    for name in ("connect", "send", "receive", "go_away_gap"):
        b, c = summary(bare[name]), summary(ours[name])
        figures[name] = {"speakerd": c, "bare_sdk": b,
                         "ratio_p50": c["p50_ms"] / b["p50_ms"] if b["p50_ms"] > 0 else None,
                         "ratio_p95": c["p95_ms"] / b["p95_ms"] if b["p95_ms"] > 0 else None}
    overhead = [s + r for s, r in zip(ours["send"], ours["receive"], strict=True)]
    bare_overhead = [s + r for s, r in zip(bare["send"], bare["receive"], strict=True)]
    c, b = summary(overhead), summary(bare_overhead)
    figures["overhead"] = {"speakerd": c, "bare_sdk": b,
                           "ratio_p50": c["p50_ms"] / b["p50_ms"] if b["p50_ms"] > 0 else None,
                           "ratio_p95": c["p95_ms"] / b["p95_ms"] if b["p95_ms"] > 0 else None}
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 turns and 3 goAways")
    p.add_argument("--turns", type=int, default=50)
    p.add_argument("--go-aways", type=int, default=10)
    args = p.parse_args()
    turns, gaps = (10, 3) if args.quick else (args.turns, args.go_aways)
    figures = asyncio.run(main_async(turns, gaps))
    print(f"Live client latency against the emulator: {turns} turns, {gaps} goAways "
          "(ratio = speakerd / bare SDK loop, same run)")
    print(f"{'figure':<14}{'speakerd p50':>14}{'p95':>9}{'bare p50':>11}{'p95':>9}{'ratio p50':>11}{'p95':>7}")
    for name in ("connect", "overhead", "send", "receive", "go_away_gap"):
        f = figures[name]
        c, b = f["speakerd"], f["bare_sdk"]
        r50 = "-" if f["ratio_p50"] is None else f"{f['ratio_p50']:.2f}x"
        r95 = "-" if f["ratio_p95"] is None else f"{f['ratio_p95']:.2f}x"
        print(f"{name:<14}{c['p50_ms']:>11.2f} ms{c['p95_ms']:>6.2f} ms{b['p50_ms']:>8.2f} ms"
              f"{b['p95_ms']:>6.2f} ms{r50:>11}{r95:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "live_latency", "turns": turns, "go_aways": gaps, "python": platform.python_version(),
        "machine": platform.machine(), "figures": figures}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
