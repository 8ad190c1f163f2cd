"""Post-hoc calibration of a trained model's uncertainty on held-out data.

A trained latent SDE can be over- or under-dispersed: its 90% bands may hold far more or
far fewer than 90% of held-out truths. Like temperature scaling for classifiers, we fit
one scalar ``s > 0`` that multiplies every noise source of a prediction together (the
encoder's initial-state std, the dispersion Ψ and the decoder noise std), chosen so that
the central ``level`` interval covers ``level`` of the *validation* data. The mean
prediction hardly changes; only the spread does, unless the model is chaotic or strongly
nonlinear: there a wider noise fans the paths out sooner and moves their mean. The
``spread`` mode scales instead the decoded paths' distance to their mean (multiplicative
inflation, as ensemble forecasts do): the mean is exactly the uncalibrated one. The scale is stored with the model
(``config.json``: ``calibration``) and used by every later ``predict``.

Fit on validation data, report on test data: calibrating on the test set would make the
reported coverage meaningless.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["fit_uncertainty_scale", "validate_scale", "CALIBRATION_MODES"]

#: what a calibration scale multiplies (:meth:`engine.model.StochasticROM.calibrate`):
#: every noise source of the SDE (``noise``), or the decoded paths' spread about their mean
#: (``spread``: the mean stays the uncalibrated one)
CALIBRATION_MODES = ("noise", "spread")


def _coverage(model: StochasticROM, dataset: Dataset, scale: float, level: float,
              n_samples: int, seed: int, batch_size: int | None) -> float:
    """Share of ``dataset`` inside the central ``level`` interval (quantiles on the device)."""
    model.uncertainty_scale_ = float(scale)
    levels = [0.5 - level / 2, 0.5 + level / 2]
    inside = 0
    for sl, pred in model.predict_dataset(dataset, n_samples, seed, batch_size,
                                          return_samples=False, quantiles=levels):
        lo, hi = pred.quantiles(levels)
        inside += int(np.count_nonzero((dataset.x[sl] >= lo) & (dataset.x[sl] <= hi)))
    return inside / dataset.x.size


def fit_uncertainty_scale(model: StochasticROM, dataset: Dataset, level: float = 0.9,
                          n_samples: int = 64, seed: int = 0, batch_size: int | None = None,
                          bounds: tuple[float, float] = (0.05, 20.0), grid: int = 9,
                          refine: int = 6) -> dict[str, float]:
    """Find the noise scale whose ``level`` interval covers ``level`` of ``dataset``.

    Coverage is scored on a log-spaced grid of scales (plus 1), then the first bracket in
    which it crosses ``level`` is bisected. Every trial uses the same seed (common random
    numbers), so coverage is a smooth function of the scale. It is not always monotone: a
    drift learned on the data can send very noisy paths far away (even to infinity), and
    then coverage drops again; the first crossing is the smallest adequate scale. When no
    grid point reaches ``level``, the scale with the closest coverage is kept.

    Args:
        model: a fitted model (its ``uncertainty_scale_`` is set to the result).
        dataset: held-out (validation) trajectories, scored with the papers' protocol.
        level: the central interval to calibrate, in (0, 1).
        n_samples, seed, batch_size: prediction settings of each trial.
        bounds: the range of scales searched.
        grid, refine: coarse grid points and bisection steps in the bracket.

    Returns:
        ``{"scale", "level", "coverage_before", "coverage_after", "n_trajectories"}``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    cover = lambda s: _coverage(model, dataset, s, level, n_samples, seed, batch_size)  # noqa: E731
    scales = np.unique(np.append(np.geomspace(*bounds, grid), 1.0))
    coverage = np.array([cover(float(s)) for s in scales])
    before = float(coverage[scales == 1.0][0])
    above = np.flatnonzero(coverage >= level)
    if above.size and above[0] > 0:
        lo, hi = math.log(scales[above[0] - 1]), math.log(scales[above[0]])
        for _ in range(refine):
            mid = 0.5 * (lo + hi)
            if cover(math.exp(mid)) < level:
                lo = mid
            else:
                hi = mid
        best = math.exp(hi)
    else:  # already covered at the smallest scale, or never reached
        best = float(scales[0] if above.size else scales[np.argmin(np.abs(coverage - level))])
    after = cover(best)
    model.uncertainty_scale_ = float(best)
    return {"scale": float(best), "level": float(level), "coverage_before": before,
            "coverage_after": float(after), "n_trajectories": int(dataset.n_trajectories)}


def validate_scale(scale: float) -> float:
    """``scale`` as a float, or ``ValueError`` unless it is positive and finite."""
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"uncertainty scale must be a positive finite number, got {scale}")
    return scale
