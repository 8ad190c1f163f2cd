"""One training job of the dashboard: what to train, how it reports, and the work itself.

GUI-free. A :class:`JobSpec` says what to train; a :class:`TrainingJob` carries it through
the shared worker (:mod:`app.state.worker`) with a stop flag and an *outbox*, a thread-safe queue
of :class:`JobEvent` that only the owning session drains (on its own thread). :func:`run_job`
— run on the worker's thread — makes the data, fits an :class:`engine.StochasticROM`,
predicts a held-out trajectory every few progress reports (:class:`ValidationCurve`) and
never touches Panel, Bokeh or HoloViews objects. Stopping is cooperative
(:class:`engine.StopFlag`, checked between training steps) and keeps the model trained so
far.

Environment:
    SROM_TORCH_THREADS: torch threads used for training (default 1).
"""

from __future__ import annotations

import itertools
import math
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import torch

from app.state.specs import BANDS
from engine.data import Dataset
from engine.metrics import relative_l2
from engine.model import StochasticROM
from engine.progress import NullCallback, StopFlag

__all__ = ["JobSpec", "JobEvent", "TrainingJob", "ValidationCurve", "run_job", "prepare_data",
           "validation_curve", "qoi_index", "auto_log_every", "check_architecture",
           "ARCHITECTURES", "DEFAULT_WINDOW", "ACTIVE", "FINISHED"]

#: statuses of a job that has not finished yet
ACTIVE = ("queued", "preparing", "running")
#: statuses of a finished job (``cancelled``: dropped from the queue before it ran)
FINISHED = ("completed", "stopped", "diverged", "failed", "cancelled")
#: quantile levels of the validation prediction: the bands the Explore tab draws
BAND_LEVELS: tuple[tuple[float, float], ...] = BANDS
#: the autoencoder architectures of ``engine.networks`` (``auto``: chosen by the state shape)
ARCHITECTURES = ("auto", "mlp", "conv1d", "conv2d", "identity")
#: snapshots per training window when the settings do not say (cut to the data's length)
DEFAULT_WINDOW = 64


def check_architecture(architecture: str, state_shape: tuple[int, ...], latent_dim: int) -> None:
    """Check that ``architecture`` can encode states of ``state_shape`` into ``latent_dim``
    latents (the table of ``engine.networks``), before any network is built.

    Raises:
        ValueError: an unknown architecture, or one that does not fit the states.
    """
    shape = tuple(int(s) for s in state_shape)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got "
                         f"{str(architecture)[:40]!r}")
    if architecture == "conv1d" and len(shape) not in (1, 2):
        raise ValueError(f"architecture 'conv1d' needs 1-D fields, states of shape (L,) or "
                         f"(C, L); these states are {shape}")
    if architecture == "conv2d" and len(shape) != 3:
        raise ValueError(f"architecture 'conv2d' needs 2-D fields, states of shape (C, H, W); "
                         f"these states are {shape}")
    if architecture == "identity" and (len(shape) != 1 or shape[0] != int(latent_dim)):
        raise ValueError(f"architecture 'identity' needs vector states with as many components "
                         f"as the latent dimension ({latent_dim}); these states are {shape}")


@dataclass(frozen=True)
class JobSpec:
    """What to train.

    Attributes:
        system: a name of :func:`engine.systems.list_systems` (ignored with ``dataset``).
        preset: the system's preset (default ``"small"``, seconds on a CPU).
        n_trajectories: training trajectories (generated, or the first ones of ``dataset``).
        seed: seed of the data generation and of the training.
        dataset: training data brought by the user; its last trajectory is held out for
            the validation prediction when it has two or more.
        dataset_name: how ``dataset`` is called in messages.
        latent_dim: d, the latent dimension.
        steps: training steps.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        validate_every: predict the held-out trajectory every that many log points.
        log_every: steps between progress reports; ``None`` picks :func:`auto_log_every`.
        options: further :class:`engine.StochasticROM` hyperparameters.
        checkpoint: where to write checkpoints while training (``""``: none); a server
            keeps them so that a restart can resume the training (:mod:`app.state.job_records`).
        resume_from: a checkpoint to continue from (``""``: start afresh): one this spec's
            own training wrote (same data and hyperparameters).
    """

    system: str = "oscillator"
    preset: str = "small"
    n_trajectories: int = 16
    seed: int = 0
    dataset: Dataset | None = field(default=None, compare=False, repr=False)
    dataset_name: str = ""
    latent_dim: int = 3
    steps: int = 500
    device: str = "auto"
    validate_every: int = 5
    log_every: int | None = None
    options: dict = field(default_factory=dict, compare=False)
    checkpoint: str = ""
    resume_from: str = ""

    def describe(self) -> str:
        """One line, e.g. ``"oscillator (small), 16 trajectories, d = 3, 500 steps"``."""
        data = (f"{self.dataset_name or 'uploaded data'}" if self.dataset is not None
                else f"{self.system} ({self.preset})")
        knobs = "".join(f", {name} {self.options[name]}" for name in ("architecture", "lr", "window")
                        if name in self.options)
        return (f"{data}, {self.n_trajectories} trajectories, d = {self.latent_dim}{knobs}, "
                f"{self.steps} steps on {self.device}")


