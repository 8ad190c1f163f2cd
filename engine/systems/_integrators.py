"""Batched fixed-step time integrators shared by the low-dimensional systems (numpy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.forcing import Forcing, evaluate_forcings
from engine.systems.progress import report_progress

Drift = Callable[[float, np.ndarray, np.ndarray], np.ndarray]


def substep_counts(t: np.ndarray, max_step: float) -> np.ndarray:
    """(T-1,) number of equal substeps per output interval so that each is <= max_step."""
    return np.maximum(1, np.ceil(np.diff(t) / max_step - 1e-9)).astype(int)


def rk4_additive(
    drift: Drift,
    x0: np.ndarray,
    t: np.ndarray,
    max_step: float,
    rng: np.random.Generator | None = None,
    sigma: np.ndarray | float = 0.0,
    forcings: Sequence[Sequence[Forcing]] | None = None,
) -> np.ndarray:
    """Integrate dx = drift(t, x, f(t)) dt + sigma dW for N trajectories at once.

    Each substep is a classical RK4 step of the drift followed by the exact additive-noise
    increment sigma·ΔW (a Lie splitting: 4th order without noise, strong order 1 for additive
    noise). With ``sigma == 0`` no random numbers are drawn.

    Args:
        drift: ``drift(t, x, f)`` with x (N, D), f (N, F) -> (N, D).
        x0: (N, D) initial states at ``t[0]``.
        t: (T,) output times.
        max_step: largest substep.
        rng: the random stream (needed when sigma > 0).
        sigma: diffusion std, broadcastable to (N, D).
        forcings: N sequences of F forcings, evaluated at every RK stage time.

    Returns:
        (N, T, D) states on ``t``.
    """
    x = np.array(x0, dtype=np.float64)
    n, d = x.shape
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n, d))
    noisy = bool(np.any(sigma != 0))
    if noisy and rng is None:
        raise ValueError("rk4_additive: sigma > 0 needs a random stream: pass rng")
    counts = substep_counts(t, max_step)
    # All stage times: for each substep its start, midpoint (and the final end point).
    stages = [np.array([t[0]])]
    for i, m in enumerate(counts):
        h = (t[i + 1] - t[i]) / m
        stages.append(t[i] + h * (np.arange(2 * m) + 1) / 2.0)
    stage_times = np.concatenate(stages)
    if forcings is not None and len(forcings[0]):
        fvals = evaluate_forcings(forcings, stage_times)  # (N, M, F)
    else:
        fvals = np.zeros((n, stage_times.size, 0))
    out = np.empty((n, t.size, d))
    out[:, 0] = x
    k = 0  # index into stage_times of the current substep start
    for i, m in enumerate(counts):
        h = (t[i + 1] - t[i]) / m
        for j in range(m):
            ts = t[i] + j * h
            f0, fm, f1 = fvals[:, k], fvals[:, k + 1], fvals[:, k + 2]
            k1 = drift(ts, x, f0)
            k2 = drift(ts + h / 2, x + h / 2 * k1, fm)
            k3 = drift(ts + h / 2, x + h / 2 * k2, fm)
            k4 = drift(ts + h, x + h * k3, f1)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            if noisy and rng is not None:  # (rng is set when noisy: checked above)
                x = x + sigma * np.sqrt(h) * rng.standard_normal((n, d))
            k += 2
        out[:, i + 1] = x
        report_progress(i + 1, len(counts))  # a reporter may stop the run here
    return out


def etdrk4_coefficients(lin: np.ndarray, h: float, m: int = 32) -> tuple[np.ndarray, ...]:
    """E, E2, Q, f1, f2, f3 of ETDRK4 for a real diagonal linear operator ``lin``."""
    r = np.exp(1j * np.pi * (np.arange(1, m + 1) - 0.5) / m)
    lr = h * lin[..., None] + r  # (..., m)
    e_lr = np.exp(lr)
    q = h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=-1))
    f1 = h * np.real(np.mean((-4 - lr + e_lr * (4 - 3 * lr + lr**2)) / lr**3, axis=-1))
    f2 = h * np.real(np.mean((2 + lr + e_lr * (lr - 2)) / lr**3, axis=-1))
    f3 = h * np.real(np.mean((-4 - 3 * lr - lr**2 + e_lr * (4 - lr)) / lr**3, axis=-1))
    return np.exp(h * lin), np.exp(h * lin / 2), q, f1, f2, f3
