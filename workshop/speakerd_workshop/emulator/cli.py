"""``speakerd emulator``: run the Live API emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from pathlib import Path

from speakerd_workshop.emulator import redact
from speakerd_workshop.emulator.faults import (
    AUDIO_LIMIT_SECONDS,
    AUDIO_VIDEO_LIMIT_SECONDS,
    GO_AWAY_BEFORE_SECONDS,
    LIFETIME_SECONDS,
)
from speakerd_workshop.emulator.scenario import ScenarioError
from speakerd_workshop.emulator.server import Emulator
from speakerd_workshop.emulator.tts import AudioFileError

EX_OK = 0
EX_USAGE = 2
EX_UNAVAILABLE = 69


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speakerd emulator",
        description="Serve a local emulation of the Gemini Live API over TLS (for tests, the demo and "
        "offline development).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free port; default: %(default)s)")
    p.add_argument("--scenario", type=Path, metavar="FILE", help="TOML or JSON scenario (default: built in)")
    p.add_argument(
        "--api-key", default="test-key", help="the API key clients must send (default: %(default)s)"
    )
    p.add_argument(
        "--cert-dir",
        type=Path,
        metavar="DIR",
        help="where the CA and server certificate are kept and reused (default: a temporary directory)",
    )
    p.add_argument(
        "--api-version",
        default="v1beta",
        choices=("v1", "v1beta", "v1alpha"),
        help="API version for --print-env (default: %(default)s)",
    )
    limits = p.add_argument_group("limits", "production's by default; shorten them to test a client (0: none)")
    limits.add_argument(
        "--lifetime",
        type=float,
        default=LIFETIME_SECONDS,
        metavar="SECONDS",
        help="close each connection (1000) after this long, with a goAway before (default: %(default)g)",
    )
    limits.add_argument(
        "--go-away-before",
        type=float,
        default=GO_AWAY_BEFORE_SECONDS,
        metavar="SECONDS",
        help="goAway.timeLeft: how long before the lifetime's close the goAway comes (default: %(default)g)",
    )
    limits.add_argument(
        "--audio-limit",
        type=float,
        default=AUDIO_LIMIT_SECONDS,
        metavar="SECONDS",
        help="session length without contextWindowCompression, audio only (default: %(default)g)",
    )
    limits.add_argument(
        "--audio-video-limit",
        type=float,
        default=AUDIO_VIDEO_LIMIT_SECONDS,
        metavar="SECONDS",
        help="session length without contextWindowCompression, audio and video (default: %(default)g)",
    )
    limits.add_argument(
        "--handle-validity",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="how long a resumption handle stays valid after its session ended (default: %(default)g)",
    )
    p.add_argument("--pace", type=float, default=1.0, help="reply audio speed; 1 is real time")
    p.add_argument(
        "--print-env",
        action="store_true",
        help="print the environment a daemon needs to use this emulator, then keep serving",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    redact.install(args.api_key)
    limits = (args.lifetime, args.go_away_before, args.audio_limit, args.audio_video_limit, args.handle_validity)
    if args.port < 0 or args.port > 65535 or args.pace <= 0 or min(limits) < 0:
        print("speakerd emulator: --port must be 0..65535, --pace positive and limits not negative", file=sys.stderr)
        return EX_USAGE
    try:
        emu = Emulator(
            args.scenario,
            args.api_key,
            host=args.host,
            port=args.port,
            cert_dir=args.cert_dir,
            connection_lifetime_seconds=args.lifetime or None,
            go_away_before_seconds=args.go_away_before,
            audio_limit_seconds=args.audio_limit or None,
            audio_video_limit_seconds=args.audio_video_limit or None,
            handle_validity_seconds=args.handle_validity,
            pace=args.pace,
        )
    except (ScenarioError, AudioFileError) as e:
        print(f"speakerd emulator: {e}", file=sys.stderr)
        return EX_USAGE
    try:
        asyncio.run(_serve(emu, args.print_env, args.api_version))
    except OSError as e:
        print(
            f"speakerd emulator: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr
        )
        return EX_UNAVAILABLE
    return EX_OK


def env_lines(emu: Emulator, api_version: str) -> list[str]:
    """Shell assignments for the SDK's own variables and for speakerd's configuration."""
    env = {
        "GEMINI_API_KEY": emu.api_key,
        "GOOGLE_GEMINI_BASE_URL": emu.base_url,
        "GOOGLE_GENAI_API_VERSION": api_version,
        "SSL_CERT_FILE": str(emu.ca_file),
        "SPEAKERD_LIVE__ENDPOINT": emu.base_url,
        "SPEAKERD_LIVE__API_VERSION": api_version,
        "SPEAKERD_LIVE__CA_FILE": str(emu.ca_file),
    }
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


async def _serve(emu: Emulator, print_env: bool, api_version: str) -> None:
    await emu.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if print_env:
        print("\n".join(env_lines(emu, api_version)), flush=True)
    print(
        f"speakerd emulator: serving on {emu.base_url} (CA {emu.ca_file}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emu.stop()
