"""The training worker: one thread per server process runs the dashboard's trainings, one
at a time, in the order they were asked for.

GUI-free. A session submits a :class:`app.state.training_job.JobSpec` and gets a
:class:`app.state.training_job.TrainingJob`; the worker thread runs it (:func:`run_job`), which
reports through the job's outbox that only the owning session drains::

    worker = get_worker()                 # the process-wide worker
    job = worker.submit(JobSpec(system="oscillator", steps=300))
    worker.position(job)                  # 0 running, k >= 1 k-th in line, None otherwise
    job.stop()                            # or worker.cancel(job): also drops a queued job
    for event in job.drain(): ...         # status / start / log / validation / end
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from app.state.limits import max_queued_trainings
from app.state.training_job import JobSpec, TrainingJob, run_job

__all__ = ["TrainingWorker", "get_worker"]


class TrainingWorker:
    """Runs submitted jobs one at a time, first in first out, on one daemon thread.

    Args:
        runner: ``runner(job)`` does the work and must end with ``job.finish(...)``;
            default :func:`run_job` (tests may pass a stand-in).
    """

    def __init__(self, runner: Callable[[TrainingJob], None] | None = None):
        self._runner = runner or run_job
        self._cond = threading.Condition()
        self._pending: deque[TrainingJob] = deque()
        self._current: TrainingJob | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, spec: JobSpec, owner: str = "") -> TrainingJob:
        """Queue a job (the thread starts on the first submission).

        Raises:
            RuntimeError: the worker is shut down, or the queue already holds
                :func:`app.state.limits.max_queued_trainings` jobs (the server's admin sets it).
        """
        job = TrainingJob(spec, owner)
        with self._cond:
            if self._closed:
                raise RuntimeError("the training worker is shut down")
            limit = max_queued_trainings()
            if len(self._pending) >= limit:
                raise RuntimeError(f"the server's training queue is full ({limit} waiting); "
                                   "try again when one has finished")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="srom-training",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return job

    def position(self, job: TrainingJob) -> int | None:
        """0 when ``job`` runs, k when it is k-th in line, ``None`` when it is not here."""
        with self._cond:
            if job is self._current:
                return 0
            for k, other in enumerate(self._pending, start=1):
                if other is job:
                    return k
        return None

    def queue_length(self) -> int:
        """Jobs waiting (not counting the running one)."""
        with self._cond:
            return len(self._pending)

    @property
    def current(self) -> TrainingJob | None:
        """The running job, if any."""
        return self._current

    def cancel(self, job: TrainingJob) -> None:
        """Drop ``job`` from the queue (status ``cancelled``), or stop it if it runs."""
        with self._cond:
            if job in self._pending:
                self._pending.remove(job)
                job.finish("cancelled", "cancelled before it started")
                return
        if job.active:
            job.stop()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job runs or waits (tests); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel the queue, stop the running job and end the thread (tests)."""
        with self._cond:
            self._closed = True
            pending, self._pending = list(self._pending), deque()
            current = self._current
            self._cond.notify_all()
        for job in pending:
            job.finish("cancelled", "the training worker shut down")
        if current is not None:
            current.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._current = self._pending.popleft()
            try:
                self._runner(job)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any job
                job.finish("failed", f"{type(exc).__name__}: {exc}")
            finally:
                if job.active:  # a runner that forgot to finish
                    job.finish("failed", "the training ended without a result")
                with self._cond:
                    self._current = None
                    self._cond.notify_all()


_WORKER: TrainingWorker | None = None
_WORKER_LOCK = threading.Lock()


def get_worker() -> TrainingWorker:
    """The process-wide worker shared by every dashboard session."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            # each training in its own process (a crash or an out-of-memory ends that job,
            # not the server; SROM_TRAIN_IN_THREADS=1 keeps them on the worker thread), with
            # a record and checkpoints that a restarted server resumes (app.state.job_records)
            in_threads = os.environ.get("SROM_TRAIN_IN_THREADS", "") == "1"
            _WORKER = TrainingWorker(runner=recorded(run_job if in_threads else _process_runner()))
            from app.state.job_records import resume_interrupted

            resume_interrupted(_WORKER)
        return _WORKER


def _process_runner():
    from app.state.training_process import run_job_in_process

    return run_job_in_process


def recorded(runner: Callable[[TrainingJob], None]) -> Callable[[TrainingJob], None]:
    """``runner`` with a record of the job kept while it runs (:mod:`app.state.job_records`): a
    server that dies mid-training leaves it for the next one to resume."""
    from app.state import job_records

    def run(job: TrainingJob) -> None:
        folder = getattr(job, "resumed_record", None)
        try:
            if folder is None:
                job.spec, folder = job_records.record_job(job.spec)
            else:
                job.spec = dataclasses.replace(job.spec, checkpoint=str(folder / "checkpoint.safetensors"))
        except OSError as exc:  # no record: the training still runs, it just cannot resume
            job.emit("warning", message=f"no restart record ({exc.strerror or exc}): a server "
                                        "restart would lose this training")
            folder = None
        if folder is not None:  # a stopped one can be resumed: its session hears of it first
            kept_from = folder
            job.before_end = lambda j: job_records.keep_checkpoint(j, kept_from)
        try:
            runner(job)
        finally:
            if folder is not None:
                job_records.remove_record(folder)

    return run


# ------------------------------------------------------------------ the work itself
