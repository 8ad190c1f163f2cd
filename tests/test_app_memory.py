"""Closed sessions' memory handed back (app/state/memory.py): one trim per burst of closes, on
the event loop, and a real glibc trim where there is one."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from app.state.memory import MemoryTrimmer, malloc_trim


def test_a_burst_of_requests_on_the_event_loop_costs_one_trim_and_no_thread():
    calls: list[str] = []
    trimmer = MemoryTrimmer(delay_s=1.0, trim=lambda: calls.append(
        threading.current_thread().name) or True)

    async def closes() -> None:
        before = threading.active_count()
        for _ in range(5):  # five sessions closed within the delay
            trimmer.request()
            await asyncio.sleep(0)
        assert calls == [] and threading.active_count() == before
        await asyncio.sleep(2.0)

    asyncio.run(closes())
    assert calls == [threading.current_thread().name] and trimmer.runs == 1


def test_without_an_event_loop_it_trims_at_once_and_survives_a_failing_trim():
    trimmer = MemoryTrimmer(trim=lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    trimmer.request()
    assert trimmer.runs == 1


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_malloc_trim_returns_freed_small_blocks_to_the_system():
    blocks = [bytearray(2000) for _ in range(60_000)]  # ~120 MB below the mmap threshold
    keep = blocks[-1]  # the heap's top stays in use: free() alone cannot shrink it
    del blocks
    held = _rss_mb()
    assert malloc_trim()
    assert _rss_mb() < held - 50
    del keep
