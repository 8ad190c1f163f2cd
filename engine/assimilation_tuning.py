"""Choose the prior scale of the initial-state fit (``assimilate_prior_scale``) by forecasts.

:mod:`engine.assimilation` fits the initial latent state to a window of noisy snapshots with
the encoder's ``q(z0)`` as the prior, its variance multiplied by a scale ``s``. An encoder
trained on noisy data can be overconfident (on Lorenz-63: std ~0.2 against errors of
0.4-0.8), and then ``s = 1`` holds the fit near the encoder's own state. The scale is chosen
here by what it is for, the forecast after the window:

- forecasts start from windows of ``n_win`` snapshots spread over the given trajectories
  (the training ones do: the scale is not a weight, and the snapshots after each window play
  no part in its fit);
- each is scored by the RMSE of its predictive mean against the snapshots of the next
  ``horizon`` time units (noisy snapshots are fine: their noise is independent of the
  forecast, so it adds the same amount to every scale's mean square error);
- the smallest scale whose forecasts are not worse than the best scale's by more than
  one standard error of their paired difference wins (Breiman's one-standard-error rule: a
  tighter prior is the more conservative fit, and it is kept unless a looser one forecasts
  measurably better on the same windows).

Every scale forecasts from the same windows with the same random draws, so the scores differ
through the scale alone, and the paired differences are far less noisy than the scores
themselves (a chaotic forecast's error varies from window to window much more than from one
scale to the next).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["choose_prior_scale", "forecast_starts", "one_standard_error_choice", "DEFAULT_SCALES", "STANDARD_ERRORS"]

#: the scales tried by default (the encoder's variance × 1 … × 10⁴)
DEFAULT_SCALES = (1.0, 10.0, 100.0, 1000.0, 10000.0)
#: a looser prior must forecast better than the tightest near-best one by this many standard
#: errors of the paired difference to be preferred
STANDARD_ERRORS = 1.0
#: bounds of one search (each scale forecasts from every window)
MAX_SCALES = 16
MAX_FORECASTS = 1000
#: the scale's bounds, as ``engine.config`` checks ``assimilate_prior_scale``
SCALE_BOUNDS = (1e-6, 1e12)


def _check_arguments(scales: Sequence[float], n_forecasts: int, n_samples: int,
                     standard_errors: float) -> list[float]:
    values = [float(s) for s in scales]
    if not 1 <= len(values) <= MAX_SCALES:
        raise ValueError(f"give 1 to {MAX_SCALES} prior scales, got {len(values)}")
    for value in values:
        if not (math.isfinite(value) and SCALE_BOUNDS[0] <= value <= SCALE_BOUNDS[1]):
            raise ValueError(f"prior scales must be numbers in [{SCALE_BOUNDS[0]:g}, "
                             f"{SCALE_BOUNDS[1]:g}], got {value!r}")
    if isinstance(n_forecasts, bool) or not isinstance(n_forecasts, (int, np.integer)) or not (
            1 <= n_forecasts <= MAX_FORECASTS):
        raise ValueError(f"n_forecasts must be an integer in 1..{MAX_FORECASTS}, got {n_forecasts!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or not (
            1 <= n_samples <= 4096):
        raise ValueError(f"n_samples must be an integer in 1..4096, got {n_samples!r}")
    if not (math.isfinite(standard_errors) and 0 <= standard_errors <= 10):
        raise ValueError(f"standard_errors must be a number in [0, 10], got {standard_errors!r}")
    return sorted(set(values))


def forecast_starts(n_trajectories: int, n_times: int, window: int, lead: int,
                    n_forecasts: int) -> list[tuple[int, int]]:
    """``(trajectory, first snapshot)`` of each forecast: about ``n_forecasts`` windows of
    ``window`` snapshots followed by ``lead`` scored ones, evenly spread over each
    trajectory (and over the trajectories when there are more of them than forecasts)."""
    last = n_times - window - lead
    if last < 0:
        raise ValueError(f"the trajectories hold {n_times} snapshots, too few for a window of "
                         f"{window} and a forecast of {lead} more")
    if n_trajectories >= n_forecasts:
        picked = np.unique(np.linspace(0, n_trajectories - 1, n_forecasts).round().astype(int))
        return [(int(i), 0) for i in picked]
    per = -(-n_forecasts // n_trajectories)
    firsts = np.unique(np.linspace(0, last, per).round().astype(int))
    return [(i, int(s)) for i in range(n_trajectories) for s in firsts]


def one_standard_error_choice(errors: np.ndarray, standard_errors: float = STANDARD_ERRORS
                              ) -> tuple[int, np.ndarray, np.ndarray]:
    """The first row of ``errors`` ``(K, M)`` (K candidates in order of preference, scored
    on the same M cases) whose mean exceeds the best row's by at most ``standard_errors``
    standard errors of their paired difference.

    Returns:
        ``(index, excess, excess_se)``: the chosen row and, per row, the mean and standard
        error of its difference from the best row (non-finite scores count as infinite).
    """
    errors = np.where(np.isfinite(errors), errors, np.inf)
    mean = errors.mean(axis=1)
    if not np.isfinite(mean).any():
        raise ValueError("every prior scale gave a non-finite forecast")
    best = int(np.argmin(mean))
    excess = errors - errors[best]  # paired: the same cases
    excess_mean = excess.mean(axis=1)
    n_cases = errors.shape[1]
    excess_se = (excess.std(axis=1, ddof=1) / math.sqrt(n_cases) if n_cases > 1
                 else np.zeros(errors.shape[0]))
    near = np.isfinite(excess_mean) & (excess_mean <= standard_errors * np.nan_to_num(excess_se))
    return int(np.flatnonzero(near)[0]), excess_mean, excess_se  # the best row is always near


def choose_prior_scale(model: StochasticROM, dataset: Dataset,
                       horizon: float | None = None,
                       scales: Sequence[float] = DEFAULT_SCALES, n_forecasts: int = 24,
                       n_samples: int = 32, standard_errors: float = STANDARD_ERRORS,
                       seed: int = 0) -> dict:
    """Forecast from windows of ``dataset`` with each prior scale and pick one (module
    docstring). The model's ``assimilate_prior_scale`` is left as it was.

    Args:
        model: a fitted :class:`~engine.model.StochasticROM`, checked compatible with
            ``dataset`` (:meth:`~engine.model.StochasticROM.tune_assimilation`), with ``n_win > 1``,
            ``assimilate_iterations > 0`` and a Gaussian likelihood.
        dataset: trajectories ``(N, T, *S)`` of the model's system (its training ones do).
        horizon: time scored after each window (default: ``4 × n_win`` data steps).
        scales: the prior scales tried.
        n_forecasts: about how many windows to forecast from.
        n_samples: sample paths per forecast (the predictive mean's).
        standard_errors: the smallest scale whose mean RMSE exceeds the best one's by at
            most this many standard errors of their paired difference wins (0: the best).
        seed: the forecasts' random draws (the same for every scale).

    Returns:
        ``{"scale", "scales", "rmse" (mean over forecasts, per scale), "rmse_median",
        "excess" and "excess_se" (per scale: the mean and standard error of its forecasts'
        RMSE minus the best scale's on the same windows), "horizon", "lead_steps",
        "n_forecasts", "n_samples", "standard_errors", "seconds"}``.
    """
    if not (model.n_win > 1 and model.assimilate_iterations > 0 and model.likelihood == "gaussian"):
        raise ValueError("the prior scale only matters to a model that fits its initial state "
                         "to a window of snapshots: n_win > 1, assimilate_iterations > 0 and "
                         f"a Gaussian likelihood (this one: n_win={model.n_win}, "
                         f"assimilate_iterations={model.assimilate_iterations}, "
                         f"likelihood={model.likelihood!r})")
    values = _check_arguments(scales, n_forecasts, n_samples, standard_errors)
    t = np.asarray(dataset.t, dtype=np.float64)
    dt = float(np.median(np.diff(t)))
    window = int(model.n_win)
    if horizon is None:
        lead = 4 * window
    else:
        if not (math.isfinite(horizon) and horizon > 0):
            raise ValueError(f"horizon must be a positive time, got {horizon!r}")
        lead = max(1, int(round(horizon / dt)))
    starts = forecast_starts(dataset.x.shape[0], t.size, window, lead, n_forecasts)
    began, kept = time.perf_counter(), model.assimilate_prior_scale
    errors = np.empty((len(values), len(starts)))
    try:
        for k, scale in enumerate(values):
            model.assimilate_prior_scale = scale
            for j, (i, s) in enumerate(starts):
                piece = slice(s, s + window + lead)
                pred = model.predict(dataset.x[i:i + 1, s:s + window], dataset.mu[i:i + 1],
                                     t[piece], dataset.f[i:i + 1, piece], n_samples=n_samples,
                                     seed=seed + j, return_samples=False)
                miss = pred.mean[0, window:] - dataset.x[i, s + window:s + window + lead]
                errors[k, j] = math.sqrt(float(np.mean(miss ** 2)))
    finally:
        model.assimilate_prior_scale = kept
    errors = np.where(np.isfinite(errors), errors, np.inf)
    chosen, excess_mean, excess_se = one_standard_error_choice(errors, standard_errors)
    mean = errors.mean(axis=1)
    return {"scale": values[chosen], "scales": values, "rmse": [float(m) for m in mean],
            "rmse_median": [float(m) for m in np.median(errors, axis=1)],
            "excess": [float(v) for v in excess_mean], "excess_se": [float(v) for v in excess_se],
            "horizon": lead * dt, "lead_steps": lead, "n_forecasts": len(starts),
            "n_samples": int(n_samples), "standard_errors": float(standard_errors),
            "seconds": time.perf_counter() - began}
