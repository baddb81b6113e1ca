"""glibc malloc settings for a small, steady resident size on a Pi with 512 MiB to 1 GiB.

Why: glibc gives each thread that allocates its own arena and keeps freed memory in it for reuse.
speakerd's threads (capture, wake word, loader, playback) each allocate in bursts, so each arena
keeps its own peak: measured on the rig, idle RSS after READY came out at either ~121 or ~133 MiB
depending on which thread's arena the model loading happened to leave behind. One arena and a
trim after the bursts keep it at the lower figure every time, with no measurable CPU cost at
speakerd's allocation rate (bench/footprint.py, bench/idle_cpu.py). Without glibc (musl) both
are no-ops.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger("speakerd.memory")
M_ARENA_MAX = -8  # glibc's mallopt parameter number
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            if lib is not None:
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _LIBC = lib or False
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def tune_malloc() -> None:
    """One malloc arena for the whole process. Call before any thread starts."""
    lib = _libc()
    if lib:
        with contextlib.suppress(AttributeError):
            if not lib.mallopt(M_ARENA_MAX, 1):
                log.debug("mallopt(M_ARENA_MAX) refused")


def release_memory() -> None:
    """Hand the heap freed by a burst (model loading, a conversation) back to the system.

    glibc keeps freed memory in its arenas for reuse, so a one-off peak would stay in the
    process's resident size for good; ``malloc_trim`` returns it.
    """
    lib = _libc()
    if lib:
        with contextlib.suppress(AttributeError):
            lib.malloc_trim(0)
