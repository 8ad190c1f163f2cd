"""The torch module that holds every trainable part and computes the training loss.

Parts: encoder, decoder (+ its log-normal noise variance), the deep-kernel window
posterior, the drift ψθ and the dispersion Ψ. The loss is the negative ELBO per datum and
per state dimension (the rom-visde convention):

    loss = −[ ELL / (B·D) − β ( Res / (B·D) + KL / (N_tot·D) ) ]

with ELL the expected log-likelihood of the B snapshots of a window, Res the path-KL
residual integral over the window, and KL the global variables' KL divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.contraction import contraction_penalty
from engine.elbo import kl_weight, path_residual, stratified_times
from engine.likelihoods import log_likelihood
from engine.posterior import WindowPosterior

if TYPE_CHECKING:  # pragma: no cover
    from engine.drift import Dispersion, LatentDrift
    from engine.priors import LogNormalVariance

__all__ = ["WindowBatch", "SROMModule"]


@dataclass
class WindowBatch:
    """W windows of B consecutive snapshots, gathered on the device.

    Attributes:
        t_nodes: ``(W, B)`` snapshot times.
        x_nodes: ``(W, B, *S)`` normalized states.
        x_windows: ``(W, B, n_win, *S)`` forward-looking encoder windows.
        mu: ``(W, P)`` normalized parameters.
        t_grid: ``(T,)`` the dataset's time grid.
        f_traj: ``(W, T, F)`` normalized forcing of each window's trajectory.
    """

    t_nodes: torch.Tensor
    x_nodes: torch.Tensor
    x_windows: torch.Tensor
    mu: torch.Tensor
    t_grid: torch.Tensor
    f_traj: torch.Tensor


def interpolate_forcing(t_grid: torch.Tensor, f_traj: torch.Tensor,
                        t_query: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of sampled forcing.

    Args:
        t_grid: ``(T,)`` sample times.
        f_traj: ``(W, T, F)`` samples.
        t_query: ``(W, Q)`` query times (clamped to the grid).

    Returns:
        ``(W, Q, F)``.
    """
    n_t = t_grid.shape[0]
    tq = t_query.clamp(t_grid[0], t_grid[-1])
    j = (torch.searchsorted(t_grid, tq.contiguous(), right=True) - 1).clamp(0, n_t - 2)
    t_lo, t_hi = t_grid[j], t_grid[j + 1]
    frac = ((tq - t_lo) / (t_hi - t_lo)).unsqueeze(-1)
    idx = j.unsqueeze(-1).expand(*j.shape, f_traj.shape[-1])
    f_lo = torch.gather(f_traj, 1, idx)
    f_hi = torch.gather(f_traj, 1, idx + 1)
    return f_lo + frac * (f_hi - f_lo)


