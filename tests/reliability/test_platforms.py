"""scripts/platforms.py: the install on each Debian release and architecture, and its report.

The installs themselves are opt-in (SPEAKERD_PLATFORMS=bookworm-amd64,trixie-amd64, or all for
arm64 under qemu too): each takes minutes, arm64 much longer. The report's parsing runs always.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import load_script

PROJECT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    return load_script(PROJECT / "scripts" / "platforms.py", "speakerd_platforms")


platforms = load()

PIP_LOG = """\
2026-12-02T08:06:40,1 Collecting pyaudio>=0.2.14
2026-12-02T08:06:41,2 Building wheel for pyaudio (pyproject.toml): started
2026-12-02T08:06:44,3 Building wheel for pyaudio (pyproject.toml): finished with status 'done'
2026-12-02T08:06:45,4 Building wheel for systemd-python (pyproject.toml): started
2026-12-02T08:06:50,5 Building wheel for speakerd (pyproject.toml): started
2026-12-02T08:06:51,6 Using cached numpy-2.3.5-cp311-cp311-manylinux_2_27_x86_64.whl
"""


def test_built_from_source_lists_each_package_pip_built_but_speakerd() -> None:
    assert platforms.built_from_source(PIP_LOG) == ["pyaudio", "systemd-python"]
    assert platforms.built_from_source("Using cached numpy-2.3.5-cp311-none.whl\n") == []


def test_render_shows_each_target_its_verdict_and_the_failed_step() -> None:
    ok = {"os": "Debian GNU/Linux 13 (trixie)", "python": "Python 3.13.5", "systemd": "systemd 257 (257.9-1)",
          "emulation": "native", "install_seconds": 61.2, "ready_seconds": 3.4, "passed": True,
          "built_from_source": ["pyaudio"], "steps": dict.fromkeys(platforms.STEPS, "pass"),
          "warnings": [], "date": "2026-12-02", "commit": "abc1234567"}
    bad = {**ok, "passed": False, "emulation": "qemu-user 10.0", "built_from_source": [],
           "steps": {"install": "pass", "ready": "fail: unit ended 'failed' | 216/GROUP"}}
    text = platforms.render({"trixie-amd64": ok, "trixie-arm64": bad})
    rows = [ln for ln in text.splitlines() if ln.startswith("| trixie-")]
    assert rows[0].startswith("| trixie-amd64 | Debian GNU/Linux 13 (trixie) | Python 3.13.5 | 257 | native | **pass**")
    assert "| 61 s | 3.4 s | pyaudio |" in rows[0]
    assert "**fail** at ready" in rows[1] and "| none |" in rows[1]
    assert "- trixie-arm64, ready: fail: unit ended 'failed' \\| 216/GROUP" in text


def test_unknown_target_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown targets"):
        platforms.targets_from("bullseye-amd64")
    assert platforms.targets_from("all") == list(platforms.ALL_TARGETS)


def _targets() -> list[str]:
    raw = os.environ.get("SPEAKERD_PLATFORMS", "")
    return platforms.targets_from(raw) if raw and raw != "0" else []


@pytest.mark.slow
@pytest.mark.parametrize("target", _targets() or ["(none: set SPEAKERD_PLATFORMS)"])
def test_install_ready_converse_reload_stop_uninstall(target: str, tmp_path: Path) -> None:
    """The README's install on a fresh root, then every step the table reports (opt-in)."""
    if not _targets():
        pytest.skip("opt-in: SPEAKERD_PLATFORMS=bookworm-amd64,trixie-amd64 (or all, for arm64 too)")
    why = platforms.cannot_run()
    if why:
        pytest.skip(why)
    res = platforms.run_target(target, platforms.cache_dir(), tmp_path)
    assert res.passed, (res.steps, res.warnings, sorted(p.name for p in tmp_path.iterdir()))
