"""scripts/install.sh in a scratch root (DESTDIR): files, permissions, idempotence, uninstall."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "install.sh"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def run(destdir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # The caller's pip settings (index, proxy, find-links) are kept; keys and config paths are not.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPEAKERD_", "GEMINI_", "GOOGLE_", "CREDENTIALS_", "NOTIFY_"))}
    env["DESTDIR"] = str(destdir)
    # By its path, as the README says (`sudo scripts/install.sh`): it must be executable in git.
    return subprocess.run([str(SCRIPT), *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=900)


def test_every_script_meant_to_be_run_is_executable_in_git() -> None:
    """A fresh clone gets git's modes, not this checkout's: `sudo scripts/install.sh` must run."""
    listed = subprocess.run(["git", "ls-files", "-s", "scripts"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    modes = {line.split()[3]: line.split()[0] for line in listed}
    runnable = [p for p in modes if (ROOT / p).read_text(errors="replace").startswith("#!")]
    assert "scripts/install.sh" in runnable
    assert {p: modes[p] for p in runnable if modes[p] != "100755"} == {}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_upgrade_uninstall(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    res = run(dest, "--api-key-file", "-", stdin="AIza-test-key-42\n")
    assert res.returncode == 0, res.stderr
    assert "AIza-test-key-42" not in res.stdout + res.stderr
    assert "dependency resolver" not in res.stderr and "ERROR" not in res.stderr, res.stderr

    venv_python = dest / "opt/speakerd/venv/bin/python"
    # The wake-word models load without openwakeword's training dependencies (not installed), and
    # nothing pulls SciPy or scikit-learn into the daemon.
    check = subprocess.run([str(venv_python), "-c", "import sys, speakerd, pyaudio, gpiozero, google.genai, "
                            "pydantic_settings, systemd.daemon, speakerd.daemon; from speakerd import config, wakeword; "
                            "wakeword.load_model(config.WakewordSettings()); "
                            "print(sorted({'scipy', 'sklearn', 'tqdm'} & set(sys.modules)))"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]", check.stdout
    cfg = dest / "etc/speakerd/speakerd.toml"
    cred = dest / "etc/speakerd/credentials/gemini-api-key"
    assert cfg.read_text() == (ROOT / "config/speakerd.toml").read_text() and mode(cfg) == 0o644
    assert cred.read_text() == "AIza-test-key-42" and mode(cred) == 0o600
    assert mode(cred.parent) == 0o700
    assert (dest / "etc/systemd/system/speakerd.service").read_text() == (ROOT / "systemd/speakerd.service").read_text()
    assert os.readlink(dest / "usr/local/bin/speakerctl") == "/opt/speakerd/venv/bin/speakerctl"
    ok = subprocess.run([str(dest / "opt/speakerd/venv/bin/speakerd"), "check-config", "-q", "--config", str(cfg)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr

    # Again: the user's edits and key are kept, the new defaults land beside them.
    cfg.write_text("[audio]\nvolume = 20\n")
    res = run(dest)
    assert res.returncode == 0, res.stderr
    assert "dependency resolver" not in res.stderr and "ERROR" not in res.stderr, res.stderr
    assert cfg.read_text() == "[audio]\nvolume = 20\n"
    assert (dest / "etc/speakerd/speakerd.toml.example").exists()
    assert cred.read_text() == "AIza-test-key-42"

    res = run(dest, "--uninstall")
    assert res.returncode == 0, res.stderr
    assert not (dest / "opt/speakerd").exists() and not (dest / "etc/systemd/system/speakerd.service").exists()
    assert cfg.exists() and cred.exists()
    res = run(dest, "--uninstall", "--purge")
    assert res.returncode == 0, res.stderr
    assert not (dest / "etc/speakerd").exists()


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    res = run(tmp_path / "root", "--frobnicate")
    assert res.returncode == 2 and "unknown option: --frobnicate" in res.stderr
    assert not (tmp_path / "root").exists()
