"""Every case of the fault matrix, in the order of docs/reliability.md."""

from __future__ import annotations

from tests.reliability import devices, network, process, production, security, state_cases, workers
from tests.reliability.harness import Case

ALL_CASES: list[Case] = [
    *network.CASES, *production.CASES, *security.CASES, *state_cases.CASES, *process.CASES, *devices.CASES, *workers.CASES,
]
