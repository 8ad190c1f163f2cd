"""Which windows a training step draws: a counter-based schedule.

The trajectory and start of every window are a pure function of ``(seed, step, slot)``,
computed with a 32-bit integer hash (Wellons' *triple32*) in plain tensor arithmetic. So:

* the in-memory sampler computes them on the device, inside the CUDA graph, from the
  step counter (no host round trip, nothing to capture but integer kernels);
* the streaming sampler computes the very same numbers on the host, steps ahead, to read
  those windows from disk before they are needed;
* a resumed run needs no saved generator state, whatever the number of ranks; and
* the global batch of a step does not depend on how many ranks share it: with ``W``
  windows per step and ``k`` ranks, rank ``r`` takes the slots ``r·W/k … (r+1)·W/k − 1``.

The draws are independent of the noise of the ELBO (``torch.randn``, the global stream).
"""

from __future__ import annotations

import torch

__all__ = ["window_draws", "rank_slots", "seed_key", "DrawTable"]

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x · c mod 2³²`` for ``0 ≤ x < 2³²``, without int64 overflow (c in 16-bit halves)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix(x: torch.Tensor) -> torch.Tensor:
    """triple32: a 32-bit integer hash with near-ideal avalanche (int64 tensors in [0, 2³²))."""
    x = x ^ (x >> 17)
    x = _mul32(x, 0xED5AD4BB)
    x = x ^ (x >> 11)
    x = _mul32(x, 0xAC4C1B51)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x31848BAB)
    return x ^ (x >> 14)


def _mix_int(x: int) -> int:
    return int(_mix(torch.tensor(x & _MASK32, dtype=torch.int64)))


def seed_key(seed: int) -> int:
    """The 32-bit key of a seed in ``0 … 2⁶³ − 1`` (both halves enter)."""
    return _mix_int(_mix_int(seed & _MASK32) ^ ((seed >> 32) & _MASK32))


def rank_slots(windows_per_step: int, rank: int, world_size: int,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The slots (window numbers within the global batch) of ``rank``: ``(W/k,)`` int64.

    Raises:
        ValueError: ``windows_per_step`` is not a multiple of ``world_size``.
    """
    if windows_per_step % world_size:
        raise ValueError(f"windows_per_step ({windows_per_step}) is the global count of "
                         f"windows per step and must be a multiple of the number of ranks "
                         f"({world_size})")
    per_rank = windows_per_step // world_size
    return torch.arange(rank * per_rank, (rank + 1) * per_rank, dtype=torch.int64, device=device)


def window_draws(key: int, step: torch.Tensor, slots: torch.Tensor, n_traj: int,
                 n_starts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trajectory and start index of each slot's window at ``step`` (or at several steps).

    Args:
        key: :func:`seed_key` of the training seed.
        step: int64 tensor of optimizer steps, any shape ``(*K)`` (0-d for one step), on
            the device of ``slots``.
        slots: ``(w,)`` int64 window numbers within the step's global batch.
        n_traj: N, trajectories to draw from.
        n_starts: T − B + 1, possible first snapshots of a window.

    Returns:
        ``(traj, start)``, each ``(*K, w)`` int64, uniform on ``[0, n_traj)`` and
        ``[0, n_starts)`` (bias below ``n / 2³²``); a step's draws do not depend on which
        other steps are computed with it.
    """
    step = step.to(torch.int64)
    h = _mix(key ^ _mix((step & _MASK32) ^ _mix(step >> 32)))  # (*K,)
    fields = _mix(torch.stack([2 * slots, 2 * slots + 1]) & _MASK32)  # (2, w): trajectory, start
    u = _mix(h[None, ..., None] ^ fields.view(2, *([1] * h.dim()), -1))  # (2, *K, w)
    traj = (u[0] * n_traj) >> 32
    start = (u[1] * n_starts) >> 32
    return traj, start


class DrawTable:
    """The draws of blocks of steps, computed a block at a time (about 140 small integer
    kernels for ``block`` steps instead of for every step) into fixed buffers, which a
    captured CUDA graph indexes with its step counter.

    Args:
        key, slots, n_traj, n_starts: as :func:`window_draws`.
        block: steps per block.
    """

    def __init__(self, key: int, slots: torch.Tensor, n_traj: int, n_starts: int,
                 block: int = 1024):
        self.key, self.slots, self.n_traj, self.n_starts = key, slots, n_traj, n_starts
        self.block = block
        device, w = slots.device, slots.numel()
        self.traj = torch.zeros((block, w), dtype=torch.int64, device=device)
        self.start = torch.zeros((block, w), dtype=torch.int64, device=device)
        self.base = torch.zeros((), dtype=torch.int64, device=device)  # first step of the block
        self.first: int | None = None

    def prepare(self, step: int) -> None:
        """Make the block hold ``step`` (outside a graph: refills the buffers in place)."""
        if self.first is not None and self.first <= step < self.first + self.block:
            return
        steps = torch.arange(step, step + self.block, device=self.slots.device)
        traj, start = window_draws(self.key, steps, self.slots, self.n_traj, self.n_starts)
        self.traj.copy_(traj)
        self.start.copy_(start)
        self.base.fill_(step)
        self.first = step

    def lookup(self, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The draws of ``step`` (a 0-d tensor in the prepared block), each ``(w,)``."""
        # index_select, not ``self.traj[i]``: indexing with a 0-d tensor reads it back to the
        # host (``.item()``), which a CUDA graph capture refuses
        i = (step - self.base).reshape(1)
        return self.traj.index_select(0, i)[0], self.start.index_select(0, i)[0]
