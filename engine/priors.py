"""Global random variables with variational posteriors and closed-form KL terms.

Used for the decoder noise variance, the optional Bayesian dispersion and the sparse
drift-library coefficients. Each draws one reparametrized sample per training step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LogNormalVariance", "laplace_kl"]


class LogNormalVariance(nn.Module):
    """A positive variance per element with ``q(log σ²) = N(m, s²)`` and prior ``N(m₀, s₀²)``.

    Args:
        shape: shape of the variance tensor (e.g. the state shape).
        init_log_mean: initial m (the log-variance at the start of training).
        init_log_std: initial s.
        prior_log_mean: m₀.
        prior_log_std: s₀.
        floor: a constant added to σ² (a lower bound), for noise-free data.
    """

    def __init__(self, shape: Sequence[int], init_log_mean: float = -4.0,
                 init_log_std: float = 1e-2, prior_log_mean: float = -4.0,
                 prior_log_std: float = 1.0, floor: float = 0.0):
        super().__init__()
        self.floor = float(floor)
        self.loc = nn.Parameter(torch.full(tuple(shape), float(init_log_mean)))
        self.log_scale = nn.Parameter(torch.full(tuple(shape), math.log(init_log_std)))
        self.prior_log_mean = float(prior_log_mean)
        self.prior_log_std = float(prior_log_std)

    def sample(self) -> torch.Tensor:
        """One reparametrized draw of σ², same shape as the variable."""
        eps = torch.randn_like(self.loc)
        return torch.exp(self.loc + torch.exp(self.log_scale) * eps) + self.floor

    def point(self) -> torch.Tensor:
        """``exp(m)``: the variance used at prediction time."""
        return torch.exp(self.loc) + self.floor

    def kl(self) -> torch.Tensor:
        """KL(q ‖ prior), summed over elements (a scalar)."""
        s = torch.exp(self.log_scale)
        s0 = self.prior_log_std
        return (math.log(s0) - self.log_scale
                + (s * s + (self.loc - self.prior_log_mean) ** 2) / (2 * s0 * s0) - 0.5).sum()


def laplace_kl(loc: torch.Tensor, scale: torch.Tensor, prior_scale: float) -> torch.Tensor:
    """KL(Laplace(loc, scale) ‖ Laplace(0, prior_scale)), summed (closed form)."""
    b0 = prior_scale
    a = loc.abs()
    return (math.log(b0) - torch.log(scale) + a / b0 + scale / b0 * torch.exp(-a / scale) - 1).sum()
