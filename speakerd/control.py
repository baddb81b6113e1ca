"""Local control: a Unix socket in the runtime directory, and ``speakerctl`` that talks to it.

Why a socket and not D-Bus or HTTP: it needs no extra service, its permissions are the file's
(mode 0660, group speakerd) and the kernel tells us who is calling (SO_PEERCRED), so a person in
the speakerd group can mute the speaker over SSH and nobody else can. One JSON object per line
each way keeps the protocol readable with ``socat``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("speakerd.control")

# "press" drives the button pin and exists only with the mock pin factory (tests and the demo).
COMMANDS = ("status", "mute", "unmute", "interrupt", "say", "wake", "volume", "press", "stop", "timers", "cancel",
            "announce", "forget")
MAX_REQUEST = 64 * 1024
Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A request the daemon refuses; the message goes back to the caller as one line."""


def _peer(sock: socket.socket) -> tuple[int, int, int]:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


def peer_allowed(uid: int, gid: int, group_gid: int | None) -> bool:
    """Root, our own user, or a member of the control group (primary or supplementary)."""
    if uid in (0, os.geteuid()):
        return True
    if group_gid is None:
        return False
    if gid == group_gid:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
        return name in grp.getgrgid(group_gid).gr_mem
    except KeyError:
        return False


class ControlServer:
    """Serves requests on the loop; each connection may send several lines."""

    def __init__(self, path: Path, group: str | None, handler: Handler) -> None:
        self.path = path
        self.group = group
        self.handler = handler
        self._server: asyncio.Server | None = None
        self._gid: int | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        self._gid = os.getegid()
        if self.group:
            try:
                self._gid = grp.getgrnam(self.group).gr_gid
                # Under systemd the socket is born with the group already (the service's Group=), and
                # the unit's system-call filter refuses chown: only change what needs changing.
                if os.stat(self.path).st_gid != self._gid:
                    os.chown(self.path, -1, self._gid)
            except KeyError:
                log.warning("control socket: group %s does not exist; only this user may connect", self.group)
                self._gid = None
            except PermissionError:
                log.warning("control socket: cannot hand it to group %s; only this user may connect",
                            self.group)
                self._gid = None
        os.chmod(self.path, 0o660)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            _pid, uid, gid = _peer(sock)
            if not peer_allowed(uid, gid, self._gid):
                log.warning("control socket: refused uid %d (not in group %s)", uid, self.group)
                # Take the request first: closing with it unread resets the connection, and the
                # caller would see "broken pipe" instead of the refusal.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.readline(), 2.0)
                await self._send(writer, {"ok": False, "error": "permission denied"})
                return
            while line := await reader.readline():
                await self._send(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a caller that went away or sent an over-long line
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            command = request.get("command")
            if command not in COMMANDS:
                raise ControlError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
            return {"ok": True, **await self.handler(command, request.get("argument"))}
        except json.JSONDecodeError:
            return {"ok": False, "error": "a request is one line of JSON"}
        except ControlError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # a bug must not take the daemon down with it
            log.exception("control command failed")
            return {"ok": False, "error": f"internal error: {type(e).__name__}"}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
        await writer.drain()


# speakerctl --------------------------------------------------------------------------------------


def request(path: Path, command: str, argument: Any = None, *, timeout: float = 10.0) -> dict[str, Any]:
    """One request, synchronously: what speakerctl and the tests use."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"command": command, "argument": argument}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf or b"{}")
    if not isinstance(reply, dict):
        raise ControlError("the daemon sent something that is not a JSON object")
    return reply


def _default_socket() -> Path:
    env = os.environ.get("SPEAKERD_CONTROL__SOCKET")
    if env:
        return Path(env)
    try:
        from speakerd import config

        return config.load(None).settings.control.socket
    except Exception:  # no readable config: the packaged default
        return Path("/run/speakerd/control.sock")


def _format_status(reply: dict[str, Any]) -> str:
    lines = [f"state: {reply.get('state')}"]
    for key in ("uptime_seconds", "session", "muted", "leds", "volume", "conversations", "last_error"):
        if key in reply and reply[key] not in (None, ""):
            value = reply[key]
            if isinstance(value, float):
                value = f"{value:.1f}"
            lines.append(f"{key.replace('_', ' ')}: {value}")
    for label, line in (reply.get("last_exchange") or {}).items():
        lines.append(f"last {label}: {line}")
    for page in reply.get("last_sources") or []:
        lines.append(f"source: {page.get('title') or page.get('uri')} <{page.get('uri')}>")
    tokens = reply.get("tokens") or {}
    if tokens.get("total_token_count"):
        lines.append(f"tokens so far: {tokens['total_token_count']}")
    metrics = reply.get("metrics") or {}
    for key, value in metrics.items():
        label = key.replace("_", " ")
        lines.append(f"{label}: {value:.3f} s" if isinstance(value, float) else f"{label}: {value}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speakerctl", description="Control a running speakerd.")
    p.add_argument("--socket", type=Path, help="control socket (default: from the configuration)")
    p.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="state, uptime, session, last error and latency figures")
    sub.add_parser("mute", help="close the microphone (ends a conversation)")
    sub.add_parser("unmute", help="open the microphone again")
    sub.add_parser("interrupt", help="stop the current reply")
    sub.add_parser("wake", help="start a conversation, as the button does")
    say = sub.add_parser("say", help="send text into the conversation (opens one if needed)")
    say.add_argument("--wait", action="store_true", help="print the answer's text when its turn ends")
    say.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")
    say.add_argument("text", nargs="+")
    vol = sub.add_parser("volume", help="set the speaker volume, 0-100")
    vol.add_argument("level", type=int, choices=range(0, 101), metavar="0-100")
    sub.add_parser("stop", help="stop a ringing timer, alarm or reminder")
    sub.add_parser("forget", help="end and forget the conversation: the next one starts fresh")
    sub.add_parser("timers", help="list timers, alarms and reminders")
    cancel = sub.add_parser("cancel", help="cancel a timer, alarm or reminder by its id")
    cancel.add_argument("id")
    ann = sub.add_parser("announce", help="say a text after a chime (queued behind a conversation)")
    ann.add_argument("--force", action="store_true", help="even while the microphone is muted")
    ann.add_argument("text", nargs="+")
    args = p.parse_args(argv)

    argument: Any = None
    timeout = 10.0
    if args.command == "say":
        argument = {"text": " ".join(args.text), "wait": args.wait, "timeout": args.timeout}
        timeout += args.timeout if args.wait else 0.0
    elif args.command == "volume":
        argument = args.level
    elif args.command == "cancel":
        argument = args.id
    elif args.command == "announce":
        argument = {"text": " ".join(args.text), "force": args.force}
    path = args.socket or _default_socket()
    try:
        reply = request(path, args.command, argument, timeout=timeout)
    except FileNotFoundError:
        print(f"speakerctl: speakerd is not running (no socket at {path})", file=sys.stderr)
        return 3
    except PermissionError:
        print(f"speakerctl: permission denied on {path} (join the speakerd group)", file=sys.stderr)
        return 4
    except (OSError, ValueError) as e:
        print(f"speakerctl: cannot talk to speakerd at {path}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
    elif not reply.get("ok"):
        pass
    elif args.command == "status":
        print(_format_status(reply))
    elif reply.get("message"):
        print(reply["message"])
    if not reply.get("ok"):
        print(f"speakerctl: {reply.get('error', 'failed')}", file=sys.stderr)
        return 1
    return 0
