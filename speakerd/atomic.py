"""Atomic file replacement: the old file or the new one, never half of one.

Why a module of its own: a power cut or kill -9 can land at any moment on a Pi, and every file the
daemon keeps in its state directory (the resumption handle, timers and alarms) must survive that.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path``: temp file, fsync, rename, fsync the directory.

    Creates the directory when missing. Raises OSError (the caller decides how loudly to say it);
    a failed write leaves the old file as it was and no temp file behind.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
