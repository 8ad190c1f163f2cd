"""Probe sensitivity: how a statistic of the prediction responds to μ and the forcing.

GUI-free. The inputs that can be swept are the model's parameters μ and the float parameters
of the forcing family that have a training range (e.g. a sine's amplitude), each across its
trained range, with everything else held at the Explore tab's current values
(:class:`Conditions`, captured from an :class:`app.state.ExploreState`). A *statistic* reduces
one sample path ``x (T, *S)`` to a number (:data:`STATISTICS`); over the paths of a case it has
a distribution, summarized by its mean and quantiles (50 % and 90 % bands).

* :func:`sweep_1d`: one input over ``n`` points → :class:`SweepResult`.
* :func:`sweep_2d`: two inputs on an ``n × n`` grid → :class:`GridResult` (mean and std maps).
* :func:`rank_inputs`: every input at the low and high ends of its trained range, the others
  at nominal → :class:`TornadoResult` (a tornado chart), sorted by swing.

All cases of a run go to ``StochasticROM.predict`` as one batch (``mu (B, P)``, ``f (B, T, F)``,
``x0 (B, *S)``), split into chunks only to bound memory (``max_elements`` decoded values per
call); ``progress(done, total)`` is called after each chunk and may raise to stop the run.
:class:`SensitivityState` wraps these in a ``param`` object with a background worker, as
:class:`app.state.ExploreState` does for predictions.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import param

from app import catalog
from app.background import LatestOnlyWorker
from app.export import field_kind
from app.state import ExploreState, forcing_fields
from engine.forcing import Forcing, make_forcing
from engine.model import ExtrapolationWarning

__all__ = ["STATISTICS", "SUMMARY_LEVELS", "SweepInput", "Conditions", "SweepResult",
           "GridResult", "TornadoResult", "sweep_inputs", "statistic_values", "evaluate",
           "sweep_1d", "sweep_2d", "rank_inputs", "SensitivityState"]

#: statistic key → what it measures, per sample path x (T, *S) (2-D fields flattened)
STATISTICS: dict[str, str] = {
    "probe": "value at the probe point and time",
    "energy": "spatial energy mean(x²) at the time",
    "time_mean": "time average of the value at the probe point",
    "time_max": "maximum over time of the value at the probe point",
}
#: quantile levels of a statistic's summary: the 90 % and 50 % bands and the median
SUMMARY_LEVELS: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
#: decoded values per model call (B · paths · T · |S|): about 16 MB of float32 per copy
MAX_ELEMENTS = 2**22

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepInput:
    """One input that can be swept.

    Attributes:
        key: ``"mu:<name>"`` or ``"forcing:<name>"``; name: the parameter's name;
        label: what plots call it; trained: ``(lo, hi)`` training range;
        nominal: its current value in the Explore tab.
    """

    key: str
    name: str
    label: str
    trained: tuple[float, float]
    nominal: float

    def grid(self, n: int) -> np.ndarray:
        """``(n,)`` equally spaced values across the trained range."""
        return np.linspace(self.trained[0], self.trained[1], int(n))


def sweep_inputs(explore: ExploreState) -> list[SweepInput]:
    """The sweepable inputs of ``explore``'s model: μ, then the forcing family's float
    parameters with a training range (none for a family the model was not trained on)."""
    if explore.model is None:
        return []
    out = []
    for spec in explore.mu_specs:
        unit = "" if spec.unit in ("", "1") else f" [{spec.unit}]"
        out.append(SweepInput(f"mu:{spec.name}", spec.name, f"{spec.name}{unit}", spec.trained,
                              float(explore.mu.get(spec.name, spec.default))))
    if explore.model.forcing_names_:
        ranges = explore.trained_forcing_ranges(explore.forcing_family)
        for f in forcing_fields(explore.forcing_family, ranges):
            r = ranges.get(f.name)
            if f.kind != "float" or not isinstance(r, (tuple, list)) or len(r) != 2 \
                    or not float(r[0]) < float(r[1]):
                continue
            out.append(SweepInput(f"forcing:{f.name}", f.name, f"forcing {f.name}",
                                  (float(r[0]), float(r[1])),
                                  float(explore.forcing_params.get(f.name, f.default))))
    return out


@dataclass(frozen=True)
class Conditions:
    """Everything a run needs, captured from the Explore tab on the session thread.

    Attributes:
        model, system: the shared model and its simulator.
        t: ``(T,)`` the Explore tab's output times; substeps: integrator steps per interval.
        mu: ``(P,)`` nominal μ; param_names: the model's μ names.
        forcing_family, forcing_params: the first forcing channel; other_forcings: the rest.
        seed, n_paths: sampling (the same seed for every model call).
        statistic: a key of :data:`STATISTICS`; probe: flat state index; t_index: index into
            ``t`` of single-time statistics; probe_label: how plots name the probe.
        max_elements: decoded values per model call.
    """

    model: Any
    system: Any
    t: np.ndarray
    substeps: int
    mu: np.ndarray
    param_names: tuple[str, ...]
    forcing_family: str
    forcing_params: Mapping[str, Any]
    other_forcings: tuple[Forcing, ...]
    seed: int
    n_paths: int
    statistic: str = "probe"
    probe: int = 0
    t_index: int = -1
    probe_label: str = ""
    max_elements: int = MAX_ELEMENTS

    @classmethod
    def from_explore(cls, explore: ExploreState, statistic: str = "probe", probe: int = 0,
                     time: float | None = None, n_paths: int = 32,
                     probe_label: str = "") -> Conditions:
        """Capture ``explore``'s current μ, forcing, time grid and seed.

        Args:
            statistic: a key of :data:`STATISTICS`; probe: flat state index.
            time: time of single-time statistics (nearest output time); ``None``: the last.
            n_paths: sample paths per case.

        Raises:
            ValueError: no model, bad Explore inputs, an unknown statistic or a bad probe.
        """
        model, system = explore.model, explore.system
        if model is None or system is None:
            raise ValueError("a model with a built-in simulator is needed for a sweep")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        size = int(np.prod(model.state_shape_))
        if not 0 <= int(probe) < size:
            raise ValueError(f"probe must be a flat state index in [0, {size - 1}], got {probe}")
        t, substeps = explore.time_grid()
        mu = system.check_mu(explore.mu_vector())[0]
        forcings = explore.forcing()
        t_index = len(t) - 1 if time is None else int(np.argmin(np.abs(t - float(time))))
        return cls(model=model, system=system, t=t, substeps=int(substeps), mu=mu,
                   param_names=tuple(model.param_names_), forcing_family=explore.forcing_family,
                   forcing_params=dict(explore.forcing_params),
                   other_forcings=tuple(forcings[1:]), seed=int(explore.seed),
                   n_paths=int(n_paths), statistic=statistic, probe=int(probe),
                   t_index=t_index, probe_label=probe_label)

    @property
    def stat_time(self) -> float:
        """The time of single-time statistics."""
        return float(self.t[self.t_index])

    def label(self) -> str:
        """A short name of the statistic, for axes: e.g. ``x[5] at t = 1``."""
        p, at = self.probe_label or f"x[{self.probe}]", f" at t = {self.stat_time:.3g}"
        return {"probe": p + at, "energy": "mean of x²" + at, "time_mean": f"time average of {p}",
                "time_max": f"max over time of {p}"}[self.statistic]

    def case(self, values: Mapping[str, float]) -> tuple[np.ndarray, tuple[Forcing, ...]]:
        """μ ``(P,)`` and the forcings of one case: nominal, with ``values`` (by
        :attr:`SweepInput.key`) replaced."""
        mu, fparams = np.array(self.mu, dtype=np.float64), dict(self.forcing_params)
        for key, value in values.items():
            kind, _, name = key.partition(":")
            if kind == "mu":
                mu[self.param_names.index(name)] = float(value)
            elif kind == "forcing":
                fparams[name] = float(value)
            else:
                raise ValueError(f"unknown input key {key!r}")
        if not self.model.forcing_names_:
            return mu, ()
        return mu, (make_forcing(self.forcing_family, **fparams), *self.other_forcings)


def statistic_values(samples: np.ndarray, statistic: str, t_index: int, probe: int
                     ) -> np.ndarray:
    """The statistic of every sample path.

    Args:
        samples: ``(B, n, T, *S)`` sample paths.
        statistic: a key of :data:`STATISTICS`.
        t_index: output-time index of ``probe`` and ``energy``; probe: flat state index.

    Returns:
        ``(B, n)``.
    """
    b, n, t = samples.shape[:3]
    flat = np.asarray(samples, dtype=np.float64).reshape(b, n, t, -1)
    if statistic == "probe":
        return flat[:, :, t_index, probe]
    if statistic == "energy":
        return np.mean(flat[:, :, t_index] ** 2, axis=-1)
    if statistic == "time_mean":
        return flat[:, :, :, probe].mean(axis=-1)
    if statistic == "time_max":
        return flat[:, :, :, probe].max(axis=-1)
    raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")


def _initial_state(cond: Conditions, mu: np.ndarray, forcings: tuple[Forcing, ...]
                   ) -> np.ndarray:
    # As app.simulate.initial_state, but uncached: a grid of cases would evict the Explore
    # tab's entries from the shared cache, and these short runs cost milliseconds.
    model = cond.model
    n = max(2, int(model.n_win))
    t = float(cond.t[0]) + float(model.dt_) * np.arange(n)
    x = cond.system.simulate(mu, list(forcings) if forcings else None, t, seed=cond.seed)
    return x[0] if model.n_win == 1 else x[: model.n_win]


def evaluate(cond: Conditions, cases: Sequence[Mapping[str, float]],
             progress: Progress | None = None) -> np.ndarray:
    """The statistic for each case and path: ``(len(cases), n_paths)``.

    Cases are batched into as few ``predict`` calls as ``max_elements`` allows; single-time
    statistics stop the prediction at their time.
    """
    model = cond.model
    single_time = cond.statistic in ("probe", "energy")
    t = cond.t[: max(cond.t_index, 1) + 1] if single_time else cond.t
    per_case = cond.n_paths * len(t) * int(np.prod(model.state_shape_))
    chunk = max(1, cond.max_elements // per_case)
    out = []
    for start in range(0, len(cases), chunk):
        built = [cond.case(c) for c in cases[start:start + chunk]]
        x0 = np.stack([_initial_state(cond, mu, fs) for mu, fs in built])
        mus = np.stack([mu for mu, _ in built])
        f = (np.stack([np.stack([g(t) for g in fs], axis=-1) for _, fs in built])
             if built[0][1] else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            with catalog.model_lock(model):
                pred = model.predict(x0, mus, t, f, n_samples=cond.n_paths, seed=cond.seed,
                                     return_samples=True, substeps=cond.substeps)
        out.append(statistic_values(pred.samples, cond.statistic, cond.t_index, cond.probe))
        del pred
        if progress is not None:
            progress(start + len(built), len(cases))
    return np.concatenate(out)


def _summary(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mean, std and ``(L, ...)`` quantiles at SUMMARY_LEVELS over the last axis."""
    return (stats.mean(axis=-1), stats.std(axis=-1),
            np.quantile(stats, SUMMARY_LEVELS, axis=-1))