@dataclass(frozen=True)
class JobEvent:
    """One report of the worker: ``kind`` is ``status`` (``status``, ``message``),
    ``start`` (``total``), ``log`` (``step``, ``metrics``), ``validation`` (``curve``),
    ``warning`` (``message``), ``end`` (``status``, ``message``, ``step``) or, after the
    end of a stopped or broken training, ``checkpoint`` (``path``, ``step``: a checkpoint
    kept for a resume, :func:`app.state.job_records.keep_checkpoint`)."""

    kind: str
    data: dict


@dataclass
class ValidationCurve:
    """The validation prediction of one held-out trajectory, reduced to one quantity.

    Attributes:
        step: the training step it was made at.
        t: ``(T,)`` times; mean, truth: ``(T,)``; bands: widest first, ``(lo (T,), hi (T,))``
            for the 95/80/50 % bands; samples: ``(k, T)`` a few sample paths.
        label: what the quantity is (e.g. ``"state component 1"``).
        rel_l2: time-averaged relative L2 error of the predictive mean over the full state.
        source: where the trajectory comes from (``"held-out trajectory"``, ...).
    """

    step: int
    t: np.ndarray
    mean: np.ndarray
    bands: list[tuple[np.ndarray, np.ndarray]]
    samples: np.ndarray
    truth: np.ndarray
    label: str
    rel_l2: float
    source: str


class TrainingJob:
    """One training request: its spec, stop flag, outbox and outcome.

    Attributes (written by the worker thread; read them after the ``end`` event):
        status: one of :data:`ACTIVE` or :data:`FINISHED`.
        model: the fitted (or partly fitted) model, or ``None``.
        metrics: scores on the held-out data (``engine.StochasticROM.evaluate``).
        process: the training's child process while it runs (``app.state.training_process``).
        before_end: called with the job by :meth:`finish` once the outcome is recorded and
            before the ``end`` event (the runner's clean-up that the session must hear of
            first, e.g. :func:`app.state.job_records.keep_checkpoint`); ``None``: nothing.
    """

    _ids = itertools.count(1)

    def __init__(self, spec: JobSpec, owner: str = ""):
        self.id = next(self._ids)
        self.spec = spec
        self.owner = owner
        self.stop_flag = StopFlag()
        self.status = "queued"
        self.message = ""
        self.model: StochasticROM | None = None
        self.metrics: dict = {}
        self.process: BaseProcess | None = None
        self.before_end: Callable[[TrainingJob], object] | None = None
        self._outbox: queue.SimpleQueue[JobEvent] = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"TrainingJob(id={self.id}, status={self.status!r}, {self.spec.describe()})"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def emit(self, kind: str, **data: Any) -> None:
        """Report to the owning session (any thread)."""
        self._outbox.put(JobEvent(kind, data))

    def drain(self) -> list[JobEvent]:
        """Every event reported since the last call, oldest first (the owner's thread)."""
        events = []
        while True:
            try:
                events.append(self._outbox.get_nowait())
            except queue.Empty:
                return events

    def stop(self) -> None:
        """Ask a running job to stop after its current step (keeps the model)."""
        self.stop_flag.set()

    def finish(self, status: str, message: str, step: int = 0) -> None:
        """Record the outcome and report the ``end`` event (the worker's thread)."""
        self.status, self.message = status, message
        if self.before_end is not None:
            try:
                self.before_end(self)
            except Exception as exc:  # noqa: BLE001 - the job must still end
                self.emit("warning", message=f"clean-up after the training failed: "
                                             f"{type(exc).__name__}")
        self.emit("end", status=status, message=message, step=step)


