"""The soak (bench/soak.py) as an opt-in test: memory, descriptors and threads stay flat."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support import load_script

pytestmark = [pytest.mark.soak, pytest.mark.slow]


def test_soak_stays_flat(tmp_path: Path) -> None:
    soak = load_script(ROOT / "bench" / "soak.py", "soak")
    out = tmp_path / "soak.json"
    n = os.environ.get("SPEAKERD_SOAK_CONVERSATIONS", "500")
    assert soak.main(["--conversations", n, "--warmup", "20", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    warm, end = r["after_warmup"], r["end"]
    assert r["tracebacks"] == 0
    assert end["fds"] <= warm["fds"] + 2, (warm, end)
    assert end["threads"] <= warm["threads"] + 2, (warm, end)
    assert end["rss_kb"] <= warm["rss_kb"] * 1.10, (warm, end)
