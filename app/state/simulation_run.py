"""One prediction's simulator work, shared between the worker that runs it and the session
that shows its progress and may cancel it (GUI-free).

A dashboard prediction of a model with a simulator may run the simulator twice: for the
initial state (a spin-up, when no cached or shipped state fits) and, with "Compare with the
simulator", for the truth over the horizon (the cylinder: tens of seconds on a CPU). The
worker enters a :meth:`SimulationRun.stage` around each; inside it the systems' progress
reports (:mod:`engine.systems.progress`) land in the run, and a cancelled run raises
:class:`~engine.systems.progress.SimulationCancelled` at the next report, so the simulation
really stops. The session reads :meth:`SimulationRun.progress` from a periodic callback.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.systems.progress import SimulationCancelled, reporting

__all__ = ["PHASE_TEXT", "RunProgress", "SimulationRun", "describe", "SimulationCancelled"]

#: what the engine's phases are called on the page
PHASE_TEXT = {"horizon": "of the horizon", "spin-up": "of the spin-up"}


@dataclass(frozen=True)
class RunProgress:
    """Where a running simulation is.

    Attributes:
        stage: what is simulated: ``"truth"`` or ``"initial state"``.
        phase: the engine's last reported phase (``"horizon"``, ``"spin-up"``), ``""``
            before the first report.
        fraction: share of ``phase`` simulated, in [0, 1]; ``None`` while the system has
            reported nothing (not every simulator reports: an indeterminate bar then).
        elapsed_s: seconds since the stage began.
    """

    stage: str
    phase: str
    fraction: float | None
    elapsed_s: float


class SimulationRun:
    """The progress and cancel flag of one request's simulator work; thread-safe.

    Args:
        clock: seconds (monotonic); tests pass their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._cancelled: str | None = None
        self._stage: str | None = None
        self._started = 0.0
        self._phase = ""
        self._fraction: float | None = None
        #: the last stage's progress when it was cancelled (for the note to the user)
        self.stopped_at: RunProgress | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Run a simulation inside: its reports update :meth:`progress`, and a cancel stops
        it at the next report.

        Raises:
            SimulationCancelled: the run was cancelled (before or during the stage).
        """
        with self._lock:
            if self._cancelled is not None:
                raise SimulationCancelled(self._cancelled)
            self._stage, self._started = name, self._clock()
            self._phase, self._fraction = "", None
        try:
            with reporting(self.report):
                yield
        finally:
            with self._lock:
                self._stage = None

    def report(self, done: float, total: float, phase: str) -> None:
        """The reporter of :func:`engine.systems.progress.reporting` (the simulating thread).

        Raises:
            SimulationCancelled: the run was cancelled.
        """
        with self._lock:
            self._phase = str(phase)
            self._fraction = min(1.0, max(0.0, done / total)) if total > 0 else None
            if self._cancelled is not None:
                if self._stage is not None:
                    self.stopped_at = self._progress()
                raise SimulationCancelled(self._cancelled)

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the running stage at its next report and refuse any later stage.

        Args:
            reason: ends the sentence "the simulator run was …" shown to the user.
        """
        with self._lock:
            if self._cancelled is None:
                self._cancelled = f"the simulator run was {reason}"
                if self._stage is not None:
                    self.stopped_at = self._progress()

    @property
    def cancelled(self) -> str | None:
        """Why the run was cancelled (a sentence), or ``None``."""
        return self._cancelled

    def progress(self) -> RunProgress | None:
        """The running stage's progress; ``None`` when no simulation runs now."""
        with self._lock:
            return self._progress() if self._stage is not None else None

    def _progress(self) -> RunProgress:
        return RunProgress(stage=self._stage or "", phase=self._phase, fraction=self._fraction,
                           elapsed_s=max(0.0, self._clock() - self._started))


def describe(progress: RunProgress) -> str:
    """One line for the page: ``Simulating the truth: 43 % of the horizon · 12 s`` or, for
    a system that reports nothing, ``Simulating the truth · 12 s so far``."""
    head = f"Simulating the {progress.stage}"
    seconds = f"{progress.elapsed_s:.0f} s"
    if progress.fraction is None:
        return f"{head} · {seconds} so far (this simulator does not report its progress)"
    part = PHASE_TEXT.get(progress.phase, "done")
    return f"{head}: {100 * progress.fraction:.0f} % {part} · {seconds}"
