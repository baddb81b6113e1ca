"""Helpers shared by every test area: bounded waiting (blocking and asyncio), and loading a script.

Why: every polling loop in the tests needs a deadline and a message that says what did not happen;
one helper keeps that true without copies. Standard library only, so fast tests stay fast to import.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")

# What a wait was for: a fixed text, or a function that describes the state at the timeout.
What = str | Callable[[], str]


def _timed_out(what: What, timeout: float) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout:g} s waiting for {said}")


def wait_until(predicate: Callable[[], T], what: What = "the condition", *, timeout: float = 30.0,
               interval: float = 0.02) -> T:
    """Poll ``predicate`` (blocking) until it is truthy and return its value; fail after ``timeout``.

    The timeout bounds a hang; it is not a speed assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)


async def until(predicate: Callable[[], T], what: What = "the condition", *, timeout: float = 30.0,
                interval: float = 0.02) -> T:
    """Poll ``predicate`` without blocking the loop until it is truthy and return its value; fail
    after ``timeout`` (a bound on a hang, not a speed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not a package module (``bench/``, ``scripts/``), imported under ``name``;
    registered in ``sys.modules`` first, as its dataclasses need."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
