"""The network fault matrix (tests/reliability/network.py) as tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import Case
from tests.reliability.network import CASES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_network_fault(case: Case, tmp_path: Path) -> None:
    observed = case.run(tmp_path)
    print(f"{case.id}: {observed}")
