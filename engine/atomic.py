"""Atomic file writes that leave nothing behind.

Every file the engine writes (a model's config and weights, a checkpoint, a dataset) is
written to a temporary file in the same directory and moved over the target in one
``os.replace``: a reader sees the old file or the new one, never half of one. The temporary
file is removed when the write fails; one left by a process killed mid-write is removed by a
later write in that directory once it is older than :data:`STALE_AFTER_S` (no live writer
takes that long to write one file).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_temporary_files", "TEMP_PREFIX", "STALE_AFTER_S"]

TEMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0


def remove_stale_temporary_files(directory: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove this module's temporary files in ``directory`` older than ``older_than_s``."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(Path(directory).glob(TEMP_PREFIX + "*"))
    except OSError:
        return removed
    for path in entries:
        try:
            if path.is_file() and now - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed.append(path)
        except OSError:  # another process removed it, or no permission: not ours to fix
            continue
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = "") -> Path:
    """Write ``path`` atomically: ``write(tmp_path)`` fills a temporary file that then
    replaces ``path``. Creates the parent directory. Raises what ``write`` or the file system
    raised (``OSError`` for a full disk or a read-only directory), with no file left over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporary_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