# ---------------------------------------------------------------------- the work
def auto_log_every(steps: int) -> int:
    """Steps between progress reports: about 200 reports, at most every 50 steps."""
    return max(1, min(50, math.ceil(int(steps) / 200)))


def _limit_threads() -> None:
    threads = max(1, int(os.environ.get("SROM_TORCH_THREADS", "1")))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def prepare_data(spec: JobSpec) -> tuple[Dataset, Dataset, str]:
    """The training data, the held-out trajectory and where it comes from.

    Raises:
        ValueError: unknown system or preset, or too few trajectories.
    """
    n = int(spec.n_trajectories)
    if n < 1:
        raise ValueError(f"the number of trajectories must be at least 1, got {n}")
    if spec.dataset is not None:
        data = spec.dataset
        if data.n_trajectories >= 2:
            keep = min(n, data.n_trajectories - 1)
            return (data.subset(slice(0, keep)), data.subset([data.n_trajectories - 1]),
                    "last trajectory of the file (held out)")
        return data, data, "the training trajectory (the file has only one)"
    from engine.systems import generate

    train = generate(spec.system, n=n, split="train", seed=spec.seed, preset=spec.preset)
    try:
        val = generate(spec.system, n=1, split="test", seed=spec.seed, preset=spec.preset)
        return train, val, "held-out test trajectory"
    except ValueError:  # a system cut in time has no test split: use a training trajectory
        return train, train.subset([0]), "first training trajectory"


