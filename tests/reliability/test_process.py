"""Process cases (tests/reliability/process.py) as tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import Case
from tests.reliability.process import CASES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_process(case: Case, tmp_path: Path) -> None:
    print(f"{case.id}: {case.run(tmp_path)}")
