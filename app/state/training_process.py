"""Dashboard trainings in a separate process (GUI-free).

:func:`run_job_in_process` is the server's training runner (:func:`app.state.worker.get_worker`):
it runs :func:`app.state.training_job.run_job` in a child process started with ``spawn`` and relays
the child's reports into the job's outbox, so that

- a crash or an out-of-memory kill of a training ends that job with a message and cannot
  take the server (or any other session) down;
- a training's Python work does not hold the server's interpreter lock: sliders of other
  sessions keep answering while it runs;
- stopping stays cooperative: the job's stop flag is passed on to the child, which ends
  after its current step and hands the model trained so far back;
- the child runs at a lower CPU priority (``$SROM_TRAINING_NICE``, default 19; 0 keeps the
  server's): on a small server a training then takes the CPU the sessions leave, rather
  than half of it while a class drags sliders (issue 15).

The child hands the model back as a model folder (safetensors + JSON, read with
``load_model``), and its reports as plain events.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import tempfile
from typing import Any

from app.state.training_job import TrainingJob, run_job
from engine.progress import StopFlag

__all__ = ["run_job_in_process", "training_niceness"]

_CONTEXT = multiprocessing.get_context("spawn")
#: the environment variable of the training processes' niceness increment, and its default
#: (19, the lowest priority: a training must not slow the sessions' sliders; it takes what
#: they leave of the CPU)
ENV_NICE, DEFAULT_NICE = "SROM_TRAINING_NICE", 19


def training_niceness() -> int:
    """The niceness increment of a training process: ``$SROM_TRAINING_NICE`` (0 to 19,
    default 19)."""
    try:
        return min(19, max(0, int(os.environ.get(ENV_NICE, DEFAULT_NICE))))
    except ValueError:
        return DEFAULT_NICE


class _ChildJob(TrainingJob):
    """The job as the child sees it: its reports go to the parent, and its model is saved
    to ``out_dir`` before the ``end`` report."""

    def __init__(self, spec, events, stop_event, out_dir: str):
        super().__init__(spec)
        self.stop_flag = StopFlag(stop_event)  # shared with the parent
        self._events, self._out_dir = events, out_dir

    def emit(self, kind: str, **data: Any) -> None:
        self._events.put((kind, data))

    def finish(self, status: str, message: str, step: int = 0) -> None:
        self.status, self.message = status, message
        model_dir = None
        if self.model is not None:
            try:
                self.model.save(self._out_dir)
                model_dir = self._out_dir
            except Exception as exc:  # noqa: BLE001 - reported, the job still ends
                message += f" (the model could not be handed over: {type(exc).__name__})"
        self._events.put(("end", {"status": status, "message": message, "step": int(step),
                                  "metrics": dict(self.metrics), "model_dir": model_dir}))


def _child_main(spec, events, stop_event, out_dir: str, nice: int = 0) -> None:
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:  # not allowed here: train at the server's priority
            pass
    run_job(_ChildJob(spec, events, stop_event, out_dir))


def run_job_in_process(job: TrainingJob, poll_s: float = 0.1) -> None:
    """Run ``job`` in a child process; relay its reports; never raises (see module doc).
    ``job.process`` is the child while it runs (tests)."""
    from engine import ModelFileError, load_model

    events, stop_event = _CONTEXT.Queue(), _CONTEXT.Event()
    out_dir = tempfile.mkdtemp(prefix="srom-job-")
    child = _CONTEXT.Process(target=_child_main,
                             args=(job.spec, events, stop_event, out_dir, training_niceness()),
                             name=f"srom-training-{job.id}", daemon=True)
    job.status = "preparing"
    job.process = child
    ended = None
    try:
        child.start()
        while ended is None:
            if job.stop_flag.is_set():
                stop_event.set()
            try:
                kind, data = events.get(timeout=poll_s)
            except queue.Empty:
                if child.is_alive():
                    continue
                try:  # the last reports of a child that has just ended
                    kind, data = events.get(timeout=1.0)
                except queue.Empty:
                    break
            if kind == "end":
                ended = data
                break
            if kind == "start":
                job.status = "running"
            elif kind == "status":
                job.status = data.get("status", job.status)
            job.emit(kind, **data)
        child.join(timeout=30)
        if ended is None:
            code = child.exitcode
            hint = " (killed: out of memory?)" if code is not None and code < 0 else ""
            job.finish("failed", f"the training process ended unexpectedly with exit code "
                                 f"{code}{hint}; nothing else on the server was affected")
            return
        if ended.get("model_dir"):
            try:
                job.model = load_model(ended["model_dir"])
                job.metrics = ended.get("metrics") or {}
            except ModelFileError as exc:
                job.emit("warning", message=f"the trained model could not be read back: {exc}")
        job.finish(ended["status"], ended["message"], ended.get("step", 0))
    finally:
        if child.is_alive():
            child.kill()
            child.join(timeout=5)
        job.process = None
        shutil.rmtree(out_dir, ignore_errors=True)
