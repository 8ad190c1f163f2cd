"""Batched rollouts of the latent SDE with any scheme of :mod:`engine.solvers`.

All paths of all cases move together as one batch ``(M, d)``. The Brownian draws are made
up front from a seeded generator, so a rollout is a deterministic function of its inputs;
on CUDA the whole time loop is captured once per shape as a CUDA graph and replayed for
later calls (a dashboard slider move). A NeuralDrift's rollout can instead run as one Triton
kernel (:mod:`engine.solvers.fused`; off by default: its first form was slower than the graph,
the current one is not timed on a GPU yet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

import torch

from engine.cancellation import CancelCheck, check_cancelled
from engine.drift import NeuralDrift
from engine.solvers import DEFAULT_METHOD, METHODS, get_scheme
from engine.solvers.fused import (
    FusedUnsupported,
    FusedWeights,
    fused_integrate,
    fused_support,
    pack_weights,
)
from engine.solvers.grid import stage_grid

__all__ = ["METHODS", "integrate", "RolloutEngine"]

DriftFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# A drift may offer ``stepper(t (K, M), mu (M, P), f (M, K, F)) -> step(k, z)``, a quicker
# form for a fixed grid (see engine.drift.NeuralDrift.stepper); integrate() uses it.


def integrate(drift: DriftFn, z0: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
              f: torch.Tensor, dispersion_std: torch.Tensor, noise: torch.Tensor,
              method: str = DEFAULT_METHOD, substeps: int = 1,
              cancel: CancelCheck | None = None) -> torch.Tensor:
    """Integrate ``dz = ψ(z, t; μ, f(t)) dt + Ψ dβ`` on the grid ``t``.

    Args:
        drift: ``ψ(z (M, d), t (M,), mu (M, P), f (M, F)) -> (M, d)``.
        z0: ``(M, d)`` initial states.
        t: ``(T,)`` output times, increasing.
        mu: ``(M, P)``.
        f: ``(M, T, F)`` forcing at the output times (linear in between).
        dispersion_std: Ψ, ``(d,)`` or ``(M, d)``.
        noise: ``(T − 1, substeps, M, n_noise·d)`` standard normal draws
            (``get_scheme(method).noise_shape``; ``n_noise`` is 1 for ``euler``/``heun``).
        method: a name in :data:`engine.solvers.METHODS`.
        substeps: equal steps between consecutive output times.
        cancel: checked before every step (:mod:`engine.cancellation`); ``None``: never.

    Returns:
        ``(M, T, d)`` paths, ``out[:, 0] == z0``.

    Raises:
        PredictionCancelled: ``cancel()`` returned ``True``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown integrator '{method}': use one of {METHODS}")
    scheme = get_scheme(method)
    m = z0.shape[0]
    expected = scheme.noise_shape(t.shape[0] - 1, substeps, m, z0.shape[1])
    if tuple(noise.shape) != expected:
        raise ValueError(f"noise: expected shape {expected} for '{method}', got {tuple(noise.shape)}")
    grid = stage_grid(scheme, t, f, substeps)
    # everything that does not depend on z is computed for all steps at once, so that a
    # step is the drift and a few updates (fewer kernels per step in the captured graph,
    # less Python per step on the CPU)
    terms = scheme.prepare(noise.reshape(grid.n_steps, m, -1), grid.step_sizes, dispersion_std)
    t_paths = grid.times[:, None].expand(-1, m)
    stepper = getattr(drift, "stepper", None)  # a drift's faster fixed-grid form, if any
    evaluate = (stepper(t_paths, mu, grid.forcing) if stepper is not None
                else lambda i, z: drift(z, t_paths[i], mu, grid.forcing[:, i]))
    out = [z0]
    z = z0
    for k in range(grid.n_steps):
        if cancel is not None:
            check_cancelled(cancel, f"integration step {k} of {grid.n_steps}")
        # ``base`` bound as a default: the closure is called only within this iteration
        def drift_at(stage: int, y: torch.Tensor, base: int = grid.index(k, 0)) -> torch.Tensor:
            return evaluate(base + stage, y)

        z = scheme.step(z, grid.step_sizes[k], drift_at, tuple(term[k] for term in terms))
        if (k + 1) % substeps == 0:
            out.append(z)
    return torch.stack(out, dim=1)


class RolloutEngine:
    """Runs :func:`integrate`: eagerly on the CPU; on CUDA through cached CUDA graphs, or as
    one fused Triton kernel when ``use_fused`` (default: ``$SROM_FUSED_ROLLOUT == "1"``) and
    :func:`~engine.solvers.fused.fused_support` allows it (paths with their own μ or f(t)
    take the graph: the kernel refuses them with ``FusedUnsupported``).

    Attributes:
        last_path: how the latest call ran: ``"fused"``, ``"graph"`` or ``"eager"``.
    """

    def __init__(self, drift: torch.nn.Module, use_graph: bool = True, max_graphs: int = 8,
                 use_fused: bool | None = None):
        self.drift = drift
        self.use_graph = use_graph
        self.use_fused = (os.environ.get("SROM_FUSED_ROLLOUT") == "1" if use_fused is None
                          else bool(use_fused))
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, tuple] = {}
        self._packed: tuple[tuple, FusedWeights] | None = None
        self.last_path = ""

    def clear(self) -> None:
        self._graphs.clear()
        self._packed = None

    def _fused_weights(self) -> FusedWeights:
        """The drift's packed weights, packed again whenever a parameter changed (an
        optimizer step bumps its version) or moved."""
        key = tuple((p.data_ptr(), p._version) for p in self.drift.parameters())
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, pack_weights(cast(NeuralDrift, self.drift)))
        return self._packed[1]

    @torch.no_grad()
    def __call__(self, z0, t, mu, f, dispersion_std, noise, method=DEFAULT_METHOD, substeps=1,
                 cancel=None):
        """:func:`integrate`'s arguments; ``cancel`` is checked before every step of an eager
        rollout, and before a CUDA graph's or the fused kernel's (one launch: not inside)."""
        check_cancelled(cancel, "the start of the integration")
        if (self.use_fused and z0.is_cuda and method in METHODS
                and fused_support(self.drift, method, z0, 1 + (t.shape[0] - 1) * substeps
                                  * len(get_scheme(method).stage_fractions)) is None):
            try:
                out = fused_integrate(cast(NeuralDrift, self.drift), z0, t, mu, f, dispersion_std,
                                      noise, method, substeps, weights=self._fused_weights())
            except FusedUnsupported:  # the paths' μ or f(t) differ: the graph takes them
                pass
            else:
                self.last_path = "fused"
                return out
        if not (self.use_graph and z0.is_cuda):
            self.last_path = "eager"
            return integrate(self.drift, z0, t, mu, f, dispersion_std, noise, method, substeps,
                             cancel=cancel)
        self.last_path = "graph"
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