@dataclass
class SweepResult:
    """A statistic against one input.

    Attributes:
        input: the swept input; values: ``(n,)`` its values; stats: ``(n, paths)``;
        label: the statistic's name; mean, std: ``(n,)``; quantiles: ``(L, n)`` at
        :data:`SUMMARY_LEVELS`; seconds: wall time of the run.
    """

    input: SweepInput
    values: np.ndarray
    stats: np.ndarray
    label: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.mean, self.std, self.quantiles = _summary(self.stats)

    def quantile(self, level: float) -> np.ndarray:
        """``(n,)`` the statistic's quantile at ``level`` (one of SUMMARY_LEVELS)."""
        return self.quantiles[SUMMARY_LEVELS.index(level)]


@dataclass
class GridResult:
    """A statistic on a grid of two inputs.

    Attributes:
        inputs: ``(a, b)``; values: ``((n_a,), (n_b,))``; stats: ``(n_a, n_b, paths)``;
        label; mean, std: ``(n_a, n_b)``; seconds.
    """

    inputs: tuple[SweepInput, SweepInput]
    values: tuple[np.ndarray, np.ndarray]
    stats: np.ndarray
    label: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.mean, self.std, self.quantiles = _summary(self.stats)


@dataclass
class TornadoResult:
    """Each input at the ends of its trained range, the others at nominal, largest swing first.

    Attributes:
        inputs: sorted by swing; low, high: ``(k,)`` the statistic's mean at the lower and
        upper end of each input's range; low_band, high_band: ``(2, k)`` its 5–95 % range;
        nominal: the mean at nominal inputs; nominal_band: ``(2,)``; swing: ``(k,)``
        ``|high − low|``; label; seconds.
    """

    inputs: list[SweepInput]
    low: np.ndarray
    high: np.ndarray
    low_band: np.ndarray
    high_band: np.ndarray
    nominal: float
    nominal_band: np.ndarray
    label: str
    seconds: float = 0.0

    @property
    def swing(self) -> np.ndarray:
        return np.abs(self.high - self.low)


