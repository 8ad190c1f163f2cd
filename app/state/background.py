"""A one-thread background worker that runs only the newest job (GUI-free).

Used by the Explore and Sensitivity views: a slider burst submits many jobs, only the newest
is computed, and a result that went stale while it was computed is dropped where it is
applied (on the session's thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["LatestOnlyWorker"]


def _call(fn: Callable[[], None]) -> None:
    fn()


class LatestOnlyWorker:
    """Runs jobs one at a time on a daemon thread, and only the newest one.

    A job submitted while an older one waits replaces it; a running job is not interrupted
    but can poll :meth:`current` to stop early; what a job hands back with :meth:`deliver` is
    dropped if a newer job was submitted in the meantime (checked where the delivery runs,
    i.e. on the owner's thread, the one that submits). The thread exits after ``idle_s``
    without work and is restarted by the next :meth:`submit`, so closed sessions leave no
    thread behind.

    Args:
        dispatch: runs a callable on the owner's thread (a Panel session's event loop); ``None``
            calls it in place, in the worker thread (scripts, tests).
        name: the thread's name; idle_s: seconds before an idle thread exits.
    """

    def __init__(self, dispatch: Callable[[Callable[[], None]], None] | None = None,
                 name: str = "srom-worker", idle_s: float = 30.0):
        self.dispatch = dispatch
        self.name, self.idle_s = name, float(idle_s)
        self._cond = threading.Condition()
        self._generation = 0
        self._pending: tuple[int, Callable[[int], None]] | None = None
        self._running = False
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[int], None]) -> int:
        """Queue ``job(generation)`` in place of any waiting job; returns its generation."""
        with self._cond:
            self._generation += 1
            self._pending = (self._generation, job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._generation

    def cancel(self) -> None:
        """Drop the waiting job and make the running one stale."""
        with self._cond:
            self._generation += 1
            self._pending = None
            self._cond.notify_all()

    def current(self, generation: int) -> bool:
        """Whether ``generation`` is still the newest submission."""
        return generation == self._generation

    def deliver(self, generation: int, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the owner's thread unless ``generation`` is stale by then."""
        def apply() -> None:
            if self.current(generation):
                fn()
        (self.dispatch or _call)(apply)

    def sync(self, timeout: float = 1.0) -> bool:
        """Block until everything delivered so far has run on the owner's thread (call it
        from a job). On a Panel session this also waits for the messages those deliveries
        sent to the browser: Bokeh runs the next callback only after the previous one's
        writes. ``False`` on timeout (e.g. the session was closed)."""
        if self.dispatch is None:
            return True
        done = threading.Event()
        self.dispatch(done.set)
        return done.wait(timeout)

    @property
    def busy(self) -> bool:
        """A job is waiting or running."""
        with self._cond:
            return self._running or self._pending is not None

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no job waits or runs; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and self._pending is None,
                                       timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._pending is not None, self.idle_s):
                    self._thread = None
                    return
                pending = self._pending
                if pending is None:  # never: wait_for returned once it was set
                    continue
                generation, job = pending
                self._pending, self._running = None, True
            try:
                job(generation)
            except Exception:  # noqa: BLE001 - jobs report their own errors; keep the thread
                logging.getLogger(__name__).exception("background job failed")
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
