"""Shared fixtures: a real sd_notify socket, the emulator's certificates, a clean environment. Area
fixtures live in each test dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from speakerd_workshop.rig import NotifySocket

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One emulator CA for the whole run: ``ensure_certs`` reuses valid certificates, and making them costs."""
    return tmp_path_factory.mktemp("emulator-certs")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment for a daemon subprocess: no inherited keys or systemd variables."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "ALSA_CONFIG_PATH", "GPIOZERO_PIN_FACTORY",
            "GPIOZERO_MOCK_PIN_CLASS", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env
