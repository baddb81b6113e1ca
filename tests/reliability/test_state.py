"""State and reload cases (tests/reliability/state_cases.py) as tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import CannotSimulate, Case
from tests.reliability.state_cases import CASES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_state(case: Case, tmp_path: Path) -> None:
    try:
        print(f"{case.id}: {case.run(tmp_path)}")
    except CannotSimulate as e:
        pytest.skip(str(e))
