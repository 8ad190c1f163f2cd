"""A forced Duffing oscillator with optional process noise (classroom and engine tests).

    dx = v dt,   dv = (f(t) − δ v − α x − β x³) dt + s dW,

μ = (δ, β) by default (damping and cubic stiffness; α = 1 is fixed), state (x, v) of shape
(2,), forcing channel ``f`` of any family (default: a sine with random amplitude, frequency
and phase). (x, v)(0) = ``x0``. Integrated by batched RK4 with substeps ≤ ``max_step`` plus
the exact additive-noise increment per substep (pure RK4 when s = 0).
"""

from __future__ import annotations

import numpy as np
import param

from engine.systems._integrators import rk4_additive
from engine.systems.base import System

__all__ = ["OscillatorSystem", "PlanarOscillator"]


class PlanarOscillator(System):
    """What the classroom oscillators share: state (x, v), a force channel ``f`` of any family
    (default a random sine), process noise on the velocity, an initial state, and batched
    RK4 (:meth:`integrate`) of ``v̇ = acceleration(x, v) + f(t)``."""

    forcing_channels = (("f", "length/time²", "External force per unit mass f(t)."),)
    presets = {
        "default": {},
        "deterministic": {"noise": 0.0},
        "small": {"t_end": 5.0, "n_t": 51},
    }

    noise = param.Number(0.02, bounds=(0, None), doc="Process noise std s on the velocity.")
    x0 = param.NumericTuple((1.0, 0.0), length=2, doc="Initial (position, velocity).")
    max_step = param.Number(0.01, bounds=(0, None), inclusive_bounds=(False, True),
                            doc="Largest integration substep.")
    n_t = param.Integer(201, bounds=(2, None))
    forcing_family = param.String("sine")
    forcing_ranges = param.Dict({"amplitude": (0.5, 1.5), "frequency": (0.1, 0.4),
                                 "phase": (0.0, 2 * np.pi), "offset": 0.0})

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2,)

    def integrate(self, acceleration, n_cases: int, forcings, t, rng) -> np.ndarray:
        """RK4 of (ẋ, v̇) = (v, acceleration(x, v) + f) from ``x0``: ``(n_cases, T, 2)``."""
        def drift(_t, z, f):
            x, v = z[:, 0], z[:, 1]
            return np.stack([v, acceleration(x, v) + f[:, 0]], axis=1)

        z0 = np.tile(np.asarray(self.x0, dtype=np.float64), (n_cases, 1))
        return rk4_additive(drift, z0, t, self.max_step, rng, np.array([0.0, self.noise]),
                            forcings=forcings)


class OscillatorSystem(PlanarOscillator):
    """Forced Duffing oscillator ẍ + δẋ + αx + βx³ = f(t) (+ noise)."""

    system_name = "oscillator"
    units = {"delta": "1/time", "alpha": "1/time²", "beta": "1/(length² time²)"}

    delta = param.Number(0.3, bounds=(0, None), softbounds=(0.1, 0.5), doc="Damping δ.")
    alpha = param.Number(1.0, softbounds=(0.5, 1.5), doc="Linear stiffness α.")
    beta = param.Number(1.0, bounds=(0, None), softbounds=(0.0, 2.0),
                        doc="Cubic (hardening) stiffness β.")
    mu_names = param.List(["delta", "beta"], item_type=str)
    t_end = param.Number(10.0, bounds=(0, None), inclusive_bounds=(False, True))

    def _simulate_batch(self, mu, forcings, t, rng):
        p = self.mu_dict(mu)
        d, a, b = p["delta"], p["alpha"], p["beta"]
        return self.integrate(lambda x, v: -d * v - a * x - b * x**3, len(mu), forcings, t, rng)
