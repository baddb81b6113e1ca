"""Boot a throw-away systemd in systemd-nspawn and drive it without a TTY.

Why: the unit file's promises (Type=notify, reload, watchdog, credentials, no restart on a bad
configuration) are kept by systemd, not by our code, so only a real systemd can check them. The
root is built from the host at test time - /usr bind-mounted read-only plus a few files in /etc -
so no download is needed; the project (and its interpreter) is bind-mounted at the same path,
which keeps the virtual environment's absolute paths valid inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

UNIT = "speakerd.service"
# Where the service's home-hiding would hide a bind-mounted interpreter or checkout.
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


class NspawnError(RuntimeError):
    """The container did not boot or a command in it failed."""


def nspawn_available() -> str | None:
    """None when this machine can boot a container, else why not (for a skip reason)."""
    if os.geteuid() != 0:
        return "systemd-nspawn needs root"
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install systemd-container util-linux)"
    if not Path("/usr/lib/systemd/systemd").exists():
        return "no /usr/lib/systemd/systemd to boot (apt-get install systemd)"
    return None


def _under(path: Path, parents: Iterable[Path]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def host_binds(project: Path) -> list[Path]:
    """Host directories the daemon needs at the same path: the checkout and the interpreter.

    /usr comes from the host anyway; nested paths are dropped, as their parent carries them.
    """
    wanted = {project.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    wanted = {p for p in wanted if not _under(p, [Path("/usr")])}
    return sorted(p for p in wanted if not any(q != p and q in p.parents for q in wanted))


def build_root(root: Path) -> None:
    """A minimal usr-merged root: /usr comes from the host at boot, the rest is written here."""
    for d in ("usr", "etc", "var/lib", "var/log", "tmp", "run", "proc", "sys", "dev", "root", "opt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "root").chmod(0o700)
    for name in ("bin", "sbin", "lib", "lib64"):
        target = f"usr/{name}"
        link = root / name
        if not link.is_symlink() and Path("/", target).exists():
            link.symlink_to(target)
    etc = root / "etc"
    os_release = Path("/etc/os-release") if Path("/etc/os-release").exists() else Path("/usr/lib/os-release")
    shutil.copyfile(os_release, etc / "os-release")
    (etc / "machine-id").write_text("")  # empty: systemd makes a transient one at boot
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "speakerd:x:990:990:speakerd:/var/lib/speakerd:/usr/sbin/nologin\n"
        "pi:x:1000:1000:owner:/nonexistent:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    # The unit asks for SupplementaryGroups=audio gpio spi: a missing group fails the start.
    (etc / "group").write_text(
        "root:x:0:\naudio:x:29:speakerd\ngpio:x:991:speakerd\nspi:x:992:speakerd\n"
        "speakerd:x:990:pi\npi:x:1000:\nnogroup:x:65534:\n"
    )
    (etc / "shadow").write_text("root:*:19000::::::\nspeakerd:!:19000::::::\n")
    (etc / "shadow").chmod(0o600)
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")


def install_unit(root: Path, unit_file: Path, dropin: str) -> Path:
    """Put the unit where scripts/install.sh does, plus one drop-in; returns the drop-in's path."""
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(unit_file, unit_dir / UNIT)
    d = unit_dir / f"{UNIT}.d"
    d.mkdir(exist_ok=True)
    path = d / "test.conf"
    path.write_text(dropin)
    return path


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _container_init(pid: int) -> int | None:
    """The host PID of the container's PID 1 among ``pid``'s descendants, once it runs systemd.

    Before its exec the same process is nspawn's set-up child, whose namespaces are not ready.
    """
    for child in _descendants(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        if not status.startswith("Name:\tsystemd\n"):
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) >= 2 and ids[-1] == "1":
                    return child
    return None


class Container:
    """A booted systemd in nspawn, driven through ``nsenter`` (no TTY, no machined needed)."""

    def __init__(self, root: Path, *, name: str, binds_ro: Sequence[Path] = (), log: Path) -> None:
        self.root = root
        self.name = name
        self.binds_ro = list(binds_ro)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    def command(self) -> list[str]:
        cmd = [
            "systemd-nspawn", "--quiet", "-D", str(self.root), f"--machine={self.name}", "--boot",
            "--console=pipe", "--register=no", "--link-journal=no", "--resolv-conf=off",
            "--timezone=off", "--bind-ro=/usr",
        ]
        # Without a systemd on the host there is no bus to make a scope on: use our own cgroup.
        if not Path("/run/systemd/system").is_dir():
            cmd.append("--keep-unit")
        cmd += [f"--bind-ro={p}" for p in self.binds_ro]
        return cmd

    def boot(self, timeout: float = 60.0) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise NspawnError(f"systemd-nspawn exited {self.proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise NspawnError("the container's init did not appear")
            self.leader = _container_init(self.proc.pid)
            time.sleep(0.1)
        # Just after its exec, init has no control socket yet: systemctl then says nothing and fails.
        while True:
            left = max(1.0, deadline - time.monotonic())
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=left)
            if state.stdout.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if state.stdout.strip() not in ("running", "degraded"):
            tail = self.log.read_text(errors="replace")[-2000:]
            raise NspawnError(f"boot ended {state.stdout.strip()!r} ({state.stderr.strip()}): {tail}")

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, in all of the container's namespaces, as root."""
        if self.leader is None:
            raise NspawnError("the container is not running")
        cmd = ["nsenter", "-t", str(self.leader), "-a", "--", *argv]
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise NspawnError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, *props: str, unit: str = UNIT) -> dict[str, str]:
        out = self.systemctl("show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_show(self, want: dict[str, str], *, timeout: float = 90.0, unit: str = UNIT,
                  extra: Sequence[str] = ()) -> dict[str, str]:
        """Poll ``systemctl show`` until every property in ``want`` has its value."""
        props = [*want, *extra]
        deadline = time.monotonic() + timeout
        while True:
            got = self.show(*props, unit=unit)
            if all(got.get(k) == v for k, v in want.items()):
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{unit}: wanted {want}, last {got}\n{self.journal(lines=30)}")
            time.sleep(0.2)

    def journal(self, *match: str, unit: str | None = UNIT, lines: int | None = None,
                output: str = "short-precise") -> str:
        argv = ["journalctl", "--no-pager", "-q", "-o", output]
        if unit is not None:
            argv += ["-u", unit]
        if lines is not None:
            argv += ["-n", str(lines)]
        return self.run([*argv, *match]).stdout

    def cursor(self) -> str:
        """The journal's current end, to read only what comes after it."""
        out = self.run(["journalctl", "--no-pager", "-q", "-n", "1", "-o", "cat", "--show-cursor"]).stdout
        return out.strip().rsplit("-- cursor: ", 1)[-1]

    def poweroff(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.leader is not None:
                self.run(["systemctl", "poweroff", "--no-block"], check=False)
            else:
                self.proc.terminate()  # nspawn asks the container's init to power off
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # SIGKILL to the container's PID 1 ends its whole PID namespace; nspawn then exits.
                # (Killing nspawn alone would leave the container running.)
                leader = self.leader or _container_init(self.proc.pid)
                if leader is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leader, signal.SIGKILL)
                else:
                    self.proc.kill()
                self.proc.wait(timeout=30)
        self.leader = None
