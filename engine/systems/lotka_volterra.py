"""Stochastic Lotka–Volterra predator–prey system (the ARCTA ``predprey`` experiment).

    dx = (α x − β x y) dt + s dW₁,   dy = (δ x y − γ y) dt + s dW₂,

α = 2/3, β = 4/3, δ = 1, γ = 1, (x, y)(0) = (0.9, 0.2), s = 1e-3 (constant diagonal
diffusion), observed with additive N(0, 0.01²) noise at ``hz`` samples per unit time on
t = linspace(0, t_end, round(t_end · hz)) (650 points on [0, 65] for the paper, as ARCTA).

The paper preset has no μ and is cut in time: train t ≤ 50, validation after. The default
preset exposes μ = (α,) for a parametric variant.

Integration: batched RK4 for the drift plus the exact additive-noise increment per substep
(``max_step``, default 0.01), seeded; ARCTA used torchsde's adaptive solver instead.
"""

from __future__ import annotations

import numpy as np
import param

from engine.systems._integrators import rk4_additive
from engine.systems.base import System

__all__ = ["LotkaVolterraSystem"]


class LotkaVolterraSystem(System):
    """Stochastic Lotka–Volterra (2 species)."""

    system_name = "lotka_volterra"
    process_noise_param = "diffusion"
    units = {"alpha": "1/time", "beta": "1/time", "delta": "1/time", "gamma": "1/time"}
    presets = {
        "paper": {"mu_names": [], "t_end": 65.0, "time_split": [("train", 50.0), ("val", None)]},
        "default": {},
        "small": {"t_end": 5.0},
    }

    alpha = param.Number(2 / 3, bounds=(0, None), softbounds=(0.5, 0.8),
                         doc="Prey birth rate α.")
    beta = param.Number(4 / 3, bounds=(0, None), softbounds=(1.0, 1.6),
                        doc="Predation rate β.")
    delta = param.Number(1.0, bounds=(0, None), softbounds=(0.8, 1.2),
                         doc="Predator growth per prey eaten δ.")
    gamma = param.Number(1.0, bounds=(0, None), softbounds=(0.8, 1.2),
                         doc="Predator death rate γ.")
    x0 = param.NumericTuple((0.9, 0.2), length=2, doc="Initial (prey, predator).")
    diffusion = param.Number(1e-3, bounds=(0, None), doc="Diffusion std s per √time.")
    hz = param.Number(10.0, bounds=(0, None), inclusive_bounds=(False, True),
                      doc="Samples per unit time.")
    max_step = param.Number(0.01, bounds=(0, None), inclusive_bounds=(False, True),
                            doc="Largest integration substep.")
    mu_names = param.List(["alpha"], item_type=str)
    t_end = param.Number(20.0, bounds=(0, None), inclusive_bounds=(False, True))
    obs_noise = param.Number(0.01, bounds=(0, None))

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2,)

    def time_grid(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, max(2, int(round(self.t_end * self.hz))))

    def _simulate_batch(self, mu, forcings, t, rng):
        p = self.mu_dict(mu)
        a, b, d, g = (p[k][:, None] for k in ("alpha", "beta", "delta", "gamma"))

        def drift(_t, z, _f):
            x, y = z[:, :1], z[:, 1:]
            return np.concatenate([a * x - b * x * y, d * x * y - g * y], axis=1)

        z0 = np.tile(np.asarray(self.x0, dtype=np.float64), (len(mu), 1))
        return rk4_additive(drift, z0, t, self.max_step, rng, self.diffusion)
