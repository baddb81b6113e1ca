"""The reliability suite: heavy runs only when asked for (SPEAKERD_SOAK=1).

The systemd-nspawn boot runs whenever this machine can boot a container (root, systemd-container);
SPEAKERD_NSPAWN=0 turns it off, and without the means it is skipped with the reason.
"""

from __future__ import annotations

import os

import pytest

from tests.reliability.harness import opt_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soak = opt_in("SPEAKERD_SOAK")
    nspawn = os.environ.get("SPEAKERD_NSPAWN", "1") != "0"
    for item in items:
        if "soak" in item.keywords and not soak:
            item.add_marker(pytest.mark.skip(reason="soak run: set SPEAKERD_SOAK=1"))
        if "nspawn" in item.keywords and not nspawn:
            item.add_marker(pytest.mark.skip(reason="systemd-nspawn boot turned off (SPEAKERD_NSPAWN=0)"))
