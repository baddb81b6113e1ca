"""Every case of the fault matrix as a test: ``pytest tests/reliability -k network`` runs one area.

The cases live in the area modules so that scripts/reliability-report.py runs exactly the same code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import CannotSimulate, Case
from tests.reliability.matrix import ALL_CASES

pytestmark = pytest.mark.slow


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=False, reason=case.wiring)] if case.wiring else []
    return pytest.param(case, id=f"{case.area}-{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in ALL_CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    try:
        print(f"{case.id}: {case.run(tmp_path)}")
    except CannotSimulate as e:
        pytest.skip(str(e))
