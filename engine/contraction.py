"""A contraction prior on the latent drift: a penalty on the local expansion rate.

The ELBO scores windows of a few dozen steps; a long rollout also depends on how errors grow
along the way, which the windows barely see (two Burgers trainings with the same objective
value differed severalfold in rollout error, ``docs/attempts/burgers_paper-seed-curves.md``).
Dissipative, forced systems forget their initial state in the long run, though not always
within a horizon (the Burgers simulator amplifies some errors for its first time units:
``benchmarks/drift_stability.py``), hence a margin. The local expansion rate of the drift at ``z`` is the
largest eigenvalue of the symmetric part of its Jacobian,

    λ(z) = max_{‖u‖=1} uᵀ ∂ψ/∂z u,

(the logarithmic norm: two nearby latent paths part at most at this rate). The penalty is the
mean of ``relu(λ - λ₀)²`` over posterior samples along the training windows (λ₀:
``contraction_margin``, default 0); with ``StochasticROM(contraction_weight=w)`` it enters the loss beside the residual's integrand
(``engine.module.SROMModule.loss_terms``), annealed with it.

The Jacobian comes from central differences of the drift (``2d`` extra evaluations at a
bounded number of points, ``MAX_POINTS``): it works for every drift kind, inside a captured
CUDA graph, and its gradient reaches the drift's parameters. The largest eigenvalue is found
by power iteration (by repeated squaring) on a shifted, positive semi-definite copy
without gradient, then taken
as the Rayleigh quotient of that vector with gradient (the eigenvalue's derivative).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["drift_jacobians", "encoded_drift_inputs", "expansion_rates", "contraction_penalty",
           "MAX_POINTS"]

#: the most points a training step evaluates the Jacobian at (a strided subset beyond)
MAX_POINTS = 256
#: relative step of the central differences (latent units are normalized, O(1))
STEP = 1e-3
#: squarings of the shifted matrix (the power iteration's power is 2 ** SQUARINGS)
SQUARINGS = 10


def drift_jacobians(drift, z: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
                    f: torch.Tensor) -> torch.Tensor:
    """``(N, d, d)`` Jacobians ∂ψ/∂z at the ``N`` points (central differences)."""
    n, d = z.shape
    eye = torch.eye(d, dtype=z.dtype, device=z.device) * STEP
    shifted = torch.cat([z[:, None, :] + eye, z[:, None, :] - eye], 1).reshape(2 * d * n, d)
    repeat = lambda a: a[:, None].expand(n, 2 * d, *a.shape[1:]).reshape(2 * d * n, *a.shape[1:])  # noqa: E731
    values = drift(shifted, repeat(t), repeat(mu), repeat(f)).view(n, 2 * d, d)
    columns = (values[:, :d] - values[:, d:]) / (2 * STEP)  # (N, k, i) = ∂ψ_i/∂z_k
    return columns.transpose(1, 2)


def expansion_rates(drift, z: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
                    f: torch.Tensor) -> torch.Tensor:
    """The local expansion rate ``λ(z)`` of the drift at each point (module docstring).

    Args:
        drift: a latent drift, ``drift(z (N, d), t (N,), mu (N, P), f (N, F)) -> (N, d)``.
        z, t, mu, f: the points and their time, parameters and forcing.

    Returns:
        ``(N,)`` rates (1 / time unit), differentiable in the drift's parameters.
    """
    sym = drift_jacobians(drift, z, t, mu, f)
    sym = 0.5 * (sym + sym.transpose(1, 2))
    with torch.no_grad():
        # S + c·I with c ≥ the spectral radius is positive semi-definite, and its top
        # eigenvector is S's; its 2**SQUARINGS-th power (normalized at each squaring)
        # projects any vector onto it, however close the next eigenvalue is
        d = sym.shape[-1]
        eye = torch.eye(d, dtype=sym.dtype, device=sym.device)
        power = sym + (torch.linalg.matrix_norm(sym)[:, None, None] + 1e-6) * eye
        for _ in range(SQUARINGS):
            power = power / torch.linalg.matrix_norm(power)[:, None, None]
            power = power @ power
        start = 1.0 + 0.1 * torch.arange(d, dtype=sym.dtype, device=sym.device)
        v = power @ start[:, None]
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return (v.transpose(1, 2) @ sym @ v).view(-1)


def encoded_drift_inputs(model, dataset) -> tuple[torch.Tensor, ...]:
    """The drift's inputs along the encoded paths of ``dataset``: ``z`` ``(N·T, d)`` (the
    encoder's mean of each snapshot, ``StochasticROM.encode``) with its time ``(N·T,)``, μ
    ``(N·T, P)`` and forcing ``(N·T, F)``, normalized as the drift sees them."""
    norm, device = model.normalization_, next(model.module_.parameters()).device
    n_traj, n_t = dataset.x.shape[:2]
    z, _ = model.encode(dataset.x.reshape(n_traj * n_t, *dataset.x.shape[2:]))
    as_tensor = lambda a: torch.as_tensor(a, dtype=model.torch_dtype, device=device)  # noqa: E731
    mu = (np.repeat(dataset.mu, n_t, 0) - norm.mu_mean) / norm.mu_std
    f = (dataset.f.reshape(n_traj * n_t, -1) - norm.f_mean) / norm.f_std
    return as_tensor(z), as_tensor(np.tile(dataset.t, n_traj)), as_tensor(mu), as_tensor(f)


def contraction_penalty(drift, z: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
                        f: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``mean(relu(λ - margin)²)`` over (at most ``MAX_POINTS`` of) the points: a 0-d
    tensor. ``margin``: the expansion rate allowed (a system whose truth amplifies errors
    for a while, as forced Burgers does over its horizon, may need one)."""
    n = z.shape[0]
    if n > MAX_POINTS:
        stride = -(-n // MAX_POINTS)
        z, t, mu, f = z[::stride], t[::stride], mu[::stride], f[::stride]
    rates = expansion_rates(drift, z, t, mu, f)
    return torch.relu(rates - margin).square().mean()
