"""Post-hoc calibration of a trained model's uncertainty on held-out data.

A trained latent SDE can be over- or under-dispersed: its 90% bands may hold far more or
far fewer than 90% of held-out truths. Like temperature scaling for classifiers, we fit
one scalar ``s > 0`` that multiplies every noise source of a prediction together (the
encoder's initial-state std, the dispersion Ψ and the decoder noise std), chosen so that
the central ``level`` interval covers ``level`` of the *validation* data. The mean
prediction hardly changes; only the spread does. The scale is stored with the model
(``config.json``: ``calibration``) and used by every later ``predict``.

Fit on validation data, report on test data: calibrating on the test set would make the
reported coverage meaningless.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset
from engine.metrics import interval_coverage

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["fit_uncertainty_scale", "validate_scale"]


def _coverage(model: "StochasticROM", dataset: Dataset, scale: float, level: float,
              n_samples: int, seed: int, batch_size: int) -> float:
    from engine.model import ExtrapolationWarning

    model.uncertainty_scale_ = float(scale)
    inside, total = 0.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        for start in range(0, dataset.n_trajectories, batch_size):
            sl = slice(start, start + batch_size)
            x0 = dataset.x[sl, : model.n_win] if model.n_win > 1 else dataset.x[sl, 0]
            pred = model.predict(x0, dataset.mu[sl], dataset.t, dataset.f[sl],
                                 n_samples=n_samples, seed=seed + start)
            n = dataset.x[sl].size
            inside += interval_coverage(pred.samples, dataset.x[sl], level) * n
            total += n
    return inside / total


def fit_uncertainty_scale(model: "StochasticROM", dataset: Dataset, level: float = 0.9,
                          n_samples: int = 64, seed: int = 0, batch_size: int = 8,
                          bounds: tuple[float, float] = (0.02, 50.0),
                          iterations: int = 14) -> dict[str, float]:
    """Find the noise scale whose ``level`` interval covers ``level`` of ``dataset``.

    Bisection in log-scale with common random numbers (the same seed at every trial, so
    coverage is a smooth, nearly monotone function of the scale).

    Args:
        model: a fitted model (its ``uncertainty_scale_`` is set to the result).
        dataset: held-out (validation) trajectories, scored with the papers' protocol.
        level: the central interval to calibrate, in (0, 1).
        n_samples, seed, batch_size: prediction settings of each trial.
        bounds: the search range of the scale.
        iterations: bisection steps (the scale is found to a factor of
            ``(hi/lo) ** (1 / 2**iterations)``).

    Returns:
        ``{"scale", "level", "coverage_before", "coverage_after", "n_trajectories"}``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = (math.log(b) for b in bounds)
    cover = lambda s: _coverage(model, dataset, s, level, n_samples, seed, batch_size)  # noqa: E731
    before = cover(1.0)
    best = 1.0
    if abs(before - level) > 0.005:
        if cover(math.exp(lo)) > level:
            best = math.exp(lo)
        elif cover(math.exp(hi)) < level:
            best = math.exp(hi)
        else:
            for _ in range(iterations):
                mid = 0.5 * (lo + hi)
                if cover(math.exp(mid)) < level:
                    lo = mid
                else:
                    hi = mid
            best = math.exp(0.5 * (lo + hi))
    after = cover(best)
    model.uncertainty_scale_ = float(best)
    return {"scale": float(best), "level": float(level), "coverage_before": float(before),
            "coverage_after": float(after), "n_trajectories": int(dataset.n_trajectories)}


def validate_scale(scale: float) -> float:
    """``scale`` as a float, or ``ValueError`` unless it is positive and finite."""
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"uncertainty scale must be a positive finite number, got {scale}")
    return scale
