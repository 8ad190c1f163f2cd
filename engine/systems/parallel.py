"""Solve independent trajectories in worker processes.

A simulator whose trajectories are solved one at a time and independently (an adaptive
solver per trajectory, as the paper preset of Burgers uses) can spread them over
processes: the results are the same numbers in the same order, only sooner. The number of
processes comes from ``SROM_GENERATE_JOBS`` (``srom generate --jobs`` sets it; default 1,
so a library call never starts processes unasked), bounded by the CPU count.

Workers are started with ``spawn`` (a fork of a process that holds torch's thread pools
can deadlock), so each one imports the engine once: worth it from a few trajectories of a
second or more each.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["JOBS_ENV", "generation_jobs", "map_trajectories"]

JOBS_ENV = "SROM_GENERATE_JOBS"
#: fewer trajectories than this are solved in the calling process
MIN_PARALLEL_TRAJECTORIES = 4


def generation_jobs() -> int:
    """Processes to solve trajectories with: ``SROM_GENERATE_JOBS`` in [1, CPU count].

    Raises:
        ValueError: the variable is set but not a positive integer.
    """
    raw = os.environ.get(JOBS_ENV, "").strip()
    if not raw:
        return 1
    try:
        jobs = int(raw)
    except ValueError:
        raise ValueError(f"{JOBS_ENV} must be a positive integer, got {raw!r}") from None
    if jobs < 1:
        raise ValueError(f"{JOBS_ENV} must be a positive integer, got {raw!r}")
    return min(jobs, os.cpu_count() or 1)


def map_trajectories(solve: Callable[..., Any], arguments: Sequence[tuple]) -> list[Any]:
    """``[solve(*a) for a in arguments]``, in worker processes when asked for.

    Args:
        solve: a module-level (picklable) function solving one trajectory.
        arguments: one tuple of picklable arguments per trajectory.

    Returns:
        The results in the order of ``arguments``.
    """
    jobs = min(generation_jobs(), len(arguments))
    if jobs < 2 or len(arguments) < MIN_PARALLEL_TRAJECTORIES:
        return [solve(*a) for a in arguments]
    chunk = max(1, len(arguments) // (4 * jobs))
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(solve, *zip(*arguments, strict=True), chunksize=chunk))
