"""MCP tools: what the SDK costs to load, and how long a call takes on a kept or a fresh connection.

Why these numbers: the SDK is loaded only when servers are configured, so its import time and
memory are the price of the feature; a kept connection (idle_seconds > 0) is chosen over one per
call, and this shows what that saves. The server is the tests' MCP server (tests/mcp/server.py)
on 127.0.0.1, over streamable HTTP with a bearer token and over stdio.

    python bench/mcp_calls.py [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speakerd.mcp import McpServerSettings
from speakerd.mcp.tools import McpTools
from tests.mcp.conftest import SERVER, TOKEN, HttpServer

IMPORT_PROBE = """
import time, sys, importlib
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'): return int(line.split()[1])
import speakerd.live, speakerd.mcp
base = rss(); t = time.perf_counter()
importlib.import_module('mcp.client.streamable_http')
print(time.perf_counter() - t, (rss() - base) / 1024)
"""


def import_cost(runs: int = 3) -> tuple[float, float]:
    seconds, mib = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.split()
        seconds.append(float(out[0]))
        mib.append(float(out[1]))
    return statistics.median(seconds), statistics.median(mib)


async def timed_calls(settings: McpServerSettings, env: dict[str, str], calls: int) -> dict[str, float]:
    mcp = McpTools([settings], env=env)
    t = time.perf_counter()
    await mcp.refresh()
    refresh = time.perf_counter() - t
    _, handler = mcp.tools()[f"{settings.name}__light_set"]
    took = []
    for i in range(calls):
        t = time.perf_counter()
        out = await handler(name="desk", brightness=i % 100)
        took.append(time.perf_counter() - t)
        assert "output" in out, out
    await mcp.close()
    return {"refresh_s": refresh, "first_call_ms": took[0] * 1000,
            "median_call_ms": statistics.median(took[1:]) * 1000, "max_call_ms": max(took[1:]) * 1000}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(calls: int) -> dict[str, object]:
    res: dict[str, object] = {}
    before = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "creds").mkdir()
        (d / "creds" / "ha-token").write_text(TOKEN)
        env = {"CREDENTIALS_DIRECTORY": str(d / "creds")}
        for kind, json_response in (("sse", False), ("json", True)):
            server = HttpServer(d, json_response=json_response)
            server.start()
            try:
                for label, idle in ((f"http_{kind}_kept", 60.0), (f"http_{kind}_per_call", 0.0)):
                    s = McpServerSettings(name="ha", url=server.url, token_credential="ha-token",
                                          idle_seconds=idle)
                    res[label] = await timed_calls(s, env, calls)
            finally:
                server.kill()
        for label, idle in (("stdio_kept", 60.0), ("stdio_per_call", 0.0)):
            s = McpServerSettings(name="local", command=[sys.executable, str(SERVER), "stdio", "--record",
                                                         str(d / "stdio.jsonl")], idle_seconds=idle)
            res[label] = await timed_calls(s, {}, calls if idle else max(4, calls // 5))
    res["rss_growth_mib"] = rss_mib() - before
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    a = ap.parse_args()
    seconds, mib = import_cost()
    res: dict[str, object] = {"sdk_import_s": seconds, "sdk_import_rss_mib": mib}
    print(f"mcp SDK import: {seconds:.2f} s, +{mib:.1f} MiB RSS (median of 3 fresh processes)")
    res.update(asyncio.run(run(a.calls)))
    print(f"this process grew by {res['rss_growth_mib']:.1f} MiB RSS (SDK loaded, servers used and closed)")
    for label, r in res.items():
        if isinstance(r, dict):
            print(f"{label:20s} refresh {r['refresh_s']:.2f} s, first call {r['first_call_ms']:.0f} ms, "
                  f"then median {r['median_call_ms']:.1f} ms (max {r['max_call_ms']:.0f} ms)")
    out = ROOT / "bench" / "results" / "mcp_calls.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
