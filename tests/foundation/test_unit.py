"""The shipped unit: `systemd-analyze verify` says nothing and the security exposure is <= 2.0."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "speakerd.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI: scripts/dev-setup.sh must install systemd")
        pytest.skip("systemd-analyze not installed (scripts/dev-setup.sh installs it)")
    return exe


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A scratch root holding the unit, stub executables it names, and the stock target units."""
    root = tmp_path / "root"
    for exe in ("opt/speakerd/venv/bin/speakerd", "bin/kill"):
        path = root / exe
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/speakerd.service")
    return root


def test_verify_prints_nothing(unit_root: Path) -> None:
    res = subprocess.run([_analyze(), "verify", f"--root={unit_root}", "speakerd.service"],
                         capture_output=True, text=True)
    assert (res.returncode, res.stdout + res.stderr) == (0, "")


def test_security_exposure_at_most_2(unit_root: Path) -> None:
    res = subprocess.run(
        [_analyze(), "security", "--offline=yes", f"--root={unit_root}", "--threshold=20", "speakerd.service"],
        capture_output=True, text=True,
    )
    match = re.search(r"Overall exposure level for speakerd\.service: ([0-9.]+)", res.stdout)
    assert match, res.stdout[-2000:] + res.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_keeps_what_the_daemon_needs() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "ExecReload=", "User=speakerd", "SupplementaryGroups=audio gpio spi", "StateDirectory=speakerd",
                 "RuntimeDirectory=speakerd", "ConfigurationDirectory=speakerd",
                 "LoadCredential=gemini-api-key:", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "DeviceAllow=/dev/snd rw", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-spi rw"):
        assert line in text, line
    assert "PrivateNetwork=yes" not in text and "PrivateDevices=yes" not in text
