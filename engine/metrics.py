"""Accuracy and calibration metrics of probabilistic predictions (numpy).

Conventions: ``truth`` is ``(B, T, *S)``; a predictive mean has the same shape; samples
are ``(B, n, T, *S)`` with the sample axis second.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relative_l2", "scaled_l2", "rmse", "crps", "interval_coverage", "summarize", "MetricAccumulator",
           "energy_score", "ensemble_scores", "oracle_ensemble_scores", "valid_prediction_time",
           "model_free_baselines"]


def _flat_state(a: np.ndarray, lead: int) -> np.ndarray:
    return a.reshape(*a.shape[:lead], -1)


def relative_l2(mean: np.ndarray, truth: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-step relative error ``‖mean − truth‖₂ / ‖truth‖₂`` over the state, ``(B, T)``."""
    mean, truth = np.asarray(mean), np.asarray(truth)
    if mean.shape != truth.shape:
        raise ValueError(f"relative_l2: shapes differ, mean {mean.shape} vs truth {truth.shape}")
    diff = np.linalg.norm(_flat_state(mean - truth, 2), axis=-1)
    norm = np.linalg.norm(_flat_state(truth, 2), axis=-1)
    return diff / np.maximum(norm, eps)


def scaled_l2(mean: np.ndarray, truth: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-step error over the state scaled by the truth's size over the whole horizon,
    ``‖mean_t − truth_t‖₂ / √(mean_s ‖truth_s‖₂²)`` per trajectory, ``(B, T)``.

    Unlike :func:`relative_l2` it stays meaningful where the truth passes near zero (a
    field that starts at rest, a forcing that switches off): the scale is the trajectory's
    root-mean-square norm, not the norm at that instant.
    """
    mean, truth = np.asarray(mean), np.asarray(truth)
    if mean.shape != truth.shape:
        raise ValueError(f"scaled_l2: shapes differ, mean {mean.shape} vs truth {truth.shape}")
    diff = np.linalg.norm(_flat_state(mean - truth, 2), axis=-1)
    scale = np.sqrt(np.mean(np.sum(_flat_state(truth, 2).astype(np.float64) ** 2, axis=-1),
                            axis=1, keepdims=True))
    return diff / np.maximum(scale, eps)


def rmse(mean: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error over every entry."""
    return float(np.sqrt(np.mean((np.asarray(mean) - np.asarray(truth)) ** 2)))


def crps(samples: np.ndarray, truth: np.ndarray) -> float:
    """Mean continuous ranked probability score of an ensemble, over every entry.

    Uses the sorted-sample form of ``E|X − y| − ½ E|X − X'|`` (exact for the empirical
    distribution of the n samples), in the units of the state.
    """
    samples, truth = np.asarray(samples, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if samples.shape[:1] + samples.shape[2:] != truth.shape:
        raise ValueError(f"crps: samples {samples.shape} do not match truth {truth.shape}")
    n = samples.shape[1]
    xs = np.sort(samples, axis=1)
    term1 = np.abs(xs - truth[:, None]).mean(axis=1)
    # ½ E|X − X'| = (1/n²) Σ_i (2i − n − 1) x_(i)
    weights = (2 * np.arange(1, n + 1) - n - 1).reshape((1, n) + (1,) * (xs.ndim - 2))
    term2 = (weights * xs).sum(axis=1) / (n * n)
    return float(np.mean(term1 - term2))


def interval_coverage(samples: np.ndarray, truth: np.ndarray, level: float = 0.9) -> float:
    """Share of truth entries inside the central ``level`` interval of the samples."""
    samples, truth = np.asarray(samples), np.asarray(truth)
    if not 0 < level < 1:
        raise ValueError(f"interval_coverage: level must be in (0, 1), got {level}")
    lo = np.quantile(samples, 0.5 - level / 2, axis=1)
    hi = np.quantile(samples, 0.5 + level / 2, axis=1)
    return float(np.mean((truth >= lo) & (truth <= hi)))


def summarize(mean: np.ndarray, samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The evaluation summary of ``srom evaluate``."""
    err = relative_l2(mean, truth)
    return {
        "rel_l2_mean": float(err.mean()),
        "rel_l2_std": float(err.std()),
        "scaled_l2_mean": float(scaled_l2(mean, truth).mean()),
        "rmse": rmse(mean, truth),
        "crps": crps(samples, truth),
        "coverage_50": interval_coverage(samples, truth, 0.5),
        "coverage_90": interval_coverage(samples, truth, 0.9),
    }


class MetricAccumulator:
    """:func:`summarize` over batches of trajectories, without holding every sample.

    Each batch's samples are sorted once (in torch, float32, on the samples' device); CRPS
    and both interval coverages are read from the sorted samples (quantiles by linear
    interpolation, as ``np.quantile``), and only sums are kept between batches.
    """

    LEVELS = (0.5, 0.9)

    def __init__(self):
        self._errors: list[np.ndarray] = []
        self._scaled: list[np.ndarray] = []
        self._sq, self._crps, self._count = 0.0, 0.0, 0
        self._inside = {level: 0.0 for level in self.LEVELS}

    def update(self, mean, samples, truth) -> None:
        """Add a batch: ``mean`` and ``truth`` ``(B, T, *S)``, ``samples`` ``(B, n, T, *S)``
        (numpy arrays or torch tensors)."""
        import torch

        samples = torch.as_tensor(samples)
        device = samples.device
        mean = torch.as_tensor(mean, device=device, dtype=torch.float64)
        truth64 = torch.as_tensor(truth, device=device, dtype=torch.float64)
        mean_np, truth_np = mean.cpu().numpy(), truth64.cpu().numpy()
        self._errors.append(relative_l2(mean_np, truth_np).ravel())
        self._scaled.append(scaled_l2(mean_np, truth_np).ravel())
        self._sq += float(((mean - truth64) ** 2).sum())
        n = samples.shape[1]
        xs = samples.float().flatten(2).sort(dim=1).values  # (B, n, T·|S|)
        y = truth64.float().flatten(1)[:, None]  # (B, 1, T·|S|)
        term1 = (xs - y).abs().mean(1)
        weights = (2 * torch.arange(1, n + 1, device=device) - n - 1).float().view(1, n, 1)
        term2 = (weights * xs).sum(1) / (n * n)
        self._crps += float((term1 - term2).double().sum())
        from engine.prediction import sorted_quantiles

        for level in self.LEVELS:
            lo, hi = sorted_quantiles(xs, np.array([0.5 - level / 2, 0.5 + level / 2]), dim=1)
            self._inside[level] += float(((y[:, 0] >= lo) & (y[:, 0] <= hi)).sum())
        self._count += y[:, 0].numel()

    def result(self) -> dict[str, float]:
        """The same keys as :func:`summarize`."""
        err = np.concatenate(self._errors)
        return {
            "rel_l2_mean": float(err.mean()),
            "rel_l2_std": float(err.std()),
            "scaled_l2_mean": float(np.concatenate(self._scaled).mean()),
            "rmse": float(np.sqrt(self._sq / self._count)),
            "crps": self._crps / self._count,
            "coverage_50": self._inside[0.5] / self._count,
            "coverage_90": self._inside[0.9] / self._count,
        }



# ------------------------------------------------------------ stochastic and chaotic truth
def energy_score(samples: np.ndarray, truth: np.ndarray) -> float:
    """Mean energy score ``E‖X − y‖ − ½ E‖X − X'‖`` over cases and time steps, the norm
    over the whole state (the multivariate CRPS; lower is better, state units).

    Args:
        samples: ``(B, n, T, *S)`` predictive samples.
        truth: ``(B, T, *S)``.
    """
    import torch

    x = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(truth), dtype=torch.float64)
    if x.shape[:1] + x.shape[2:] != y.shape:
        raise ValueError(f"energy_score: samples {tuple(x.shape)} do not match truth {tuple(y.shape)}")
    b, n, t = x.shape[:3]
    x = x.reshape(b, n, t, -1).transpose(1, 2)  # (B, T, n, D)
    y = y.reshape(b, t, 1, -1)
    term1 = torch.linalg.vector_norm(x - y, dim=-1).mean(-1)
    term2 = torch.cdist(x.reshape(b * t, n, -1), x.reshape(b * t, n, -1)).mean((-1, -2)) / 2
    return float((term1 - term2.reshape(b, t)).mean())


def _relative_l2_where_defined(mean: np.ndarray, truth: np.ndarray,
                               floor: float = 1e-2) -> tuple[float, float, float]:
    """Mean per-step relative L2 over the steps whose truth is not ~0 (its norm at least
    ``floor`` × the case's RMS norm: a state that starts at exactly zero has no relative
    error there), the standard deviation over cases of each case's mean, and the share of
    steps left out."""
    err = relative_l2(mean, truth)
    norm = np.linalg.norm(np.asarray(truth).reshape(*truth.shape[:2], -1), axis=-1)
    rms = np.sqrt(np.mean(norm**2, axis=1, keepdims=True))
    defined = norm >= floor * rms
    per_case = np.array([e[d].mean() for e, d in zip(err, defined) if d.any()])
    return float(err[defined].mean()), float(per_case.std()), float(1.0 - defined.mean())


def ensemble_scores(mean: np.ndarray, samples: np.ndarray, realisations: np.ndarray,
                    truth_mean: np.ndarray | None = None) -> dict:
    """Scores of a probabilistic prediction against an *ensemble* of truth realisations
    (same initial state, parameters and forcing; other noise), which is what a stochastic
    truth is: one noisy path cannot be matched even by a perfect model.

    Args:
        mean: ``(B, T, *S)`` predictive mean.
        samples: ``(B, n, T, *S)`` predictive samples.
        realisations: ``(B, R, T, *S)`` truth realisations.
        truth_mean: ``(B, T, *S)`` the truth's exact mean where known (default: the
            realisations' mean).

    Returns:
        ``rel_l2_vs_ensemble_mean`` (per-step relative L2 of the predictive mean against the
        truth's mean, averaged over cases and steps, leaving out steps where that mean is
        ~0: ``rel_l2_steps_left_out`` says how many), its spread over cases
        ``rel_l2_vs_ensemble_mean_case_std``, ``crps`` and ``energy_score``
        (averaged over the realisations), ``coverage_50`` / ``coverage_90`` (share of the
        realisations' entries inside the central intervals of the samples), and
        ``rel_l2_vs_one_realisation`` (the old score, against the first realisation alone).
    """
    mean, samples, real = np.asarray(mean), np.asarray(samples), np.asarray(realisations)
    if real.ndim < 3 or real.shape[:1] + real.shape[2:] != mean.shape:
        raise ValueError(f"ensemble_scores: realisations {real.shape} do not match mean {mean.shape}")
    r = real.shape[1]
    centre = real.mean(axis=1) if truth_mean is None else np.asarray(truth_mean)
    headline, case_std, left_out = _relative_l2_where_defined(mean, centre)
    one = _relative_l2_where_defined(mean, real[:, 0])[0]
    out = {
        "rel_l2_vs_ensemble_mean": headline,
        "rel_l2_vs_ensemble_mean_case_std": case_std,
        "rel_l2_steps_left_out": left_out,
        "rel_l2_vs_one_realisation": one,
        "crps": float(np.mean([crps(samples, real[:, i]) for i in range(r)])),
        "energy_score": float(np.mean([energy_score(samples, real[:, i]) for i in range(r)])),
    }
    for level in (0.5, 0.9):
        lo = np.quantile(samples, 0.5 - level / 2, axis=1)[:, None]
        hi = np.quantile(samples, 0.5 + level / 2, axis=1)[:, None]
        out[f"coverage_{int(round(level * 100))}"] = float(np.mean((real >= lo) & (real <= hi)))
    out["n_realisations"] = int(r)
    return out


def oracle_ensemble_scores(realisations: np.ndarray) -> dict:
    """What a perfect model scores with the same finite sizes: half the realisations act as
    the predictive samples, scored against the other half (``ensemble_scores``); the floor
    that the finite ensembles leave (sampling noise of the means, interval edges)."""
    real = np.asarray(realisations)
    half = real.shape[1] // 2
    if half < 2:
        raise ValueError("oracle_ensemble_scores: needs at least 4 realisations")
    predicted = real[:, :half]
    return ensemble_scores(predicted.mean(axis=1), predicted, real[:, half:2 * half])


def valid_prediction_time(prediction: np.ndarray, truth: np.ndarray, t: np.ndarray,
                          threshold: float = 0.3) -> np.ndarray:
    """Valid prediction time of each case: how long the prediction stays within
    ``threshold`` normalised RMSE of the truth (Vlachas et al. 2020; the dysts chaos
    benchmark), before the first step where it does not.

    The error at step k is ``√(mean_s (pred − truth)² / mean_s σ_s²)`` with ``σ_s`` the
    standard deviation of the truth's component s over the cases and time steps.

    Args:
        prediction, truth: ``(B, T, *S)``; t: ``(T,)`` times.

    Returns:
        ``(B,)`` times since ``t[0]`` (the whole span when the error never passes).
    """
    pred, truth, t = np.asarray(prediction), np.asarray(truth), np.asarray(t, dtype=np.float64)
    if pred.shape != truth.shape or truth.ndim < 2 or truth.shape[1] != t.size:
        raise ValueError(f"valid_prediction_time: prediction {pred.shape}, truth {truth.shape} "
                         f"and t {t.shape} do not match")
    b, n_t = truth.shape[:2]
    p, y = pred.reshape(b, n_t, -1), truth.reshape(b, n_t, -1)
    scale = float(np.mean(y.reshape(-1, y.shape[-1]).var(axis=0)))
    error = np.sqrt(np.mean((p - y) ** 2, axis=-1) / max(scale, 1e-300))  # (B, T)
    out = np.empty(b)
    for i in range(b):
        bad = np.flatnonzero(~(error[i] <= threshold))  # NaN counts as past the threshold
        out[i] = (t[bad[0]] if bad.size else t[-1]) - t[0]
    return out


def model_free_baselines(train_x: np.ndarray, test_x: np.ndarray,
                         last_seen: np.ndarray | None = None) -> dict[str, float]:
    """Scores of two predictions that need no model, to put a model's score in context.

    - ``average_state``: the mean training state (over trajectories and times) at every
      test time;
    - ``last_seen_state``: each test trajectory's last seen state held for the whole horizon
      (``last_seen``, e.g. the last training frame of a video cut in time; default the test
      trajectory's first snapshot, which the model encodes).

    Args:
        train_x: ``(N, T, *S)`` training states.
        test_x: ``(B, T', *S)`` held-out states.
        last_seen: ``(B, *S)`` states to hold, or ``None``.

    Returns:
        ``{name}_rel_l2`` (per-step relative L2 averaged over cases and steps, as
        ``StochasticROM.evaluate``'s ``rel_l2_mean``) and ``{name}_rmse`` for both.
    """
    test_x = np.asarray(test_x, dtype=np.float64)
    hold = test_x[:, 0] if last_seen is None else np.asarray(last_seen, dtype=np.float64)
    if hold.shape != (test_x.shape[0],) + test_x.shape[2:]:
        raise ValueError(f"last_seen must be (B, *S) = {(test_x.shape[0],) + test_x.shape[2:]}, "
                         f"got {hold.shape}")
    average = np.asarray(train_x, dtype=np.float64).mean(axis=(0, 1))
    out = {}
    for name, guess in (("average_state", np.broadcast_to(average, test_x.shape)),
                        ("last_seen_state", np.broadcast_to(hold[:, None], test_x.shape))):
        out[f"{name}_rel_l2"] = float(relative_l2(guess, test_x).mean())
        out[f"{name}_rmse"] = rmse(guess, test_x)
    return out
