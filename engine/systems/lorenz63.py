"""Lorenz-63 observed with Gaussian noise (the ARCTA ``lorenz`` experiment).

    ẋ = σ (y − x),   ẏ = x (ρ − z) − y,   ż = x y − β z,

σ = 10, β = 8/3, ρ = 28, (x, y, z)(0) = (8, −2, 36.05); observations with N(0, 1) noise on
t = linspace(0, T, int(T / 0.005)) for a horizon T (ARCTA: T ∈ {1, 10, 50, 100}); solved with
scipy RK45, rtol 1e-6, atol 1e-8, as ARCTA. The paper preset is cut in time at
100/120 of the span (train before, test after); the default preset varies μ = (ρ,).
"""

from __future__ import annotations

import numpy as np
import param
from scipy.integrate import solve_ivp

from engine.systems.base import System

__all__ = ["Lorenz63System", "lorenz_rhs"]


def lorenz_rhs(z: np.ndarray, sigma: float | np.ndarray = 10.0, rho: float | np.ndarray = 28.0,
               beta: float | np.ndarray = 8.0 / 3.0) -> np.ndarray:
    """The Lorenz-63 vector field.

    Args:
        z: (..., 3) states.
        sigma, rho, beta: scalars or arrays broadcastable to ``z[..., 0]``.

    Returns:
        (..., 3) time derivatives.
    """
    z = np.asarray(z, dtype=np.float64)
    x, y, w = z[..., 0], z[..., 1], z[..., 2]
    return np.stack([sigma * (y - x), x * (rho - w) - y, x * y - beta * w], axis=-1)


class Lorenz63System(System):
    """Lorenz-63 with observation noise; optional μ = ρ."""

    system_name = "lorenz63"
    units = {"sigma": "1/time", "rho": "1", "beta": "1/time"}
    presets = {
        "paper": {"mu_names": [], "t_end": 10.0, "time_split": "paper"},
        "default": {},
        "small": {"t_end": 0.5},
    }

    sigma = param.Number(10.0, bounds=(0, None), softbounds=(8.0, 12.0), doc="Prandtl number σ.")
    rho = param.Number(28.0, bounds=(0, None), softbounds=(24.0, 32.0),
                       doc="Rayleigh number ρ (scaled).")
    beta = param.Number(8 / 3, bounds=(0, None), softbounds=(2.0, 3.0), doc="Geometry factor β.")
    x0 = param.NumericTuple((8.0, -2.0, 36.05), length=3, doc="Initial state.")
    dt = param.Number(0.005, bounds=(0, None), inclusive_bounds=(False, True),
                      doc="Nominal sampling step (n_t = int(t_end / dt)).")
    rtol = param.Number(1e-6, bounds=(0, None), doc="RK45 relative tolerance.")
    atol = param.Number(1e-8, bounds=(0, None), doc="RK45 absolute tolerance.")
    mu_names = param.List(["rho"], item_type=str)
    t_end = param.Number(5.0, bounds=(0, None), inclusive_bounds=(False, True))
    obs_noise = param.Number(1.0, bounds=(0, None))
    time_split = param.ClassSelector(class_=(list, str), default=None, allow_None=True,
                                     doc="'paper' cuts at 100/120 of the span (train/test), "
                                         "or [(split, t_stop), ...].")

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3,)

    def time_grid(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, max(2, int(self.t_end / self.dt)))

    def split_slices(self, t: np.ndarray) -> dict[str, slice]:
        if self.time_split != "paper":
            return super().split_slices(t)
        cut = int(np.searchsorted(t, self.t_end * 100.0 / 120.0, side="left"))
        return {"train": slice(0, cut), "test": slice(cut, t.size)}

    def lyapunov_exponents(self, mu: np.ndarray) -> np.ndarray:
        from engine.systems.lyapunov import lorenz63_lyapunov

        p = self.mu_dict(self.check_mu(mu))
        return lorenz63_lyapunov(p["sigma"], p["rho"], p["beta"], self.x0)

    def _simulate_batch(self, mu, forcings, t, rng):
        p = self.mu_dict(mu)
        out = np.empty((len(mu), t.size, 3))
        for i in range(len(mu)):
            s, r, b = p["sigma"][i], p["rho"][i], p["beta"][i]
            sol = solve_ivp(lambda _t, z, s=s, r=r, b=b: lorenz_rhs(z, s, r, b), (t[0], t[-1]),
                            np.asarray(self.x0, dtype=np.float64), t_eval=t, method="RK45",
                            rtol=self.rtol, atol=self.atol)
            if not sol.success:
                raise RuntimeError(f"lorenz63: RK45 failed ({sol.message})")
            out[i] = sol.y.T
        return out
