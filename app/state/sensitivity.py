"""The Sensitivity tab's session state: sweeps and the tornado chart of the Explore tab's model.

GUI-free. The analyses themselves (sweepable inputs, statistics, batched evaluation, 1-D
sweeps, 2-D grids and the tornado ranking with Monte-Carlo error bars) live in
:mod:`engine.sensitivity`; this module captures their :class:`Conditions` from an
:class:`app.state.explore.ExploreState` and wraps the runs in a ``param`` object with a background
worker (:class:`SensitivityState`), as :class:`app.state.explore.ExploreState` does for predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import param

from app.state import catalog
from app.state.background import LatestOnlyWorker
from app.state.explore import ExploreState
from app.state.export import field_kind
from engine import sensitivity as _engine
from engine.sensitivity import (
    MAX_ELEMENTS,
    STATISTICS,
    SUMMARY_LEVELS,
    GridResult,
    Progress,
    SweepInput,
    SweepResult,
    TornadoResult,
    evaluate,
    rank_inputs,
    statistic_values,
    sweep_1d,
    sweep_2d,
)
from engine.state_cache import data_initial_state

__all__ = ["STATISTICS", "SUMMARY_LEVELS", "MAX_ELEMENTS", "SweepInput", "Conditions",
           "SweepResult", "GridResult", "TornadoResult", "sweep_inputs", "statistic_values",
           "evaluate", "sweep_1d", "sweep_2d", "rank_inputs", "SensitivityState"]


def sweep_inputs(explore: ExploreState) -> list[SweepInput]:
    """The sweepable inputs of ``explore``'s model: μ, then the forcing family's float
    parameters with a training range, at the Explore tab's current values."""
    model = explore.model
    if model is None:
        return []
    units = {spec.name: spec.unit for spec in explore.mu_specs}
    ranges = {spec.name: spec.trained for spec in explore.mu_specs}
    mu = {spec.name: float(explore.mu.get(spec.name, spec.default)) for spec in explore.mu_specs}
    family = explore.forcing_family
    forcing_ranges = explore.trained_forcing_ranges(family) if model.forcing_names_ else {}
    return _engine.sweep_inputs(model, mu, family, explore.forcing_params, forcing_ranges,
                                units=units, mu_ranges=ranges)


class Conditions(_engine.Conditions):
    """:class:`engine.sensitivity.Conditions`, captured from the Explore tab."""

    @classmethod
    def from_explore(cls, explore: ExploreState, statistic: str = "probe", probe: int = 0,
                     time: float | None = None, n_paths: int = 32,
                     probe_label: str = "") -> Conditions:
        """Capture ``explore``'s current μ, forcing, time grid and seed (on the session
        thread).

        Args:
            statistic: a key of :data:`STATISTICS`; probe: flat state index.
            time: time of single-time statistics (nearest output time); ``None``: the last.
            n_paths: sample paths per case.

        Raises:
            ValueError: no model, bad Explore inputs, an unknown statistic or a bad probe.
        """
        model, system = explore.model, explore.system
        if model is None:
            raise ValueError("no model is loaded")
        t, substeps = explore.time_grid()
        mu = np.asarray(explore.mu_vector(), dtype=np.float64)
        x0 = None
        if system is not None:
            mu = system.check_mu(mu)[0]
        else:  # a model of the user's own data: every case starts from one of its states
            x0 = _data_x0(explore)
        forcings = explore.forcing()
        t_index = len(t) - 1 if time is None else int(np.argmin(np.abs(t - float(time))))
        cond = cls(model=model, system=system, t=t, substeps=int(substeps), mu=mu,
                   param_names=tuple(model.param_names_), forcing_family=explore.forcing_family,
                   forcing_params=dict(explore.forcing_params),
                   other_forcings=tuple(forcings[1:]), seed=int(explore.seed),
                   n_paths=int(n_paths), statistic=statistic, probe=int(probe),
                   t_index=t_index, probe_label=probe_label, x0=x0,
                   model_dir=explore.model_path, lock=catalog.model_lock(model))
        cond.check()
        return cond


def _data_x0(explore: ExploreState) -> np.ndarray:
    """The initial state the Explore tab uses for a model without a simulator: the chosen
    kept training case (``case``), else the model's data mean."""
    model = explore.model
    cases = getattr(model, "initial_states_", None)
    k = 0
    if cases is not None and hasattr(cases, "x0"):
        k = min(max(int(getattr(explore, "case", 0)), 0), int(np.shape(cases.x0)[0]) - 1)
    return data_initial_state(model, k)


class _Superseded(Exception):
    """A newer run was asked for: stop this one."""


