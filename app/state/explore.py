"""The session state of the dashboard: a GUI-free ``param.Parameterized`` object.

One :class:`ExploreState` per browser session holds what the user chose (model, μ, forcing,
number of paths, horizon, seed, truth toggle) and what the engine answered (an
:class:`ExploreResult`, a warning and an error string). Any change of an input re-runs the
prediction once (changes made together with ``state.param.update(...)`` are batched). The
views only read the outputs and write the inputs; the same object drives tests and scripts::

    state = ExploreState()              # discovers models, loads the default one, predicts
    state.set_mu("nu", 0.03)            # → state.result is a new prediction
    state.show_truth = True             # → state.result.truth, rel. error, coverage

Engine errors never escape: they become ``state.error`` and the last good result stays.
μ outside the trained range is not an error but ``state.warning`` ("extrapolating").

With ``background=True`` (what the dashboard sets) a change only captures the inputs as a
:class:`PredictRequest` on the caller's thread; the prediction runs on the server's shared
prediction threads through the state's :class:`app.state.scheduler.FairWorker` (sessions served in
turn, every session's preview before any refinement), bursts are coalesced (only the newest
request is computed, stale results are dropped) and results are handed back through
``dispatch``, which the view points at the session's event loop. ``wait()`` blocks until the
worker is idle (scripts, tests).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import param

from app.state import catalog
from app.state.scheduler import FairWorker
from app.state.simulate import initial_state, simulate_truth
from app.state.simulation_run import PHASE_TEXT, SimulationCancelled, SimulationRun
from app.state.specs import (
    BANDS,
    ForcingField,
    MuSpec,
    data_forcing_ranges,
    forcing_defaults,
    forcing_fields,
    mu_specs,
)
from engine.cancellation import CancelCheck, PredictionCancelled
from engine.forcing import FORCING_FAMILIES, Forcing, make_forcing
from engine.metrics import scaled_l2
from engine.model import ExtrapolationWarning
from engine.sensitivity import model_system
from engine.state_cache import data_initial_state as engine_data_initial_state

__all__ = ["QUANTILE_LEVELS", "BANDS", "COVERAGE_BAND", "ExploreResult", "ExploreState",
           "PredictRequest", "predict_request", "data_initial_state", "MuSpec",
           "ForcingField",
           "forcing_fields"]

#: quantile levels computed on the device for every prediction
QUANTILE_LEVELS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
#: the nested bands drawn (app.state.specs.BANDS)
#: the band used for the truth coverage figure (90 %)
COVERAGE_BAND: tuple[float, float] = (0.05, 0.95)


@dataclass
class ExploreResult:
    """A prediction reduced to what the plots draw (numpy, physical units).

    Attributes:
        t: ``(T,)`` output times.
        mean, std: ``(T, *S)`` predictive mean and standard deviation.
        quantiles: ``(L, T, *S)`` at ``levels`` (``QUANTILE_LEVELS``).
        samples: ``(k, T, *S)`` a few sample paths.
        latent_mean: ``(T, d)``; latent_quantiles: ``(L, T, d)``; latent_samples: ``(k, T, d)``.
        forcing: ``(T, F)`` the forcing used; mu: ``(P,)``.
        truth: ``(T, *S)`` simulator trajectory or ``None``; rel_error: ``(T,)`` L2 error of
            the mean scaled by the truth's RMS norm over the horizon (``engine.metrics.
            scaled_l2``: finite where the truth passes near zero); inside_band: ``(T,)`` share of the state inside the 90 % band;
            coverage: its mean over time.
        seconds: wall time of the model call; truth_seconds: of the simulator (0 if cached).
        n_paths: sample paths behind the statistics; preview: a quick result (fewer paths,
            every ``decode_stride``-th output time) that a full one will replace; inputs:
            JSON-able description of what was predicted (see :class:`PredictRequest`).
        decode_stride: the result holds every ``decode_stride``-th output time of the
            request (and the last one); 1 for a full result.
    """

    t: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    levels: np.ndarray
    quantiles: np.ndarray
    samples: np.ndarray
    latent_mean: np.ndarray
    latent_quantiles: np.ndarray
    latent_samples: np.ndarray
    forcing: np.ndarray
    mu: np.ndarray
    seconds: float
    truth: np.ndarray | None = None
    rel_error: np.ndarray | None = None
    inside_band: np.ndarray | None = None
    coverage: float | None = None
    truth_seconds: float = 0.0
    n_paths: int = 0
    preview: bool = False
    inputs: dict = field(default_factory=dict)
    decode_stride: int = 1

    def quantile(self, level: float) -> np.ndarray:
        """``(T, *S)`` the quantile at ``level`` (one of ``levels``)."""
        idx = int(np.argmin(np.abs(self.levels - level)))
        if not math.isclose(self.levels[idx], level, abs_tol=1e-9):
            raise KeyError(f"quantile level {level} was not computed; have {self.levels.tolist()}")
        return self.quantiles[idx]

    def latent_quantile(self, level: float) -> np.ndarray:
        """``(T, d)`` the latent quantile at ``level``."""
        idx = int(np.argmin(np.abs(self.levels - level)))
        return self.latent_quantiles[idx]


@dataclass(frozen=True)
class PredictRequest:
    """One prediction's inputs, captured (and checked) on the session thread so that a worker
    can run it while the user goes on moving sliders.

    Attributes:
        model, system: the shared model and its simulator (``None`` for a model of the
            user's own data).
        t: ``(T,)`` output times; substeps: integrator steps per output interval.
        mu: ``(P,)`` checked parameters; forcings: one ``Forcing`` per channel.
        n_paths, seed, n_keep, show_truth: sampling settings.
        notes: warnings known before predicting (time or forcing-family extrapolation).
        inputs: JSON-able description (model, μ by name, forcings, sampling) for exports.
        x0: the initial state when it does not come from the simulator: ``(*S)``, or
            ``(1, W, *S)`` for a model that reads ``W`` snapshots (see :func:`data_initial_state`).
        simulation: where the simulator work (initial state, truth) reports its progress
            and learns that it was cancelled (``None``: no simulator).
    """

    model: Any
    system: Any
    t: np.ndarray
    substeps: int
    mu: np.ndarray
    forcings: tuple[Forcing, ...]
    n_paths: int
    seed: int
    n_keep: int
    show_truth: bool
    notes: tuple[str, ...] = ()
    inputs: dict = field(default_factory=dict)
    x0: np.ndarray | None = None
    simulation: SimulationRun | None = None


def _simulating(req: PredictRequest, stage: str) -> contextlib.AbstractContextManager[None]:
    """The request's :meth:`SimulationRun.stage` (a no-op without a run)."""
    return req.simulation.stage(stage) if req.simulation is not None else contextlib.nullcontext()


def data_initial_state(model: Any, case: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The initial state of a model without a simulator, from its own training data.

    Args:
        model: a fitted ``StochasticROM``.
        case: which of the training trajectories it kept (``model.initial_states_``).

    Returns:
        ``x0``: ``(*S)``, or ``(1, W, *S)`` for a model that reads ``W`` snapshots; that
        trajectory's μ ``(P,)`` (``None`` without kept states); and a note for the user
        (empty when the state is a training case's).

    Raises:
        ValueError: ``case`` is not one of the kept trajectories.
    """
    x0 = engine_data_initial_state(model, int(case))  # (*S) or (W, *S)
    if int(getattr(model, "n_win", 1)) > 1:
        x0 = x0[None]
    cases = getattr(model, "initial_states_", None)
    if cases is None:  # saved before the states were kept: the training data's mean state
        return (x0, None, "this model was saved without training states: predictions start "
                          "from its training data's mean state")
    return x0, cases.mu[int(case)], ""


#: decoded values one prediction may hold per copy (float32: 1 GiB); the prediction makes a
#: few copies (samples, noise, sorted quantiles), so this bounds it to a few GiB
PATH_CAP_VALUES = 2**28
#: a dashboard prediction's bounds: the horizon in trained spans, and paths × integration
#: steps (about 5 s of latent integration on a 2-core CPU), so one session cannot hold the
#: shared model for minutes (a horizon of 10⁴ once took over 60 s)
MAX_HORIZON_SPANS = 20
MAX_PATH_STEPS = 4_000_000


def path_cap(state_shape: tuple[int, ...], n_times: int, values: int | None = None) -> int:
    """The most sample paths whose decoded frames stay within ``values`` (at least 4): a
    3 × 80 × 440 flow over 134 times allows 18, a 500-point field over 1001 times 536."""
    per_path = max(1, int(np.prod(state_shape)) * int(n_times))
    return max(4, (PATH_CAP_VALUES if values is None else values) // per_path)


def predict_request(req: PredictRequest, n_paths: int | None = None, decode_stride: int = 1,
                    substeps: int | None = None, cancel: CancelCheck | None = None
                    ) -> tuple[ExploreResult, list[str]]:
    """Run ``req`` (simulator initial state, model call, optional truth); thread-safe.

    Args:
        req: the captured inputs.
        n_paths: override ``req.n_paths`` (a quick preview).
        decode_stride: decode only every ``decode_stride``-th output time and the last one
            (a quick preview: the SDE is still integrated on all of ``req.t``, see
            ``StochasticROM.predict``).
        substeps: override ``req.substeps`` (a quick preview on a coarser step).
        cancel: checked while the model predicts (``StochasticROM.predict``); ``None``:
            never.

    Returns:
        The reduced result and the warnings raised (extrapolation).

    Raises:
        PredictionCancelled: ``cancel()`` returned ``True`` during the model call.
    """
    model, system, t = req.model, req.system, req.t
    n = int(n_paths or req.n_paths)
    cap = path_cap(model.state_shape_, t.size)
    capped = n > cap
    n = min(n, cap)
    x0 = req.x0
    if x0 is None:
        with _simulating(req, "initial state"):  # a spin-up, unless cached or shipped
            x0 = initial_state(system, req.mu, req.forcings, float(t[0]), float(model.dt_),
                               model.n_win, req.seed, model_dir=req.inputs.get("model_path"))
    f_values = np.stack([f(t) for f in req.forcings], axis=-1) if req.forcings else None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        with catalog.model_lock(model):
            pred = model.predict(x0, req.mu, t, f_values, n_samples=n, seed=req.seed,
                                 return_samples=True, quantiles=QUANTILE_LEVELS,
                                 substeps=int(substeps or req.substeps),
                                 decode_stride=int(decode_stride), cancel=cancel)
    seconds = time.perf_counter() - start
    notes = [str(w.message) for w in caught if issubclass(w.category, ExtrapolationWarning)]
    if capped:
        notes.append(f"large field: {n} sample paths instead of {int(n_paths or req.n_paths)}, "
                     "to keep one prediction's memory near 1 GB on this server")
    levels = np.asarray(pred.quantile_levels)
    k = min(int(req.n_keep), pred.n_paths)
    result = ExploreResult(
        t=pred.t, mean=pred.mean[0], std=pred.std[0], levels=levels,
        quantiles=pred.quantile_values[:, 0], samples=pred.samples[0, :k].copy(),
        latent_mean=pred.latent[0].mean(0),
        latent_quantiles=pred.latent_quantiles(levels)[:, 0],
        latent_samples=pred.latent[0, :k].copy(), forcing=pred.f[0], mu=req.mu,
        seconds=seconds, n_paths=n,
        preview=((n_paths is not None and n_paths < req.n_paths) or decode_stride > 1
                 or (substeps is not None and substeps < req.substeps)),
        inputs={**req.inputs, "n_paths": n}, decode_stride=int(decode_stride))
    del pred  # the full sample array can be large; keep only the reduced result
    if req.show_truth and system is not None:
        notes += _add_truth(result, req)
    return result, notes + list(req.notes)


def _predict_preview(req: PredictRequest, settings: dict[str, int],
                     cancel: CancelCheck | None = None) -> tuple[ExploreResult, list[str]]:
    """:func:`predict_request` with :meth:`ExploreState.preview_settings`' ``settings``."""
    return predict_request(req, n_paths=settings["n_paths"],
                           decode_stride=settings["decode_stride"],
                           substeps=settings["substeps"], cancel=cancel)


def _add_truth(result: ExploreResult, req: PredictRequest) -> list[str]:
    """Simulate the truth into ``result``; a cancelled simulation leaves the result without
    it and returns a note saying so."""
    start = time.perf_counter()
    # always on the request's whole time grid, then the result's times taken from it: a
    # preview decodes fewer times, and simulating on those made a second, different cache
    # entry, so the full prediction ran the simulator again (the cylinder: twice ~25 s)
    keep = np.searchsorted(req.t, result.t)
    if keep.size and (keep[-1] >= req.t.size or not np.array_equal(req.t[keep], result.t)):
        raise ValueError("the result's times are not among the request's")
    try:
        with _simulating(req, "truth"):
            truth = simulate_truth(req.system, result.mu, req.forcings, req.t, req.seed)
    except SimulationCancelled as exc:
        run = req.simulation
        where = run.stopped_at if run is not None else None
        at = (f" at {100 * where.fraction:.0f} % {PHASE_TEXT.get(where.phase, 'done')}"
              if where is not None and where.fraction is not None and where.stage == "truth"
              else "")
        return [f"{exc}{at}: the prediction is shown without the simulator's truth"]
    result.truth_seconds = time.perf_counter() - start
    if keep.size != req.t.size:
        truth = truth[keep]
    result.truth = truth
    result.rel_error = scaled_l2(result.mean[None], truth[None])[0]
    lo, hi = (result.quantile(q) for q in COVERAGE_BAND)
    inside = (truth >= lo) & (truth <= hi)
    result.inside_band = inside.reshape(inside.shape[0], -1).mean(axis=1)
    result.coverage = float(inside.mean())
    return []


class ExploreState(param.Parameterized):
    """Inputs and outputs of the Explore view of one session (see the module docstring)."""

    # ---------------------------------------------------------------- inputs
    model_path: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, check_on_set=False,
        doc="Directory of the selected model.")
    mu = param.Dict(default={}, doc="μ by parameter name (physical units).")
    forcing_family: param.Selector[str] = param.Selector(
        default="none", objects=list(FORCING_FAMILIES),
        doc="Forcing family of the first forcing channel.")
    forcing_params = param.Dict(default={}, doc="Parameters of the forcing family.")
    # 48 paths: ~0.1 s per prediction of a Burgers model on one CPU thread (see the report)
    n_paths = param.Integer(default=48, bounds=(2, 2048), doc="Sample paths of the latent SDE.")
    horizon = param.Number(default=1.0, doc="Last output time (model time units).")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of the noise draws.")
    show_truth = param.Boolean(default=False, doc="Run the simulator and compare.")
    case = param.Integer(default=0, bounds=(0, None), doc=(
        "For a model without a simulator: which kept training trajectory gives the initial "
        "state (model.initial_states_)."))
    max_frames = param.Integer(default=101, bounds=(2, 5001),
                               doc="Most output times; longer horizons are sub-stepped.")
    n_keep = param.Integer(default=8, bounds=(0, 64), doc="Sample paths kept for plotting.")

    # --------------------------------------------------------------- outputs
    models = param.List(default=[], doc="Discovered ModelEntry objects.")
    model = param.Parameter(default=None, doc="The loaded StochasticROM (shared, read-only).")
    system = param.Parameter(default=None, doc="The matching simulator, or None.")
    mu_specs = param.List(default=[], doc="MuSpec per parameter of the model.")
    result = param.ClassSelector(class_=ExploreResult, default=None, allow_None=True)
    warning = param.String(default="", doc="Non-fatal problems (extrapolation, ...).")
    error = param.String(default="", doc="The last error; empty when the last update worked.")
    busy = param.Boolean(default=False, doc="A prediction for the newest inputs is pending.")

    # ------------------------------------------------------------ execution
    background = param.Boolean(default=False, doc=(
        "Predict on the state's worker thread (the dashboard); False predicts inside the "
        "change (scripts, tests)."))
    preview_paths = param.Integer(default=12, bounds=(0, None), doc=(
        "In the background, first show a preview with this many paths when n_paths is at "
        "least three times as many (0: never)."))
    preview_above_ms = param.Number(default=60.0, bounds=(0, None), doc=(
        "Make a preview only while the last full prediction took longer than this: on a GPU "
        "the full prediction is as quick as a preview would be (the first prediction of a "
        "model always gets one)."))
    preview_frames = param.Integer(default=51, bounds=(2, None), doc=(
        "Most output times a preview decodes: it keeps every k-th time (and the last), "
        "while its SDE still integrates all of them."))

    _INPUTS = ("mu", "forcing_family", "forcing_params", "n_paths", "horizon", "seed",
               "show_truth", "max_frames", "n_keep", "case")

    def __init__(self, models: Sequence[catalog.ModelEntry] | None = None,
                 dispatch: Callable[[Callable[[], None]], None] | None = None, **params: Any):
        """Args:
            models: the catalog to offer; default: :func:`app.state.catalog.discover_models`.
            dispatch: see :attr:`dispatch`; given here, it already applies the first
                prediction (with ``background=True``, a served session's page then opens
                before a slow model has predicted).
            params: initial values of the inputs (``model_path`` picks the model; default:
                :func:`app.state.catalog.default_model`).
        """
        entries = list(catalog.discover_models() if models is None else models)
        path = params.pop("model_path", None)
        super().__init__(models=entries, **params)
        self.param.model_path.objects = [e.path for e in entries]
        if path is None:
            first = catalog.default_model(entries)
            path = first.path if first else None
        self._loading = False
        #: seconds of the last full prediction of the loaded model (None: none yet)
        self.last_full_seconds: float | None = None
        self._final_generation: int | None = None  # the newest generation whose full result landed
        #: the newest request's simulator work (progress, cancel); None: none yet
        self.simulation: SimulationRun | None = None
        self._simulation_key: tuple | None = None
        #: this session's place on the server's shared prediction threads (app.state.scheduler)
        self.worker = FairWorker()
        self.worker.dispatch = dispatch
        self.param.watch(self._on_inputs, list(self._INPUTS))
        self.param.watch(self._on_model_path, "model_path")
        if path is not None:
            self.model_path = path

    # ------------------------------------------------------------ model
    def _on_model_path(self, event: param.parameterized.Event) -> None:
        self.load(event.new)

    def load(self, path: str | None) -> None:
        """Load the model in ``path`` and reset μ, forcing and horizon to its defaults."""
        if path is None:
            return
        try:
            model = catalog.load_cached(path)
            system = model_system(model)  # the preset saved with the model
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self.worker.cancel()  # a prediction of the previous model must not land now
            self.param.update(error=f"Could not load the model in {path}: {exc}", model=None,
                              system=None, mu_specs=[], result=None)
            return
        specs = mu_specs(model, system)
        families, family, fparams = forcing_defaults(model, system)
        self.param.forcing_family.objects = families
        self.last_full_seconds = None
        mu = {s.name: s.default for s in specs}
        if system is None:  # start from a training case and its μ
            case_mu = data_initial_state(model, 0)[1]
            if case_mu is not None:
                mu = {n: float(v) for n, v in zip(model.param_names_, case_mu)}
        self._loading = True
        try:
            self.param.update(
                model=model, system=system, mu_specs=specs, mu=mu, case=0,
                forcing_family=family, forcing_params=fparams, horizon=float(model.t_range_[1]),
                result=None, error="", warning="", show_truth=False)  # a new model: fresh view
        finally:
            self._loading = False
        self.refresh()

    def trained_forcing_ranges(self, family: str) -> dict:
        """Training ranges of ``family`` for the first channel (empty if not trained on it);
        for a model without a simulator, ranges over the values its forcing took."""
        if self.system is None:
            if self.model is None or not self.model.forcing_names_:
                return {}
            return data_forcing_ranges(self.model, family)
        if not self.system.forcing_specs():
            return {}
        spec = self.system.forcing_specs()[0]
        return dict(spec.ranges) if spec.default_family == family else {}

    # ---------------------------------------------------------- inputs
    def set_mu(self, name: str, value: float) -> None:
        """Set one parameter of μ (triggers a prediction)."""
        self.mu = {**self.mu, name: float(value)}

    def set_case(self, case: int) -> None:
        """Start from kept training trajectory ``case`` (a model without a simulator) and
        take its μ; one prediction."""
        mu = data_initial_state(self.model, int(case))[1]
        update: dict[str, Any] = {"case": int(case)}
        if mu is not None:
            update["mu"] = {n: float(v) for n, v in zip(self.model.param_names_, mu)}
        self.param.update(**update)

    def case_labels(self) -> dict[str, int]:
        """``{label: case}`` of the kept training trajectories (empty with a simulator)."""
        cases = getattr(self.model, "initial_states_", None)
        if self.system is not None or cases is None:
            return {}
        out = {}
        for k in range(cases.n_cases):
            mu = ", ".join(f"{n} = {v:.4g}" for n, v in zip(self.model.param_names_, cases.mu[k]))
            out[f"trajectory {int(cases.index[k])}" + (f" ({mu})" if mu else "")] = k
        return out

    def set_forcing_param(self, name: str, value: Any) -> None:
        """Set one parameter of the forcing (triggers a prediction)."""
        self.forcing_params = {**self.forcing_params, name: value}

    def _on_inputs(self, *events: param.parameterized.Event) -> None:
        if self._loading or self.model is None:
            return
        names = {e.name for e in events}
        if "forcing_family" in names and "forcing_params" not in names:
            fields = forcing_fields(self.forcing_family,
                                    self.trained_forcing_ranges(self.forcing_family))
            self._loading = True
            try:
                self.forcing_params = {f.name: f.default for f in fields}
            finally:
                self._loading = False
        self.refresh()

    def forcing(self) -> tuple[Forcing, ...]:
        """The forcings of every channel: the chosen one first, system defaults after."""
        model = self.model
        if model is None or not model.forcing_names_:
            return ()
        first = make_forcing(self.forcing_family, **self.forcing_params)
        rest = self.system.default_forcing()[1:] if self.system is not None else ()
        if len(rest) != len(model.forcing_names_) - 1:
            rest = tuple(make_forcing("none") for _ in model.forcing_names_[1:])
        return (first, *rest)

    def time_grid(self) -> tuple[np.ndarray, int]:
        """Output times ``(T,)`` from the training start to ``horizon`` (at most
        ``max_frames``) and the integrator substeps per output interval that keep the
        model's integration step (``dt`` over its chosen substeps)."""
        model = self.model
        t0, dt = float(model.t_range_[0]), float(model.dt_)
        if not math.isfinite(self.horizon) or self.horizon <= t0 + dt / 2:
            raise ValueError(f"horizon must be after the start time {t0:g} by at least one "
                             f"step {dt:g}, got {self.horizon:g}")
        span = float(model.t_range_[1]) - t0
        if self.horizon > t0 + MAX_HORIZON_SPANS * span:
            raise ValueError(f"horizon {self.horizon:g} is too far: at most "
                             f"{t0 + MAX_HORIZON_SPANS * span:g} ({MAX_HORIZON_SPANS} times the "
                             f"trained span {span:g})")
        n_steps = max(1, int(round((self.horizon - t0) / dt)))
        stride = max(1, math.ceil(n_steps / (self.max_frames - 1)))
        n_out = n_steps // stride + 1
        _, substeps = model.integration_settings()
        work = (n_out - 1) * stride * substeps * int(self.n_paths)
        if work > MAX_PATH_STEPS:
            raise ValueError(f"horizon {self.horizon:g} with {self.n_paths} paths needs {work:.3g} "
                             f"path steps, over the {MAX_PATH_STEPS:.3g} a dashboard prediction may "
                             "take: lower the horizon or the number of paths")
        return t0 + dt * stride * np.arange(n_out), stride * substeps

    def mu_vector(self) -> np.ndarray:
        """``(P,)`` μ in the model's parameter order."""
        missing = [n for n in self.model.param_names_ if n not in self.mu]
        if missing:
            raise ValueError(f"no value for parameter(s) {missing}")
        return np.array([float(self.mu[n]) for n in self.model.param_names_], dtype=np.float64)

    # --------------------------------------------------------- compute
    def refresh(self) -> None:
        """Predict (and simulate, with ``show_truth``) for the current inputs; never raises.

        In the background only the request is made here: bad inputs become ``error`` at once,
        and the result arrives later through the worker (see the module docstring).
        """
        if self.model is None:
            return
        if not self.background:
            self.busy = True
            try:
                result, notes = self.compute()
            except Exception as exc:  # noqa: BLE001 - the app must survive any engine error
                self.param.update(error=f"{type(exc).__name__}: {exc}", busy=False)
                return
            self.param.update(result=result, warning="\n".join(notes), error="", busy=False)
            return
        try:
            req = self.request()
        except Exception as exc:  # noqa: BLE001
            self.worker.cancel()  # an older prediction still running must not land after this
            self.cancel_simulation("superseded by newer inputs", untick=False)  # nor simulate
            self.param.update(error=f"{type(exc).__name__}: {exc}", busy=False)
            return
        self.busy = True
        self.worker.submit(lambda generation: self._work(req, generation), key=id(req.model))

    def preview_stride(self, n_times: int) -> int:
        """The output-time stride of a preview of ``n_times`` times (at most
        ``preview_frames`` of them are decoded)."""
        return max(1, math.ceil((n_times - 1) / max(1, self.preview_frames - 1)))

    def preview_settings(self, req: PredictRequest) -> dict[str, int] | None:
        """The keyword arguments of :func:`predict_request` for the quick preview of ``req``
        (``n_paths``, ``decode_stride``, ``substeps``), or ``None`` when the request gets no
        preview: too few paths for a preview to be cheaper, or a last full prediction quicker
        than ``preview_above_ms``. A preview integrates with the model's
        :meth:`~engine.StochasticROM.coarse_substeps`: the coarsest step its step check found
        within 10 % of the rollout's error, which a preview of few paths cannot show anyway;
        the full prediction follows with the checked substeps."""
        preview = int(self.preview_paths)
        if not (0 < preview and 3 * preview <= req.n_paths):
            return None
        last = self.last_full_seconds
        if last is not None and 1e3 * last <= self.preview_above_ms:
            return None
        _, per_data_step = req.model.integration_settings()
        coarse = req.model.coarse_substeps()
        return {"n_paths": preview, "decode_stride": self.preview_stride(len(req.t)),
                "substeps": max(1, req.substeps // per_data_step * coarse)}

    def predictions(self, req: PredictRequest) -> Iterator[tuple[ExploreResult, list[str]]]:
        """The predictions of one request, in order: the quick preview when
        :meth:`preview_settings` asks for one, then the full prediction (whose time decides
        whether the next request gets a preview). Each is ``(result, warnings)``."""
        preview = self.preview_settings(req)
        if preview is not None:
            yield _predict_preview(req, preview)
        outcome = predict_request(req)
        self.last_full_seconds = outcome[0].seconds
        yield outcome

    def _work(self, req: PredictRequest, generation: int, refine: bool = False) -> None:
        """The worker's job: the preview when :meth:`preview_settings` asks for one, else
        (or with ``refine``) the full prediction, delivered to the session.

        The preview is a real prediction for the new inputs with fewer paths, decoded at
        fewer output times; its refinement is a second job of the shared scheduler
        (:mod:`app.state.scheduler`) that waits behind every session's first results and starts
        once this session has applied the preview, and never if newer inputs came meanwhile.
        Newer inputs or a closed session (``worker.cancel()``) also stop a running model
        call within a chunk of its work (:mod:`engine.cancellation`); nothing is delivered.
        """
        worker = self.worker
        cancel = worker.superseded(generation)  # newer inputs or a closed session stop it
        try:
            preview = None if refine else self.preview_settings(req)
            if preview is not None:
                outcome = _predict_preview(req, preview, cancel)
                # bound now: the session applies it later
                worker.deliver(generation, functools.partial(self._apply, outcome, final=False,
                                                             generation=generation),
                               then=lambda g: self._work(req, g, refine=True))
                return
            outcome = predict_request(req, cancel=cancel)
            self.last_full_seconds = outcome[0].seconds
            worker.deliver(generation, functools.partial(self._apply, outcome, final=True,
                                                         generation=generation))
        except PredictionCancelled:
            return  # stale: whatever came after it shows its own result or error
        except Exception as exc:  # noqa: BLE001
            message = f"{type(exc).__name__}: {exc}"
            worker.deliver(generation, lambda: self.param.update(error=message, busy=False))

    def _apply(self, outcome: tuple[ExploreResult, list[str]], final: bool,
               generation: int | None = None) -> None:
        if not final and generation is not None and generation == self._final_generation:
            # the refinement landed first: its preview, applied late, must not replace it
            # (seen on a loaded CPU when the preview's hand-off timed out and both were
            # queued on the session's loop before the page connected)
            return
        if final:
            self._final_generation = generation
        result, notes = outcome
        self.param.update(result=result, warning="\n".join(notes), error="", busy=not final)

    @property
    def dispatch(self) -> Callable[[Callable[[], None]], None] | None:
        """Where background results are applied: a function that runs a callable on the
        session's thread (set by the view), or ``None`` to apply them in the worker thread."""
        return self.worker.dispatch

    @dispatch.setter
    def dispatch(self, value: Callable[[Callable[[], None]], None] | None) -> None:
        self.worker.dispatch = value

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the background worker is idle (its results are dispatched by then);
        ``False`` on timeout."""
        return self.worker.wait(timeout)

    def request(self) -> PredictRequest:
        """Capture and check the current inputs.

        Raises:
            ValueError: bad inputs (no model, horizon, μ, forcing, training case).
        """
        model, system = self.model, self.system
        if model is None:
            raise ValueError("no model is loaded")
        t, substeps = self.time_grid()
        notes: list[str] = []
        x0 = None
        if system is None:  # the user's own data: the initial state is a training case's
            x0, _, note = data_initial_state(model, self.case)
            mu = self.mu_vector()
            if not np.all(np.isfinite(mu)):
                raise ValueError(f"μ must be finite numbers, got {mu.tolist()}")
            notes += [note] if note else []
        else:
            mu = system.check_mu(self.mu_vector())[0]
        forcings = self.forcing()
        if t[-1] > model.t_range_[1] + 1e-9:
            lo, hi = model.t_range_
            notes.append(f"horizon t = {t[-1]:.3g} is beyond the trained time range "
                         f"[{lo:.3g}, {hi:.3g}]: extrapolating in time")
        trained_family = forcing_defaults(model, system)[1]
        if system is not None and model.forcing_names_ and self.forcing_family != trained_family:
            notes.append(f"forcing family '{self.forcing_family}' was not seen in training "
                         f"('{trained_family}'): extrapolating")
        inputs = {"model_path": self.model_path, "system": model.system_,
                  "mu": {n: float(v) for n, v in zip(model.param_names_, mu)},
                  "forcing": {n: f.to_dict() for n, f in zip(model.forcing_names_, forcings)},
                  "n_paths": int(self.n_paths), "seed": int(self.seed),
                  "horizon": float(t[-1]), "substeps": int(substeps)}
        if system is None and getattr(model, "initial_states_", None) is not None:
            inputs["initial_state"] = {"training_trajectory": int(
                model.initial_states_.index[self.case])}
        show_truth = bool(self.show_truth) and system is not None
        return PredictRequest(model=model, system=system, t=t, substeps=substeps, mu=mu,
                              forcings=forcings, n_paths=int(self.n_paths), seed=int(self.seed),
                              n_keep=int(self.n_keep), show_truth=show_truth,
                              notes=tuple(notes), inputs=inputs, x0=x0,
                              simulation=self._simulation_for(
                                  (id(model), t.tobytes(), mu.tobytes(), json.dumps(
                                      inputs["forcing"], sort_keys=True, default=str),
                                   int(self.seed), show_truth)) if system is not None else None)

    def _simulation_for(self, key: tuple) -> SimulationRun:
        """The simulator work of a new request: the newest one's while it simulates the same
        thing (a change of the number of paths must not restart a long truth run), else a new
        one, and then the older one is cancelled: a stale request's simulation stops at its
        next progress report instead of holding the worker."""
        old = self.simulation
        if old is not None and old.cancelled is None and key == self._simulation_key:
            return old
        if old is not None:
            old.cancel("superseded by newer inputs")
        self.simulation, self._simulation_key = SimulationRun(), key
        return self.simulation

    def cancel_simulation(self, reason: str = "cancelled by the user",
                          untick: bool = True) -> None:
        """Stop the simulator work of the newest request (it ends at its next progress
        report) and, with ``untick``, turn ``show_truth`` off without a new prediction (the
        running one is then shown without the truth, with a note).

        Args:
            reason: ends the sentence "the simulator run was …" shown to the user.
            untick: also clear "Compare with the simulator" (False at session end).
        """
        if self.simulation is not None:
            self.simulation.cancel(reason)
        if untick and self.show_truth:
            self._loading = True  # no new prediction: the running one goes on without truth
            try:
                self.show_truth = False
            finally:
                self._loading = False

    def compute(self) -> tuple[ExploreResult, list[str]]:
        """The prediction for the current inputs and the warnings it raised (synchronously).

        Raises:
            ValueError (and any engine error): bad inputs or a failed model call.
        """
        return predict_request(self.request())

    # ------------------------------------------------------------ info
    def describe(self) -> str:
        """A one-line summary of the loaded model (for headers and logs)."""
        m = self.model
        if m is None:
            return "no model loaded"
        system = m.system_ or "custom data"
        metrics = getattr(m, "metrics_", {}) or {}
        extra = f", test rel. L2 {metrics['rel_l2_mean']:.3g}" if "rel_l2_mean" in metrics else ""
        return (f"{system}: state {tuple(m.state_shape_)}, latent d = {m.latent_dim_}, "
                f"μ = {m.param_names_}, forcing = {m.forcing_names_}, trained on "
                f"t ∈ [{m.t_range_[0]:g}, {m.t_range_[1]:g}]{extra}")

    def snapshot(self) -> str:
        """The inputs as JSON (for logs, bug reports and later export)."""
        return json.dumps({"model_path": self.model_path, "mu": self.mu,
                           "forcing": {"family": self.forcing_family, **self.forcing_params},
                           "n_paths": self.n_paths, "horizon": self.horizon, "seed": self.seed,
                           "show_truth": self.show_truth}, default=float)
