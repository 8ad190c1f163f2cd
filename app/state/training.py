"""The Train tab's session state: a GUI-free ``param.Parameterized`` object.

One :class:`TrainingState` per browser session holds the training settings (simulator or
uploaded data, data size, latent dimension, architecture, learning rate, window, steps,
device) and what the shared
:class:`app.state.worker.TrainingWorker` reported (status, progress, ETA, ELBO history, the latest
validation prediction, the trained model). The worker thread never writes these params: it
fills the job's outbox, and :meth:`TrainingState.poll` — called on the session's thread by
the view's periodic callback, or by a test — moves the news into the params (see
:mod:`app.state.training_job` for what a job does)::

    state = TrainingState(system="oscillator", steps=300)
    state.start()                       # queued → preparing → running
    while state.active: state.poll(); time.sleep(0.2)
    state.save("my-oscillator")         # into $SROM_MODELS_DIR; the catalog is notified
    state.model_zip()                   # or download it: the model folder as a zip

The hyperparameters go through the engine's checks (``engine.config.ModelConfig.validate``)
and against the data's state shape before a job is queued (:meth:`TrainingState.
hyperparameters`). A training that was stopped, or whose process broke, can be continued
from its last checkpoint with :meth:`TrainingState.resume` while ``resumable_step`` is set
(the served worker keeps that checkpoint: :func:`app.state.job_records.keep_checkpoint`).

Failures never escape: bad settings, bad names, failed or diverged trainings become
``error`` (or ``warning``) and the session keeps working.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Any

import param

from app.state import catalog
from app.state.limits import max_generated_trajectories, max_training_steps
from app.state.safe_text import hide_server_paths
from app.state.training_job import (
    ACTIVE,
    ARCHITECTURES,
    DEFAULT_WINDOW,
    JobSpec,
    TrainingJob,
    ValidationCurve,
    check_architecture,
)
from app.state.upload import Upload, UploadError, display_name, read_upload_isolated
from app.state.worker import TrainingWorker, get_worker

__all__ = ["TrainingState", "check_model_name", "ordinal", "device_options", "MODEL_NAME_RULE"]

#: a safe directory name: starts with a letter or digit; letters, digits, ``._-``; ≤ 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODEL_NAME_RULE = ("1–64 characters: letters, digits, '.', '_' or '-', starting with a letter "
                   "or digit")


def check_model_name(name: str) -> str:
    """``name`` stripped, if it is a safe directory name for a model.

    Raises:
        ValueError: empty, too long, a path, hidden, or with other characters.
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("give the model a name")
    if not _NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a valid model name: {MODEL_NAME_RULE}")
    return name


