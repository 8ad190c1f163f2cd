"""Choose the number of substeps by halving the step until the prediction stops changing.

The criterion (issue 13): the *deterministic* rollout (encoder mean as the initial state,
no Brownian noise, decoder mean) on held-out trajectories may change by less than
``tolerance`` (1 %) of its own error when the step is halved. The change and the error are
both the mean over trajectories and output times of the per-step relative L2 norm, the
papers' metric, so "1 % of its error" reads as: integrating more accurately cannot move the
headline score by more than 1 % of itself.

The deterministic rollout isolates the integrator's error from Monte-Carlo noise: the
sample paths of a stochastic rollout would make the comparison noisy, while the drift's
discretisation error, which is what substeps control, shows in the mean path.

Both are measured over the *informative* part of the horizon: the output times before the
rollout's error first reaches ``INFORMATIVE`` (0.5) of the data's size (each trajectory's
RMS norm over time, so that states near zero do not count as lost), but at least the first
``MIN_SHARE`` (10 %) of the horizon. On a chaotic system any two integrations part after a
few Lyapunov times, whatever the step, and beyond that point the rollout no longer tracks
the data; a check over the whole horizon would never pass and would only cost time. The cut
is made once, from the rollouts at 1 and 2 substeps, and the finer rollouts are integrated
up to it only.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset
from engine.metrics import relative_l2

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["choose_substeps", "deterministic_rollouts", "TOLERANCE", "MAX_SUBSTEPS"]

TOLERANCE = 0.01
MAX_SUBSTEPS = 64
#: the largest ``max_substeps`` a search may be given: each doubling integrates the whole
#: horizon again, and a tolerance that is never met would double on for hours
SUBSTEPS_LIMIT = 4096
INFORMATIVE = 0.5
MIN_SHARE = 0.1


def deterministic_rollouts(model: StochasticROM, dataset: Dataset, method: str,
                           substeps: int) -> np.ndarray:
    """Decoded mean paths ``(N, T, *S)`` of the deterministic rollout of every trajectory
    (the papers' protocol of ``predict_dataset`` with ``deterministic=True``)."""
    return np.concatenate([pred.mean for _, pred in model.predict_dataset(
        dataset, 1, 0, None, return_samples=False, integrator=method, substeps=substeps,
        deterministic=True)])


def _informative_times(rollout: np.ndarray, truth: np.ndarray) -> int:
    """Output times before the rollout's error reaches ``INFORMATIVE`` of the data's size
    (at least ``MIN_SHARE`` of them and 2; all of them if it never does)."""
    n_cases, n_times = truth.shape[:2]
    diff = np.linalg.norm((rollout - truth).reshape(n_cases, n_times, -1), axis=-1)
    size = np.sqrt(np.mean(np.sum(truth.reshape(n_cases, n_times, -1) ** 2, axis=-1), axis=1))
    error = np.mean(diff / np.maximum(size, 1e-12)[:, None], axis=0)  # (T,)
    lost = np.flatnonzero(~(error < INFORMATIVE))  # NaN or inf count as lost
    first = int(lost[0]) if lost.size else n_times
    return int(min(n_times, max(first, math.ceil(MIN_SHARE * n_times), 2)))


def _score(a: np.ndarray, b: np.ndarray) -> float:
    value = float(np.mean(relative_l2(a, b)))
    return value if math.isfinite(value) else math.inf


def choose_substeps(model: StochasticROM, dataset: Dataset, method: str,
                    tolerance: float = TOLERANCE, max_substeps: int = MAX_SUBSTEPS,
                    max_trajectories: int = 8) -> dict:
    """The fewest substeps (1, 2, 4, …) whose halving changes the deterministic rollout on
    ``dataset`` by less than ``tolerance`` of its error.

    Args:
        model: a fitted model.
        dataset: held-out trajectories (validation; the first ``max_trajectories`` are used).
        method: the scheme (a name in :data:`engine.solvers.METHODS`).
        tolerance: the allowed change, as a share of the rollout's error.
        max_substeps: the largest count tried; if even its halving changes the rollout by
            more, it is returned with ``converged: False``.

    Returns:
        ``integrator``, ``substeps``, ``converged``, ``tolerance``, ``change`` (rel. L2
        between the rollouts at ``substeps`` and ``2·substeps``), ``error`` (rel. L2 of the
        finer one against the data), ``n_trajectories``, ``n_times`` (the informative
        output times scored) of ``of_times``, ``tried`` (``[substeps, change, error]``
        rows) and ``seconds``.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance!r}")
    if not isinstance(max_substeps, (int, np.integer)) or not 1 <= max_substeps <= SUBSTEPS_LIMIT:
        raise ValueError(f"max_substeps must be an integer in 1..{SUBSTEPS_LIMIT}, got "
                         f"{max_substeps!r}")
    start = time.perf_counter()
    # at most max_trajectories, and few enough that a rollout stays near 2^26 values
    per_case = dataset.n_times * int(np.prod(dataset.state_shape))
    n_cases = max(1, min(dataset.n_trajectories, int(max_trajectories), 2**26 // per_case))
    subset = dataset.subset(range(n_cases))
    substeps = 1
    coarse = deterministic_rollouts(model, subset, method, substeps)
    fine = deterministic_rollouts(model, subset, method, 2 * substeps)
    n_times = _informative_times(fine, subset.x)
    subset = subset.time_slice(0, n_times)
    coarse, fine, truth = coarse[:, :n_times], fine[:, :n_times], subset.x
    tried = []
    while True:
        change, error = _score(coarse, fine), _score(fine, truth)
        tried.append([substeps, change, error])
        converged = change < tolerance * error
        if converged or 2 * substeps > max_substeps:
            break
        substeps, coarse = 2 * substeps, fine
        fine = deterministic_rollouts(model, subset, method, 2 * substeps)
    return {"integrator": method, "substeps": int(substeps), "converged": bool(converged),
            "tolerance": float(tolerance), "change": change, "error": error,
            "n_trajectories": int(subset.n_trajectories), "tried": tried,
            "n_times": n_times, "of_times": int(dataset.n_times),
            "seconds": time.perf_counter() - start}
