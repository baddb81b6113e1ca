"""A real Mosquitto broker for tests and benches: 127.0.0.1, a free port, a password file and TLS.

Why a real one: the home link's promises (a last will, retained state surviving a reconnect, a
wrong password refused at CONNACK, TLS verified against a private CA) are the broker's behaviour,
which no fake reproduces. The broker is Debian's ``mosquitto`` package (scripts/lib.sh installs it
for the tests); its certificates come from the emulator's private CA.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from speakerd_workshop.emulator.certs import CertFiles, ensure_certs

START_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()) and bool(
        shutil.which("mosquitto_passwd"))


class Mosquitto:
    """One broker process in ``directory``; ``restart`` keeps its port, users and certificates."""

    def __init__(self, directory: Path, users: dict[str, str], *, tls: bool = True) -> None:
        self.directory = directory
        self.users = users
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.certs: CertFiles = ensure_certs(directory / "certs")
        self.log_path = directory / "mosquitto.log"
        self._write_config()

    @property
    def ca_file(self) -> Path:
        return self.certs.ca

    def _write_config(self) -> None:
        passwd = self.directory / "passwd"
        passwd.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.users.items()):
            args = ["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), user, password]
            subprocess.run(args, check=True, capture_output=True, timeout=30)
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            "persistence false",
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to a user that cannot read these files
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls:
            lines += [f"cafile {self.certs.ca}", f"certfile {self.certs.cert}", f"keyfile {self.certs.key}"]
        (self.directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.directory / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start ({self.proc.returncode}): {err.strip()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {START_SECONDS} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
