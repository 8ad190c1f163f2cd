"""The contract of a fixed-step scheme for ``dz = ψ(z, t) dt + Ψ dβ`` with additive noise.

A scheme declares its orders and what it needs per step, and advances every path of a batch
by one step. Everything that does not depend on ``z`` (the noise terms of every step) is
prepared once for the whole grid, so that a step is only drift evaluations and a few
updates: the CUDA-graph rollout replays it cheaply and the CPU loop stays lean.

The noise is additive (Ψ depends on neither z nor t), so Itô and Stratonovich calculus agree
and the orders below are those for additive noise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

__all__ = ["Scheme", "StageDrift"]

#: ``drift_at(stage, z)``: the drift at the scheme's stage ``stage`` (an index into
#: :attr:`Scheme.stage_fractions`, or ``len(stage_fractions)`` for the end of the step)
#: of the current step, ``z (M, d) -> (M, d)``
StageDrift = Callable[[int, torch.Tensor], torch.Tensor]


class Scheme(ABC):
    """A fixed-step SDE scheme for additive diagonal noise.

    Attributes:
        name: the name users pass (``integrator="heun"``).
        strong_order: order of the mean-square (pathwise) error for additive noise.
        weak_order: order of the error in expectations of smooth functions.
        deterministic_order: order with the noise switched off (the ODE's Runge–Kutta order).
        stage_fractions: where in ``[0, 1)`` of a step the drift is evaluated, besides the
            end of the step (``1``, which :attr:`uses_step_end` declares).
        uses_step_end: whether a stage evaluates the drift at the end of the step.
        n_noise: standard normal draws per step and latent dimension.
        drift_evaluations: drift calls per step.
    """

    name: str
    strong_order: float
    weak_order: float
    deterministic_order: int
    stage_fractions: tuple[float, ...] = (0.0,)
    uses_step_end: bool = False
    n_noise: int = 1
    drift_evaluations: int = 1

    def noise_shape(self, n_intervals: int, substeps: int, n_paths: int,
                    latent_dim: int) -> tuple[int, int, int, int]:
        """Shape of the standard normal draws of a rollout: ``(T − 1, substeps, M, n_noise·d)``."""
        return (n_intervals, substeps, n_paths, self.n_noise * latent_dim)

    def prepare(self, noise: torch.Tensor, h: torch.Tensor,
                dispersion_std: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The z-independent terms of every step; here the diffusion increment ``Ψ ΔW``
        alone (schemes that need more override this).

        Args:
            noise: ``(K − 1, M, n_noise·d)`` standard normal draws, one row per step.
            h: ``(K − 1,)`` step sizes.
            dispersion_std: Ψ, ``(d,)`` or ``(M, d)``.

        Returns:
            Tensors whose first axis is the step, each row passed to :meth:`step`.
        """
        return (dispersion_std * torch.sqrt(h)[:, None, None] * noise,)

    @abstractmethod
    def step(self, z: torch.Tensor, h: torch.Tensor, drift_at: StageDrift,
             terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One step from ``z (M, d)`` with step size ``h`` and this step's ``terms``."""

    def brownian_to_noise(self, dW: torch.Tensor, dZ: torch.Tensor,
                          h: torch.Tensor) -> torch.Tensor:
        """The standard normal draws that make this scheme use a given Brownian path.

        Args:
            dW: ``(K − 1, M, d)`` increments ``W(t + h) − W(t)``.
            dZ: ``(K − 1, M, d)`` integrals ``∫_t^{t+h} (W(s) − W(t)) ds`` (used only by
                schemes with ``n_noise = 2``).
            h: ``(K − 1,)`` step sizes.

        Returns:
            ``(K − 1, M, n_noise·d)`` draws for :meth:`prepare`.
        """
        root_h = torch.sqrt(h)[:, None, None]
        xi_w = dW / root_h
        if self.n_noise == 1:
            return xi_w
        # dZ = h/2 (dW + √h ξ₂ / √3) with ξ₂ independent of dW (Kloeden & Platen, §10.4)
        xi_z = (2.0 * dZ / h[:, None, None] - dW) * (3.0 ** 0.5) / root_h
        return torch.cat([xi_w, xi_z], dim=-1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, strong_order={self.strong_order}, "
                f"weak_order={self.weak_order})")
