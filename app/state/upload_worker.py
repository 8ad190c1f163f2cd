"""The reading process of an upload (see :func:`app.state.upload.read_upload_isolated`).

    python -m app.state.upload_worker SOURCE NAME RESULT MEMORY_MB

Limits its own address space to what its imports took plus ``MEMORY_MB``, reads ``SOURCE``
with :func:`app.state.upload.read_upload` (``NAME`` is the name shown in messages), writes the
validated dataset to ``RESULT`` (``.npz``) and prints one JSON line: ``{"ok": true}`` or
``{"error": "<message for the user>"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _limit_memory(extra_mb: int) -> None:
    try:
        import resource
    except ImportError:  # not on this platform: the time limit still holds
        return
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = peak_kb * 1024 + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> int:
    source, name, result, memory_mb = argv[0], argv[1], argv[2], int(argv[3])
    from app.state.upload import UploadError, read_upload  # the imports count in the base

    try:
        _limit_memory(memory_mb)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        upload = read_upload(name, Path(source).read_bytes(), max_mb=10**6)
        upload.dataset.save(result)
    except UploadError as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    except MemoryError:
        print(json.dumps({"error": f"{name}: reading it needs more than the {memory_mb} MB of "
                                   "memory allowed; the file was refused"}))
        return 0
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
