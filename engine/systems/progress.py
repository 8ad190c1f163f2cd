"""Progress and cancellation of a simulator run (GUI-free).

A long simulation (the cylinder's lattice-Boltzmann run: tens of seconds on a CPU) says how
far it is by calling :func:`report_progress` at natural points of its time loop (once per
output interval, or per chunk of a spin-up). Nobody listens by default, and a report then
costs one context-variable lookup. A caller that wants to show a progress bar or to stop the
run installs a reporter for the code it calls with :func:`reporting`::

    def report(done: float, total: float, phase: str) -> None:
        print(f"{phase}: {100 * done / total:.0f} %")
        if stop_requested.is_set():
            raise SimulationCancelled("stopped by the user")

    with reporting(report):
        x = system.simulate(mu, forcing, t)

The reporter runs on the simulating thread, inside the time loop: it must be quick, and an
exception it raises (:class:`SimulationCancelled`) ends the run there, so a cancel really
stops the work at the next report. The reporter is held in a :class:`contextvars.ContextVar`,
so each thread (each dashboard session's worker) has its own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["ProgressReporter", "SimulationCancelled", "reporting", "report_progress",
           "current_reporter"]

#: ``reporter(done, total, phase)``: ``done`` of ``total`` units of ``phase`` are simulated
#: (``phase`` is ``"horizon"`` for the requested output times, ``"spin-up"`` before them)
ProgressReporter = Callable[[float, float, str], None]

_reporter: contextvars.ContextVar[ProgressReporter | None] = contextvars.ContextVar(
    "srom_simulation_progress", default=None)


class SimulationCancelled(RuntimeError):
    """Raised by a reporter to stop the simulation it is called from."""


@contextlib.contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[None]:
    """Send the progress reports of simulations run inside the block (on this thread) to
    ``reporter``; the previous reporter is restored afterwards.

    Args:
        reporter: called as ``reporter(done, total, phase)``; it may raise
            :class:`SimulationCancelled` to stop the run.
    """
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def report_progress(done: float, total: float, phase: str = "horizon") -> None:
    """Called by the systems' time loops: ``done`` of ``total`` units of ``phase`` are
    simulated. A no-op without a reporter; otherwise it may raise
    :class:`SimulationCancelled` (let it propagate).

    Args:
        done, total: progress in any unit (steps, output intervals), ``0 <= done <= total``.
        phase: ``"horizon"`` (the requested times) or ``"spin-up"`` (before them).
    """
    reporter = _reporter.get()
    if reporter is not None:
        reporter(float(done), float(total), phase)


def current_reporter() -> ProgressReporter | None:
    """The reporter installed on this thread by :func:`reporting` (``None`` without one)."""
    return _reporter.get()
