"""Data-parallel training over several processes with ``torch.distributed``.

Launch ``srom train`` (or any script that calls :func:`init_from_environment` before
``fit``) under ``torchrun``; it sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. Every rank
holds a full copy of the model, draws its own share of each step's windows (see
:mod:`engine.windows`), and the gradients are averaged across ranks by
``DistributedDataParallel`` (eager steps) or by one ``all_reduce`` recorded inside the
step's CUDA graph. The process group uses NCCL on CUDA and gloo on the CPU. We write no
communication of our own beyond that ``all_reduce`` and the one that agrees on metrics and
stop requests where they are logged.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "current_context", "init_from_environment", "shutdown",
           "noise_seed", "broadcast_json"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one rank: gradients and metrics must be reduced."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: it logs, writes checkpoints and the final model."""
        return self.rank == 0


def current_context() -> DistributedContext:
    """The context of an initialised default process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local)
    return DistributedContext()


def init_from_environment(device: str = "auto") -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Does nothing (a single-process context) unless ``WORLD_SIZE`` > 1. On CUDA (``device``
    ``auto`` with a GPU, or ``cuda``) each rank takes the GPU ``LOCAL_RANK`` and the NCCL
    backend; otherwise gloo.

    Args:
        device: the training device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        ValueError: the environment is inconsistent (a rank outside the world, fewer GPUs
            than local ranks).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    if dist.is_initialized():
        return current_context()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0..WORLD_SIZE-1={world - 1}")
    use_cuda = ((str(device) == "auto" and torch.cuda.is_available())
                or str(device).startswith("cuda"))
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} "
                             "GPUs: start at most one rank per GPU (--nproc-per-node)")
        torch.cuda.set_device(local)
        # the step's all_reduce is recorded in a CUDA graph; the NCCL watchdog's error
        # handling queries events, which graph capture does not allow
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")
    if use_cuda:
        dist.init_process_group("nccl", rank=rank, world_size=world,
                                device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    return DistributedContext(rank, world, local)


def shutdown(wait: bool = True) -> None:
    """Leave the process group (if one was joined).

    Args:
        wait: first wait for every rank to get here (so that no rank tears its connections
            down while another still writes its results); ``False`` on an error path.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # no wrapper that holds the group may outlive it (see Trainer.release)
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def noise_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s noise stream from ``step`` on (distinct per rank and step,
    so a run resumed on any number of ranks has a well-defined stream)."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step), 0x5EED]).generate_state(2)
    return int(state[0]) << 31 | int(state[1]) >> 1


def broadcast_json(compute) -> object:
    """Rank 0 computes ``compute()`` (a JSON-serialisable value) and every rank gets it: a
    pass over a streamed file made once instead of once per rank. Sent as UTF-8 bytes in
    tensors (nothing is unpickled); alone, just ``compute()``."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return compute()
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    payload = json.dumps(compute()).encode() if dist.get_rank() == 0 else b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, 0)
    data = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if dist.get_rank() == 0:
        data.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(data, 0)
    return json.loads(bytes(data.cpu().numpy()).decode())
