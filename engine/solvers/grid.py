"""The times at which a scheme evaluates the drift, and the forcing there.

Between consecutive output times there are ``substeps`` equal steps; each step evaluates the
drift at its scheme's stage fractions (and possibly at its end, the next step's start). The
forcing is linear between output times, as everywhere in srom.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.solvers.base import Scheme

__all__ = ["StageGrid", "stage_grid"]


@dataclass(frozen=True)
class StageGrid:
    """Drift-evaluation times of a rollout.

    Attributes:
        times: ``(K,)`` every evaluation time, in order.
        forcing: ``(M, K, F)`` the forcing at ``times``.
        step_sizes: ``(n_steps,)`` the sizes of the steps.
        per_step: evaluation points that belong to one step (its stage fractions).
        substeps: steps per output interval.
    """

    times: torch.Tensor
    forcing: torch.Tensor
    step_sizes: torch.Tensor
    per_step: int
    substeps: int

    @property
    def n_steps(self) -> int:
        return int(self.step_sizes.shape[0])

    def index(self, step: int, stage: int) -> int:
        """Index into ``times`` of ``stage`` of ``step`` (``stage == per_step``: its end)."""
        return step * self.per_step + stage


def stage_grid(scheme: Scheme, t: torch.Tensor, f: torch.Tensor, substeps: int) -> StageGrid:
    """Lay out the evaluation times of ``scheme`` on the output grid ``t``.

    Args:
        scheme: the scheme (its ``stage_fractions`` must start with 0).
        t: ``(T,)`` increasing output times.
        f: ``(M, T, F)`` forcing at the output times.
        substeps: equal steps per output interval (≥ 1).

    Returns:
        The :class:`StageGrid`; the step ``k`` spans ``times[index(k, 0)]`` to
        ``times[index(k + 1, 0)]``.
    """
    if substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    fractions = scheme.stage_fractions
    if fractions[0] != 0.0 or any(not 0.0 <= c < 1.0 for c in fractions):
        raise ValueError(f"{scheme.name}: stage fractions must start at 0 and lie in [0, 1)")
    per_step = len(fractions)
    sub = torch.arange(substeps, device=t.device, dtype=t.dtype)
    # filled on the device from Python scalars: no host-to-device copy, which a CUDA graph
    # capture (RolloutEngine) forbids
    c = torch.empty(per_step, device=t.device, dtype=t.dtype)
    for j, fraction in enumerate(fractions):
        c[j].fill_(fraction)
    # position of every evaluation point inside its output interval, in [0, 1)
    s = ((sub[:, None] + c[None, :]) / substeps).reshape(-1)  # (substeps · per_step,)
    span = t[1:] - t[:-1]
    times = torch.cat([(t[:-1, None] + s * span[:, None]).reshape(-1), t[-1:]])
    f_lo, f_hi = f[:, :-1], f[:, 1:]
    f_inside = f_lo[:, :, None] + s[None, None, :, None] * (f_hi - f_lo)[:, :, None]
    forcing = torch.cat([f_inside.flatten(1, 2), f[:, -1:]], dim=1)
    step_sizes = (span / substeps).repeat_interleave(substeps)
    return StageGrid(times=times, forcing=forcing, step_sizes=step_sizes, per_step=per_step,
                     substeps=substeps)
