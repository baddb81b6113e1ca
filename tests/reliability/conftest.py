"""The reliability suite: heavy runs only when asked for (SPEAKERD_SOAK=1, SPEAKERD_NSPAWN=1)."""

from __future__ import annotations

import pytest

from tests.reliability.harness import opt_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soak = opt_in("SPEAKERD_SOAK") or opt_in("SPEAKERD_TEST_SOAK")
    nspawn = opt_in("SPEAKERD_NSPAWN") or opt_in("SPEAKERD_TEST_NSPAWN")
    for item in items:
        if "soak" in item.keywords and not soak:
            item.add_marker(pytest.mark.skip(reason="soak run: set SPEAKERD_SOAK=1"))
        if "nspawn" in item.keywords and not nspawn:
            item.add_marker(pytest.mark.skip(reason="systemd-nspawn boot: set SPEAKERD_NSPAWN=1"))
