"""One shared, bounded pool of prediction threads that serves the sessions fairly (GUI-free).

Before this, every session had its own prediction thread: with ten pages open, ten threads
fought for two cores and for each model's lock, a slider's quick preview waited behind other
sessions' full predictions, and a request superseded while it waited for the lock was still
computed (issue 15, load). Here each session's view owns a :class:`FairWorker` (the same
interface as :class:`app.state.background.LatestOnlyWorker`) and all of them share one
:class:`PredictionScheduler` of ``$SROM_PREDICT_THREADS`` threads (default 2; the jobs of one
model run one at a time, in the scheduler's order rather than its lock's):

- **latest only**: a worker holds at most one waiting job; a newer submission replaces it,
  so a superseded request is dropped before it starts;
- **first results first**: a job may hand back a follow-up (a preview's refinement) with
  :meth:`FairWorker.deliver`'s ``then``; follow-ups run only when no session waits for a
  first result, and only once the owner has applied the preview (or after ``handoff_s``);
- **round robin**: among the jobs of one stage, the worker served longest ago goes first;
- **no thread per session**: a closed session leaves nothing behind but its dropped job;
- **superseded work stops**: a running job can ask :meth:`FairWorker.superseded` whether a
  newer submission or a cancel made it stale, and stop (a prediction checks it between
  chunks of its work, :mod:`engine.cancellation`).

::

    worker = FairWorker(dispatch=session_loop)      # one per session view
    worker.submit(lambda generation: ...)           # replaces this worker's waiting job
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FairWorker", "PredictionScheduler", "get_scheduler", "ENV_PREDICT_THREADS"]

#: the environment variable that sets the shared pool's size
ENV_PREDICT_THREADS = "SROM_PREDICT_THREADS"

_log = logging.getLogger(__name__)


def _call(fn: Callable[[], None]) -> None:
    fn()


@dataclass
class _Job:
    generation: int
    run: Callable[[int], None]
    stage: int  # 0: a first result (a preview or a full prediction); 1: a refinement
    key: object = None  # jobs of one key (a model) run one at a time, in the scheduler's order
    gate: threading.Event | None = None  # set once the owner applied what came before
    not_after: float = 0.0  # monotonic time after which the gate no longer holds it back

    def ready(self, now: float) -> bool:
        return self.gate is None or self.gate.is_set() or now >= self.not_after


class PredictionScheduler:
    """Runs the jobs of many :class:`FairWorker` s on at most ``threads`` daemon threads.

    Args:
        threads: most jobs that run at once (at least 1).
        idle_s: seconds without work after which the threads exit (the next job starts them
            again); ``None``: they stay (a server's pool: a steady thread count).
        name: the threads' name.
    """

    def __init__(self, threads: int = 1, idle_s: float | None = 30.0,
                 name: str = "srom-predict"):
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads, self.name = int(threads), name
        self.idle_s = None if idle_s is None else float(idle_s)
        self.cond = threading.Condition()
        self._ready: deque[FairWorker] = deque()  # workers with a waiting job, oldest served first
        self._running_keys: list[object] = []
        self._alive = 0
        self._idle = 0

    # -------------------------------------------------- called with self.cond held
    def _wake(self, worker: FairWorker) -> None:
        if not worker._running and worker not in self._ready:
            self._ready.append(worker)
        while self._alive < self.threads:  # the whole pool at once: a steady thread count
            self._alive += 1
            threading.Thread(target=self._loop, name=self.name, daemon=True).start()
        self.cond.notify_all()

    def _pick(self, now: float) -> tuple[FairWorker | None, float | None]:
        """The worker to serve now, or ``None`` and when to look again (``None``: when
        notified)."""
        best: FairWorker | None = None
        wake_at: float | None = None
        for worker in list(self._ready):
            job = worker._pending
            if job is None:  # cancelled while it waited
                self._ready.remove(worker)
                continue
            if job.key is not None and job.key in self._running_keys:
                continue  # its model predicts for someone else: the lock would hold it anyway
            if not job.ready(now):
                wake_at = job.not_after if wake_at is None else min(wake_at, job.not_after)
                continue
            if best is None or job.stage < best._pending.stage:  # type: ignore[union-attr]
                best = worker
        return best, wake_at

    def _loop(self) -> None:
        while True:
            with self.cond:
                self._idle += 1
                idle_since = time.monotonic()
                while True:
                    now = time.monotonic()
                    worker, wake_at = self._pick(now)
                    if worker is not None:
                        break
                    timeout: float | None = None
                    if self.idle_s is not None:
                        left = self.idle_s - (now - idle_since)
                        if left <= 0 and not self._ready:
                            self._idle -= 1
                            self._alive -= 1
                            return
                        timeout = left if left > 0 else self.idle_s
                    if wake_at is not None:  # a gated refinement becomes ready then
                        timeout = wake_at - now if timeout is None else min(timeout, wake_at - now)
                    self.cond.wait(None if timeout is None else max(1e-3, timeout))
                self._idle -= 1
                self._ready.remove(worker)
                job = worker._pending
                worker._pending, worker._running = None, True
                worker._running_key = job.key  # type: ignore[union-attr]
                self._running_keys.append(job.key)  # type: ignore[union-attr]
            try:
                job.run(job.generation)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - jobs report their own errors; keep the thread
                _log.exception("background prediction failed")
            finally:
                with self.cond:
                    worker._running = False
                    self._running_keys.remove(job.key)  # type: ignore[union-attr]
                    if worker._pending is not None:  # submitted meanwhile: back of the line
                        self._ready.append(worker)
                    self.cond.notify_all()
                # an idle thread waits with this frame's locals: the last job (its closure
                # holds a session's state) and worker must not stay alive with it, or a
                # closed session's objects live until this thread's next job
                del job, worker


_SCHEDULER: PredictionScheduler | None = None
_SCHEDULER_LOCK = threading.Lock()


def get_scheduler() -> PredictionScheduler:
    """The process-wide scheduler: ``$SROM_PREDICT_THREADS`` threads (default 2, at most
    the CPU count; one model still predicts for one session at a time), started together
    on first use and kept, so that the server's thread count does not move with its
    sessions."""
    global _SCHEDULER
    with _SCHEDULER_LOCK:
        if _SCHEDULER is None:
            try:
                threads = int(os.environ.get(ENV_PREDICT_THREADS, "2"))
            except ValueError:
                threads = 2
            _SCHEDULER = PredictionScheduler(min(max(1, threads), os.cpu_count() or 1),
                                             idle_s=None)
        return _SCHEDULER


class FairWorker:
    """One session's handle on the shared :class:`PredictionScheduler`: the newest job only,
    results delivered on the owner's thread and dropped there when stale.

    Args:
        dispatch: runs a callable on the owner's thread (a Panel session's event loop);
            ``None`` calls it in place, in the scheduler's thread (scripts, tests).
        scheduler: default :func:`get_scheduler`.
        handoff_s: how long a refinement waits for the owner to apply the result before it
            (a closed or stalled session must not hold it forever).
    """

    def __init__(self, dispatch: Callable[[Callable[[], None]], None] | None = None,
                 scheduler: PredictionScheduler | None = None, handoff_s: float = 1.0):
        self.dispatch = dispatch
        self.scheduler = scheduler or get_scheduler()
        self.handoff_s = float(handoff_s)
        self._generation = 0
        self._pending: _Job | None = None
        self._running = False
        self._running_key: object = None

    def submit(self, job: Callable[[int], None], key: object = None) -> int:
        """Queue ``job(generation)`` in place of this worker's waiting job (a first result,
        served before every refinement); returns its generation.

        Args:
            key: jobs with the same key never run at once (e.g. ``id(model)``: one model
                predicts for one session at a time, and the scheduler, not the model's lock,
                decides who is next); ``None``: no such limit.
        """
        with self.scheduler.cond:
            self._generation += 1
            self._pending = _Job(self._generation, job, stage=0, key=key)
            self.scheduler._wake(self)
            return self._generation

    def cancel(self) -> None:
        """Drop the waiting job and make the running one stale."""
        with self.scheduler.cond:
            self._generation += 1
            self._pending = None
            self.scheduler.cond.notify_all()

    def current(self, generation: int) -> bool:
        """Whether ``generation`` is still the newest submission."""
        return generation == self._generation

    def superseded(self, generation: int) -> Callable[[], bool]:
        """A check for a running job of ``generation``: ``True`` once a newer job was
        submitted or the worker was cancelled (its session closed), so the job can stop
        early (``StochasticROM.predict``'s ``cancel``). Quick and thread-safe."""
        return lambda: generation != self._generation

    def deliver(self, generation: int, fn: Callable[[], object],
                then: Callable[[int], None] | None = None) -> None:
        """Run ``fn`` on the owner's thread unless ``generation`` is stale by then.

        Args:
            then: a follow-up job of the same generation and key (a refinement; call this
                from the running job), queued behind every session's first results; it starts once ``fn`` has run on the owner's thread
                (or after ``handoff_s``), and never if a newer job was submitted meanwhile.
        """
        gate = None
        if then is not None:
            with self.scheduler.cond:
                if not self.current(generation):
                    then = None
                else:
                    gate = threading.Event()
                    self._pending = _Job(generation, then, stage=1, gate=gate,
                                         not_after=time.monotonic() + self.handoff_s,
                                         key=self._running_key)
                    self.scheduler._wake(self)

        def apply() -> None:
            try:
                if self.current(generation):
                    fn()
            finally:
                if gate is not None:
                    with self.scheduler.cond:
                        gate.set()
                        self.scheduler.cond.notify_all()
        (self.dispatch or _call)(apply)

    @property
    def busy(self) -> bool:
        """A job of this worker is waiting or running."""
        with self.scheduler.cond:
            return self._running or self._pending is not None

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no job of this worker waits or runs; ``False`` on timeout."""
        with self.scheduler.cond:
            return self.scheduler.cond.wait_for(
                lambda: not self._running and self._pending is None, timeout)
