"""Post-hoc calibration of a trained model's uncertainty on held-out data.

A trained latent SDE can be over- or under-dispersed: its 90% bands may hold far more or
far fewer than 90% of held-out truths. Like temperature scaling for classifiers, we fit
one scalar ``s > 0`` that multiplies every noise source of a prediction together (the
encoder's initial-state std, the dispersion Ψ and the decoder noise std), chosen so that
the central ``level`` interval covers ``level`` of the *validation* data. The mean
prediction hardly changes; only the spread does, unless the model is chaotic or strongly
nonlinear: there a wider noise fans the paths out sooner and moves their mean. The
``spread`` mode scales instead the decoded paths' distance to their mean (multiplicative
inflation, as ensemble forecasts do): the mean is exactly the uncalibrated one. The ``lead``
mode does the same with a factor that depends on the lead time (the time since the
prediction's start), fitted in bins of lead time: a constant factor widens the early lead
times, where a chaotic model's spread is often about right, as much as the late ones. The
scale is stored with the model (``config.json``: ``calibration``) and used by every later
``predict``.

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

__all__ = ["fit_uncertainty_scale", "fit_spread_scale", "fit_lead_time_spread",
           "lead_time_factors",
           "validate_scale", "validate_lead_scales", "CALIBRATION_MODES", "LEAD_TIME_BINS"]

#: what a calibration scale multiplies (:meth:`engine.model.StochasticROM.calibrate`):
#: every noise source of the SDE (``noise``), or the decoded paths' spread about their mean
#: (``spread``: the mean stays the uncalibrated one), or that spread by a factor that
#: depends on the lead time (``lead``)
CALIBRATION_MODES = ("noise", "spread", "lead")
#: lead-time bins of the ``lead`` mode (fewer when the validation grid is shorter)
LEAD_TIME_BINS = 8
#: the range of every calibration factor
SCALE_BOUNDS = (0.05, 20.0)


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
                          bounds: tuple[float, float] = SCALE_BOUNDS, grid: int = 9,
                          refine: int = 6) -> dict[str, float]:
    """Find the noise scale whose ``level`` interval covers ``level`` of ``dataset`` (the
    ``noise`` mode: the model must be in it, ``uncertainty_mode_ == "noise"``).

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


def _required_spread(x: np.ndarray, mean: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray) -> np.ndarray:
    """The smallest spread factor ``s`` for which ``x`` lies in ``[m + s (lo − m),
    m + s (hi − m)]`` (the interval of paths scaled about their mean ``m``): ``inf`` where
    the paths never reach ``x``'s side, 0 where ``x`` is the mean. Same shapes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(hi > mean, (x - mean) / (hi - mean), np.inf)
        below = np.where(lo < mean, (mean - x) / (mean - lo), np.inf)
    need = np.where(x > mean, above, np.where(x < mean, below, 0.0))
    return need


def _required_spreads(model: StochasticROM, dataset: Dataset, level: float, n_samples: int,
                      seed: int, batch_size: int | None) -> np.ndarray:
    """``(T, everything else)``: :func:`_required_spread` of every validation value, by
    output time, from one uncalibrated prediction (scaling the paths about their mean
    scales their quantiles about it too, so no prediction has to be made again)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    model.uncertainty_scale_, model.uncertainty_mode_ = 1.0, "noise"
    levels = [0.5 - level / 2, 0.5 + level / 2]
    need = np.empty(dataset.x.shape, dtype=np.float64)
    for sl, pred in model.predict_dataset(dataset, n_samples, seed, batch_size,
                                          return_samples=False, quantiles=levels):
        lo, hi = pred.quantiles(levels)
        need[sl] = _required_spread(dataset.x[sl], pred.mean, lo, hi)
    return np.moveaxis(need, 1, 0).reshape(dataset.n_times, -1)


def _covering_factor(need: np.ndarray, level: float) -> float:
    """The factor that covers ``level`` of the values whose required factors are ``need``,
    within :data:`SCALE_BOUNDS` (the upper bound where the paths never reach the values)."""
    factor = float(np.quantile(need.ravel(), level, method="higher"))
    low, high = SCALE_BOUNDS
    return float(np.clip(factor if np.isfinite(factor) else high, low, high))


