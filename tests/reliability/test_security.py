"""Security cases (tests/reliability/security.py) as tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import Case
from tests.reliability.security import CASES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_security(case: Case, tmp_path: Path) -> None:
    print(f"{case.id}: {case.run(tmp_path)}")
