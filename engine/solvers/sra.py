"""SRA1, Rößler's stochastic Runge–Kutta scheme for additive noise (SIAM J. Numer. Anal.
48(3), 2010), written for a diffusion Ψ that is constant in time.

With ``ΔW`` the Brownian increment and ``ΔZ = ∫_t^{t+h} (W(s) − W(t)) ds``:

    a₁ = ψ(z, t)
    a₂ = ψ(z + ¾ a₁ h + (3/2) Ψ ΔZ / h, t + ¾ h)
    z ← z + (⅓ a₁ + ⅔ a₂) h + Ψ ΔW

``ΔZ`` is drawn exactly with ``ΔW`` from two standard normals per step and dimension:
``ΔW = √h ξ₁``, ``ΔZ = ½ h (ΔW + √h ξ₂ / √3)``.
"""

from __future__ import annotations

import torch

from engine.solvers.base import Scheme, StageDrift

__all__ = ["SRA1"]


class SRA1(Scheme):
    """Two drift calls per step. Strong order 1.5 and weak order 2 for additive noise; order
    2 without noise (Ralston's Runge–Kutta method)."""

    name = "sra1"
    strong_order = 1.5
    weak_order = 2.0
    deterministic_order = 2
    stage_fractions = (0.0, 0.75)
    n_noise = 2
    drift_evaluations = 2

    def prepare(self, noise, h, dispersion_std):
        d = noise.shape[-1] // 2
        root_h = torch.sqrt(h)[:, None, None]
        xi_w, xi_z = noise[..., :d], noise[..., d:]
        diffusion = dispersion_std * root_h * xi_w  # Ψ ΔW
        # (3/2) Ψ ΔZ / h = ¾ Ψ √h (ξ₁ + ξ₂/√3)
        stage_noise = (0.75 * dispersion_std) * root_h * (xi_w + xi_z / 3.0 ** 0.5)
        return diffusion, stage_noise

    def step(self, z: torch.Tensor, h: torch.Tensor, drift_at: StageDrift,
             terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        diffusion, stage_noise = terms
        a1 = drift_at(0, z)
        a2 = drift_at(1, z + 0.75 * h * a1 + stage_noise)
        return z + (a1 / 3.0 + (2.0 / 3.0) * a2) * h + diffusion
