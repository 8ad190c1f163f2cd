"""Stochastic heat equation with forcing: an exact linear-Gaussian oracle.

On x ∈ [0, 1] with Dirichlet boundaries,

    du = (κ u_xx + g(x) f(t)) dt + σ dW(x, t),

with W a cylindrical Wiener process, truncated to K sine modes u = Σ_k a_k(t) sin(kπx):

    da_k = (−κ k²π² a_k + b_k f(t)) dt + σ_k dW_k,   b_k = 2 ∫ g(x) sin(kπx) dx,
    σ_k = √2 σ  (space-time white noise in the basis √2 sin(kπx)).

g(x) = G exp(−(x − c)² / (2 w²)) is a fixed spatial profile; b_k is computed once by Simpson's
rule on 4001 points. μ = (κ,). The state is u at ``n_x`` interior points x_i = i/(n_x + 1).

Discretisation: exact in distribution for the OU part (exact decay e^{−λΔ} and exact
variance σ_k²(1 − e^{−2λΔ})/(2λ) per output interval Δ); the forcing integral
∫ e^{−λ(t−s)} f(s) ds uses the closed form for f linear between ``substeps`` equal substeps
of each interval (error O(h²) in the forcing only). :meth:`HeatSystem.exact_moments` uses the
same recursion, so it is the exact law of what :meth:`simulate` samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import param

from engine.forcing import Forcing, evaluate_forcings
from engine.systems.base import System

__all__ = ["HeatSystem"]


def _phi12(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ1(z) = (1 − e^{−z})/z and φ2(z) = (z − 1 + e^{−z})/z², stable for small z ≥ 0."""
    small = z < 1e-3
    zs = np.where(small, 1.0, z)
    em1 = -np.expm1(-zs)
    phi1 = np.where(small, 1 - z / 2 + z**2 / 6 - z**3 / 24, em1 / zs)
    phi2 = np.where(small, 0.5 - z / 6 + z**2 / 24 - z**3 / 120, (zs - em1) / zs**2)
    return phi1, phi2