def sweep_1d(cond: Conditions, inp: SweepInput, n_points: int = 9,
             progress: Progress | None = None) -> SweepResult:
    """Sweep ``inp`` over ``n_points`` values of its trained range (one batched run)."""
    start = time.perf_counter()
    values = inp.grid(n_points)
    stats = evaluate(cond, [{inp.key: v} for v in values], progress)
    return SweepResult(inp, values, stats, cond.label(), time.perf_counter() - start)


def sweep_2d(cond: Conditions, a: SweepInput, b: SweepInput, n: int = 7,
             progress: Progress | None = None) -> GridResult:
    """Sweep ``a`` and ``b`` on an ``n × n`` grid of their trained ranges."""
    if a.key == b.key:
        raise ValueError(f"a grid needs two different inputs, got {a.key} twice")
    start = time.perf_counter()
    va, vb = a.grid(n), b.grid(n)
    stats = evaluate(cond, [{a.key: x, b.key: y} for x in va for y in vb], progress)
    return GridResult((a, b), (va, vb), stats.reshape(len(va), len(vb), -1), cond.label(),
                      time.perf_counter() - start)


def rank_inputs(cond: Conditions, inputs: Sequence[SweepInput],
            progress: Progress | None = None) -> TornadoResult:
    """Rank ``inputs`` by the swing of the statistic's mean between the ends of their
    trained ranges (the others at nominal); one batched run of ``2k + 1`` cases."""
    if not inputs:
        raise ValueError("there is no input to rank")
    start = time.perf_counter()
    cases: list[dict[str, float]] = [{}]
    for inp in inputs:
        cases += [{inp.key: inp.trained[0]}, {inp.key: inp.trained[1]}]
    stats = evaluate(cond, cases, progress)
    mean, _, q = _summary(stats)
    band = q[[0, -1]]  # (2, 2k + 1): 5 % and 95 %
    low, high = mean[1::2], mean[2::2]
    order = np.argsort(-np.abs(high - low), kind="stable")
    return TornadoResult([inputs[i] for i in order], low[order], high[order],
                         band[:, 1::2][:, order], band[:, 2::2][:, order], float(mean[0]),
                         band[:, 0], cond.label(), time.perf_counter() - start)


