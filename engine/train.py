"""The training loop: device-resident data, static shapes, optional CUDA graph, checkpoints.

One step takes W random windows of B consecutive snapshots (from random trajectories;
which ones is a function of the seed and the step, :mod:`engine.windows`), computes the
negative ELBO, back-propagates and takes an Adam step. Nothing in a step
reads a value back to the host, so on CUDA the whole step (forward, backward, gradient
clipping, Adam, learning-rate decay, metric accumulation) is captured once as a CUDA
graph and replayed. Metrics are accumulated on the device and read every ``log_every``
steps; that is also where a non-finite loss is detected.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_write
from engine.distributed import DistributedContext
from engine.module import SROMModule, WindowBatch
from engine.param_average import ParameterAverage
from engine.progress import NullCallback, StopFlag, TrainingCallback
from engine.windows import DrawTable, rank_slots, seed_key

if TYPE_CHECKING:
    from engine.streaming import StreamingWindowSampler

__all__ = ["TrainSettings", "WindowSampler", "Trainer", "TrainResult", "CheckpointError",
           "CheckpointState",
           "read_checkpoint", "capture_training_step", "WARMUP_STEPS"]

_TERMS = ("loss", "ell", "residual", "kl", "beta")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or belongs to another model."""


class CheckpointState(Protocol):
    """More training state that a checkpoint carries and a resume restores."""

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors and a JSON-able record."""
        ...

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor], record: Any) -> None:
        """Restore from what :meth:`checkpoint_state` wrote (untrusted: raise
        :class:`CheckpointError` for anything that does not fit)."""
        ...


@dataclass
class TrainSettings:
    steps: int
    lr: float
    lr_decay_steps: int
    window: int
    windows_per_step: int
    n_samples: int
    n_quad: int
    quadrature: str
    kl_warmup: int
    kl_transition: int
    grad_clip: float
    log_every: int
    checkpoint_every: int
    cuda_graph: bool
    max_seconds: float | None = None  # wall-clock budget, checked where metrics are logged
    #: time constant (steps) of the parameter average that training returns; <= 1: none
    average_steps: int = 0
    #: weight of the drift's contraction prior (engine.contraction); 0: none
    contraction_weight: float = 0.0
    #: the expansion rate it allows
    contraction_margin: float = 0.0


@dataclass
class TrainResult:
    status: str
    message: str
    step: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    peak_step_memory_mb: float | None = None


class WindowSampler:
    """Gathers the windows of the schedule (:mod:`engine.windows`) from device-resident,
    normalized trajectories.

    Args:
        t: ``(T,)`` times.
        x: ``(N, T, *S)`` normalized states.
        mu: ``(N, P)`` normalized parameters.
        f: ``(N, T, F)`` normalized forcing.
        window: B, snapshots per window (clipped to T).
        windows_per_step: W, windows per step over all ranks (the global batch).
        n_win: encoder window length (forward-looking, edge-padded at the end).
        seed: keys the window schedule.
        rank, world_size: this process's share of the W windows (W/k each).
    """

    def __init__(self, t, x, mu, f, window: int, windows_per_step: int, n_win: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        self.t, self.x, self.mu, self.f = t, x, mu, f
        self.n_traj, self.n_times = x.shape[0], x.shape[1]
        self.window = min(window, self.n_times)
        self.windows_per_step = windows_per_step
        device = x.device
        self.slots = rank_slots(windows_per_step, rank, world_size, device)
        self.n_starts = self.n_times - self.window + 1
        self.table = DrawTable(seed_key(int(seed)), self.slots, self.n_traj, self.n_starts,
                               block=max(1, min(1024, 2**20 // self.slots.numel())))
        self.offsets = torch.arange(self.window, device=device)
        self.win_offsets = torch.arange(n_win, device=device)

    def stage(self, step: int) -> None:
        """Before step ``step`` (outside a CUDA graph): the draws of its block are ready."""
        self.table.prepare(step)

    def sample(self, step: torch.Tensor) -> WindowBatch:
        """This rank's windows of ``step`` (a 0-d int64 tensor on the data's device; its
        block staged by :meth:`stage`)."""
        traj, start = self.table.lookup(step)
        idx = start[:, None] + self.offsets  # (W, B)
        x_nodes = self.x[traj[:, None], idx]
        if self.win_offsets.numel() == 1:  # encoder sees one snapshot: no second gather
            x_windows = x_nodes.unsqueeze(2)
        else:
            win_idx = (idx[..., None] + self.win_offsets).clamp(max=self.n_times - 1)  # (W, B, n_win)
            x_windows = self.x[traj[:, None, None], win_idx]
        return WindowBatch(
            t_nodes=self.t[idx],
            x_nodes=x_nodes,
            x_windows=x_windows,
            mu=self.mu[traj],
            t_grid=self.t,
            f_traj=self.f[traj],
        )


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata), suffix=".safetensors")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a checkpoint (safetensors; no unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
        info = json.loads(meta["srom_checkpoint"])
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable srom checkpoint ({exc})") from exc
    if not isinstance(info, dict) or not isinstance(info.get("normalization"), dict):
        raise CheckpointError(f"{path}: not an srom checkpoint (its record has no normalization)")
    return tensors, info


WARMUP_STEPS = 3


def capture_training_step(step: Callable[[], None], optimizer: torch.optim.Optimizer,
                          before_capture: Callable[[], None] | None = None
                          ) -> torch.cuda.CUDAGraph:
    """Capture one optimizer step as a CUDA graph.

    Runs ``WARMUP_STEPS`` real steps on a side stream first (allocator, cuBLAS/cuDNN and
    Adam state warm-up, as graph capture requires), then records one more call of ``step``
    into the graph: recorded, not run, so it takes effect at each replay.

    Args:
        step: forward, backward and optimizer update; gradients must be zeroed before it.
        optimizer: its gradients are set to ``None`` before every step.
        before_capture: called between the warm-up and the capture (e.g. to snapshot counters).
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP_STEPS):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(stream)
    optimizer.zero_grad(set_to_none=True)
    if before_capture is not None:
        before_capture()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


