"""The home link never delays the voice path: event-loop lag and call costs, whatever the broker does.

A stand-in for the voice path runs on the loop: a tick every 20 ms (the daemon's frames come every
80 ms) that publishes the state and the volume through the HomeLink and records how late the tick
was; once a second it arbitrates a wake word (arbitration on, 150 ms window). Conditions, each
for a few seconds against a real Mosquitto (TLS, password): connected; the broker hung (SIGSTOP:
it accepts nothing and acknowledges nothing); the broker gone (connection refused); a wrong
password. Baseline, measured in the same run: the same ticks with no HomeLink at all.

    python bench/home_link.py            # 8 s per condition
    python bench/home_link.py --quick    # 3 s per condition
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr
from speakerd_workshop.mosquitto import Mosquitto

from speakerd.home.link import Backoff, HomeLink
from speakerd.home.settings import MqttSettings

TICK = 0.02
USER = "speaker"


class _NoCommands:
    async def set_mute(self, muted: bool) -> None: ...
    async def set_volume(self, volume: int) -> None: ...
    async def announce(self, text: str) -> None: ...
    async def wake(self) -> None: ...
    async def interrupt(self) -> None: ...


async def voice_path(link: HomeLink | None, seconds: float) -> dict[str, float]:
    lags: list[float] = []
    calls: list[float] = []
    arbitrations: list[float] = []
    states = ("idle", "listening", "thinking", "speaking")
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0

    async def arbitrate() -> None:
        assert link is not None
        t0 = time.perf_counter()
        await link.arbitrate(0.9, -20.0)
        arbitrations.append((time.perf_counter() - t0) * 1000)

    tasks = []
    while loop.time() - start < seconds:
        n += 1
        target = start + n * TICK
        await asyncio.sleep(max(0.0, target - loop.time()))
        lags.append((loop.time() - target) * 1000)
        if link is not None:
            t0 = time.perf_counter()
            link.publish_state(states[n % 4])
            link.publish_volume(n % 101)
            calls.append((time.perf_counter() - t0) * 1e6)
            if n % 50 == 0:
                tasks.append(asyncio.create_task(arbitrate()))
    await asyncio.gather(*tasks)
    q = statistics.quantiles(lags, n=100)
    out = {"lag_ms_p50": q[49], "lag_ms_p99": q[98], "lag_ms_max": max(lags)}
    if calls:
        out |= {"publish_us_p99": statistics.quantiles(calls, n=100)[98], "publish_us_max": max(calls)}
    if arbitrations:
        out |= {"arbitrate_ms_max": max(arbitrations), "arbitrate_ms_min": min(arbitrations)}
    return out


async def condition(broker: Mosquitto, password: str, name: str, seconds: float) -> dict[str, float]:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, tls=True, ca_file=broker.ca_file, username=USER,
                            device_id="bench", arbitration=True)
    link = HomeLink(settings, SecretStr("wrong" if name == "wrong password" else password), _NoCommands(),
                    backoff=Backoff(0.2, 2.0))
    await link.start()
    if name in ("connected", "broker hung"):
        async with asyncio.timeout(15):
            await link.wait_connected()
    if name == "broker hung":
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)
    if name == "broker gone":
        broker.stop()
    try:
        return await voice_path(link, seconds)
    finally:
        if name == "broker hung" and broker.proc is not None:
            os.kill(broker.proc.pid, signal.SIGCONT)
        t0 = time.perf_counter()
        await link.close()
        close_ms = (time.perf_counter() - t0) * 1000
        if name == "broker gone":
            broker.start()
        print(f"  ({name}: close took {close_ms:.0f} ms)")


async def run(seconds: float, tmp: Path) -> dict[str, Any]:
    password = os.urandom(12).hex()
    results: dict[str, Any] = {"baseline (no link)": await voice_path(None, seconds)}
    with Mosquitto(tmp / "broker", {USER: password}) as broker:
        for name in ("connected", "broker hung", "broker gone", "wrong password"):
            results[name] = await condition(broker, password, name, seconds)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    seconds = 3.0 if args.quick else 8.0
    with tempfile.TemporaryDirectory(prefix="speakerd-home-link-") as tmp:
        results = asyncio.run(run(seconds, Path(tmp)))
    base = results["baseline (no link)"]
    print(f"{'condition':<20} {'loop lag p50/p99/max ms':>26} {'publish p99/max µs':>20} {'arbitrate min/max ms':>22}")
    for name, r in results.items():
        pub = f"{r['publish_us_p99']:.0f}/{r['publish_us_max']:.0f}" if "publish_us_p99" in r else "-"
        arb = f"{r['arbitrate_ms_min']:.1f}/{r['arbitrate_ms_max']:.1f}" if "arbitrate_ms_max" in r else "-"
        lag = f"{r['lag_ms_p50']:.2f}/{r['lag_ms_p99']:.2f}/{r['lag_ms_max']:.1f}"
        ratio = r["lag_ms_p99"] / max(base["lag_ms_p99"], 1e-3)
        print(f"{name:<20} {lag:>26} {pub:>20} {arb:>22}   (p99 lag x{ratio:.1f} of baseline)")
    out = ROOT / "bench" / "results" / "home_link.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds_per_condition": seconds, **results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
