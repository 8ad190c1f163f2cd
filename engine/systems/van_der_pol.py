"""A forced Van der Pol oscillator with optional process noise (classroom: limit cycles).

    dx = v dt,   dv = (μ_d (1 − x²) v − k x + f(t)) dt + s dW,

μ = (μ_d, k) by default (``damping`` and ``stiffness``), state (x, v) of shape (2,), forcing
channel ``f`` of any family (default: a sine with random amplitude, frequency and phase, as
the Duffing ``oscillator``: the forcing amplitude and frequency are the forcing's parameters,
not part of μ). (x, v)(0) = ``x0``.

Unforced, every solution except the origin approaches one limit cycle: of amplitude ≈ 2 and
period ≈ 2π/√k · (1 + μ_d²/(16k)) for small μ_d, and (k = 1) a relaxation oscillation of
period ≈ (3 − 2 ln 2) μ_d + 3α μ_d^{−1/3} (α ≈ 2.338, Dorodnitsyn) for large μ_d. A
periodic f shows entrainment and quasi-periodicity.

Integrated by the shared batched RK4 (``rk4_additive``) with substeps ≤ ``max_step`` = 0.01
plus the exact additive-noise increment per substep (pure RK4 when s = 0). The fast phase of
a relaxation oscillation contracts at a rate ≈ 3μ_d, so explicit RK4 needs μ_d · h small:
at h = 0.01 the unforced period is within 0.2 % of a tight implicit (Radau) solve up to
μ_d = 50, and μ_d · ``max_step`` > 0.5 raises ``ValueError`` (lower ``max_step``).
"""

from __future__ import annotations

import param

from engine.systems.oscillator import DRIVE_UNITS, PlanarOscillator

__all__ = ["VanDerPolSystem"]


class VanDerPolSystem(PlanarOscillator):
    """Forced Van der Pol oscillator ẍ − μ_d(1 − x²)ẋ + kx = f(t) (+ noise)."""

    system_name = "van_der_pol"
    units = {"damping": "1/time", "stiffness": "1/time²", **DRIVE_UNITS}
    presets = {**PlanarOscillator.presets,
               "resonance": PlanarOscillator.resonance_preset(["damping", "stiffness"])}

    damping = param.Number(1.0, bounds=(0, None), softbounds=(0.1, 2.0),
                           doc="Nonlinear damping μ_d (negative damping for |x| < 1).")
    stiffness = param.Number(1.0, bounds=(0, None), inclusive_bounds=(False, True),
                             softbounds=(0.5, 1.5), doc="Linear stiffness k.")
    mu_names = param.List(["damping", "stiffness"], item_type=str)
    t_end = param.Number(20.0, bounds=(0, None), inclusive_bounds=(False, True))

    def _simulate_batch(self, mu, forcings, t, rng):
        p = self.mu_dict(mu)
        md, k = p["damping"], p["stiffness"]
        if md.max() * self.max_step > 0.5:
            raise ValueError(f"{self.system_name}: damping {md.max():g} is too stiff for RK4 "
                             f"with max_step {self.max_step:g}; need damping * max_step <= 0.5")
        return self.integrate(lambda x, v: md * (1 - x**2) * v - k * x, len(mu), forcings, t, rng, p)
