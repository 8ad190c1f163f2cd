"""Amortized Markov-Gaussian posterior: deep-kernel GP interpolation of encoder outputs.

On each window of B consecutive snapshots the encoder gives node values
``H = [m̂, log Ŝ]`` of shape ``(W, B, 2d)``. The posterior marginal at any time t of the
window is ``q(z(t)) = N(m(t), diag S(t))`` with

    [m(t), log S(t)] = k(t, T_W) (K_WW + σ_n² I)⁻¹ H,

where the kernel is ``σ_k exp(−½ (w(τ) − w(τ'))² / ℓ²)`` on rescaled times
``τ ∈ [−1, 1]`` warped by a residual network ``w(τ) = τ + MLP(τ)``. The time derivatives
ṁ(t) and d/dt log S(t) come from forward-mode autodiff through the interpolant.

Everything here is free of host synchronisation (the Cholesky retry ladder is
branch-free), so a training step that uses it can be captured in a CUDA graph.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import softplus

from engine.networks import mlp

__all__ = ["DeepKernel", "WindowPosterior", "inverse_softplus"]

# Jitter ladder (relative to the mean diagonal) tried in one batched Cholesky.
_JITTERS = (0.0, 1e-6, 1e-4, 1e-2)
#: devices on which :func:`robust_cholesky` factors the matrix alone first and reads the
#: status back (a host synchronisation, free on the CPU, forbidden in a CUDA-graph capture)
FACTOR_FIRST_DEVICES: tuple[str, ...] = ("cpu",)


def inverse_softplus(value: float) -> float:
    value = float(value)  # on the CPU even while a model is built on the meta device
    return value + float(torch.log(-torch.expm1(torch.tensor(-value, device="cpu"))))


class DeepKernel(nn.Module):
    """Squared-exponential kernel on warped, rescaled times (VISDE form).

    Args:
        hidden: widths of the warp network.
        length_scale: initial ℓ in rescaled units (the window spans [−1, 1]).
        nugget: initial σ_n² added to the node covariance.
    """

    def __init__(self, hidden: tuple[int, ...] = (32, 32), length_scale: float = 0.1,
                 nugget: float = 1e-2, act: str = "tanh"):
        super().__init__()
        self.warp_net = mlp(1, hidden, 1, act, zero_last=True)
        self.raw_length = nn.Parameter(torch.tensor(inverse_softplus(length_scale)))
        self.raw_scale = nn.Parameter(torch.tensor(inverse_softplus(1.0)))
        self.raw_nugget = nn.Parameter(torch.tensor(inverse_softplus(nugget)))

    @property
    def nugget(self) -> torch.Tensor:
        return softplus(self.raw_nugget) + 1e-6

    def warp(self, tau: torch.Tensor) -> torch.Tensor:
        """``(..., n)`` rescaled times → warped times, same shape."""
        return tau + self.warp_net(tau.unsqueeze(-1)).squeeze(-1)

    def warp_and_rate(self, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Warped times and dw/dτ, each ``(..., n)``, in one forward-mode pass.

        The tangent is pushed through the warp network layer by layer (dual numbers by
        hand): far fewer host-side operations than a generic ``torch.func.jvp``.
        """
        value, tangent = tau.unsqueeze(-1), torch.ones_like(tau).unsqueeze(-1)
        for layer in self.warp_net:
            if isinstance(layer, nn.Linear):
                value = layer(value)
                tangent = tangent @ layer.weight.T
            elif isinstance(layer, nn.Tanh):
                value = torch.tanh(value)
                tangent = tangent * (1 - value * value)
            elif isinstance(layer, nn.SiLU):
                sig = torch.sigmoid(value)
                tangent = tangent * (sig * (1 + value * (1 - sig)))
                value = value * sig
            elif isinstance(layer, nn.ReLU):
                tangent = tangent * (value > 0)
                value = torch.relu(value)
            else:  # pragma: no cover - mlp() builds only the layers above for the kernel
                raise TypeError(f"no tangent rule for {type(layer).__name__}")
        return tau + value.squeeze(-1), 1 + tangent.squeeze(-1)

    def length(self) -> torch.Tensor:
        return softplus(self.raw_length) + 1e-4

    def __call__(self, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        """Kernel matrix between warped times ``(..., n1)`` and ``(..., n2)`` → ``(..., n1, n2)``."""
        diff = (w1.unsqueeze(-1) - w2.unsqueeze(-2)) / self.length()
        return softplus(self.raw_scale) * torch.exp(-0.5 * diff * diff)


def robust_cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a batch of SPD matrices ``(..., n, n)`` with a jitter ladder.

    On a GPU all rungs are factored in one batched call without gradients, the first that
    succeeded is picked per matrix, and only the matrix with that jitter is factored again
    with gradients: no data-dependent branch (and no host synchronisation, which a
    CUDA-graph capture forbids), and the backward pass sees neither the other rungs' work
    nor the NaNs of the rungs that failed. On the CPU, where reading the status back costs
    nothing, the matrix is factored alone first and the ladder runs only if a
    factorization failed: the same factor (the first rung has no jitter) for a fraction of
    the work.
    """
    if matrix.device.type in FACTOR_FIRST_DEVICES:
        factors, info = torch.linalg.cholesky_ex(matrix)
        if not bool((info != 0).any()):
            return factors
    n = matrix.shape[-1]
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    scale = matrix.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None].detach()
    # built on the device (a host-to-device copy is not allowed during graph capture)
    rungs = torch.arange(len(_JITTERS), device=matrix.device, dtype=matrix.dtype)
    jitters = torch.where(rungs > 0, 10.0 ** (2.0 * rungs - 8.0), torch.zeros_like(rungs))
    with torch.no_grad():
        ladder = matrix.unsqueeze(0) + jitters.view(-1, *([1] * matrix.dim())) * scale * eye
        ok = torch.linalg.cholesky_ex(ladder)[1] == 0  # (R, ...)
        # index of the first successful rung (the last one if none succeeded)
        rung_ids = torch.arange(len(_JITTERS), device=matrix.device)
        rung_ids = rung_ids.view(-1, *([1] * (matrix.dim() - 2)))
        first = torch.where(ok, rung_ids, len(_JITTERS) - 1).amin(0)  # (...)
    # index_select, not jitters[first]: indexing with a 0-d tensor reads it back
    jitter = jitters.index_select(0, first.reshape(-1)).view(*first.shape, 1, 1) * scale
    factors = torch.linalg.cholesky_ex(matrix + jitter * eye)[0]
    return torch.nan_to_num(factors)


class WindowPosterior(nn.Module):
    """Interpolates node values on windows and gives the marginal moments and derivatives."""

    def __init__(self, kernel: DeepKernel):
        super().__init__()
        self.kernel = kernel

    def fit_window(self, t_nodes: torch.Tensor, h_nodes: torch.Tensor) -> WindowFit:
        """Condition on node values.

        Args:
            t_nodes: ``(W, B)`` node times of each window (increasing).
            h_nodes: ``(W, B, 2d)`` encoder mean and log-variance at the nodes.
        """
        t0 = t_nodes[:, :1]
        half = 0.5 * (t_nodes[:, -1:] - t0)
        tau = (t_nodes - t0) / half - 1.0
        w_nodes = self.kernel.warp(tau)
        centre = w_nodes.mean(-1, keepdim=True)
        w_nodes = w_nodes - centre
        eye = torch.eye(t_nodes.shape[1], dtype=h_nodes.dtype, device=h_nodes.device)
        gram = self.kernel(w_nodes, w_nodes) + self.kernel.nugget * eye
        chol = robust_cholesky(gram)
        # two triangular solves (cuBLAS trsm) rather than cholesky_solve, which cannot be
        # captured in a CUDA graph for batched inputs
        half_solved = torch.linalg.solve_triangular(chol, h_nodes, upper=False)
        alpha = torch.linalg.solve_triangular(chol.transpose(-1, -2), half_solved, upper=True)
        return WindowFit(self.kernel, t0, half, centre, w_nodes, alpha)


class WindowFit:
    """A conditioned window: evaluate ``[m, log S]`` and their time derivatives at any time."""

    def __init__(self, kernel: DeepKernel, t0, half, centre, w_nodes, alpha):
        self.kernel, self.t0, self.half = kernel, t0, half
        self.centre, self.w_nodes, self.alpha = centre, w_nodes, alpha

    def _interp(self, t_query: torch.Tensor) -> torch.Tensor:
        tau = (t_query - self.t0) / self.half - 1.0
        w = self.kernel.warp(tau) - self.centre
        return self.kernel(w, self.w_nodes) @ self.alpha

    def moments(self, t_query: torch.Tensor) -> torch.Tensor:
        """``(W, Q)`` query times → ``(W, Q, 2d)`` = [m, log S]."""
        return self._interp(t_query)

    def moments_and_rates(self, t_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, Q)`` query times → ([m, log S], d/dt [m, log S]), each ``(W, Q, 2d)``.

        The derivative is exact: forward-mode differentiation through the time rescaling,
        the warp network and the kernel, ``d/dt k(w(τ(t)), w_j) = k · (w_j − w)/ℓ² · w'(τ) / c``.
        """
        tau = (t_query - self.t0) / self.half - 1.0
        w, w_rate = self.kernel.warp_and_rate(tau)
        w = w - self.centre
        k = self.kernel(w, self.w_nodes)  # (W, Q, B)
        length = self.kernel.length()
        dk = k * (self.w_nodes.unsqueeze(-2) - w.unsqueeze(-1)) / (length * length)
        dk = dk * (w_rate / self.half).unsqueeze(-1)
        return k @ self.alpha, dk @ self.alpha

    def moments_and_rates_jvp(self, t_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference implementation of :meth:`moments_and_rates` with ``torch.func.jvp``."""
        # Each query's output depends only on its own time, so a tangent of ones gives the
        # element-wise time derivative in one forward pass.
        out = torch.func.jvp(self._interp, (t_query,), (torch.ones_like(t_query),))
        return out[0], out[1]