class HeatSystem(System):
    """Stochastic heat equation in a sine basis; an exact Ornstein–Uhlenbeck process."""

    system_name = "heat"
    process_noise_param = "sigma"
    units = {"kappa": "length²/time"}
    forcing_channels = (("f", "1", "Amplitude f(t) of the heat source g(x) f(t)."),)
    presets = {
        "default": {},
        "small": {"n_x": 16, "n_modes": 6, "t_end": 2.0, "n_t": 21, "substeps": 4},
        "large": {"n_x": 256, "n_modes": 32, "t_end": 5.0, "n_t": 501},
    }

    kappa = param.Number(0.05, bounds=(0, None), inclusive_bounds=(False, True),
                         softbounds=(0.01, 0.1), doc="Thermal diffusivity.")
    sigma = param.Number(0.05, bounds=(0, None), doc="Space-time white noise amplitude σ.")
    n_x = param.Integer(64, bounds=(1, None), doc="Number of interior grid points.")
    n_modes = param.Integer(16, bounds=(1, None), doc="Number of sine modes K.")
    substeps = param.Integer(8, bounds=(1, None),
                             doc="Piecewise-linear forcing pieces per output interval.")
    source_amplitude = param.Number(5.0, doc="Peak G of the source profile g(x).")
    source_center = param.Number(0.3, bounds=(0, 1), doc="Centre c of g(x).")
    source_width = param.Number(0.1, bounds=(0, None), inclusive_bounds=(False, True),
                                doc="Width w of g(x).")
    initial: param.Selector[str] = param.Selector(
        default="zero", objects=["zero", "stationary"],
        doc="a_k(0) = 0, or drawn from the unforced stationary law.")
    mu_names = param.List(["kappa"], item_type=str)
    t_end = param.Number(5.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(251, bounds=(2, None))
    forcing_family = param.String("sine")
    forcing_ranges = param.Dict({"amplitude": (0.5, 1.5), "frequency": (1.0, 3.0),
                                 "phase": (0.0, 2 * np.pi), "offset": 0.0})

    # ------------------------------------------------------------------ shape
    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n_x,)

    def grid(self) -> dict[str, np.ndarray]:
        return {"x": np.arange(1, self.n_x + 1) / (self.n_x + 1)}

    def basis(self) -> np.ndarray:
        """(n_x, K) Φ[i, k] = sin((k+1) π x_i)."""
        k = np.arange(1, self.n_modes + 1)
        return np.sin(np.pi * np.outer(self.grid()["x"], k))

    def source_modes(self) -> np.ndarray:
        """(K,) b_k = 2 ∫_0^1 g(x) sin(kπx) dx (Simpson, 4001 points)."""
        xs = np.linspace(0.0, 1.0, 4001)
        g = self.source_amplitude * np.exp(-((xs - self.source_center) ** 2)
                                           / (2 * self.source_width**2))
        w = np.ones_like(xs)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        w *= (xs[1] - xs[0]) / 3.0
        k = np.arange(1, self.n_modes + 1)
        return 2.0 * (np.sin(np.pi * np.outer(k, xs)) * g) @ w

    def _rates(self, kappa: np.ndarray) -> np.ndarray:
        """(N, K) λ_k = κ k² π²."""
        k = np.arange(1, self.n_modes + 1)
        return np.asarray(kappa, dtype=np.float64)[:, None] * (k * np.pi) ** 2

    def _noise_std(self) -> np.ndarray:
        """(K,) σ_k."""
        return np.full(self.n_modes, np.sqrt(2.0) * self.sigma)

    # --------------------------------------------------------------- dynamics
    def _transitions(self, kappa: np.ndarray, forcings: list[tuple[Forcing, ...]],
                     t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per output interval: decay E (N, T-1, K), forced increment d (N, T-1, K) and
        noise variance q (N, T-1, K), so that a_{i+1} = E_i a_i + d_i + N(0, q_i)."""
        lam = self._rates(kappa)[:, None, :]  # (N, 1, K)
        s = self.substeps
        # Coefficients depend on the interval length only: compute them once per distinct
        # length (one for a uniform grid) and index, instead of per interval.
        lengths, which = np.unique(np.round(np.diff(t), 12), return_inverse=True)
        dt = lengths[None, :, None]  # (1, U, 1)
        h = dt / s
        z = lam * h
        phi1, phi2 = _phi12(z)
        eh = np.exp(-z)[:, which]  # (N, T-1, K)
        w0, w1 = (h * (phi1 - phi2))[:, which], (h * phi2)[:, which]
        fine = (t[:-1, None] + np.diff(t)[:, None] * np.arange(s + 1) / s)  # (T-1, s+1)
        fvals = evaluate_forcings(forcings, fine.reshape(-1))[..., 0]
        fvals = fvals.reshape(len(forcings), t.size - 1, s + 1)[..., None]  # (N, T-1, s+1, 1)
        acc = np.zeros(eh.shape)
        for j in range(s):
            acc = acc * eh + w0 * fvals[:, :, j] + w1 * fvals[:, :, j + 1]
        d = acc * self.source_modes()
        decay = np.exp(-lam * dt)[:, which]
        q = (self._noise_std() ** 2 * (-np.expm1(-2 * lam * dt)) / (2 * lam))[:, which]
        return decay, d, q

    def _initial(self, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) mean and variance of a(0)."""
        n = len(kappa)
        if self.initial == "zero":
            return np.zeros((n, self.n_modes)), np.zeros((n, self.n_modes))
        return np.zeros((n, self.n_modes)), self._noise_std() ** 2 / (2 * self._rates(kappa))

    def _simulate_modes(self, mu: np.ndarray, forcings: list[tuple[Forcing, ...]],
                        t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, T, K) sampled mode amplitudes."""
        kappa = self.mu_dict(mu)["kappa"]
        decay, d, q = self._transitions(kappa, forcings, t)
        m0, v0 = self._initial(kappa)
        a = m0 + np.sqrt(v0) * rng.standard_normal(m0.shape)
        out = np.empty((len(kappa), t.size, self.n_modes))
        out[:, 0] = a
        noise = np.sqrt(q) * rng.standard_normal(q.shape)
        for i in range(t.size - 1):
            a = decay[:, i] * a + d[:, i] + noise[:, i]
            out[:, i + 1] = a
        return out

    def _simulate_batch(self, mu, forcings, t, rng):
        return self._simulate_modes(mu, forcings, t, rng) @ self.basis().T

    # ----------------------------------------------------------------- oracle
    def mode_moments(self, mu: Any = None, forcing: Any = None, t: Any = None,
                     a0_mean: np.ndarray | None = None,
                     a0_cov: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean (T, K) and covariance (T, K, K) of the mode amplitudes a(t).

        Args:
            mu: (P,) parameters (default current values).
            forcing: one trajectory's forcing (default mid-range).
            t: (T,) times (default ``time_grid()``).
            a0_mean: (K,) mean of a(t[0]); default from ``initial``.
            a0_cov: (K, K) covariance of a(t[0]); default from ``initial``.
        """
        mu = self.check_mu(self.default_mu() if mu is None else mu)[:1]
        t = self.time_grid() if t is None else self.check_times(t)
        kappa = self.mu_dict(mu)["kappa"]
        decay, d, q = self._transitions(kappa, [self.check_forcing(forcing)], t)
        m0, v0 = self._initial(kappa)
        m = m0[0] if a0_mean is None else np.asarray(a0_mean, dtype=np.float64)
        c = np.diag(v0[0]) if a0_cov is None else np.asarray(a0_cov, dtype=np.float64)
        k = self.n_modes
        if m.shape != (k,) or c.shape != (k, k):
            raise ValueError(f"heat: a0_mean must be ({k},) and a0_cov ({k}, {k}), got "
                             f"{m.shape} and {c.shape}")
        means, covs = np.empty((t.size, k)), np.empty((t.size, k, k))
        means[0], covs[0] = m, c
        for i in range(t.size - 1):
            e = decay[0, i]
            m = e * m + d[0, i]
            c = e[:, None] * c * e[None, :] + np.diag(q[0, i])
            means[i + 1], covs[i + 1] = m, c
        return means, covs

    def conditional_moments(self, x0: np.ndarray, mu: Any = None, forcing: Any = None,
                            t: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean (T, n_x) and covariance (T, n_x, n_x) of the observed state given the
        observed first snapshot ``x0`` (n_x,): the law of a(t[0]) is conditioned on
        ``x0 = Φ a(t[0]) + ε`` (Gaussian, exact), then propagated (:meth:`exact_moments`).
        What a model that sees ``x0`` can at best predict."""
        mu = self.check_mu(self.default_mu() if mu is None else mu)[:1]
        x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        if x0.shape != (self.n_x,):
            raise ValueError(f"heat: x0 must have shape ({self.n_x},), got {x0.shape}")
        m0, v0 = (a[0] for a in self._initial(self.mu_dict(mu)["kappa"]))
        phi = self.basis()
        if not np.any(v0 > 0):  # a fixed initial state: nothing to learn from x0
            mean, cov = m0, np.zeros((self.n_modes, self.n_modes))
        elif self.obs_noise == 0:  # x0 determines the modes (Φ has full column rank)
            mean, cov = np.linalg.lstsq(phi, x0, rcond=None)[0], np.zeros((self.n_modes,) * 2)
        else:
            precision = np.diag(1.0 / v0) + phi.T @ phi / self.obs_noise**2
            cov = np.linalg.inv(precision)
            mean = cov @ (m0 / v0 + phi.T @ x0 / self.obs_noise**2)
        return self.exact_moments(mu, forcing, t, a0_mean=mean, a0_cov=cov)

    def exact_moments(self, mu: Any = None, forcing: Any = None, t: Any = None,
                      a0_mean: np.ndarray | None = None, a0_cov: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean (T, n_x) and covariance (T, n_x, n_x) of the observed state.

        The law of ``simulate(mu, forcing, t)`` over seeds, observation noise included. See
        :meth:`mode_moments` for the arguments (the initial law is given in mode space).
        """
        means, covs = self.mode_moments(mu, forcing, t, a0_mean, a0_cov)
        phi = self.basis()
        cov = np.einsum("ik,tkl,jl->tij", phi, covs, phi)
        cov += self.obs_noise**2 * np.eye(self.n_x)
        return means @ phi.T, cov
