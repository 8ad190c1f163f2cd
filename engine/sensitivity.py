"""Probe sensitivity: how a statistic of a model's prediction responds to μ and the forcing.

GUI-free (used by the dashboard's Sensitivity tab, ``srom sensitivity`` and notebooks). The
inputs that can be swept (:class:`SweepInput`, :func:`sweep_inputs`) are the model's
parameters μ and the float parameters of the forcing family that have a training range (e.g.
a sine's amplitude), each across its trained range, with everything else held at nominal
values (:class:`Conditions`). A *statistic* reduces one sample path ``x (T, *S)`` to a number
(:data:`STATISTICS`); over the paths of a case it has a distribution, summarized by its mean,
its Monte-Carlo standard error and quantiles (50 % and 90 % bands).

* :func:`sweep_1d`: one input over ``n`` points → :class:`SweepResult`.
* :func:`sweep_2d`: two inputs on an ``n × n`` grid → :class:`GridResult` (mean and std maps).
* :func:`rank_inputs`: every input at the low and high ends of its trained range, the others
  at nominal → :class:`TornadoResult`, sorted by swing, with Monte-Carlo error bars.

All cases of a run go to ``StochasticROM.predict`` as one batch (``mu (B, P)``, ``f (B, T, F)``,
``x0 (B, *S)``), split into chunks only to bound memory (``max_elements`` decoded values per
call); ``progress(done, total)`` is called after each chunk and may raise to stop the run.
Initial states come from the simulator (:func:`engine.state_cache.simulator_initial_state`:
shipped, cached on disk or computed) or, for a model trained on the user's own data, from a
fixed ``Conditions.x0`` (:func:`engine.state_cache.data_initial_state`).

Example::

    model = load_model("pretrained/heat")
    cond = Conditions.for_model(model, model_system(model), statistic="time_max", probe=19)
    inputs = sweep_inputs_for(cond)
    result = sweep_1d(cond, inputs[0], n_points=9)   # result.mean (9,), result.stderr (9,)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.forcing import FORCING_FAMILIES, Forcing, make_forcing
from engine.model import ExtrapolationWarning
from engine.state_cache import data_initial_state, simulator_initial_state

__all__ = ["STATISTICS", "SUMMARY_LEVELS", "MAX_ELEMENTS", "SweepInput", "Conditions",
           "SweepResult", "GridResult", "TornadoResult", "sweep_inputs", "sweep_inputs_for",
           "trained_forcing_ranges", "model_system", "default_probe", "statistic_values",
           "evaluate", "sweep_1d", "sweep_2d", "rank_inputs", "rows_to_csv"]

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
#: output times of a run made by :meth:`Conditions.for_model` (at most)
MAX_FRAMES = 101

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepInput:
    """One input that can be swept.

    Attributes:
        key: ``"mu:<name>"`` or ``"forcing:<name>"``; name: the parameter's name;
        label: what plots call it; trained: ``(lo, hi)`` training range;
        nominal: its value when other inputs are swept.
    """

    key: str
    name: str
    label: str
    trained: tuple[float, float]
    nominal: float

    def grid(self, n: int) -> np.ndarray:
        """``(n,)`` equally spaced values across the trained range."""
        return np.linspace(self.trained[0], self.trained[1], int(n))


def float_forcing_fields(family: str) -> dict[str, float]:
    """The float parameters of forcing ``family`` with their defaults."""
    if family not in FORCING_FAMILIES:
        raise ValueError(f"unknown forcing family {family!r}; expected one of "
                         f"{list(FORCING_FAMILIES)}")
    out = {}
    for f in dataclasses.fields(FORCING_FAMILIES[family]):
        if f.init and isinstance(f.default, float):
            out[f.name] = float(f.default)
    return out


def trained_forcing_ranges(system: Any, family: str) -> dict:
    """Training ranges ``{name: (lo, hi) | value}`` of ``family`` for the first forcing
    channel of ``system`` (empty without a system or when it was not trained on ``family``)."""
    if system is None or not system.forcing_specs():
        return {}
    spec = system.forcing_specs()[0]
    return dict(spec.ranges) if spec.default_family == family else {}


def sweep_inputs(model: Any, mu: Mapping[str, float], forcing_family: str,
                 forcing_params: Mapping[str, Any], forcing_ranges: Mapping[str, Any],
                 units: Mapping[str, str] | None = None,
                 mu_ranges: Mapping[str, tuple[float, float]] | None = None
                 ) -> list[SweepInput]:
    """The sweepable inputs of ``model``: μ, then the forcing family's float parameters with
    a training range ``(lo, hi)``, lo < hi.

    Args:
        model: a fitted ``StochasticROM`` (``param_names_``, ``param_ranges_``,
            ``forcing_names_``).
        mu: nominal μ by name (missing: the middle of the trained range).
        forcing_family, forcing_params: the first forcing channel's nominal forcing.
        forcing_ranges: training ranges of ``forcing_family`` (see
            :func:`trained_forcing_ranges`).
        units: unit by μ name, for labels; mu_ranges: override of the trained μ ranges.
    """
    out = []
    units = dict(units or {})
    for name, (lo, hi) in zip(model.param_names_, model.param_ranges_):
        lo, hi = (mu_ranges or {}).get(name, (lo, hi))
        unit = units.get(name, "")
        label = name if unit in ("", "1") else f"{name} [{unit}]"
        out.append(SweepInput(f"mu:{name}", name, label, (float(lo), float(hi)),
                              float(mu.get(name, 0.5 * (float(lo) + float(hi))))))
    if model.forcing_names_ and forcing_family in FORCING_FAMILIES:
        for name, default in float_forcing_fields(forcing_family).items():
            r = forcing_ranges.get(name)
            if not isinstance(r, (tuple, list)) or len(r) != 2 or not float(r[0]) < float(r[1]):
                continue
            out.append(SweepInput(f"forcing:{name}", name, f"forcing {name}",
                                  (float(r[0]), float(r[1])),
                                  float(forcing_params.get(name, default))))
    return out


def model_system(model: Any) -> Any:
    """The built-in simulator ``model`` was trained on, configured as in training, or
    ``None`` (a model trained on the user's own data, or nothing matches).

    The preset saved in ``model.dataset_info_`` is used when it gives the model's state shape,
    μ and forcing names; otherwise the presets are matched by them (preferring the one whose
    default time grid is the model's training grid).
    """
    from engine.systems import SYSTEMS, get_system

    name = getattr(model, "system_", None)
    if name not in SYSTEMS:
        return None

    def fits(system: Any) -> bool:
        return (tuple(system.state_shape) == tuple(model.state_shape_)
                and list(system.param_names) == list(model.param_names_)
                and list(system.forcing_names) == list(model.forcing_names_))

    saved = (getattr(model, "dataset_info_", None) or {}).get("preset")
    if isinstance(saved, str) and saved in SYSTEMS[name].presets:
        system = get_system(name, saved)
        if fits(system):
            return system
    candidates = []
    for preset in SYSTEMS[name].presets:
        try:
            system = get_system(name, preset)
        except ValueError:
            continue
        if not fits(system):
            continue
        grid = system.time_grid()
        same = (abs(grid[0] - model.t_range_[0]) < 1e-9
                and abs(grid[-1] - model.t_range_[1]) < 1e-6
                and abs(float(grid[1] - grid[0]) - model.dt_) < 1e-6)
        candidates.append((not same, preset != "default", preset, system))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[:3])[3]


def default_probe(state_shape: Sequence[int], field: bool) -> int:
    """A probe that shows something: component 0 of a vector state, a quarter into a 1-D
    field, the middle of a 2-D field's flat index."""
    size = int(np.prod(state_shape))
    if not field:
        return 0
    return size // 4 if len(state_shape) == 1 else size // 2


@dataclass(frozen=True)
class Conditions:
    """Everything a run needs.

    Attributes:
        model: the fitted model; system: its simulator, or ``None`` (then ``x0`` is needed).
        t: ``(T,)`` output times; substeps: integrator steps per interval.
        mu: ``(P,)`` nominal μ; param_names: the model's μ names.
        forcing_family, forcing_params: the first forcing channel; other_forcings: the rest.
        seed, n_paths: sampling (the same seed for every model call).
        statistic: a key of :data:`STATISTICS`; probe: flat state index; t_index: index into
            ``t`` of single-time statistics; probe_label: how plots name the probe.
        max_elements: decoded values per model call.
        x0: ``(*S)`` or ``(n_win, *S)`` an initial state used for every case (a model with
            no simulator); ``None``: the simulator's state for each case's μ and forcing.
        model_dir: the model's directory (its shipped simulator states are used).
        lock: a context manager held around each model call (a model shared by threads).
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
    x0: np.ndarray | None = None
    model_dir: str | None = None
    lock: Any = None

    @classmethod
    def for_model(cls, model: Any, system: Any = None, *, mu: Mapping[str, float] | None = None,
                  forcing_family: str | None = None,
                  forcing_params: Mapping[str, Any] | None = None,
                  horizon: float | None = None, statistic: str = "probe",
                  probe: int | None = None, time: float | None = None, n_paths: int = 32,
                  seed: int = 0, x0: np.ndarray | None = None,
                  model_dir: str | None = None) -> Conditions:
        """Nominal conditions of ``model``: μ and forcing at the middle of their trained
        ranges (or the simulator's defaults), times from the trained start to ``horizon``.

        Args:
            model: a fitted ``StochasticROM``; system: its simulator (:func:`model_system`)
                or ``None``: then ``x0`` or the model's data (:func:`engine.state_cache.
                data_initial_state`) gives the initial state.
            mu: nominal μ by name (default: the system's value if trained, else the middle).
            forcing_family, forcing_params: the first channel's forcing (default: the
                system's trained family at mid-range; without a system ``none``).
            horizon: last output time (default: the end of the trained range; at most 20
                trained spans); statistic: a key of :data:`STATISTICS`.
            probe: flat state index (default :func:`default_probe`); time: time of
                single-time statistics (nearest output time; default the last).
            n_paths: sample paths per case (2..4096); seed: noise seed (0..2**31 - 1).
            x0: ``(*S)`` or ``(n_win, *S)`` initial state for every case.
            model_dir: the model's directory (shipped simulator states).

        Raises:
            ValueError: an unknown μ name, statistic or forcing family, a bad probe, time,
                horizon, path count, seed or initial state.
        """
        t0, dt = float(model.t_range_[0]), float(model.dt_)
        span = float(model.t_range_[1]) - t0
        horizon = float(model.t_range_[1]) if horizon is None else float(horizon)
        if not math.isfinite(horizon) or horizon < t0 + dt / 2 or horizon > t0 + 20 * span:
            raise ValueError(f"horizon must be in [{t0 + dt:g}, {t0 + 20 * span:g}] (the start "
                             f"plus one step to 20 trained spans), got {horizon:g}")
        if not 2 <= int(n_paths) <= 4096:
            raise ValueError(f"n_paths must be in 2..4096, got {n_paths}")
        if not 0 <= int(seed) < 2**31:
            raise ValueError(f"seed must be in 0..2**31 - 1, got {seed}")
        n_steps = max(1, int(round((horizon - t0) / dt)))
        stride = max(1, math.ceil(n_steps / (MAX_FRAMES - 1)))
        t = t0 + dt * stride * np.arange(n_steps // stride + 1)
        _, substeps = model.integration_settings()
        names = tuple(model.param_names_)
        unknown = sorted(set(mu or {}) - set(names))
        if unknown:
            raise ValueError(f"unknown μ names {unknown}; the model's are {list(names)}")
        defaults = dict(zip(system.param_names, system.default_mu())) if system is not None \
            else {}
        nominal = []
        for name, (lo, hi) in zip(names, model.param_ranges_):
            value = (mu or {}).get(name)
            if value is None:
                d = defaults.get(name)
                value = d if d is not None and lo <= d <= hi else 0.5 * (lo + hi)
            if not math.isfinite(float(value)):
                raise ValueError(f"μ {name} must be finite, got {value}")
            nominal.append(float(value))
        mu_vec = np.asarray(nominal, dtype=np.float64)
        if system is not None:
            mu_vec = system.check_mu(mu_vec)[0]
        family = "none"
        params: dict[str, Any] = {}
        others: tuple[Forcing, ...] = ()
        if model.forcing_names_:
            if system is not None and system.forcing_specs():
                default = system.default_forcing()
                first = default[0].to_dict()
                trained_family = first.pop("family")
                family = forcing_family or trained_family
                params = first if family == trained_family else {}
                others = tuple(default[1:])
            else:
                family = forcing_family or "none"
                others = tuple(make_forcing("none") for _ in model.forcing_names_[1:])
            params = {**params, **dict(forcing_params or {})}
            make_forcing(family, **params)  # checks the family and its parameters
        if x0 is None and system is None:
            x0 = data_initial_state(model)
        field = system is not None and bool(system.grid()) or len(model.state_shape_) > 1
        probe = default_probe(model.state_shape_, field) if probe is None else int(probe)
        cond = cls(model=model, system=system, t=t, substeps=int(stride * substeps), mu=mu_vec,
                   param_names=names, forcing_family=family, forcing_params=params,
                   other_forcings=others, seed=int(seed), n_paths=int(n_paths),
                   statistic=statistic, probe=probe,
                   t_index=len(t) - 1 if time is None else _time_index(t, time),
                   x0=None if x0 is None else np.asarray(x0), model_dir=model_dir)
        cond.check()
        return cond

    def check(self) -> None:
        """Raise ``ValueError`` for an unknown statistic, a probe outside the state, a time
        index outside ``t`` or an initial state of the wrong shape."""
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got "
                             f"{self.statistic!r}")
        size = int(np.prod(self.model.state_shape_))
        if not 0 <= int(self.probe) < size:
            raise ValueError(f"probe must be a flat state index in [0, {size - 1}], got "
                             f"{self.probe}")
        if not 0 <= int(self.t_index) < len(self.t):
            raise ValueError(f"t_index must be in [0, {len(self.t) - 1}], got {self.t_index}")
        if self.x0 is not None:
            shape = tuple(self.model.state_shape_)
            n_win = int(getattr(self.model, "n_win", 1))
            want = shape if n_win == 1 else (n_win, *shape)
            if tuple(np.shape(self.x0)) != want:
                raise ValueError(f"x0 must have shape {want}, got {np.shape(self.x0)}")
        elif self.system is None:
            raise ValueError("a sweep needs a simulator or an initial state x0")

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
            if kind == "mu" and name in self.param_names:
                mu[self.param_names.index(name)] = float(value)
            elif kind == "forcing":
                fparams[name] = float(value)
            else:
                raise ValueError(f"unknown input key {key!r}")
        if not self.model.forcing_names_:
            return mu, ()
        return mu, (make_forcing(self.forcing_family, **fparams), *self.other_forcings)

    def initial_state(self, mu: np.ndarray, forcings: tuple[Forcing, ...]) -> np.ndarray:
        """``(*S)`` or ``(n_win, *S)``: :attr:`x0`, else the simulator's state for the case."""
        if self.x0 is not None:
            return self.x0
        model = self.model
        return simulator_initial_state(self.system, mu, forcings, float(self.t[0]),
                                       float(model.dt_), int(model.n_win), self.seed,
                                       model_dir=self.model_dir)


def sweep_inputs_for(cond: Conditions) -> list[SweepInput]:
    """:func:`sweep_inputs` at ``cond``'s nominal values (units and forcing ranges from its
    system, if any)."""
    mu = dict(zip(cond.param_names, (float(v) for v in cond.mu)))
    units = dict(getattr(cond.system, "units", {}) or {})
    return sweep_inputs(cond.model, mu, cond.forcing_family, cond.forcing_params,
                        trained_forcing_ranges(cond.system, cond.forcing_family), units)


def _time_index(t: np.ndarray, time: float) -> int:
    time = float(time)
    if not math.isfinite(time) or not t[0] <= time <= t[-1]:
        raise ValueError(f"time must be within the output times [{t[0]:g}, {t[-1]:g}], got "
                         f"{time:g}")
    return int(np.argmin(np.abs(t - time)))


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
        x0 = np.stack([cond.initial_state(mu, fs) for mu, fs in built])
        mus = np.stack([mu for mu, _ in built])
        f = (np.stack([np.stack([g(t) for g in fs], axis=-1) for _, fs in built])
             if built[0][1] else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            with cond.lock if cond.lock is not None else contextlib.nullcontext():
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


def _stderr(stats: np.ndarray) -> np.ndarray:
    """The Monte-Carlo standard error of the mean over the last axis (``ddof = 1``)."""
    n = stats.shape[-1]
    return stats.std(axis=-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(stats.shape[:-1],
                                                                          np.nan)


@dataclass
class SweepResult:
    """A statistic against one input.

    Attributes:
        input: the swept input; values: ``(n,)`` its values; stats: ``(n, paths)``;
        label: the statistic's name; mean, std, stderr: ``(n,)`` (stderr: the Monte-Carlo
        standard error of the mean); quantiles: ``(L, n)`` at :data:`SUMMARY_LEVELS`;
        seconds: wall time of the run.
    """

    input: SweepInput
    values: np.ndarray
    stats: np.ndarray
    label: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.mean, self.std, self.quantiles = _summary(self.stats)
        self.stderr = _stderr(self.stats)

    def quantile(self, level: float) -> np.ndarray:
        """``(n,)`` the statistic's quantile at ``level`` (one of SUMMARY_LEVELS)."""
        return self.quantiles[SUMMARY_LEVELS.index(level)]

    def rows(self) -> list[dict[str, float]]:
        """One dict per point: the input's value, mean, stderr, std and quantiles."""
        return [{self.input.name: float(v), "mean": float(m), "stderr": float(se),
                 "std": float(s),
                 **{f"q{lv * 100:g}": float(q) for lv, q in zip(SUMMARY_LEVELS, qs)}}
                for v, m, se, s, qs in zip(self.values, self.mean, self.stderr, self.std,
                                           self.quantiles.T)]

    def to_csv(self) -> str:
        """:meth:`rows` as CSV text (see :func:`rows_to_csv`)."""
        return rows_to_csv(self.rows())


@dataclass
class GridResult:
    """A statistic on a grid of two inputs.

    Attributes:
        inputs: ``(a, b)``; values: ``((n_a,), (n_b,))``; stats: ``(n_a, n_b, paths)``;
        label; mean, std, stderr: ``(n_a, n_b)``; quantiles ``(L, n_a, n_b)``; seconds.
    """

    inputs: tuple[SweepInput, SweepInput]
    values: tuple[np.ndarray, np.ndarray]
    stats: np.ndarray
    label: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.mean, self.std, self.quantiles = _summary(self.stats)
        self.stderr = _stderr(self.stats)

    def rows(self) -> list[dict[str, float]]:
        """One dict per grid point (the first input varying slowest): both inputs' values,
        mean, stderr, std and quantiles."""
        (a, b), (va, vb) = self.inputs, self.values
        return [{a.name: float(x), b.name: float(y), "mean": float(self.mean[i, j]),
                 "stderr": float(self.stderr[i, j]), "std": float(self.std[i, j]),
                 **{f"q{lv * 100:g}": float(self.quantiles[k, i, j])
                    for k, lv in enumerate(SUMMARY_LEVELS)}}
                for i, x in enumerate(va) for j, y in enumerate(vb)]

    def to_csv(self) -> str:
        """:meth:`rows` as CSV text (see :func:`rows_to_csv`)."""
        return rows_to_csv(self.rows())


@dataclass
class TornadoResult:
    """Each input at the ends of its trained range, the others at nominal, largest swing first.

    Attributes:
        inputs: sorted by swing; low, high: ``(k,)`` the statistic's mean at the lower and
        upper end of each input's range; low_se, high_se: ``(k,)`` their Monte-Carlo
        standard errors; low_band, high_band: ``(2, k)`` the statistic's 5–95 % range;
        nominal: the mean at nominal inputs; nominal_se; nominal_band: ``(2,)``; label;
        seconds.
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
    low_se: np.ndarray | None = None
    high_se: np.ndarray | None = None
    nominal_se: float = float("nan")

    @property
    def swing(self) -> np.ndarray:
        """``(k,)`` ``|high − low|``."""
        return np.abs(self.high - self.low)

    @property
    def swing_se(self) -> np.ndarray:
        """``(k,)`` the Monte-Carlo standard error of ``high − low`` (independent paths)."""
        if self.low_se is None or self.high_se is None:
            return np.full(len(self.inputs), np.nan)
        return np.hypot(self.low_se, self.high_se)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per input, largest swing first."""
        return [{"input": inp.key, "low_value": inp.trained[0], "high_value": inp.trained[1],
                 "low_mean": float(lo), "high_mean": float(hi), "swing": float(sw),
                 "swing_se": float(se), "low_q5": float(lb[0]), "low_q95": float(lb[1]),
                 "high_q5": float(hb[0]), "high_q95": float(hb[1])}
                for inp, lo, hi, sw, se, lb, hb in zip(
                    self.inputs, self.low, self.high, self.swing, self.swing_se,
                    self.low_band.T, self.high_band.T)]

    def to_csv(self) -> str:
        """:meth:`rows` as CSV text, largest swing first, with a ``rank`` column (1 = the
        largest swing) and the nominal mean (see :func:`rows_to_csv`)."""
        return rows_to_csv([{"rank": k + 1, **row, "nominal_mean": float(self.nominal)}
                            for k, row in enumerate(self.rows())])


#: first characters that make a spreadsheet read a cell as a formula (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A text cell that a spreadsheet cannot run: a leading formula character gets a ``'``
    (names come from model files and datasets: untrusted). Numbers are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (dicts with the same keys, e.g. :meth:`SweepResult.rows`) as CSV text: a
    header of the keys, then one line per row; floats written exactly (``repr``), NaN as
    ``nan``; text cells that start like a spreadsheet formula are prefixed with ``'``.

    Raises:
        ValueError: no rows, or rows with different keys.
    """
    import csv
    import io

    if not rows:
        raise ValueError("there are no rows to write")
    columns = list(rows[0])
    for k, row in enumerate(rows):
        if list(row) != columns:
            raise ValueError(f"row {k} has columns {list(row)}, expected {columns}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([_csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row.values()])
    return buf.getvalue()


def _check_points(n: int, name: str, hi: int) -> int:
    if isinstance(n, bool) or int(n) != n or not 2 <= int(n) <= hi:
        raise ValueError(f"{name} must be a whole number in 2..{hi}, got {n}")
    return int(n)


def sweep_1d(cond: Conditions, inp: SweepInput, n_points: int = 9,
             progress: Progress | None = None) -> SweepResult:
    """Sweep ``inp`` over ``n_points`` (2..201) values of its trained range (one batched run)."""
    n_points = _check_points(n_points, "n_points", 201)
    start = time.perf_counter()
    values = inp.grid(n_points)
    stats = evaluate(cond, [{inp.key: v} for v in values], progress)
    return SweepResult(inp, values, stats, cond.label(), time.perf_counter() - start)


def sweep_2d(cond: Conditions, a: SweepInput, b: SweepInput, n: int = 7,
             progress: Progress | None = None) -> GridResult:
    """Sweep ``a`` and ``b`` on an ``n × n`` grid (n in 2..41) of their trained ranges."""
    if a.key == b.key:
        raise ValueError(f"a grid needs two different inputs, got {a.key} twice")
    n = _check_points(n, "n", 41)
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
    se = _stderr(stats)
    band = q[[0, -1]]  # (2, 2k + 1): 5 % and 95 %
    low, high = mean[1::2], mean[2::2]
    order = np.argsort(-np.abs(high - low), kind="stable")
    return TornadoResult([inputs[i] for i in order], low[order], high[order],
                         band[:, 1::2][:, order], band[:, 2::2][:, order], float(mean[0]),
                         band[:, 0], cond.label(), time.perf_counter() - start,
                         low_se=se[1::2][order], high_se=se[2::2][order],
                         nominal_se=float(se[0]))