def qoi_index(state_shape: tuple[int, ...]) -> tuple[int, str]:
    """The flat state index drawn in the validation plot and its description: the first
    component of a small vector, a point a quarter along a 1-D field, the centre pixel of
    the first channel of a 2-D field."""
    shape = tuple(int(s) for s in state_shape)
    if len(shape) == 1:
        n = shape[0]
        return (0, "state component 1") if n <= 8 else (n // 4, f"field at point {n // 4}")
    if len(shape) == 2:
        return shape[1] // 4, f"channel 1 at point {shape[1] // 4}"
    h, w = shape[-2:]
    return (h // 2) * w + w // 2, f"channel 1 at pixel ({h // 2}, {w // 2})"


def validation_curve(model: StochasticROM, val: Dataset, step: int, source: str = "",
                     n_samples: int = 32, n_keep: int = 5, seed: int = 0) -> ValidationCurve:
    """Predict the first trajectory of ``val`` from its first state and reduce it to the
    quantity of :func:`qoi_index`. The module is put in eval mode for the prediction and
    back in the mode it was in (call it between training steps only)."""
    module = model.module_
    was_training = module.training
    levels = sorted({q for band in BAND_LEVELS for q in band})
    x0 = val.x[0, : model.n_win] if model.n_win > 1 else val.x[0, 0]
    # predict() warns when μ lies outside the trained range. Warning filters are process-wide
    # (catch_warnings on this thread would also silence, or capture, the warnings of the
    # sessions' predictions), so the private, in-training model's range is widened to the
    # held-out μ for this call instead.
    ranges = model.param_ranges_
    model.param_ranges_ = [[min(lo, m), max(hi, m)] for (lo, hi), m in zip(ranges, val.mu[0])]
    module.eval()
    try:
        pred = model.predict(x0, val.mu[0], val.t, val.f[0], n_samples=n_samples, seed=seed,
                             quantiles=levels, return_samples=True)
    finally:
        module.train(was_training)
        model.param_ranges_ = ranges
    if pred.quantile_levels is None or pred.quantile_values is None or pred.samples is None:
        raise RuntimeError("the validation prediction came without its quantiles and samples")
    k, label = qoi_index(model.state_shape_)
    flat = lambda a: a.reshape(*a.shape[:-len(model.state_shape_)], -1)[..., k]  # noqa: E731
    q = {lvl: flat(pred.quantile_values[i, 0]) for i, lvl in enumerate(pred.quantile_levels)}
    return ValidationCurve(
        step=int(step), t=pred.t.copy(), mean=flat(pred.mean[0]),
        bands=[(q[lo], q[hi]) for lo, hi in BAND_LEVELS],
        samples=flat(pred.samples[0, :n_keep]), truth=flat(val.x[0]), label=label,
        rel_l2=float(np.mean(relative_l2(pred.mean, val.x[:1]))), source=source)


class _JobCallback(NullCallback):
    """Forwards the engine's progress to the job's outbox; predicts the held-out trajectory
    every ``validate_every`` log points (on the training thread, between steps)."""

    def __init__(self, job: TrainingJob, model: StochasticROM, val: Dataset, source: str):
        self.job, self.model, self.val, self.source = job, model, val, source
        self.every = max(1, int(job.spec.validate_every))
        self.n_logs = 0

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.job.status = "running"
        self.job.emit("start", total=int(total_steps), start=int(start_step))

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self.job.emit("log", step=int(step), metrics=dict(metrics))
        if self.n_logs % self.every == 0:
            self.validate(step)
        self.n_logs += 1

    def on_end(self, step: int, status: str, message: str) -> None:
        if step > 0:
            self.validate(step)

    def validate(self, step: int) -> None:
        try:
            curve = validation_curve(self.model, self.val, step, self.source)
        except Exception as exc:  # noqa: BLE001 - a failed preview must not stop training
            self.job.emit("warning", message=f"validation prediction failed: {exc}")
            return
        self.job.emit("validation", curve=curve)


def run_job(job: TrainingJob) -> None:
    """Make the data, fit the model and report; never raises (failures end the job)."""
    spec = job.spec
    _limit_threads()
    job.status = "preparing"
    what = ((spec.dataset_name or "the uploaded data") if spec.dataset is not None
            else f"{spec.n_trajectories} {spec.system} trajectories")
    job.emit("status", status="preparing",
             message=f"{'reading' if spec.dataset is not None else 'generating'} {what}…")
    try:
        train, val, source = prepare_data(spec)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        job.finish("failed", f"could not make the training data: {exc}")
        return
    if job.stop_flag.is_set():
        job.finish("stopped", "stopped before training started (no model)")
        return
    try:
        check_architecture(spec.options.get("architecture", "auto"), train.state_shape,
                           int(spec.latent_dim))
    except ValueError as exc:
        job.finish("failed", f"these settings do not fit the data: {exc}")
        return
    try:
        log_every = int(spec.log_every or auto_log_every(spec.steps))
        checkpointing = {"checkpoint_every": max(50, int(spec.steps) // 20)} if spec.checkpoint else {}
        window = spec.options.get("window", DEFAULT_WINDOW)
        if isinstance(window, int) and not isinstance(window, bool):
            window = min(window, train.n_times)  # the sampler would cut it silently
        model = StochasticROM(**{
            "latent_dim": int(spec.latent_dim), "steps": int(spec.steps),
            "device": spec.device, "seed": int(spec.seed), "log_every": log_every,
            **checkpointing, **spec.options, "window": window})
        # no catch_warnings here: filters are process-wide (a divergence also comes as a
        # status, below; its RuntimeWarning goes to the server log)
        model.fit(train, callback=_JobCallback(job, model, val, source),
                  stop_flag=job.stop_flag, checkpoint=spec.checkpoint or None,
                  resume_from=spec.resume_from or None)
    except Exception as exc:  # noqa: BLE001 - bad settings, out of memory, ...
        job.finish("failed", f"training failed: {type(exc).__name__}: {exc}")
        return
    info: dict[str, Any] = model.training_  # a JSON-like record of the run
    status, step = info["status"], int(info["steps"])
    if step > 0:
        job.model = model
        try:
            job.metrics = model.evaluate(val, n_samples=32, paper_protocol=False)  # ignores extrapolation itself
        except Exception as exc:  # noqa: BLE001 - the model stays usable without scores
            job.emit("warning", message=f"could not score the model: {exc}")
    message = info["message"]
    if status == "diverged":
        message = ("stopped because the loss became non-finite (NaN): " + message
                   + ("" if step > 0 else " Nothing was learned, so there is no model."))
    job.finish(status if status != "interrupted" else "stopped", message, step)