def ordinal(k: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``22nd``, ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def device_options() -> list[str]:
    """``auto`` (CUDA when present, else CPU), ``cpu``, and ``cuda`` when there is a GPU."""
    import torch

    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _systems() -> list[str]:
    from engine.systems import list_systems

    return list_systems()


def _presets(system: str) -> list[str]:
    from engine.systems import SYSTEMS

    return list(SYSTEMS[system].presets) if system in SYSTEMS else ["default"]


class TrainingState(param.Parameterized):
    """Inputs and outputs of the Train tab of one session (see the module docstring)."""

    # ---------------------------------------------------------------- inputs
    source: param.Selector[str] = param.Selector(
        default="simulator",
        objects={"Simulator": "simulator", "Uploaded file": "upload"},
        label="Training data", doc="Generate data or use the uploaded file.")
    system: param.Selector[str] = param.Selector(
        default="oscillator", objects=["oscillator"], label="System",
        doc="A built-in simulator (engine.systems).")
    preset: param.Selector[str] = param.Selector(
        default="small", objects=["small"], label="Preset",
        doc="The simulator's preset ('small' trains in seconds).")
    n_trajectories = param.Integer(default=16, bounds=(1, 100_000), label="Trajectories",
                                   doc="Training trajectories (generated, or the first ones "
                                       "of the uploaded file).")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), label="Seed",
                         doc="Seed of the data and of the training.")
    latent_dim = param.Integer(default=3, bounds=(1, 64), label="Latent dimension d",
                               doc="Size of the latent state the SDE evolves.")
    architecture: param.Selector[str] = param.Selector(
        default="auto", objects=list(ARCHITECTURES), label="Architecture",
        doc="Encoder and decoder: auto (chosen by the state shape), mlp (any state), conv1d "
            "(1-D fields), conv2d (2-D fields) or identity (the state is the latent).")
    lr = param.Number(default=1e-3, bounds=(1e-6, 1.0), label="Learning rate",
                      doc="Adam's initial step size (decayed during training).")
    window = param.Integer(default=DEFAULT_WINDOW, bounds=(2, 1024), label="Window (snapshots)",
                           doc="Snapshots per training window; cut to the trajectories' length.")
    steps = param.Integer(default=1000, bounds=(1, 10_000_000), label="Training steps")
    device: param.Selector[str] = param.Selector(
        default="auto", objects=["auto", "cpu"], label="Device",
        doc="auto: the GPU when there is one, else the CPU.")
    validate_every = param.Integer(default=5, bounds=(1, 10_000), label="Validate every (logs)",
                                   doc="Predict the held-out trajectory every N progress "
                                       "reports.")
    model_name = param.String(default="", label="Model name")
    options = param.Dict(default={}, doc="Further engine.StochasticROM hyperparameters "
                                         "(advanced; not shown in the dashboard; they win "
                                         "over the knobs above).")

    # --------------------------------------------------------------- outputs
    status = param.String(default="idle", doc="idle, queued, preparing, running, completed, "
                                              "stopped, diverged, failed or cancelled.")
    message = param.String(default="", doc="What is happening, in words.")
    error = param.String(default="", doc="The last error; empty when there is none.")
    warning = param.String(default="", doc="Non-fatal problems (NaN stop, failed preview).")
    queue_position = param.Integer(default=None, allow_None=True,
                                   doc="k when k-th in line, 0 when running, None otherwise.")
    step = param.Integer(default=0)
    total_steps = param.Integer(default=0)
    elapsed = param.Number(default=0.0, doc="Seconds of training so far.")
    eta = param.Number(default=None, allow_None=True, doc="Seconds left, estimated.")
    history = param.List(default=[], doc="Metrics dicts of every progress report, in order.")
    validation = param.ClassSelector(class_=ValidationCurve, default=None, allow_None=True)
    model = param.Parameter(default=None, doc="The trained model (kept after Stop).")
    metrics = param.Dict(default={}, doc="Scores on the held-out data after training.")
    saved_path = param.String(default="", doc="Where the model was last saved.")
    resumable_step = param.Integer(default=None, allow_None=True,
                                   doc="The step of the kept checkpoint of the last stopped "
                                       "(or broken) training: resume() goes on from it. None: "
                                       "there is nothing to resume.")
    upload = param.ClassSelector(class_=Upload, default=None, allow_None=True,
                                 doc="The accepted uploaded dataset.")
    upload_error = param.String(default="", doc="Why the last upload was refused.")
    upload_pending = param.String(default="", doc="The upload being checked (in a separate "
                                                  "process), if any.")

    def __init__(self, worker: TrainingWorker | None = None, owner: str = "", **params: Any):
        """Args:
            worker: where jobs run; default the process-wide :func:`app.state.worker.get_worker`.
            owner: a label for the jobs of this session (logs).
            params: initial values of the inputs.
        """
        super().__init__(**params)
        self.worker = worker or get_worker()
        self.owner = owner
        self.job: TrainingJob | None = None
        #: the kept checkpoint of the last stopped training and the spec that wrote it
        self._kept: tuple[str, JobSpec] | None = None
        #: the checkpoint a resumed job goes on from (removed when that job has ended)
        self._resuming_from = ""
        #: the step the current job started at (a resumed one: its checkpoint's)
        self._start_step = 0
        self._upload_check: tuple[threading.Thread, dict] | None = None
        systems = _systems()
        self.param.system.objects = systems
        if self.system not in systems:
            self.system = systems[0]
        self.param.device.objects = device_options()
        from app.state.job_records import NOTICES

        if NOTICES:  # what a restarted server did with the trainings it found unfinished
            self.message = " ".join(NOTICES[-3:])
        self._on_system()
        self.param.watch(lambda e: self._on_system(), "system")

    def _on_system(self) -> None:
        presets = _presets(self.system)
        self.param.preset.objects = presets
        if self.preset not in presets:
            self.preset = "small" if "small" in presets else presets[0]

    # ------------------------------------------------------------ queries
    @property
    def active(self) -> bool:
        """A job of this session is queued, preparing data or training."""
        return self.status in ACTIVE

    @property
    def can_save(self) -> bool:
        """A trained model is there and no training of this session is under way."""
        return self.model is not None and not self.active

    # ------------------------------------------------------------ actions
    def spec(self) -> JobSpec:
        """The job the current inputs describe.

        Raises:
            ValueError: the uploaded file is chosen but there is none.
        """
        upload = self.upload if self.source == "upload" else None
        if self.source == "upload" and upload is None:
            raise ValueError("no uploaded dataset: upload an .npz or HDF5 file first, or "
                             "choose the simulator")
        params = self.hyperparameters()
        options = {k: v for k, v in params.items() if k not in ("latent_dim", "steps")}
        return JobSpec(system=self.system, preset=self.preset,
                       n_trajectories=int(self.n_trajectories), seed=int(self.seed),
                       dataset=upload.dataset if upload else None,
                       dataset_name=upload.name if upload else "",
                       latent_dim=int(params["latent_dim"]), steps=int(params["steps"]),
                       device=self.device, validate_every=int(self.validate_every),
                       options=options)

    def data_state_shape(self) -> tuple[int, ...]:
        """The state shape of the chosen training data: the uploaded file's, or the
        simulator's at its preset.

        Raises:
            ValueError: the uploaded file is chosen but there is none, or an unknown system.
        """
        if self.source == "upload":
            if self.upload is None:
                raise ValueError("no uploaded dataset: upload an .npz or HDF5 file first")
            return tuple(self.upload.dataset.state_shape)
        from engine.systems import get_system

        return tuple(get_system(self.system, self.preset).state_shape)

    def hyperparameters(self) -> dict[str, Any]:
        """The model's hyperparameters the inputs give: the knobs (latent dimension,
        architecture, learning rate, window, steps), then ``options``, checked by the
        engine (``engine.config.ModelConfig.from_params(...).validate()``) and the
        architecture against the data's state shape.

        Raises:
            ValueError: one message that names the first bad value.
        """
        from engine.config import ModelConfig

        params: dict[str, Any] = {
            "latent_dim": self.latent_dim, "architecture": self.architecture, "lr": self.lr,
            "window": self.window, "steps": self.steps, **dict(self.options)}
        try:
            ModelConfig.from_params(params).validate()
            check_architecture(params["architecture"], self.data_state_shape(),
                               params["latent_dim"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid training settings: {exc}") from None
        return params

    def start(self) -> bool:
        """Queue a training with the current inputs; ``False`` (and ``error``) if refused."""
        if self.active:
            self.error = "a training of this session is already queued or running: stop it first"
            return False
        try:
            spec = self.spec()
            if spec.steps > max_training_steps():
                raise ValueError(f"{spec.steps} steps is over this server's limit of "
                                 f"{max_training_steps()} per training")
            if spec.dataset is None and spec.n_trajectories > max_generated_trajectories():
                raise ValueError(f"{spec.n_trajectories} trajectories is over this server's "
                                 f"limit of {max_generated_trajectories()} generated ones")
            job = self.worker.submit(spec, owner=self.owner)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes a message
            self.error = str(exc)
            return False
        self.job, self._start_step = job, 0
        self._discard_kept()  # a new training: the stopped one can no longer be resumed
        self.param.update(status="queued", message=f"queued: {spec.describe()}", error="",
                          warning="", step=0, total_steps=int(spec.steps), elapsed=0.0,
                          eta=None, history=[], validation=None, model=None, metrics={},
                          saved_path="", queue_position=self.worker.position(job))
        self.poll()
        return True

    def resume(self) -> bool:
        """Continue the last stopped (or broken) training from its kept checkpoint, on the
        same data and with the same settings as before (inputs changed since then are not
        used); ``False`` (and ``error``) if there is nothing to resume or it is refused."""
        if self.active:
            self.error = "a training of this session is already queued or running: stop it first"
            return False
        if self._kept is None or self.resumable_step is None:
            self.error = "there is no stopped training to resume"
            return False
        path, spec = self._kept
        spec = dataclasses.replace(spec, checkpoint="", resume_from=path)
        step = int(self.resumable_step)
        try:
            job = self.worker.submit(spec, owner=self.owner)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes a message
            self.error = str(exc)
            return False
        self.job, self._start_step = job, step
        self._kept, self._resuming_from = None, path  # kept on disk until this job has ended
        # the curves go on from the checkpoint (a broken run may have logged past it)
        history = [h for h in self.history if int(h.get("step", 0)) <= step]
        self.param.update(status="queued", message=f"queued: resume from step {step} of "
                                                   f"{spec.describe()}",
                          error="", warning="", step=step, total_steps=int(spec.steps),
                          elapsed=0.0, eta=None, history=history, model=None, metrics={},
                          saved_path="", resumable_step=None,
                          queue_position=self.worker.position(job))
        self.poll()
        return True

    def _discard_kept(self) -> None:
        """Forget the kept checkpoint (its file is removed)."""
        from app.state.job_records import discard_kept

        if self._kept is not None:
            discard_kept(self._kept[0])
        self._kept = None
        self.resumable_step = None

    def stop(self) -> None:
        """Cancel the queued job, or ask the running one to stop (the model is kept)."""
        if self.job is None or not self.active:
            return
        self.worker.cancel(self.job)
        if self.status != "queued":
            self.message = "stopping after the current step…"
        self.poll()

    def close(self) -> None:
        """The session is gone: cancel its queued job or stop its running one."""
        if self.job is not None and self.job.active:
            self.job.before_end = None  # no one is left to resume it: keep no checkpoint
            self.worker.cancel(self.job)
        self._discard_kept()

    def poll(self) -> bool:
        """Apply the worker's news and a finished upload check (call on the session's
        thread); ``True`` if any."""
        checked = self._apply_upload_check() is not None
        job = self.job
        if job is None:
            return checked
        events = job.drain()
        changes: dict[str, Any] = {}
        new_logs: list[dict] = []
        for event in events:
            data = event.data
            if event.kind == "status":
                changes.update(status=data["status"], message=data["message"],
                               queue_position=0)
            elif event.kind == "start":
                self._start_step = int(data.get("start", 0))
                resumed = (f" (resumed from step {self._start_step})" if self._start_step
                           else "")
                changes.update(status="running", total_steps=data["total"], queue_position=0,
                               message=f"training {job.spec.describe()}{resumed}")
            elif event.kind == "log":
                new_logs.append(data["metrics"])
            elif event.kind == "validation":
                changes["validation"] = data["curve"]
            elif event.kind == "warning":
                changes["warning"] = data["message"]
            elif event.kind == "checkpoint":  # before "end": the training can be resumed
                self._discard_kept()
                self._kept = (str(data["path"]), job.spec)
                changes["resumable_step"] = int(data["step"])
            elif event.kind == "end":
                changes.update(self._ended(job, data))
        if new_logs:
            changes.update(self._progress(new_logs[-1]), history=self.history + new_logs)
        if job.status == "queued" and "status" not in changes:
            position = self.worker.position(job)
            if position:  # 0: the worker has just taken it
                changes.update(queue_position=position,
                               message=f"queued: {ordinal(position)} in line")
        if changes:
            self.param.update(**changes)
        return bool(events) or bool(changes)

    def _progress(self, metrics: dict) -> dict:
        step = int(metrics.get("step", self.step))
        seconds = float(metrics.get("seconds", 0.0))
        total = max(int(self.total_steps), 1)
        done = step - self._start_step  # steps of this run (a resumed one started later)
        eta = seconds / done * (total - step) if done > 0 else None
        return {"step": step, "elapsed": seconds, "eta": eta}

    def _ended(self, job: TrainingJob, data: dict) -> dict:
        status, message = data["status"], data["message"]
        out: dict[str, Any] = {"status": status, "queue_position": None, "eta": None}
        if self._resuming_from:
            from app.state.job_records import discard_kept

            if status == "cancelled" and self._kept is None:  # never ran: it can still go on
                self._kept = (self._resuming_from, dataclasses.replace(job.spec, resume_from=""))
                out["resumable_step"] = self._start_step
            else:
                discard_kept(self._resuming_from)
            self._resuming_from = ""
        if job.model is not None:
            out.update(model=job.model, metrics=dict(job.metrics), step=int(data["step"]))
        if status == "completed":
            out["message"] = f"completed: {message}"
        elif status == "stopped":
            kept = " — the model trained so far is kept" if job.model is not None else ""
            out["message"] = f"{message}{kept}"
        elif status == "cancelled":
            out["message"] = "cancelled before it started"
        elif status == "diverged":
            out.update(message="diverged", warning=message)
        else:
            out.update(message="training failed", error=message)
        return out

    # --------------------------------------------------------------- save
    def save(self, name: str | None = None) -> bool:
        """Save the trained model as ``<user models dir>/<name>``; the catalog is notified
        so that every session's model picker lists it. ``False`` (and ``error``) on failure:
        no model, a training under way, an unsafe or taken name, or a write error."""
        try:
            name = check_model_name(self.model_name if name is None else name)
            if self.active:
                raise ValueError("wait until the training has ended (or stop it) to save")
            if self.model is None:
                raise ValueError("there is no trained model to save: train one first")
            root = catalog.user_models_dir()
            target = root / name
            if target.exists():
                raise ValueError(f"a model named '{name}' already exists: choose another name")
            self.model.save(target, metrics=dict(self.metrics))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.error = f"Could not save the model: {hide_server_paths(str(exc))}"
            return False
        catalog.notify_changed()
        self.param.update(saved_path=str(target), model_name=name, error="",
                          message=f"saved as model '{name}' — pick it in the Explore tab")
        return True

    # ----------------------------------------------------------- download
    def archive_name(self) -> str:
        """The download's folder name: the model name when it is a valid one, else
        ``srom-<system>-model`` (``srom-upload-model`` for uploaded data)."""
        try:
            return check_model_name(self.model_name)
        except ValueError:
            return f"srom-{self.system if self.source == 'simulator' else 'upload'}-model"

    def model_zip(self) -> bytes:
        """The trained model (saved or not) as a zip of its model folder, with its held-out
        scores (:func:`app.state.model_archive.model_zip`, folder :meth:`archive_name`).

        Raises:
            ValueError: no trained model yet, or a training under way.
        """
        from app.state.model_archive import model_zip

        if self.active:
            raise ValueError("wait until the training has ended (or stop it) to download")
        if self.model is None:
            raise ValueError("there is no trained model to download: train one first")
        return model_zip(self.model, self.archive_name(), metrics=dict(self.metrics))

    # ------------------------------------------------------------- upload
    def add_upload(self, name: str, data: bytes, wait: bool = True) -> bool | None:
        """Check an uploaded file in a separate process (:func:`read_upload_isolated`, with
        time and memory limits) from a background thread; on success it becomes the chosen
        training data, and a refused file leaves ``upload_error`` (a previous good upload
        stays). One check at a time per session.

        Args:
            wait: block until the answer (tests, scripts) and return ``True`` / ``False``;
                ``False``: return ``None`` at once and let :meth:`poll` apply the answer
                (the dashboard: the session's event loop never waits for a file).
        """
        if self._upload_check is not None and self._upload_check[0].is_alive():
            self.upload_error = (f"{display_name(name)}: refused; {self.upload_pending} is still being "
                                 "checked, upload again when it is done")
            return False if wait else None
        box: dict[str, Any] = {}

        def check() -> None:
            start = time.perf_counter()
            try:
                box["upload"] = read_upload_isolated(name, data)
            except UploadError as exc:
                box["error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - never let a file break the session
                box["error"] = f"{display_name(name)}: could not be read ({type(exc).__name__})"
            box["seconds"] = time.perf_counter() - start

        thread = threading.Thread(target=check, name="srom-upload-check", daemon=True)
        self._upload_check = (thread, box)
        self.param.update(upload_pending=display_name(name),
                          message=f"checking {display_name(name)} in a separate process…")
        thread.start()
        if not wait:
            return None
        thread.join()
        return self._apply_upload_check()

    def _apply_upload_check(self) -> bool | None:
        """The finished upload check's answer into the params (session thread)."""
        if self._upload_check is None or self._upload_check[0].is_alive():
            return None
        box = self._upload_check[1]
        self._upload_check = None
        if "upload" not in box:
            self.param.update(upload_pending="", upload_error=box.get("error", "refused"),
                              message="")
            return False
        upload = box["upload"]
        n = upload.dataset.n_trajectories
        self.param.update(upload=upload, upload_error="", upload_pending="", source="upload",
                          n_trajectories=max(1, n - 1) if n > 1 else 1,
                          message=f"{upload.name} read in {box['seconds']:.2f} s; it is now "
                                  "the training data")
        return True