class SensitivityState(param.Parameterized):
    """The Sensitivity tab's inputs and results, GUI-free.

    ``run("sweep")`` sweeps ``parameter`` (or, with ``parameter2``, the grid of both);
    ``run("tornado")`` ranks every input. With ``background`` the run goes to a worker
    thread (a newer run supersedes it between model calls) and results are handed over
    through ``dispatch`` (see :class:`app.state.background.LatestOnlyWorker`).
    """

    explore = param.ClassSelector(class_=ExploreState, doc="The Explore state (nominal inputs).")
    parameter: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=False,
        doc="Key of the swept input.")
    parameter2: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=False,
        doc="Key of a second input (a 2-D grid); None: a 1-D sweep.")
    statistic: param.Selector[str] = param.Selector(
        default="probe", objects=list(STATISTICS))
    probe = param.Integer(default=0, bounds=(0, None), doc="Flat state index of the probe.")
    stat_time = param.Number(default=None, allow_None=True,
                             doc="Time of single-time statistics; None: the last output time.")
    probe_label = param.String(default="", doc="How plots name the probe (default x[k]).")
    n_points = param.Integer(default=9, bounds=(2, 41), doc="Points of a 1-D sweep.")
    n_grid = param.Integer(default=7, bounds=(2, 15), doc="Points per axis of a 2-D grid.")
    n_paths = param.Integer(default=32, bounds=(2, 1024), doc="Sample paths per case.")
    background = param.Boolean(default=False, doc="Run on a worker thread (the dashboard).")

    sweep = param.ClassSelector(class_=SweepResult, default=None, allow_None=True)
    grid = param.ClassSelector(class_=GridResult, default=None, allow_None=True)
    tornado = param.ClassSelector(class_=TornadoResult, default=None, allow_None=True)
    busy = param.Boolean(default=False)
    progress = param.Number(default=0.0, bounds=(0.0, 1.0))
    error = param.String(default="")
    reset_event = param.Event(doc="Triggered when the inputs on offer changed (see reset).")

    def __init__(self, explore: ExploreState, **params: Any):
        super().__init__(explore=explore, **params)
        self._explore = explore  # the same object, typed as never None
        self.worker = LatestOnlyWorker(name="srom-sensitivity")
        explore.param.watch(lambda *e: self.reset(), ["model", "forcing_family"])
        self.reset()

    def inputs(self) -> list[SweepInput]:
        """The sweepable inputs, with the Explore tab's current values as nominal."""
        return sweep_inputs(self._explore)

    def reset(self) -> None:
        """Offer the current model's inputs and forget old results (on a model switch)."""
        self.worker.cancel()
        keys = [i.key for i in self.inputs()]
        self.param.parameter.objects = keys
        self.param.parameter2.objects = [None, *keys]
        m = self._explore.model
        probe = 0
        if m is not None:
            size = int(np.prod(m.state_shape_))
            system = self._explore.system
            has_grid = system is not None and bool(system.grid())
            kind = field_kind(m.state_shape_, has_grid)
            probe = {"vector": 0, "field1d": size // 4, "field2d": size // 2}[kind]
        self.param.update(parameter=keys[0] if keys else None, parameter2=None, probe=probe,
                          stat_time=None, sweep=None, grid=None, tornado=None, busy=False,
                          progress=0.0, error="")
        self.param.trigger("reset_event")

    def conditions(self) -> Conditions:
        """The current run's :class:`Conditions` (raises ``ValueError`` on bad inputs)."""
        return Conditions.from_explore(self._explore, self.statistic, self.probe, self.stat_time,
                                       self.n_paths, self.probe_label)

    def _find(self, key: str | None) -> SweepInput:
        for inp in self.inputs():
            if inp.key == key:
                return inp
        raise ValueError(f"no sweepable input {key!r} for this model")

    def run(self, what: str = "sweep") -> None:
        """Start a ``sweep`` (1-D or grid) or a ``tornado``; never raises (see ``error``)."""
        try:
            if what not in ("sweep", "tornado"):
                raise ValueError(f"what must be 'sweep' or 'tornado', got {what!r}")
            cond = self.conditions()
            # the engine's run (sweep_1d, sweep_2d or rank_inputs) and its inputs after cond
            fn: Callable[..., object]
            args: tuple
            if what == "tornado":
                fn, args = rank_inputs, (self.inputs(),)
            elif self.parameter2 is not None and self.parameter2 != self.parameter:
                fn = sweep_2d
                args = (self._find(self.parameter), self._find(self.parameter2), self.n_grid)
            else:
                fn, args = sweep_1d, (self._find(self.parameter), self.n_points)
        except Exception as exc:  # noqa: BLE001 - shown, never raised
            self.worker.cancel()
            self.param.update(error=f"{type(exc).__name__}: {exc}", busy=False)
            return
        self.param.update(busy=True, progress=0.0, error="")
        if not self.background:
            self._finish(self._compute(fn, cond, args, lambda done, total: None))
            return
        self.worker.submit(lambda generation: self._job(fn, cond, args, generation))

    def _compute(self, fn, cond, args, report: Progress):
        try:
            return fn(cond, *args, progress=report)
        except _Superseded:
            return None
        except Exception as exc:  # noqa: BLE001
            return exc

    def _job(self, fn, cond: Conditions, args: tuple, generation: int) -> None:
        worker = self.worker

        def report(done: int, total: int) -> None:
            if not worker.current(generation):
                raise _Superseded
            worker.deliver(generation, lambda: setattr(self, "progress", done / total))

        outcome = self._compute(fn, cond, args, report)
        if outcome is not None:
            worker.deliver(generation, lambda: self._finish(outcome))

    def _finish(self, outcome) -> None:
        if isinstance(outcome, Exception):
            self.param.update(error=f"{type(outcome).__name__}: {outcome}", busy=False)
        elif isinstance(outcome, TornadoResult):
            self.param.update(tornado=outcome, busy=False, progress=1.0, error="")
        elif isinstance(outcome, GridResult):
            self.param.update(grid=outcome, sweep=None, busy=False, progress=1.0, error="")
        elif isinstance(outcome, SweepResult):
            self.param.update(sweep=outcome, grid=None, busy=False, progress=1.0, error="")

    @property
    def dispatch(self):
        """Where background results are applied (see :class:`app.state.background.LatestOnlyWorker`)."""
        return self.worker.dispatch

    @dispatch.setter
    def dispatch(self, value) -> None:
        self.worker.dispatch = value

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the worker is idle; ``False`` on timeout."""
        return self.worker.wait(timeout)
