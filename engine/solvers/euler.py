"""Euler–Maruyama: ``z ← z + ψ(z, t) h + Ψ ΔW``."""

from __future__ import annotations

import torch

from engine.solvers.base import Scheme, StageDrift

__all__ = ["EulerMaruyama"]


class EulerMaruyama(Scheme):
    """One drift call per step. Strong order 1 for additive noise (½ in general), weak
    order 1, order 1 without noise."""

    name = "euler"
    strong_order = 1.0
    weak_order = 1.0
    deterministic_order = 1
    stage_fractions = (0.0,)
    drift_evaluations = 1

    def step(self, z: torch.Tensor, h: torch.Tensor, drift_at: StageDrift,
             terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (diffusion,) = terms
        return torch.addcmul(z + diffusion, drift_at(0, z), h)
