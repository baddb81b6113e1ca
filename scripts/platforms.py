#!/usr/bin/env python3
"""Install speakerd as a new user would on each Debian release and architecture, and record it.

Why: the daemon is developed on x86-64 with Python 3.11, but a Pi runs arm64, and a newly flashed
card is Trixie (Python 3.13). For each target this boots a Debian root (debootstrap, cached
outside the checkout) under a real systemd in systemd-nspawn, copies the project in with the
file modes git gives a clone, runs ``scripts/install.sh`` by its path as the README says, and
then checks: READY, one spoken conversation ("hey jarvis ...") against the Live emulator through
ALSA software devices, reload, stop, uninstall. Results go to docs/platforms.json and
docs/platforms.md (date, commit, Python, install time, every package pip built from source).

arm64 runs under qemu user-mode emulation through binfmt_misc, which needs qemu 8 or newer
(Bookworm's 7.2 cannot set up systemd credentials and crashes in onnxruntime); when no such
interpreter is registered, Trixie's qemu-user package is fetched with apt into the cache and
registered. It is slow: opt-in.

    sudo .venv/bin/python scripts/platforms.py                    # x86-64 Bookworm and Trixie
    sudo SPEAKERD_PLATFORMS=all .venv/bin/python scripts/platforms.py   # and arm64 (slow)
    .venv/bin/python scripts/platforms.py --render                # rewrite the doc from the JSON

Targets: bookworm-amd64, trixie-amd64, bookworm-arm64, trixie-arm64 (or a comma list in
SPEAKERD_PLATFORMS / --targets). Cache: $SPEAKERD_PLATFORMS_CACHE, else ~/.cache/speakerd/platforms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.nspawn import Container, NspawnError, nspawn_available  # noqa: E402

RESULTS = ROOT / "docs" / "platforms.json"  # committed: the page is rendered from it
DOC = ROOT / "docs" / "platforms.md"
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
DEFAULT_TARGETS = (f"bookworm-{NATIVE}", f"trixie-{NATIVE}")
ALL_TARGETS = ("bookworm-amd64", "trixie-amd64", "bookworm-arm64", "trixie-arm64")
# What a Raspberry Pi OS Lite image has before the installer runs: systemd and python3.
BASE_PACKAGES = "systemd,systemd-sysv,dbus,python3,ca-certificates,procps,acl"
MIRROR = os.environ.get("SPEAKERD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SRC = Path("/home/pi/speakerd")  # where the owner cloned it, inside the root
ETC = Path("/etc/speakerd")
PIP_LOG = Path("/var/log/speakerd-install-pip.log")
QEMU_MAGIC = {
    "arm64": (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
              r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"),
}
QEMU_NAME = {"arm64": "aarch64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEPS = ("install", "ready", "conversation", "reload", "stop", "uninstall")


class PlatformError(RuntimeError):
    """A step failed; the message is what the table shows."""


@dataclass
class Result:
    target: str
    os: str = ""
    arch: str = ""
    python: str = ""
    systemd: str = ""
    emulation: str = "native"
    install_seconds: float | None = None
    ready_seconds: float | None = None
    built_from_source: list[str] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)  # step -> "pass" or the failure
    warnings: list[str] = field(default_factory=list)
    audio: dict[str, int] = field(default_factory=dict)
    passed: bool = False
    workaround: str = ""  # what was changed to go on past a failed step, if anything
    date: str = ""
    commit: str = ""


def cache_dir() -> Path:
    return Path(os.environ.get("SPEAKERD_PLATFORMS_CACHE") or Path.home() / ".cache/speakerd/platforms")


def sh(argv: Sequence[str], *, timeout: float = 1800, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=timeout,
                          check=False, **kw)


def commit_id() -> str:
    head = sh(["git", "-C", str(ROOT), "rev-parse", "--short=10", "HEAD"]).stdout.strip() or "unknown"
    # The results this script writes itself do not make the code dirty.
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                ":!docs/platforms.json", ":!docs/platforms.md"]).stdout.strip()
    return head + ("-dirty" if dirty else "")


# Emulation -----------------------------------------------------------------------------------------

def qemu_version(exe: Path) -> tuple[int, ...]:
    out = sh([str(exe), "--version"], timeout=30).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else (0,)


def ensure_binfmt(arch: str, cache: Path) -> str:
    """A binfmt_misc entry that runs ``arch`` binaries with qemu >= 8; returns its version text."""
    if not (BINFMT / "register").exists():
        sh(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    if not (BINFMT / "register").exists():
        raise PlatformError("binfmt_misc is not available (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)")
    name = QEMU_NAME[arch]
    entry = BINFMT / f"qemu-{name}"
    if entry.exists():
        interp = next((ln.split(" ", 1)[1] for ln in entry.read_text().splitlines()
                       if ln.startswith("interpreter ")), "")
        version = qemu_version(Path(interp)) if interp else (0,)
        if version >= (8,):
            return "qemu-user " + ".".join(map(str, version))
        raise PlatformError(f"{entry} runs {interp} (qemu {'.'.join(map(str, version))}): qemu 7.2 cannot run "
                            f"onnxruntime or systemd credentials; remove it (echo -1 > {entry}) to let this "
                            "script register a newer one")
    exe = fetch_qemu(name, cache)
    magic, mask = QEMU_MAGIC[arch]
    # F: the kernel opens the interpreter now, so it works inside the container's root too.
    (BINFMT / "register").write_text(f":qemu-{name}:M::{magic}:{mask}:{exe}:OPF")
    return "qemu-user " + ".".join(map(str, qemu_version(exe)))


def fetch_qemu(name: str, cache: Path) -> Path:
    """Trixie's static qemu-user (10.x), fetched with apt into the cache, not installed."""
    q = cache / "qemu-trixie"
    exe = q / "x" / "usr" / "bin" / f"qemu-{name}"
    if exe.exists():
        return exe
    (q / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (q / "sources.list").write_text(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} trixie main\n")
    opts = [f"-oDir::Etc::SourceList={q}/sources.list", "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={q}/lists", "-oDir::State::status=/dev/null", "-oAPT::Sandbox::User=root"]
    for argv in (["apt-get", *opts, "update", "-qq"], ["apt-get", *opts, "download", "qemu-user"]):
        done = sh(argv, cwd=q, timeout=900)
        if done.returncode:
            raise PlatformError(f"{' '.join(argv[:1] + argv[-2:])} failed: {done.stderr.strip()[-300:]}")
    deb = next(q.glob("qemu-user_*.deb"))
    sh(["dpkg-deb", "-x", str(deb), str(q / "x")]).check_returncode()
    deb.unlink()
    return exe


# Roots ---------------------------------------------------------------------------------------------

def ensure_base(suite: str, arch: str, cache: Path) -> Path:
    """The cached debootstrap root of ``suite`` for ``arch`` (built once, never changed after)."""
    base = cache / f"{suite}-{arch}" / "root"
    stamp = base.parent / "base.ok"
    if stamp.exists():
        return base
    if shutil.which("debootstrap") is None:
        raise PlatformError("debootstrap is not installed (apt-get install debootstrap)")
    shutil.rmtree(base, ignore_errors=True)
    base.parent.mkdir(parents=True, exist_ok=True)
    print(f"==> debootstrap {suite} {arch} (once; cached in {base.parent})", flush=True)
    done = sh(["debootstrap", "--variant=minbase", f"--arch={arch}", f"--include={BASE_PACKAGES}",
               suite, str(base), MIRROR], timeout=3600)
    (base.parent / "debootstrap.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise PlatformError(f"debootstrap {suite} {arch} failed: {done.stderr.strip()[-300:]}")
    stamp.write_text(dt.datetime.now(dt.UTC).isoformat())
    return base


def copy_project(dest: Path) -> None:
    """Tracked files as a fresh clone has them: working-tree content, git's file modes."""
    listing = sh(["git", "-C", str(ROOT), "ls-files", "-s", "-z"]).stdout
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        mode = meta.split()[0]
        src = ROOT / path
        if not src.is_file():
            continue
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        out.chmod(0o755 if mode == "100755" else 0o644)


def host_ca() -> Path | None:
    """The CA bundle this host's pip trusts (a TLS-inspecting proxy's), to hand to the root's pip."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


class RootContainer(Container):
    """A booted Debian root of its own (not the host's /usr), on the host's network."""

    def command(self) -> list[str]:
        cmd = ["systemd-nspawn", "--quiet", "-D", str(self.root), f"--machine={self.name}", "--boot",
               "--console=pipe", "--register=no", "--link-journal=no", "--resolv-conf=copy-host",
               "--timezone=off"]
        if not Path("/run/systemd/system").is_dir():
            cmd.append("--keep-unit")
        return cmd

    def sh(self, script: str, *, env: Sequence[str] = (), timeout: float = 120.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell line inside, with a clean environment (not the host's)."""
        return self.run(["/usr/bin/env", "-i", ENV_PATH, "HOME=/root", "LANG=C.UTF-8", *env,
                         "/bin/sh", "-c", script], timeout=timeout, check=check)


# One target ----------------------------------------------------------------------------------------

def config_text(endpoint: str, follow_up: float = 0.5) -> str:
    return f"""[live]
endpoint = "{endpoint}"
ca_file = "{ETC}/emulator-ca.pem"
connect_timeout_seconds = 30.0
reconnect_max_seconds = 2.0

[live.vad]
silence_duration_ms = 500

[audio]
input_device = "speakerd_mic"
output_device = "speakerd_speaker"

[conversation]
follow_up_seconds = {follow_up}

[gpio]
enabled = "off"
"""


def built_from_source(pip_log: str) -> list[str]:
    """Distributions pip built a wheel for (its "Building wheel for X (...)" lines), but speakerd."""
    names = {m.lower() for m in re.findall(r"Building wheel for ([A-Za-z0-9_.\-]+) \(", pip_log)}
    return sorted(names - {"speakerd"})


def os_release(root: Path) -> str:
    text = (root / "etc/os-release").read_text()
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)', text, re.M)
    return m[1] if m else "?"


def status_json(c: RootContainer, timeout: float) -> dict[str, Any]:
    out = c.sh("speakerctl --json status", timeout=timeout).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def wait_for(what: str, pred: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise PlatformError(f"timed out waiting for {what}")
        time.sleep(every)


def run_target(name: str, cache: Path, logs: Path) -> Result:
    """Everything for one target; a failed step is recorded and ends the run of that target."""
    from speakerd_workshop.emulator import EmulatorThread
    from speakerd_workshop.emulator.tts import synthesize
    from speakerd_workshop.rig import MicFeeder
    from speakerd_workshop.softdev import SoftDevices

    suite, arch = name.split("-", 1)
    res = Result(target=name, arch=arch, date=dt.date.today().isoformat(), commit=commit_id())
    slow = 1.0 if arch == NATIVE else 15.0  # timeouts under emulation
    step = "install"
    run_dir = cache / name / "run"
    container: RootContainer | None = None
    mic: MicFeeder | None = None
    emulator: EmulatorThread | None = None
    try:
        if arch != NATIVE:
            res.emulation = ensure_binfmt(arch, cache)
        base = ensure_base(suite, arch, cache)
        res.os = os_release(base)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        root = run_dir / "root"
        print(f"==> {name}: copying the root", flush=True)
        sh(["cp", "-a", "--reflink=auto", str(base), str(root)], timeout=900).check_returncode()
        copy_project(root / SRC.relative_to("/"))

        key = "platforms-key-" + uuid.uuid4().hex[:12]
        emulator = EmulatorThread(api_key=key)
        emulator.start()
        etc = root / ETC.relative_to("/")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "speakerd.toml").write_text(config_text(emulator.base_url))  # kept by the installer
        (etc / "emulator-ca.pem").write_bytes(emulator.ca_file.read_bytes())
        devices = SoftDevices(etc)  # makes etc/mic.fifo; the paths below are the root's view
        mic = MicFeeder(devices.mic_fifo)  # a writer before PortAudio opens the FIFO
        devices.mic_fifo = ETC / "mic.fifo"
        devices.speaker_file = Path("/run/speakerd/speaker.raw")
        (root / "etc/asound.conf").write_text(devices.asoundrc())
        devices.conf.unlink()
        (root / "root/gemini-api-key").write_text(key + "\n")
        if arch != NATIVE:  # every instruction emulated: the shipped 60 s start and 20 s watchdog are too short
            dropin = root / "etc/systemd/system/speakerd.service.d"
            dropin.mkdir(parents=True, exist_ok=True)
            (dropin / "emulation.conf").write_text("[Service]\nTimeoutStartSec=900\nWatchdogSec=300\n")
            res.warnings.append("emulated: drop-in TimeoutStartSec=900, WatchdogSec=300")
        env = [f"PIP_LOG={PIP_LOG}"]
        ca = host_ca()
        if ca is not None:
            shutil.copyfile(ca, root / "usr/local/share/host-ca.pem")
            env.append("PIP_CERT=/usr/local/share/host-ca.pem")
        env += [f"{k}={v}" for k, v in os.environ.items()
                if k in ("PIP_INDEX_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")]

        container = RootContainer(root, name=f"speakerd-{name}-{uuid.uuid4().hex[:4]}", log=run_dir / "boot.log")
        print(f"==> {name}: booting", flush=True)
        container.boot(timeout=60 * slow)
        res.systemd = container.sh("systemctl --version | head -n1", timeout=30 * slow).stdout.strip()

        print(f"==> {name}: scripts/install.sh", flush=True)
        install = f"cd {SRC} && scripts/install.sh --api-key-file /root/gemini-api-key"
        t0 = time.monotonic()
        done = container.sh(install, env=env, timeout=1800 * slow, check=False)
        if done.returncode == 126:  # not executable in git: say so, then do what the user would
            res.warnings.append("scripts/install.sh is not executable in git (exit 126 by its path)")
            container.sh(f"chmod +x {SRC}/scripts/install.sh")
            t0 = time.monotonic()
            done = container.sh(install, env=env, timeout=1800 * slow, check=False)
        res.install_seconds = round(time.monotonic() - t0, 1)
        (logs / f"{name}-install.log").write_text(done.stdout + done.stderr)
        pip_log = root / PIP_LOG.relative_to("/")
        res.built_from_source = built_from_source(pip_log.read_text(errors="replace") if pip_log.exists() else "")
        res.python = container.sh("/opt/speakerd/venv/bin/python --version", check=False).stdout.strip()
        unit = container.show("Result", "ExecMainStatus")
        if done.returncode and arch != NATIVE and unit["ExecMainStatus"] == "243":
            # qemu-user: systemd cannot set up the credential. Record it, then hand the key over
            # another way so that the rest (onnxruntime, wake word, conversation) is still tried.
            res.steps[step] = ("fail: systemd under qemu-user: 'Failed to set up credentials: Invalid "
                               "argument' (243/CREDENTIALS); the installer's own work completed")
            res.workaround = "the key as EnvironmentFile= instead of LoadCredential= (emulation only)"
            (etc / "emulation-key.env").write_text(f"GEMINI_API_KEY={key}\n")
            (etc / "emulation-key.env").chmod(0o600)
            (root / "etc/systemd/system/speakerd.service.d/credential.conf").write_text(
                f"[Service]\nLoadCredential=\nEnvironmentFile={ETC}/emulation-key.env\n")
            container.run(["systemctl", "daemon-reload"], timeout=60 * slow)
            again = container.run(["systemctl", "restart", "speakerd"], timeout=900 * slow, check=False)
            if again.returncode:
                why = container.show("Result", "ExecMainStatus", "StatusErrno")
                status = container.sh("systemctl status --no-pager -n 8 speakerd", check=False).stdout
                (logs / f"{name}-status.log").write_text(status)
                raise PlatformError(f"243/CREDENTIALS under qemu-user, and with the key as EnvironmentFile too: {why}; "
                                    + " / ".join(status.splitlines()[-4:]))
        elif done.returncode:
            said = [ln for ln in (done.stdout + done.stderr).splitlines() if re.search(r"error|fail", ln, re.I)]
            raise PlatformError(f"exit {done.returncode}; unit {unit}; {' / '.join(said[-3:])[-400:]}")
        else:
            res.steps[step] = "pass"

        step = "ready"
        got = container.show("ActiveState", "SubState", "StatusText")
        if (got["ActiveState"], got["SubState"]) != ("active", "running"):
            raise PlatformError(f"{got} after install: {container.journal(lines=15)}")
        # Type=notify: the unit turns active when READY=1 arrives, so this is exec to READY.
        t = container.show("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        res.ready_seconds = round((int(t["ActiveEnterTimestampMonotonic"])
                                   - int(t["ExecMainStartTimestampMonotonic"])) / 1e6, 2)
        res.steps[step] = "pass"

        step = "conversation"
        print(f"==> {name}: one conversation", flush=True)
        opened = len(emulator.connections)
        question = synthesize("what is the weather like?", rate=16000)
        if arch == NATIVE:
            wake = b"\0\0" * 8000 + synthesize("hey jarvis", rate=16000) + b"\0\0" * 6000
            mic.say(wake + question)
        else:
            # Emulated, onnxruntime infers a frame far slower than real time: the detector drops
            # most frames (as designed), so the word is not heard. Record how far behind, then
            # start the conversation with the control socket; the rest of the path is the same.
            time.sleep(30)
            idle = status_json(container, 30 * slow)["audio"]
            res.warnings.append(f"emulated: the wake word cannot keep up (in {idle['frames']} microphone frames, "
                                f"{idle['wake_frames']} inferred, {idle['wake_dropped']} dropped); conversation "
                                "started by speakerctl wake")
            container.sh("speakerctl wake", timeout=60 * slow)
            mic.say(b"\0\0" * 8000 + question)
        emulator.wait_for(lambda: len(emulator.connections) > opened, timeout=60 * slow)
        st = wait_for("the reply to end (idle, one conversation)",
                      lambda: (s := status_json(container, 30 * slow))["state"] == "idle"
                      and s["conversations"] >= 1 and s, 120 * slow)
        res.audio = {k: int(v) for k, v in st["audio"].items()}
        played = container.sh("stat -c %s /run/speakerd/speaker.raw", check=False).stdout.strip()
        if not played.isdigit() or int(played) == 0 or st["audio"]["played_samples"] == 0:
            raise PlatformError(f"nothing reached the speaker ({played!r}, {st['audio']})")
        if emulator.connections[-1].credential != key:
            raise PlatformError("the daemon did not use the installed credential")
        res.steps[step] = "pass"

        step = "reload"
        pid = container.show("MainPID")["MainPID"]
        (etc / "speakerd.toml").write_text(config_text(emulator.base_url, follow_up=1.0))
        container.run(["systemctl", "reload", "speakerd"], timeout=60 * slow)
        wait_for("'configuration reloaded'",
                 lambda: "configuration reloaded" in container.journal(output="cat"), 60 * slow)
        after = container.show("MainPID", "ActiveState", "SubState")
        if after != {"MainPID": pid, "ActiveState": "active", "SubState": "running"}:
            raise PlatformError(f"after reload: {after} (was PID {pid})")
        res.steps[step] = "pass"

        step = "stop"
        container.run(["systemctl", "stop", "speakerd"], timeout=60 * slow)
        got = container.show("ActiveState", "Result", "ExecMainStatus")
        if got["ActiveState"] == "failed":  # it did stop, badly: say how, and still try the uninstall
            tail = container.journal("-n", "4", output="cat").strip().splitlines()
            res.steps[step] = f"fail: {got}: " + " / ".join(tail)
        elif got["ActiveState"] != "inactive" or got["Result"] != "success":
            raise PlatformError(f"after stop: {got}")
        else:
            res.steps[step] = "pass"

        step = "uninstall"
        done = container.sh(f"{SRC}/scripts/install.sh --uninstall --purge", timeout=120 * slow, check=False)
        left = [p for p in ("/opt/speakerd", "/etc/systemd/system/speakerd.service", "/etc/speakerd")
                if (root / p.lstrip("/")).exists()]
        if done.returncode or left or container.sh("id speakerd", check=False).returncode == 0:
            raise PlatformError(f"exit {done.returncode}, left {left}: {done.stderr.strip()[-200:]}")
        res.steps[step] = "pass"
    except (PlatformError, NspawnError, TimeoutError, subprocess.SubprocessError, OSError, KeyError) as e:
        res.steps[step] = f"fail: {str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__}"
        print(f"==> {name}: {step} failed: {e}", file=sys.stderr, flush=True)
    finally:
        if container is not None and container.leader is not None:
            try:
                (logs / f"{name}-journal.log").write_text(container.journal(output="short-precise"))
                warned = container.journal("-p", "warning", output="cat").splitlines()
                # Libraries write their errors to stderr, which the journal keeps at info level.
                warned += [ln for ln in container.journal(output="cat").splitlines()
                           if re.search(r"\[E:|Traceback|\bERROR\b", ln)]
                res.warnings += sorted({re.sub(r"^[\d:. -]+", "", ln).strip() for ln in warned if ln.strip()})[:6]
            except (NspawnError, subprocess.SubprocessError) as e:
                res.warnings.append(f"journal not read: {e}")
        if container is not None:
            container.poweroff(timeout=120)  # then its init is killed: fine for a throw-away root
        if mic is not None:
            mic.close()
        if emulator is not None:
            emulator.stop()
        if os.environ.get("SPEAKERD_PLATFORMS_KEEP") != "1":
            shutil.rmtree(run_dir, ignore_errors=True)
    res.passed = all(res.steps.get(s) == "pass" for s in STEPS)
    return res


# Report --------------------------------------------------------------------------------------------

def load_results() -> dict[str, dict[str, Any]]:
    if RESULTS.exists():
        data: dict[str, dict[str, Any]] = json.loads(RESULTS.read_text())
        return data
    return {}


def _cell(value: str | None) -> str:
    if value is None or value == "":
        return "–"
    value = re.sub(r"\x1b\[[0-9;]*m", "", value)  # a library's coloured stderr
    value = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ", "", value)  # and its own timestamp
    return value.replace("|", "\\|").replace("\n", " ")


def render(results: dict[str, dict[str, Any]], slow_cpu: str = "") -> str:
    """docs/platforms.md from the recorded results (each row says its own date and commit)."""
    order = [t for t in ALL_TARGETS if t in results] + sorted(set(results) - set(ALL_TARGETS))
    lines = [
        "# Platforms",
        "",
        "Generated by `scripts/platforms.py` from `docs/platforms.json`: do not edit by hand.",
        "",
        "Each row is one fresh Debian root (debootstrap) booted under a real systemd (systemd-nspawn),",
        "with the project copied in as a clone has it and `scripts/install.sh --api-key-file FILE` run",
        "by its path, as root, as the README says. Then: the unit reaches READY; one spoken conversation",
        "(\"hey jarvis, what is the weather like?\") goes from an ALSA software microphone through the",
        "wake word to the Live emulator and its reply reaches an ALSA software speaker; `systemctl",
        "reload` rereads the configuration without a restart; `systemctl stop` ends it cleanly;",
        "`install.sh --uninstall --purge` removes it. arm64 rows run under qemu user-mode emulation",
        "(binfmt_misc), the whole root, systemd included, emulated.",
        "",
        "| target | OS | Python | systemd | emulation | result | install | start→READY | built from source | date | commit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in order:
        r = results[t]
        steps = r.get("steps", {})
        failed = next(((s, v) for s, v in steps.items() if v != "pass"), None)
        verdict = "**pass**" if r.get("passed") else f"**fail** at {failed[0]}" if failed else "**fail**"
        rest = [v for s, v in steps.items() if failed and s != failed[0]]
        if failed and r.get("workaround") and len(steps) == len(STEPS) and all(v == "pass" for v in rest):
            verdict += "; every later step passes with a workaround (notes)"
        install = f"{r['install_seconds']:.0f} s" if r.get("install_seconds") is not None else None
        ready = f"{r['ready_seconds']:.1f} s" if r.get("ready_seconds") is not None else None
        lines.append("| " + " | ".join(_cell(x) for x in (
            t, r.get("os"), r.get("python"), (r.get("systemd") or "").replace("systemd ", "").split(" ")[0],
            r.get("emulation"), verdict, install, ready, ", ".join(r.get("built_from_source", [])) or "none",
            r.get("date"), r.get("commit"))) + " |")
    lines += ["", "Install time is the whole `scripts/install.sh` run: apt (build tools, PortAudio headers),",
              "a virtual environment, pip. Built from source: every `Building wheel for X` line in pip's log",
              "(speakerd itself left out); every other dependency came as a wheel for that platform.", ""]
    notes = [(t, results[t]) for t in order if not results[t].get("passed") or results[t].get("warnings")]
    if notes:
        lines += ["## Notes per target", ""]
        for t, r in notes:
            for s, v in r.get("steps", {}).items():
                if v != "pass":
                    lines.append(f"- {t}, {s}: {_cell(v)}")
            if r.get("workaround"):
                lines.append(f"- {t}, workaround for the later steps: {_cell(r['workaround'])}")
            for w in r.get("warnings", []):
                lines.append(f"- {t}, logged: `{_cell(w)}`")
        lines.append("")
    lines += [
        "## Running it",
        "",
        "As root, from a checkout with `scripts/dev-setup.sh` done (the emulator and the ALSA software",
        "devices come from the workshop package). Needs debootstrap and systemd-container; the roots",
        "are cached in `$SPEAKERD_PLATFORMS_CACHE` (default `~/.cache/speakerd/platforms`), a few",
        "hundred MB each, built once.",
        "",
        "```sh",
        "sudo .venv/bin/python scripts/platforms.py                        # x86-64 Bookworm and Trixie",
        "sudo SPEAKERD_PLATFORMS=all .venv/bin/python scripts/platforms.py  # also arm64 under qemu (slow)",
        "sudo .venv/bin/python scripts/platforms.py --targets trixie-arm64  # one target",
        ".venv/bin/python scripts/platforms.py --render                     # rewrite this page only",
        "```",
        "",
        "The same runs as an opt-in test: `SPEAKERD_PLATFORMS=bookworm-amd64,trixie-amd64 .venv/bin/python",
        "-m pytest tests/reliability/test_platforms.py` (skipped without the variable, without root or",
        "without debootstrap and systemd-nspawn). The default CI keeps only the quicker Bookworm boot",
        "of the shipped unit (`tests/reliability/test_nspawn.py`): the x86-64 installs take minutes each.",
        "",
        "arm64 needs a newer qemu in binfmt_misc than Debian Bookworm's qemu-user-static 7.2, under",
        "which `import onnxruntime` was seen to crash (issue 16; not rerun here). When no aarch64",
        "interpreter is registered,",
        "the script fetches Trixie's `qemu-user` package with apt into its cache (not installed) and",
        "registers its static `qemu-aarch64`. If Bookworm's is already registered, the script stops",
        "and says how to remove it.",
        "",
        "## arm64: what user-mode emulation proves and what it cannot",
        "",
        "With Trixie's qemu-user 10.0 the arm64 root boots its systemd, `scripts/install.sh` runs to",
        "the end (aarch64 wheels for everything but PyAudio and systemd-python, which compile), and",
        "`import onnxruntime` works: the wake-word models load and infer, a conversation against the",
        "emulator plays its reply, and reload works. What it cannot show:",
        "",
        "- systemd cannot hand the unit its credential under qemu-user (\"Failed to set up credentials:",
        "  Invalid argument\", 243/CREDENTIALS) with systemd 252 or 257, and with systemd 257 it",
        "  cannot set up the unit's sandbox either (226/NAMESPACE). The emulated rows therefore go on",
        "  with the key as an `EnvironmentFile=` (Bookworm) or stop there (Trixie). These are the",
        "  emulator's limits, not the unit's: the same unit gets its credential and sandbox on x86-64.",
        "- Every instruction is emulated, so the wake word cannot keep up (a frame takes seconds to",
        "  infer; the detector drops the backlog, as it is meant to): the conversation is started",
        "  with `speakerctl wake`, and the emulated unit gets a drop-in with longer start and",
        "  watchdog timeouts. Timings in emulated rows say nothing about a Pi.",
        "- In one of two Bookworm arm64 runs the process aborted at exit after logging `stopped`",
        "  (\"terminate called without an active exception\", SIGABRT; the unit ends `failed`): a C++",
        "  thread torn down at interpreter exit, most likely onnxruntime's, a race the slow emulation",
        "  exposes. The other run, and every x86-64 run, stopped cleanly.",
        "",
        "Proving the shipped unit on arm64 needs a whole emulated machine (`qemu-system-aarch64`",
        "with Debian's qemu-system-arm and qemu-efi-aarch64, a root with linux-image-arm64, driven",
        "over ssh with the microphone fed over the network) or a real Pi. Not done yet.",
        "",
    ]
    if slow_cpu:
        lines += [slow_cpu.rstrip(), ""]
    return "\n".join(lines)


SLOW_CPU_START = "## A slow CPU"


def write_doc(results: dict[str, dict[str, Any]]) -> None:
    """Rewrite the page, keeping the slow-CPU section that bench/slow_cpu.py owns."""
    keep = ""
    if DOC.exists():
        text = DOC.read_text()
        if SLOW_CPU_START in text:
            keep = text[text.index(SLOW_CPU_START):]
    DOC.write_text(render(results, keep))


def targets_from(arg: str | None) -> list[str]:
    raw = arg or os.environ.get("SPEAKERD_PLATFORMS", "") or ",".join(DEFAULT_TARGETS)
    if raw.strip() in ("all", "1"):
        return list(ALL_TARGETS) if raw.strip() == "all" else list(DEFAULT_TARGETS)
    names = [t.strip() for t in raw.split(",") if t.strip()]
    bad = [t for t in names if t not in ALL_TARGETS]
    if bad:
        raise SystemExit(f"unknown targets {bad}; known: {', '.join(ALL_TARGETS)}")
    return names


def cannot_run() -> str | None:
    """None when this machine can run targets, else why not."""
    why = nspawn_available()
    if why and "/usr/lib/systemd/systemd" not in why:  # the host's own systemd is not needed
        return why
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed (apt-get install debootstrap)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--targets", help=f"comma list of {', '.join(ALL_TARGETS)}, or all")
    p.add_argument("--render", action="store_true", help="only rewrite docs/platforms.md from the JSON")
    args = p.parse_args(argv)
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so each container is powered off on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = load_results()
    if not args.render:
        why = cannot_run()
        if why:
            print(f"cannot run: {why}", file=sys.stderr)
            return 2
        cache = cache_dir()
        logs = cache / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in targets_from(args.targets):
            res = run_target(name, cache, logs)
            results = load_results()  # another run may have written its row meanwhile
            results[name] = res.__dict__
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
            print(f"==> {name}: {'PASS' if res.passed else 'FAIL'} {res.steps} (logs: {logs})", flush=True)
    write_doc(results)
    print(f"wrote {DOC.relative_to(ROOT)}")
    ran = [] if args.render else targets_from(args.targets)
    return 0 if all(results[t].get("passed") for t in ran) else 1


if __name__ == "__main__":
    raise SystemExit(main())