class SROMModule(nn.Module):
    """All trainable parts of a stochastic ROM (built by :class:`engine.model.StochasticROM`)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, decoder_variance: LogNormalVariance,
                 posterior: WindowPosterior, drift: LatentDrift, dispersion: Dispersion,
                 state_shape: tuple[int, ...], latent_dim: int, likelihood: str = "gaussian",
                 decoded_latents: int | None = None):
        super().__init__()
        #: the decoder reads z[..., :decoded_latents] (a mechanical system's positions,
        #: ``decode_positions_only``); ``None``: all of z
        self.decoded_latents = decoded_latents
        self.likelihood = likelihood  # engine.likelihoods.LIKELIHOODS
        self.encoder, self.decoder = encoder, decoder
        self.decoder_variance = decoder_variance
        self.posterior, self.drift, self.dispersion = posterior, drift, dispersion
        self.state_shape = tuple(state_shape)
        self.latent_dim = latent_dim
        self.state_size = math.prod(self.state_shape)

    # ----------------------------------------------------------------- pieces
    def encode(self, x_windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, n_win, *S)`` → latent mean and log-variance, each ``(M, d)``."""
        return self.encoder(x_windows)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(M, d)`` → decoded mean ``(M, *S)`` (normalized units)."""
        return self.decoder(z if self.decoded_latents is None else z[..., :self.decoded_latents])

    # ------------------------------------------------------------------- loss
    def loss_terms(self, batch: WindowBatch, step: torch.Tensor, *, n_samples: int,
                   n_quad: int, quadrature: str, n_total: int, kl_warmup: int,
                   kl_transition: int, contraction_weight: float = 0.0,
                   contraction_margin: float = 0.0) -> dict[str, torch.Tensor]:
        """The normalized ELBO terms of one batch (all 0-d tensors; no host sync).

        ``contraction_weight > 0`` adds the drift's contraction prior
        (:func:`engine.contraction.contraction_penalty` at the residual's samples, allowing
        expansion rates up to ``contraction_margin``) to the residual's integrand with that
        weight (in the returned ``residual``).

        Returns:
            ``loss``, ``ell``, ``residual``, ``kl``, ``beta``.
        """
        n_win_, n_nodes = batch.t_nodes.shape
        d, n_state = self.latent_dim, self.state_size
        flat_windows = batch.x_windows.flatten(0, 1)
        mean, log_var = self.encode(flat_windows)
        h_nodes = torch.cat([mean, log_var], -1).view(n_win_, n_nodes, 2 * d)
        fit = self.posterior.fit_window(batch.t_nodes, h_nodes)

        # Posterior moments at the snapshot times and at the quadrature times, in one pass.
        t_first, t_last = batch.t_nodes[:, 0], batch.t_nodes[:, -1]
        if quadrature == "stratified":
            t_quad = stratified_times(t_first, t_last, n_quad, n_samples)
        else:  # "data": the snapshot times, once per sample
            t_quad = batch.t_nodes.repeat(1, n_samples)
        moments, rates = fit.moments_and_rates(torch.cat([batch.t_nodes, t_quad], 1))

        # --- expected log-likelihood at the B snapshot times, R samples each
        m_nodes, logs_nodes = moments[:, :n_nodes, :d], moments[:, :n_nodes, d:]
        eps = torch.randn(n_samples, n_win_, n_nodes, d, device=m_nodes.device, dtype=m_nodes.dtype)
        z_nodes = m_nodes + torch.exp(0.5 * logs_nodes) * eps
        x_hat = self.decode(z_nodes.reshape(-1, d)).view(n_samples, n_win_, n_nodes, *self.state_shape)
        gaussian = self.likelihood == "gaussian"
        dec_var = self.decoder_variance.sample() if gaussian else None
        log_lik = log_likelihood(self.likelihood, batch.x_nodes.unsqueeze(0), x_hat, dec_var,
                                 len(self.state_shape))
        ell = log_lik.mean(0).sum(-1).mean() / (n_nodes * n_state)

        # --- path-KL residual by quadrature in time
        m_q, logs_q = moments[:, n_nodes:, :d], moments[:, n_nodes:, d:]
        dm_q, dlogs_q = rates[:, n_nodes:, :d], rates[:, n_nodes:, d:]
        var_q = torch.exp(logs_q)
        z_q = m_q + var_q.sqrt() * torch.randn_like(m_q)
        n_quad_total = t_quad.shape[1]
        f_q = interpolate_forcing(batch.t_grid, batch.f_traj, t_quad)
        mu_q = batch.mu.unsqueeze(1).expand(-1, n_quad_total, -1)
        n_points = n_win_ * n_quad_total
        drift = self.drift(z_q.reshape(n_points, d), t_quad.reshape(n_points),
                           mu_q.reshape(n_points, mu_q.shape[-1]),
                           f_q.reshape(n_points, f_q.shape[-1])).view_as(z_q)
        disp_var = self.dispersion.variance(sample=True)
        r = path_residual(m_q, dm_q, var_q, dlogs_q, z_q, drift, disp_var)
        integrand = (r * r / disp_var).sum(-1)
        if contraction_weight > 0:
            integrand = integrand + contraction_weight * contraction_penalty(
                self.drift, z_q.reshape(n_points, d).detach(), t_quad.reshape(n_points),
                mu_q.reshape(n_points, mu_q.shape[-1]), f_q.reshape(n_points, f_q.shape[-1]),
                margin=contraction_margin)
        residual = (0.5 * (t_last - t_first) * integrand.mean(-1)).mean() / (n_nodes * n_state)

        # --- KL of global variables
        kl = self.dispersion.kl() + self.drift.kl()
        if gaussian:  # the Bernoulli likelihood has no decoder variance
            kl = kl + self.decoder_variance.kl()
        kl = kl / (n_total * n_state)

        beta = kl_weight(step, kl_warmup, kl_transition)
        loss = -(ell - beta * (residual + kl))
        return {"loss": loss, "ell": ell, "residual": residual, "kl": kl, "beta": beta}