def fit_spread_scale(model: StochasticROM, dataset: Dataset, level: float = 0.9,
                     n_samples: int = 64, seed: int = 0,
                     batch_size: int | None = None) -> dict[str, float]:
    """The ``spread`` mode's factor: the paths' distance to their mean scaled so that the
    central ``level`` interval covers ``level`` of ``dataset``, exactly, from one
    uncalibrated prediction (the model is left uncalibrated).

    Returns:
        ``{"scale", "level", "coverage_before", "coverage_after", "n_trajectories"}``.
    """
    need = _required_spreads(model, dataset, level, n_samples, seed, batch_size)
    scale = _covering_factor(need, level)
    return {"scale": scale, "level": float(level),
            "coverage_before": float(np.mean(need <= 1.0)),
            "coverage_after": float(np.mean(need <= scale)),
            "n_trajectories": int(dataset.n_trajectories)}


def fit_lead_time_spread(model: StochasticROM, dataset: Dataset, level: float = 0.9,
                         n_samples: int = 64, seed: int = 0, batch_size: int | None = None,
                         bins: int = LEAD_TIME_BINS) -> dict:
    """Spread factors by lead time whose ``level`` interval covers ``level`` of ``dataset``
    in every bin of lead time (the ``lead`` mode; the model is left uncalibrated).

    As :func:`fit_spread_scale`, from one uncalibrated prediction, one factor per bin: the
    bins split the validation horizon into ``bins`` equal spans of lead time (the first
    snapshot, where the encoder sets the spread, is a bin of its own);
    :func:`lead_time_factors` interpolates between their centres, and holds the last factor
    beyond the validation horizon.

    Returns:
        ``{"scale"`` (the single factor over all lead times, for reference),
        ``"lead_times"``, ``"lead_scales"``, ``"level"``, ``"coverage_before"``,
        ``"coverage_after"``, ``"n_trajectories"}``.
    """
    if not (isinstance(bins, (int, np.integer)) and 1 <= bins <= 256):
        raise ValueError(f"bins must be an integer in 1..256, got {bins!r}")
    by_time = _required_spreads(model, dataset, level, n_samples, seed, batch_size)
    lead = dataset.t - dataset.t[0]
    n_bins = int(min(bins, max(1, dataset.n_times - 1)))
    edges = np.linspace(lead[1] if dataset.n_times > 1 else 0.0, lead[-1], n_bins + 1)
    groups = [np.array([0])] + [
        np.flatnonzero((lead >= a) & ((lead < b) if k < n_bins - 1 else (lead <= b)) & (lead > 0))
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
    groups = [idx for idx in groups if idx.size]
    lead_times = [float(lead[idx].mean()) for idx in groups]
    lead_scales = [_covering_factor(by_time[idx], level) for idx in groups]
    factors = lead_time_factors(lead, lead_times, lead_scales)[:, None]
    return {"scale": _covering_factor(by_time, level),
            "lead_times": lead_times, "lead_scales": lead_scales, "level": float(level),
            "coverage_before": float(np.mean(by_time <= 1.0)),
            "coverage_after": float(np.mean(by_time <= factors)),
            "n_trajectories": int(dataset.n_trajectories)}


def lead_time_factors(lead: np.ndarray, lead_times: list[float],
                      lead_scales: list[float]) -> np.ndarray:
    """The ``lead`` mode's spread factor at lead times ``lead`` ``(T,)``: linear between the
    bins' centres, the end values held outside them."""
    return np.interp(np.asarray(lead, dtype=np.float64), lead_times, lead_scales)


def validate_lead_scales(calibration: dict) -> tuple[list[float], list[float]]:
    """The ``lead`` mode's ``(lead_times, lead_scales)`` of a stored calibration, or
    ``ValueError``: equal-length lists (at most 257) of increasing lead times >= 0 and
    positive finite factors."""
    times, scales = calibration.get("lead_times"), calibration.get("lead_scales")
    if not (isinstance(times, list) and isinstance(scales, list)
            and 1 <= len(times) == len(scales) <= 257):
        raise ValueError("calibration mode 'lead' needs lists lead_times and lead_scales of "
                         "equal length (1 to 257)")
    try:
        t = np.asarray(times, dtype=np.float64)
        s = np.asarray(scales, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"calibration lead times and scales must be numbers ({exc})") from None
    if not (np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) > 0)):
        raise ValueError("calibration lead_times must be increasing finite numbers >= 0")
    for value in s:
        validate_scale(value)
    return t.tolist(), s.tolist()


def validate_scale(scale: float) -> float:
    """``scale`` as a float, or ``ValueError`` unless it is positive and finite."""
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"uncertainty scale must be a positive finite number, got {scale}")
    return scale
