"""ELBO pieces: likelihood, reparametrized path-KL residual, time quadrature, annealing.

The path KL between the posterior (a Markov GP with marginals ``N(m(t), diag S(t))``,
written as a linear SDE with the prior's dispersion) and the prior SDE is

    KL = ½ ∫ E_q[ rᵀ Ψ⁻² r ] dt,   r = A(t)(m − z) + ṁ − ψθ(z, t; μ, f),
    A(t) = ½ (Ψ² / S − d/dt log S)          (diagonal Lyapunov equation),

and needs only samples of the marginal q(z(t)) — no differential equation is solved.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "lyapunov_rate", "path_residual", "gaussian_log_likelihood", "stratified_times",
    "kl_weight", "QUADRATURES",
]

QUADRATURES = ("stratified", "data")
_LOG_2PI = math.log(2 * math.pi)


def lyapunov_rate(var: torch.Tensor, log_var_rate: torch.Tensor,
                  dispersion_var: torch.Tensor) -> torch.Tensor:
    """Diagonal solution of ``A S + S Aᵀ = Ψ² − Ṡ``: ``A = ½ (Ψ² / S − d/dt log S)``.

    Args:
        var: S(t), ``(..., d)``.
        log_var_rate: d/dt log S(t), ``(..., d)``.
        dispersion_var: Ψ², broadcastable to ``(..., d)``.
    """
    return 0.5 * (dispersion_var / var - log_var_rate)


def path_residual(mean: torch.Tensor, mean_rate: torch.Tensor, var: torch.Tensor,
                  log_var_rate: torch.Tensor, z: torch.Tensor, drift: torch.Tensor,
                  dispersion_var: torch.Tensor) -> torch.Tensor:
    """``r = A (m − z) + ṁ − ψ``; all ``(..., d)``; the posterior drift minus the prior drift."""
    a = lyapunov_rate(var, log_var_rate, dispersion_var)
    return a * (mean - z) + mean_rate - drift


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                            event_dims: int) -> torch.Tensor:
    """``log N(x; mean, diag var)`` summed over the last ``event_dims`` axes."""
    log_density = -0.5 * (_LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)
    return log_density.flatten(-event_dims).sum(-1) if event_dims else log_density


def stratified_times(t_first: torch.Tensor, t_last: torch.Tensor, n_strata: int,
                     n_draws: int = 1) -> torch.Tensor:
    """One uniform time in each of ``n_strata`` equal strata of ``[t_first, t_last]``.

    Args:
        t_first, t_last: ``(W,)`` interval ends.
        n_strata: strata per draw.
        n_draws: independent stratified sets (one per latent sample).

    Returns:
        ``(W, n_draws · n_strata)`` times; their mean of any integrand times the interval
        length is an unbiased estimate of its integral.
    """
    width = (t_last - t_first)[:, None] / n_strata
    offsets = torch.arange(n_strata, device=t_first.device, dtype=t_first.dtype).repeat(n_draws)
    u = torch.rand(t_first.shape[0], n_draws * n_strata, device=t_first.device, dtype=t_first.dtype)
    return t_first[:, None] + (offsets + u) * width


def kl_weight(step: torch.Tensor, warmup: int, transition: int) -> torch.Tensor:
    """β = clip((step − warmup) / transition, 0, 1); a hard switch when transition is 0."""
    if transition <= 0:
        return (step >= warmup).to(torch.float32)
    return ((step - warmup).to(torch.float32) / transition).clamp(0.0, 1.0)
