"""Batched fixed-step integrators of the latent SDE (Euler–Maruyama and stochastic Heun).

All paths of all cases move together as one batch ``(M, d)``. The Brownian increments are
drawn up front from a seeded generator, so a rollout is a deterministic function of its
inputs; on CUDA the whole time loop is captured once per shape as a CUDA graph and
replayed for later calls (a dashboard slider move).

The noise is additive (Ψ does not depend on z), so Itô and Stratonovich agree and the
stochastic Heun scheme has strong order 1 here.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["METHODS", "integrate", "RolloutEngine"]

METHODS = ("euler", "heun")
DriftFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# A drift may offer ``stepper(t (K, M), mu (M, P), f (M, K, F)) -> step(k, z)``, a quicker
# form for a fixed grid (see engine.drift.NeuralDrift.stepper); integrate() uses it.


def _substep_grid(t: torch.Tensor, f: torch.Tensor, substeps: int):
    """Times ``(K,)`` and linearly interpolated forcing ``(M, K, F)`` with substeps."""
    if substeps == 1:
        return t, f
    frac = torch.arange(substeps, device=t.device, dtype=t.dtype) / substeps
    t_fine = (t[:-1, None] + frac * (t[1:] - t[:-1])[:, None]).reshape(-1)
    t_fine = torch.cat([t_fine, t[-1:]])
    f_lo, f_hi = f[:, :-1], f[:, 1:]
    f_fine = (f_lo[:, :, None] + frac[None, None, :, None] * (f_hi - f_lo)[:, :, None])
    f_fine = torch.cat([f_fine.flatten(1, 2), f[:, -1:]], dim=1)
    return t_fine, f_fine


def integrate(drift: DriftFn, z0: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
              f: torch.Tensor, dispersion_std: torch.Tensor, noise: torch.Tensor,
              method: str = "euler", substeps: int = 1) -> torch.Tensor:
    """Integrate ``dz = ψ(z, t; μ, f(t)) dt + Ψ dβ`` on the grid ``t``.

    Args:
        drift: ``ψ(z (M, d), t (M,), mu (M, P), f (M, F)) -> (M, d)``.
        z0: ``(M, d)`` initial states.
        t: ``(T,)`` output times, increasing.
        mu: ``(M, P)``.
        f: ``(M, T, F)`` forcing at the output times (linear in between).
        dispersion_std: Ψ, ``(d,)`` or ``(M, d)``.
        noise: ``(T − 1, substeps, M, d)`` standard normal draws.
        method: ``euler`` (Euler–Maruyama) or ``heun`` (stochastic Heun).
        substeps: equal sub-steps between consecutive output times.

    Returns:
        ``(M, T, d)`` paths, ``out[:, 0] == z0``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown integrator '{method}': use one of {METHODS}")
    t_fine, f_fine = _substep_grid(t, f, substeps)
    n_fine = t_fine.shape[0]
    m = z0.shape[0]
    # everything that does not depend on z is computed for all steps at once, so that a
    # step is the drift and one update (fewer kernels per step in the captured graph,
    # less Python per step on the CPU); the same values as computing them per step
    h = t_fine[1:] - t_fine[:-1]  # (K − 1,)
    diffusion = (dispersion_std * torch.sqrt(h)[:, None, None]) * noise.reshape(n_fine - 1, m, -1)
    t_paths = t_fine[:, None].expand(-1, m)
    stepper = getattr(drift, "stepper", None)  # a drift's faster fixed-grid form, if any
    step = (stepper(t_paths, mu, f_fine) if stepper is not None
            else lambda k, z: drift(z, t_paths[k], mu, f_fine[:, k]))
    out = [z0]
    z = z0
    for k in range(n_fine - 1):
        a = step(k, z)
        if method == "euler":
            z = z + a * h[k] + diffusion[k]
        else:
            z_pred = z + a * h[k] + diffusion[k]
            a_pred = step(k + 1, z_pred)
            z = z + 0.5 * (a + a_pred) * h[k] + diffusion[k]
        if (k + 1) % substeps == 0:
            out.append(z)
    return torch.stack(out, dim=1)


class RolloutEngine:
    """Runs :func:`integrate`, eagerly on the CPU and through cached CUDA graphs on CUDA."""

    def __init__(self, drift: torch.nn.Module, use_graph: bool = True, max_graphs: int = 8):
        self.drift = drift
        self.use_graph = use_graph
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, tuple] = {}

    def clear(self) -> None:
        self._graphs.clear()

    @torch.no_grad()
    def __call__(self, z0, t, mu, f, dispersion_std, noise, method="euler", substeps=1):
        if not (self.use_graph and z0.is_cuda):
            return integrate(self.drift, z0, t, mu, f, dispersion_std, noise, method, substeps)
        key = (tuple(z0.shape), tuple(t.shape), tuple(mu.shape), tuple(f.shape),
               tuple(dispersion_std.shape), method, substeps, z0.dtype)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            inputs = [v.clone() for v in (z0, t, mu, f, dispersion_std, noise)]
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                integrate(self.drift, *inputs, method, substeps)  # warm-up
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output = integrate(self.drift, *inputs, method, substeps)
            entry = (graph, inputs, output)
            self._graphs[key] = entry
        graph, inputs, output = entry
        for buffer, value in zip(inputs, (z0, t, mu, f, dispersion_std, noise)):
            buffer.copy_(value)
        graph.replay()
        return output.clone()
