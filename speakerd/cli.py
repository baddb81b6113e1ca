"""``speakerd`` command line: run, check-config, devices, demo, emulator, token-broker.

Why subcommands forward raw argv: each part owns its own options next to its code, and this
module stays a thin, predictable front door. Every error a person can cause ends in one line on
stderr and a documented exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from speakerd import __version__, config

EX_OK = 0
EX_USAGE = 2
EX_SOFTWARE = 70

# Subcommands owned by other modules: name -> (module, help). Each module has main(argv) -> int.
_FORWARDED: dict[str, tuple[str, str]] = {
    "devices": ("speakerd.audio.devices", "list audio inputs and outputs with rates and channels"),
    "emulator": ("speakerd_workshop.emulator.cli", "run the local Live API emulator (for tests and offline work)"),
    "token-broker": ("speakerd.live.tokens", "serve ephemeral Live API tokens to speakers on the LAN"),
    "demo": ("speakerd_workshop.demo", "run the whole daemon with no Pi, sound card or API key"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speakerd",
        description="A Raspberry Pi smart-speaker daemon for the Gemini Live API.",
    )
    p.add_argument("--version", action="version", version=f"speakerd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext in (
        ("run", "run the daemon (systemd starts it this way)"),
        ("check-config", "validate the configuration and print it with secrets masked"),
    ):
        sp = sub.add_parser(name, help=helptext, description=helptext)
        sp.add_argument(
            "--config",
            metavar="PATH",
            help=f"configuration file (default: ${config.CONFIG_ENV} or {config.DEFAULT_CONFIG_PATH})",
        )
        if name == "check-config":
            sp.add_argument("--quiet", "-q", action="store_true", help="print only problems")
    for name, (_module, helptext) in _FORWARDED.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return p


def check_config(path: str | None, *, quiet: bool = False) -> int:
    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return config.EX_CONFIG
    for warning in (*cfg.warnings, *_option_warnings(cfg)):
        print(f"warning: {warning}", file=sys.stderr)
    if not quiet:
        print(f"# {_language_in_effect(cfg)}")
        print(f"# echo handling: {cfg.settings.audio.echo.describe()}")
    if not quiet:
        sys.stdout.write(config.effective_toml(cfg))
    return EX_OK


def _option_warnings(cfg: config.Config) -> list[str]:
    """Options the configured model does not take: said now, not first at connect time."""
    from speakerd.live.connect_config import connect_config_warnings

    return [f"{cfg.path.name}: {w}" for w in connect_config_warnings(cfg.settings.live)]


def _language_in_effect(cfg: config.Config) -> str:
    from speakerd.live.connect_config import build_connect_config

    speech = build_connect_config(cfg.settings.live).speech_config
    code = speech.language_code if speech is not None else None
    return f"language: {code}" if code else "language: the model's choice (it follows the person speaking)"


def run(path: str | None) -> int:
    from speakerd import memory

    memory.tune_malloc()  # before the imports below and any thread
    from speakerd import daemon, systemd

    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        systemd.Notifier().stopping("configuration error")
        return config.EX_CONFIG
    redactor = systemd.setup_logging(cfg.settings.logging.level)
    if cfg.api_key is not None:
        redactor.add(cfg.api_key.get_secret_value())
    for warning in cfg.warnings:
        logging.getLogger("speakerd").warning("%s", warning)
    return daemon.main(cfg, redactor=redactor)


def _forward(name: str, argv: list[str]) -> int:
    module_name, _ = _FORWARDED[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        print(f"speakerd {name}: not available in this installation: it is a developer tool in the "
              f"speakerd-workshop package (scripts/dev-setup.sh installs it) [{e}]", file=sys.stderr)
        return EX_SOFTWARE
    entry: Callable[[list[str]], int] = module.main
    return entry(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _FORWARDED:
        return _forward(args_list[0], args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "check-config":
            return check_config(args.config, quiet=args.quiet)
        if args.command == "run":
            return run(args.config)
    except KeyboardInterrupt:
        return 130
    parser.print_help(sys.stderr)
    return EX_USAGE
