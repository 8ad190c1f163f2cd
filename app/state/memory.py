"""Give a closed session's memory back to the system (GUI-free).

A closed session's objects are freed by reference counting and the cycle collector, but
glibc's allocator keeps the freed pages in its arenas: the server's resident memory then
drifts up and down by tens of MB with the order in which sessions come and go (the soak of
``benchmarks/ui_load.py``: 438-501 MB over 200 sessions, issue 15). :class:`MemoryTrimmer`
runs glibc's ``malloc_trim(0)`` once the sessions closed in a burst are gone: after Panel's
own ``gc.collect()``, which it schedules 5 s after the last destroyed session (a second
collection here took 8 % of the shared event loop's time in a 10-page load run, py-spy).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

__all__ = ["MemoryTrimmer", "malloc_trim", "trim_soon"]

_log = logging.getLogger(__name__)


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_MALLOC_TRIM = _load_trim()


def malloc_trim() -> bool:
    """Return the allocator's free pages to the system; ``False`` where glibc's
    ``malloc_trim`` is missing or released nothing."""
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM is not None else False


class MemoryTrimmer:
    """Trims the allocator ``delay_s`` after the last :meth:`request`.

    On an event loop (a Panel server) the trim is a ``call_later`` of that loop, postponed by
    each new request, so sessions closed in a burst cost one trim and no thread is started
    (the soak counts the server's threads); without a running loop it trims at once.

    Args:
        delay_s: quiet seconds before it runs.
        trim: the allocator trim (default :func:`malloc_trim`; tests pass a stand-in).
    """

    def __init__(self, delay_s: float = 7.0, trim: Callable[[], bool] = malloc_trim):
        self.delay_s, self._trim = float(delay_s), trim
        self._handle: asyncio.TimerHandle | None = None
        #: trims done (tests, logs)
        self.runs = 0

    def request(self) -> None:
        """Ask for a trim (call it on the event loop's thread, e.g. in a session-destroyed
        callback)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: scripts, tests
            self._run()
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_later(self.delay_s, self._run)

    def _run(self) -> None:
        self._handle = None
        try:
            self._trim()
        except Exception:  # noqa: BLE001 - best effort: never take the server down
            _log.exception("memory trim failed")
        self.runs += 1


_TRIMMER = MemoryTrimmer()


def trim_soon() -> None:
    """Ask the process-wide :class:`MemoryTrimmer` for a trim (a session was closed)."""
    _TRIMMER.request()
