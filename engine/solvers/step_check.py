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
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset
from engine.metrics import relative_l2

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["choose_substeps", "TOLERANCE", "MAX_SUBSTEPS"]

TOLERANCE = 0.01
MAX_SUBSTEPS = 64


def _deterministic_rollouts(model: "StochasticROM", dataset: Dataset, method: str,
                            substeps: int) -> np.ndarray:
    """Decoded mean paths ``(N, T, *S)`` of the deterministic rollout of every trajectory."""
    from engine.model import ExtrapolationWarning

    x0 = dataset.x[:, : model.n_win] if model.n_win > 1 else dataset.x[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        pred = model.predict(x0, dataset.mu, dataset.t, dataset.f, n_samples=1, seed=0,
                             return_samples=False, integrator=method, substeps=substeps,
                             deterministic=True)
    return pred.mean


def _score(a: np.ndarray, b: np.ndarray) -> float:
    value = float(np.mean(relative_l2(a, b)))
    return value if math.isfinite(value) else math.inf


def choose_substeps(model: "StochasticROM", dataset: Dataset, method: str,
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
        finer one against the data), ``n_trajectories``, ``tried``
        (``[substeps, change, error]`` rows) and ``seconds``.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance!r}")
    if not isinstance(max_substeps, (int, np.integer)) or max_substeps < 1:
        raise ValueError(f"max_substeps must be a positive integer, got {max_substeps!r}")
    start = time.perf_counter()
    # at most max_trajectories, and few enough that a rollout stays near 2^26 values
    per_case = dataset.n_times * int(np.prod(dataset.state_shape))
    n_cases = max(1, min(dataset.n_trajectories, int(max_trajectories), 2**26 // per_case))
    subset = dataset.subset(range(n_cases))
    truth = subset.x
    substeps = 1
    coarse = _deterministic_rollouts(model, subset, method, substeps)
    tried = []
    while True:
        fine = _deterministic_rollouts(model, subset, method, 2 * substeps)
        change, error = _score(coarse, fine), _score(fine, truth)
        tried.append([substeps, change, error])
        converged = change < tolerance * error
        if converged or 2 * substeps > max_substeps:
            break
        substeps, coarse = 2 * substeps, fine
    return {"integrator": method, "substeps": int(substeps), "converged": bool(converged),
            "tolerance": float(tolerance), "change": change, "error": error,
            "n_trajectories": int(subset.n_trajectories), "tried": tried,
            "seconds": time.perf_counter() - start}
