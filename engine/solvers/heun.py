"""Stochastic Heun (the trapezoidal predictor–corrector with the same Brownian increment).

``z̃ = z + ψ(z, t) h + Ψ ΔW``, then ``z ← z + ½ (ψ(z, t) + ψ(z̃, t + h)) h + Ψ ΔW``.
"""

from __future__ import annotations

import torch

from engine.solvers.base import Scheme, StageDrift

__all__ = ["StochasticHeun"]


class StochasticHeun(Scheme):
    """Two drift calls per step. For additive noise: strong order 1 and weak order 2 (its
    expansion matches the simplified order-2 weak Taylor scheme, Kloeden & Platen §14.2);
    order 2 without noise."""

    name = "heun"
    strong_order = 1.0
    weak_order = 2.0
    deterministic_order = 2
    stage_fractions = (0.0,)
    uses_step_end = True
    drift_evaluations = 2

    def step(self, z: torch.Tensor, h: torch.Tensor, drift_at: StageDrift,
             terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (diffusion,) = terms
        base = z + diffusion  # shared by predictor and corrector: 4 updates, not 8 kernels
        a = drift_at(0, z)
        a_end = drift_at(1, torch.addcmul(base, a, h))
        return torch.addcmul(base, a + a_end, h, value=0.5)
