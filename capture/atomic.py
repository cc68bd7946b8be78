"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A reader never sees a half-written file, and an interrupted write leaves the old file (or none).
Imports neither torch nor ttnn, so both environments use it.
"""
from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, data: bytes | str) -> int:
    """Write data (bytes, or text as UTF-8) to path atomically; returns the bytes written."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(blob)
