"""Largest Lyapunov exponents of the chaotic systems (Benettin's two-trajectory method).

The valid prediction time of a chaotic system is read in Lyapunov times ``1 / λ_max``:
``λ_max`` is measured here from the system's own solver, not quoted, so that it matches the
discretisation and the parameters of the data. A reference state and a neighbour at distance
``δ`` are advanced together for ``tau`` time units; the log of the separation's growth is
accumulated and the neighbour is pulled back to distance ``δ`` along the separation, ``n``
times, after a transient that lets the separation align with the most unstable direction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["largest_lyapunov_exponent", "lorenz63_lyapunov", "kuramoto_sivashinsky_lyapunov"]

#: ``advance(x (N, D), tau) -> (N, D)``: every state moved ``tau`` time units on
Advance = Callable[[np.ndarray, float], np.ndarray]


def largest_lyapunov_exponent(advance: Advance, x0: np.ndarray, tau: float = 1.0,
                              n_renormalisations: int = 200, n_transient: int = 20,
                              delta: float = 1e-7, seed: int = 0) -> np.ndarray:
    """``λ_max`` of each of N trajectories, ``(N,)``, in 1 / time units.

    Args:
        advance: the flow map (see :data:`Advance`); must be deterministic.
        x0: ``(N, D)`` states on (or near) the attractor.
        tau: time between renormalisations.
        n_renormalisations: growth factors averaged (after the transient ones).
        n_transient: growth factors discarded first.
        delta: separation, relative to the typical size of the state.
    """
    x = np.asarray(x0, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"largest_lyapunov_exponent: x0 must be (N, D), got {x.shape}")
    if tau <= 0 or n_renormalisations < 1 or n_transient < 0:
        raise ValueError("largest_lyapunov_exponent: need tau > 0, n_renormalisations >= 1, "
                         "n_transient >= 0")
    scale = delta * max(float(np.sqrt(np.mean(x**2))), 1e-12)
    w = np.random.default_rng(seed).standard_normal(x.shape)
    y = x + scale * w / np.linalg.norm(w, axis=1, keepdims=True)
    total = np.zeros(x.shape[0])
    for i in range(n_transient + n_renormalisations):
        x, y = advance(x, tau), advance(y, tau)
        sep = np.linalg.norm(y - x, axis=1)
        if not np.all(np.isfinite(sep)) or np.any(sep == 0):
            raise FloatingPointError("largest_lyapunov_exponent: the separation collapsed or "
                                     "overflowed; change delta or tau")
        if i >= n_transient:
            total += np.log(sep / scale)
        y = x + (y - x) * (scale / sep)[:, None]
    return total / (n_renormalisations * tau)


def _rk4(rhs: Callable[[np.ndarray], np.ndarray], h: float) -> Advance:
    def advance(x: np.ndarray, tau: float) -> np.ndarray:
        n = max(1, int(np.ceil(tau / h - 1e-9)))
        step = tau / n
        for _ in range(n):
            k1 = rhs(x)
            k2 = rhs(x + 0.5 * step * k1)
            k3 = rhs(x + 0.5 * step * k2)
            k4 = rhs(x + step * k3)
            x = x + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x
    return advance


def lorenz63_lyapunov(sigma: np.ndarray | float = 10.0, rho: np.ndarray | float = 28.0,
                      beta: np.ndarray | float = 8.0 / 3.0, x0=(8.0, -2.0, 36.05),
                      n_renormalisations: int = 400, h: float = 0.005) -> np.ndarray:
    """``λ_max`` of Lorenz-63 for each parameter set (RK4, step ``h``; ≈ 0.906 at the
    standard σ = 10, ρ = 28, β = 8/3)."""
    from engine.systems.lorenz63 import lorenz_rhs

    sigma, rho, beta = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                             for v in (sigma, rho, beta)))
    advance = _rk4(lambda z: lorenz_rhs(z, sigma, rho, beta), h)
    start = advance(np.tile(np.asarray(x0, dtype=np.float64), (sigma.size, 1)), 20.0)
    return largest_lyapunov_exponent(advance, start, tau=0.5, n_renormalisations=n_renormalisations)


def kuramoto_sivashinsky_lyapunov(system, lengths: np.ndarray | float | None = None,
                                  n_renormalisations: int = 300, seed: int = 0) -> np.ndarray:
    """``λ_max`` of the Kuramoto–Sivashinsky ``system`` (its own ETDRK4) for each domain
    length (default: the system's); ≈ 0.043–0.048 at L = 22 (Cvitanović et al. 2010)."""
    lengths = np.atleast_1d(np.asarray(system.length if lengths is None else lengths,
                                       dtype=np.float64))
    u0 = system.initial_condition(lengths.size, np.random.default_rng(seed))
    u0 = system.integrate(u0, np.array([0.0, max(system.spinup, 100.0)]), lengths)[:, -1]

    def advance(u: np.ndarray, tau: float) -> np.ndarray:
        return system.integrate(u, np.array([0.0, tau]), lengths)[:, -1]

    return largest_lyapunov_exponent(advance, u0, tau=2.0, n_renormalisations=n_renormalisations)
