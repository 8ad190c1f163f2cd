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


DRIVE_UNITS = {"drive_amplitude": "length/time²", "drive_frequency": "1/time"}


class PlanarOscillator(System):
    """What the classroom oscillators share: state (x, v), a force channel ``f`` of any family
    (default a random sine), a built-in harmonic drive A sin(2π ν t) whose amplitude A and
    frequency ν can be part of μ (the ``resonance`` preset: sweep ν across the natural
    frequency to see resonance), process noise on the velocity, an initial state, and batched
    RK4 (:meth:`integrate`) of ``v̇ = acceleration(x, v) + A sin(2πνt) + f(t)``."""

    process_noise_param = "noise"

    forcing_channels = (("f", "length/time²", "External force per unit mass f(t)."),)
    presets = {
        "default": {},
        "deterministic": {"noise": 0.0},
        "small": {"t_end": 5.0, "n_t": 51},
    }

    drive_amplitude = param.Number(0.0, bounds=(0, None), softbounds=(0.2, 1.5),
                                   doc="Amplitude A of the built-in drive A sin(2πνt).")
    drive_frequency = param.Number(0.15, bounds=(0, None), softbounds=(0.05, 0.3),
                                   doc="Frequency ν of the built-in drive (cycles per time).")

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

    @classmethod
    def resonance_preset(cls, mu_names: list[str]) -> dict:
        """``mu_names`` plus the drive's amplitude and frequency as μ, no other forcing."""
        return {"mu_names": [*mu_names, "drive_amplitude", "drive_frequency"],
                "forcing_family": "none", "forcing_ranges": {}}

    def integrate(self, acceleration, n_cases: int, forcings, t, rng,
                  p: dict[str, np.ndarray]) -> np.ndarray:
        """RK4 of (ẋ, v̇) = (v, acceleration(x, v) + A sin(2πνt) + f) from ``x0``, with A and ν
        from ``p`` (:meth:`mu_dict`): ``(n_cases, T, 2)``."""
        amp, freq = p["drive_amplitude"], p["drive_frequency"]

        def drift(tt, z, f):
            x, v = z[:, 0], z[:, 1]
            drive = amp * np.sin(2 * np.pi * freq * tt)
            return np.stack([v, acceleration(x, v) + drive + f[:, 0]], axis=1)

        z0 = np.tile(np.asarray(self.x0, dtype=np.float64), (n_cases, 1))
        return rk4_additive(drift, z0, t, self.max_step, rng, np.array([0.0, self.noise]),
                            forcings=forcings)


class OscillatorSystem(PlanarOscillator):
    """Forced Duffing oscillator ẍ + δẋ + αx + βx³ = f(t) (+ noise)."""

    system_name = "oscillator"
    units = {"delta": "1/time", "alpha": "1/time²", "beta": "1/(length² time²)", **DRIVE_UNITS}
    presets = {**PlanarOscillator.presets,
               "resonance": PlanarOscillator.resonance_preset(["delta", "beta"])}

    delta = param.Number(0.3, bounds=(0, None), softbounds=(0.1, 0.5), doc="Damping δ.")
    alpha = param.Number(1.0, softbounds=(0.5, 1.5), doc="Linear stiffness α.")
    beta = param.Number(1.0, bounds=(0, None), softbounds=(0.0, 2.0),
                        doc="Cubic (hardening) stiffness β.")
    mu_names = param.List(["delta", "beta"], item_type=str)
    t_end = param.Number(10.0, bounds=(0, None), inclusive_bounds=(False, True))

    def _simulate_batch(self, mu, forcings, t, rng):
        p = self.mu_dict(mu)
        d, a, b = p["delta"], p["alpha"], p["beta"]
        return self.integrate(lambda x, v: -d * v - a * x - b * x**3, len(mu), forcings, t, rng, p)