class _LossTerms(torch.nn.Module):
    """The module's loss as ``forward``, the call ``DistributedDataParallel`` wraps."""

    def __init__(self, module: SROMModule, settings: TrainSettings, n_total: int):
        super().__init__()
        self.module, self.s, self.n_total = module, settings, n_total

    def forward(self, batch: WindowBatch, step: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.s
        return self.module.loss_terms(
            batch, step, n_samples=s.n_samples, n_quad=s.n_quad, quadrature=s.quadrature,
            n_total=self.n_total, kl_warmup=s.kl_warmup, kl_transition=s.kl_transition,
            contraction_weight=s.contraction_weight, contraction_margin=s.contraction_margin)


class Trainer:
    """Runs the optimisation of a :class:`SROMModule` on a :class:`WindowSampler` (or a
    streaming sampler, :class:`engine.streaming.StreamingWindowSampler`).

    With a distributed context of several ranks (:mod:`engine.distributed`), eager steps go
    through ``DistributedDataParallel`` (gradients averaged in buckets during the backward
    pass); a CUDA-graph step records one ``all_reduce`` of the flattened gradients instead,
    because DDP's reducer hooks cannot be captured without constraints on the whole
    process (``SROM_GRAD_SYNC=all_reduce`` uses that all_reduce for eager steps too, a
    check of the graph path without GPUs). Metrics, divergence and stop requests are agreed
    on where metrics are logged, so every rank takes the same decisions; only rank 0 writes
    checkpoints.
    """

    def __init__(self, module: SROMModule, sampler: WindowSampler | StreamingWindowSampler,
                 settings: TrainSettings,
                 n_total: int, device: torch.device, callback: TrainingCallback | None = None,
                 stop_flag: StopFlag | None = None, checkpoint_path: str | os.PathLike | None = None,
                 checkpoint_extra: dict | None = None,
                 distributed: DistributedContext | None = None,
                 checkpoint_state: CheckpointState | None = None):
        self.module, self.sampler, self.s = module, sampler, settings
        #: more state a checkpoint carries (the model selection's best parameters and
        #: scores): its tensors under ``state.``, its record under ``"state"``
        self.checkpoint_state = checkpoint_state
        self.dist = distributed or DistributedContext()
        self.n_total, self.device = n_total, device
        self.callback = callback or NullCallback()
        self.stop_flag = stop_flag or StopFlag()
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.checkpoint_error: str | None = None
        self.checkpoint_extra = checkpoint_extra or {}
        self.use_graph = bool(settings.cuda_graph and device.type == "cuda")
        self.params = [p for p in module.parameters() if p.requires_grad]
        #: the average of the iterates that training returns (engine.param_average)
        self.average = (ParameterAverage(self.params, settings.average_steps,
                                         capturable=self.use_graph)
                        if settings.average_steps > 1 else None)
        self.gamma = 0.9 ** (1.0 / max(settings.lr_decay_steps, 1))
        # the fused CUDA Adam is one kernel launch per step (much less host time)
        fused = device.type == "cuda"
        if self.use_graph:
            self.lr = torch.tensor(settings.lr, device=device)
            self.gamma_t = torch.tensor(self.gamma, device=device)
            self.optimizer = torch.optim.Adam(self.params, lr=self.lr, capturable=True, fused=fused)
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=settings.lr, fused=fused or None)
        self.step_tensor = torch.zeros((), dtype=torch.long, device=device)
        self.accum = torch.zeros(len(_TERMS), device=device)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        self.history: list[dict] = []
        self._graph: torch.cuda.CUDAGraph | None = None
        # the loss, or the DistributedDataParallel wrapping it while training on several ranks
        self.loss: torch.nn.Module = _LossTerms(module, settings, n_total)
        # the graph path's explicit all_reduce, also eager with SROM_GRAD_SYNC=all_reduce (so
        # that the CPU tests check it against DistributedDataParallel)
        self.explicit_sync = self.dist.enabled and (
            self.use_graph or os.environ.get("SROM_GRAD_SYNC") == "all_reduce")
        if self.dist.enabled:
            import torch.distributed as dist

            if self.explicit_sync:  # the same start everywhere (DDP does this itself)
                for value in module.state_dict().values():
                    dist.broadcast(value, 0)
            else:
                import inspect

                from torch.nn.parallel import DistributedDataParallel

                # the buffers (a library's exponents) are constants: never synced per step
                # (the argument was renamed in torch 2.13)
                names = inspect.signature(DistributedDataParallel).parameters
                no_sync: dict[str, Any] = (
                    {"forward_sync_buffers": False} if "forward_sync_buffers" in names
                    else {"broadcast_buffers": False})
                # static_graph: the same parameters take part in every step (some, like a
                # prior-free library term, may get no gradient at all)
                self.loss = DistributedDataParallel(self.loss, device_ids=None,
                                                    static_graph=True, **no_sync)

    def release(self) -> None:
        """Drop the ``DistributedDataParallel`` wrapper once training is over: its reducer holds
        the process group and hooks on the parameters, and one left to the interpreter's
        finalisation (after the group is destroyed) can abort the process."""
        from torch.nn.parallel import DistributedDataParallel

        if isinstance(self.loss, DistributedDataParallel):
            self.loss = self.loss.module
            import gc

            gc.collect()  # DDP objects sit in reference cycles

    # -------------------------------------------------------------- one step
    def _compute_and_update(self) -> None:
        s = self.s
        batch = self.sampler.sample(self.step_tensor)
        terms = self.loss(batch, self.step_tensor)
        terms["loss"].backward()
        if self.explicit_sync:
            self._average_gradients()
        if s.grad_clip and s.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, s.grad_clip, foreach=True)
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        self.step_tensor += 1
        if self.use_graph:
            self.lr.copy_(s.lr * torch.pow(self.gamma_t, self.step_tensor.float()))
        self.accum += torch.stack([terms[k].detach().float() for k in _TERMS])
        self.nonfinite |= ~torch.isfinite(terms["loss"].detach())

    def _average_gradients(self) -> None:
        """Average the gradients over the ranks with one ``all_reduce`` (graph-capturable)."""
        import torch.distributed as dist

        grads = [p.grad for p in self.params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.dist.world_size
        for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(part.view_as(grad))

    def _stage(self, step: int) -> None:
        """Before step ``step``, outside the graph: the in-memory sampler computes a new block
        of window draws when the step leaves the last one; a streaming sampler moves the
        step's windows onto the device (a graph replay reads fixed buffers)."""
        self.sampler.stage(step)

    def _eager_step(self, step: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.s.lr * self.gamma ** step
        self.optimizer.zero_grad(set_to_none=True)
        self._compute_and_update()

    def _capture(self, first: int) -> int:
        """Warm up (real steps from ``first`` on), then capture one step as a graph; returns
        the steps taken."""
        next_step = [first]

        def step() -> None:
            if not torch.cuda.is_current_stream_capturing():  # warm-up steps are real ones
                self._stage(next_step[0])
                next_step[0] += 1
            self._compute_and_update()

        self._graph = capture_training_step(step, self.optimizer)
        return WARMUP_STEPS

    # -------------------------------------------------------------- the loop
    def run(self, start_step: int = 0) -> TrainResult:
        s = self.s
        self.step_tensor.fill_(start_step)
        if self.use_graph:
            self.lr.fill_(s.lr * self.gamma ** start_step)
        self.module.train()
        self.callback.on_start(s.steps, start_step)
        step, last_log_step = start_step, start_step
        last_good = self._snapshot(start_step)
        status, message = "completed", f"trained {s.steps} steps"
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base_memory = torch.cuda.memory_allocated(self.device)
        t_start = time.perf_counter()
        start = getattr(self.sampler, "start", None)
        if start is not None:
            start(start_step)  # a streaming sampler begins reading ahead from this step
        try:
            while step < s.steps:
                if self.use_graph:
                    if self._graph is None:
                        step += self._capture(step)
                    else:
                        self._stage(step)
                        self._graph.replay()
                        step += 1
                else:
                    self._stage(step)
                    self._eager_step(step)
                    step += 1
                at_log = (step - last_log_step >= s.log_every) or step >= s.steps
                # several ranks act on a stop request only where they log, all together
                stop_now = self.stop_flag.is_set() and not self.dist.enabled
                if at_log or stop_now:
                    snapshot = self._log(step, step - last_log_step, t_start)
                    last_log_step = step
                    if snapshot is None:
                        self._restore(last_good)
                        status = "diverged"
                        message = (f"the loss became non-finite between steps {last_good['step']} "
                                   f"and {step}; parameters restored to step {last_good['step']}. "
                                   "Try a lower --lr, a longer KL warm-up or a larger dispersion init.")
                        step = last_good["step"]
                        break
                    last_good = snapshot
                if not self.dist.enabled:  # a callback may have asked
                    stop_now = stop_now or self.stop_flag.is_set()
                over_budget = (at_log and s.max_seconds is not None and step < s.steps
                               and time.perf_counter() - t_start >= s.max_seconds)
                if self.dist.enabled and at_log:
                    stop_now, over_budget = self._agree(self.stop_flag.is_set(), over_budget)
                if self.checkpoint_path and s.checkpoint_every and step % s.checkpoint_every == 0:
                    self._try_checkpoint(step)
                if stop_now:
                    status, message = "stopped", f"stopped at step {step} on request"
                    break
                if over_budget:
                    status = "budget"
                    message = (f"stopped at step {step} of {s.steps}: the time budget of "
                               f"{s.max_seconds:g} s was reached")
                    break
        except KeyboardInterrupt:
            status, message = "interrupted", f"interrupted at step {step}"
        finally:
            close = getattr(self.sampler, "close", None)
            if close is not None:
                close()
        if self.checkpoint_path and status in ("stopped", "interrupted", "completed", "budget"):
            self._try_checkpoint(step)
        if self.average is not None:  # what training returns (the checkpoint keeps both)
            self.average.copy_to_params()
        self.module.eval()
        seconds = time.perf_counter() - t_start
        peak = None
        if self.device.type == "cuda":
            # memory of the training step itself: the resident dataset is in the baseline
            peak = (torch.cuda.max_memory_allocated(self.device) - base_memory) / 2**20
        self.callback.on_end(step, status, message)
        return TrainResult(status, message, step, self.history, seconds, peak)

    def _log(self, step: int, n_steps: int, t_start: float) -> dict | None:
        """Read the accumulated terms; snapshot the parameters (before any callback runs).
        ``None`` when a term was non-finite."""
        if self.dist.enabled:  # the mean over ranks; non-finite anywhere is non-finite
            import torch.distributed as dist

            reduced = torch.cat([self.accum.detach().float(), self.nonfinite.float().reshape(1)])
            dist.all_reduce(reduced)
            values = reduced[:-1].cpu().numpy() / self.dist.world_size / max(n_steps, 1)
            bad = bool(reduced[-1].item() > 0) or not np.all(np.isfinite(values))
        else:
            values = self.accum.detach().cpu().numpy() / max(n_steps, 1)
            bad = bool(self.nonfinite.item()) or not np.all(np.isfinite(values))
        self.accum.zero_()
        metrics = {k: float(v) for k, v in zip(_TERMS, values)}
        metrics["lr"] = self.s.lr * self.gamma ** step
        metrics["seconds"] = time.perf_counter() - t_start
        metrics["step"] = step
        if bad:
            return None
        snapshot = self._snapshot(step)
        self.history.append(metrics)
        # callbacks (model selection, previews) see the parameters training would return
        with self.average.swapped_in() if self.average is not None else contextlib.nullcontext():
            self.callback.on_log(step, metrics)
        return snapshot

    def _agree(self, stop: bool, over_budget: bool) -> tuple[bool, bool]:
        """Whether any rank was asked to stop or ran out of time (every rank gets the answer)."""
        import torch.distributed as dist

        flags = torch.tensor([float(stop), float(over_budget)], device=self.accum.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0].item() > 0), bool(flags[1].item() > 0)

    def _snapshot(self, step: int | None = None) -> dict:
        return {"step": int(self.step_tensor.item()) if step is None else step,
                "state": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                "average": self.average.state_tensors() if self.average is not None else None}

    def _restore(self, snapshot: dict) -> None:
        self.module.load_state_dict(snapshot["state"])
        if self.average is not None and snapshot["average"] is not None:
            self.average.load_state_tensors(snapshot["average"])
        self.nonfinite.zero_()

    # ---------------------------------------------------------- checkpoints
    def _try_checkpoint(self, step: int) -> None:
        """A checkpoint that cannot be written (a full disk, a read-only folder) must not end
        the training, whose parameters are still in memory: warn once and go on
        (``checkpoint_error`` keeps the reason). Only rank 0 writes."""
        if not self.dist.is_main or self.checkpoint_path is None:
            return
        try:
            self.save_checkpoint(self.checkpoint_path, step)
        except OSError as exc:
            if self.checkpoint_error is None:
                import warnings

                warnings.warn(f"checkpoint not written to {self.checkpoint_path} at step {step} "
                              f"({exc.strerror or exc}); training goes on", RuntimeWarning,
                              stacklevel=2)
            self.checkpoint_error = f"step {step}: {exc.strerror or exc}"

    def save_checkpoint(self, path: Path, step: int) -> None:
        """Model, optimizer and RNG state, written atomically (temp file + rename)."""
        tensors = {f"model.{k}": v for k, v in self.module.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        for pid, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value)
        if self.average is not None:
            tensors.update({f"average.{k}": v for k, v in self.average.state_tensors().items()})
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        info = {"step": step, "history": self.history, "world_size": self.dist.world_size,
                **self.checkpoint_extra}
        if self.checkpoint_state is not None:
            extra_tensors, info["state"] = self.checkpoint_state.checkpoint_state()
            tensors.update({f"state.{k}": v for k, v in extra_tensors.items()})
        _atomic_save(tensors, {"srom_checkpoint": json.dumps(info)}, path)

    def load_checkpoint(self, tensors: dict[str, torch.Tensor], info: dict) -> int:
        """Restore the module, optimizer and random state; returns the step to go on from.

        Raises:
            CheckpointError: the tensors or the record do not fit this model and optimizer.
        """
        try:
            return self._load_checkpoint(tensors, info)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint does not match this model ({exc})") from exc

    def _load_checkpoint(self, tensors: dict[str, torch.Tensor], info: dict) -> int:
        step = info["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 2**62:
            raise CheckpointError(f"checkpoint step must be a whole number >= 0, got {step!r}")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.module.load_state_dict(model_state)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        opt_state = self.optimizer.state_dict()
        for key, value in tensors.items():
            if not key.startswith("optim."):
                continue
            _, pid, name = key.split(".", 2)
            moment = name in ("exp_avg", "exp_avg_sq")
            expected = tuple(params[int(pid)].shape) if moment else ()
            # a moment has its parameter's shape, the step count is one number
            if tuple(value.shape) != expected if moment else value.numel() != 1:
                raise CheckpointError(f"optimizer state '{key}' has shape {tuple(value.shape)}, "
                                      f"expected {expected}")
            if name == "step" and not (0 <= float(value) <= 2**53 and float(value) % 1 == 0):
                raise CheckpointError(f"optimizer state '{key}' must be a step count, got "
                                      f"{float(value)}")
            target = opt_state["state"].setdefault(int(pid), {})
            if name == "step" and self.device.type != "cuda":
                target[name] = value.to(torch.float32).cpu()
            else:
                target[name] = value.to(self.device)
        for pid, state in opt_state["state"].items():
            missing = {"step", "exp_avg", "exp_avg_sq"} - set(state)  # Adam's moments
            if missing:
                raise CheckpointError(f"optimizer state of parameter {pid} lacks {sorted(missing)}")
        self.optimizer.load_state_dict(opt_state)
        if self.average is not None:
            average = {k[len("average."):]: v.to(self.device) for k, v in tensors.items()
                       if k.startswith("average.")}
            if average:
                try:
                    self.average.load_state_tensors(average)
                except ValueError as exc:
                    raise CheckpointError(str(exc)) from exc
            else:  # written without an average (an older checkpoint): start it here
                self.average.restart()
        torch.set_rng_state(tensors["rng.cpu"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.history = list(info.get("history", []))
        if self.checkpoint_state is not None and "state" in info:
            self.checkpoint_state.load_checkpoint_state(
                {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")},
                info["state"])
        return step
