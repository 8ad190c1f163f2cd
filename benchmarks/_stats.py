"""Summary statistics of repeated timings, shared by the benchmark scripts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["summarize"]


def summarize(values: Sequence[float]) -> dict:
    """``n``, ``median``, ``p95``, ``max``, ``min`` and ``mean`` of ``values`` (plain floats,
    for JSON)."""
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "min": float(a.min()), "mean": float(a.mean())}