class _Superseded(Exception):
    """A newer run was asked for: stop this one."""


class SensitivityState(param.Parameterized):
    """The Sensitivity tab's inputs and results, GUI-free.

    ``run("sweep")`` sweeps ``parameter`` (or, with ``parameter2``, the grid of both);
    ``run("tornado")`` ranks every input. With ``background`` the run goes to a worker
    thread (a newer run supersedes it between model calls) and results are handed over
    through ``dispatch`` (see :class:`app.background.LatestOnlyWorker`).
    """

    explore = param.ClassSelector(class_=ExploreState, doc="The Explore state (nominal inputs).")
    parameter = param.Selector(default=None, objects=[], allow_None=True, check_on_set=False,
                               doc="Key of the swept input.")
    parameter2 = param.Selector(default=None, objects=[], allow_None=True, check_on_set=False,
                                doc="Key of a second input (a 2-D grid); None: a 1-D sweep.")
    statistic = param.Selector(default="probe", objects=list(STATISTICS))
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
        self.worker = LatestOnlyWorker(name="srom-sensitivity")
        explore.param.watch(lambda *e: self.reset(), ["model", "forcing_family"])
        self.reset()

    def inputs(self) -> list[SweepInput]:
        """The sweepable inputs, with the Explore tab's current values as nominal."""
        return sweep_inputs(self.explore)

    def reset(self) -> None:
        """Offer the current model's inputs and forget old results (on a model switch)."""
        self.worker.cancel()
        keys = [i.key for i in self.inputs()]
        self.param.parameter.objects = keys
        self.param.parameter2.objects = [None, *keys]
        m = self.explore.model
        probe = 0
        if m is not None:
            size = int(np.prod(m.state_shape_))
            has_grid = self.explore.system is not None and bool(self.explore.system.grid())
            kind = field_kind(m.state_shape_, has_grid)
            probe = {"vector": 0, "field1d": size // 4, "field2d": size // 2}[kind]
        self.param.update(parameter=keys[0] if keys else None, parameter2=None, probe=probe,
                          stat_time=None, sweep=None, grid=None, tornado=None, busy=False,
                          progress=0.0, error="")
        self.param.trigger("reset_event")

    def conditions(self) -> Conditions:
        """The current run's :class:`Conditions` (raises ``ValueError`` on bad inputs)."""
        return Conditions.from_explore(self.explore, self.statistic, self.probe, self.stat_time,
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
        """Where background results are applied (see :class:`app.background.LatestOnlyWorker`)."""
        return self.worker.dispatch

    @dispatch.setter
    def dispatch(self, value) -> None:
        self.worker.dispatch = value

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the worker is idle; ``False`` on timeout."""
        return self.worker.wait(timeout)
