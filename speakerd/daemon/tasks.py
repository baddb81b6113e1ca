"""The loop's background tasks, each with an owner that notices its end.

Why: a task that dies with an exception must not vanish silently. Every task is spawned here by
name; its failure is logged once with its cause, and ``drain`` lets shutdown wait for the work
that must finish (closing a session, writing the handle) before the parts are stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("speakerd")


class Tasks:
    """A named set of tasks on the running loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def running(self, name: str) -> bool:
        return any(t.get_name() == name and not t.done() for t in self._tasks)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)

    async def drain(self, exclude: set[str], within_seconds: float = 10.0) -> None:
        """Wait (bounded) for every task but ``exclude`` to finish."""
        pending = [t for t in self._tasks if t.get_name() not in exclude]
        if pending:
            await asyncio.wait(pending, timeout=within_seconds)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
