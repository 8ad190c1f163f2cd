"""The Explore view: pick a model, move μ and the forcing, watch the prediction and its
uncertainty update (quantity of interest, space–time maps, latent paths, truth overlay).

A thin ``pn.viewable.Viewer`` over :class:`app.state.explore.ExploreState`: widgets write the state's
inputs, and a watcher on ``state.result`` pushes the new arrays into the Bokeh figures of
:mod:`app.views.plots` (created once per model) under ``pn.io.hold()``.

The prediction runs off the session's event loop: the view switches the state to background
mode, so a slider release only captures the inputs and the state's worker thread predicts
(only each session's newest request; see :mod:`app.state.scheduler`). Results come back through
:func:`session_dispatcher`, which schedules them on the session's event loop, where the
figures are updated inside one ``pn.io.hold``; a spinner shows while a prediction is pending.
In a notebook (the view shown in a JupyterLab cell) they are scheduled on the kernel's event
loop (:mod:`app.views.polling`). Elsewhere (scripts, tests) results are applied in the worker
thread; ``state.wait()`` waits for them.

On a CPU the worker first sends a quick preview (fewer paths, fewer decoded times) that
refreshes the probe curve only, then the full prediction that refreshes every figure; on a
GPU the full prediction is as quick and comes alone (see ``ExploreState.predictions``).

Rules that keep a slider move near 0.1 s on a 2-core machine (``benchmarks/ui_speed.py``):
nothing on the page may change size on an update (Bokeh then lays out the whole page and
repaints every figure: hence y tick labels of one width, colour bars below the maps, a status
line of fixed height, a busy mark whose text alone changes); send only what changed (the
forcing plot is skipped when f(t) did not move); and send few arrays (sample paths go as one
NaN-broken line).

Downloads of the shown prediction (npz, CSV, PNG) are built by :mod:`app.state.export`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import panel as pn
import param
from bokeh.models import Range1d
from panel.io.state import set_curdoc

from app.state import export
from app.state.catalog import model_key
from app.state.explore import BANDS, ExploreResult, ExploreState, forcing_fields
from app.state.model_summary import picker_label, read_summary
from app.state.safe_text import md
from app.state.scenarios import apply_scenario, scenarios_for
from app.state.url_state import PATHS_RANGE, PATHS_STEP
from app.views.controls import (
    BusyLabel,
    MuControl,
    TextMarkdown,
    forcing_widget,
    label,
    release_js_callbacks,
)
from app.views.explore_tools import CostLine, SnippetCard
from app.views.field_maps import FieldGrid, FieldMaps
from app.views.pinning import PinControls
from app.views.plots import (
    DIVERGING,
    ErrorPlot,
    FieldPlot,
    ForcingPlot,
    LatentPlot,
    PhasePlot,
    QoIPlot,
)
from app.views.polling import loop_dispatcher
from app.views.simulation_progress import SimulationProgress

__all__ = ["ExploreView", "NO_MODEL_HELP", "session_dispatcher"]

NO_MODEL_HELP = """### No trained model found

The dashboard looks for model directories (with a `config.json`) under `pretrained/` in the
repository and under `~/.srom/models` (or the directory in `$SROM_MODELS_DIR`). Train one,
for example the Burgers equation (a few minutes on a CPU, seconds on a GPU):

```bash
srom generate burgers --n 64 --out data/burgers_train.npz
srom generate burgers --n 8 --split test --out data/burgers_test.npz
srom train data/burgers_train.npz --val data/burgers_test.npz --steps 3000 \\
    --out ~/.srom/models/burgers
```

then reload this page.
"""


NO_SIMULATOR_NOTE = ("*No simulator for this model (trained on your own data): there is "
                     "nothing to compare with.*")
#: the status line while a model's first prediction is computed (the page is already shown)
FIRST_STATUS = "Predicting… the plots fill in when the first prediction is ready"
#: the status line while an error is shown (the plots keep the last prediction that worked)
STALE_STATUS = ("⚠ the newest inputs failed (see the error above): the plots show the last "
                "prediction that worked")


def session_dispatcher(doc=None) -> Callable[[Callable[[], None]], None] | None:
    """A thread-safe function that runs a callable on the session's event loop, inside
    ``pn.io.hold`` (one message for all its changes); ``None`` outside a server session.

    Args:
        doc: the session's Bokeh document (default: the current one, so call this on the
            session's thread, e.g. while building the view).
    """
    doc = doc or pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None

    def held(fn: Callable[[], None]) -> None:
        with pn.io.hold(doc):
            fn()

    def dispatch(fn: Callable[[], None]) -> None:
        if doc.session_context is None:
            return  # the session was closed: nobody to show it to
        # add_next_tick_callback is the one thread-safe Document method; pn.state.execute
        # uses it (with Panel's error handling) when the current document is a session's.
        with set_curdoc(doc):
            pn.state.execute(lambda: held(fn), schedule=True)

    return dispatch


def _ordinal(n: int) -> str:
    """``2nd``, ``3rd``, ``11th``, …"""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _field_kind(state: ExploreState) -> str:
    """``vector`` (a few components), ``field1d`` (n points on a line) or ``field2d``."""
    has_grid = state.system is not None and bool(state.system.grid())
    return export.field_kind(state.model.state_shape_, has_grid)


def _model_card(state: ExploreState) -> str:
    """A short Markdown description of the loaded model."""
    m = state.model
    metrics = getattr(m, "metrics_", {}) or {}
    summary = read_summary(state.model_path) if state.model_path else None
    lines = [f"*{md(summary.description)}*"] if summary is not None else []
    if summary is not None and summary.accuracy.weak:
        lines.append(f'<span style="color:#b35900">⚠ <b>weak model</b>: '
                     f"{md(summary.accuracy.reason)}</span>")
    lines += [f"**{md(m.system_) if m.system_ else 'custom data'}** · state {tuple(m.state_shape_)} · "
              f"latent d = {m.latent_dim_}",
             f"trained on t ∈ [{m.t_range_[0]:g}, {m.t_range_[1]:g}], dt = {m.dt_:g}"]
    held_out = _held_out_line(metrics)
    if held_out:
        lines.append(held_out)
    lines.append(_integrator_line(m))
    if state.system is None:
        cases = getattr(m, "initial_states_", None)
        lines.append(f"no simulator: predictions start from {cases.n_cases} states of its "
                     "training data" if cases is not None else
                     "no simulator: predictions start from its training data's mean state")
    return "<br>".join(lines)


def _held_out_line(metrics: dict) -> str:
    """The held-out score that fits the system, with what it means: valid prediction time
    for a chaotic truth, the error against the truth's ensemble mean for a random one, else
    the relative L2 error against the held-out data."""
    ens = metrics.get("ensemble") or {}
    if "valid_lyapunov_times" in ens:
        return (f"valid prediction time {ens['valid_lyapunov_times']:.2f} Lyapunov times "
                f"(chaotic truth: the forecast stays within {ens.get('vpt_threshold', 0.3):g} "
                "normalised RMSE of the true path that long; holding the first snapshot: "
                f"{ens.get('persistence_valid_lyapunov_times', float('nan')):.2f}), "
                f"90 % coverage {100 * ens.get('coverage_90', float('nan')):.0f} %")
    if "rel_l2_vs_ensemble_mean" in ens:
        return (f"held-out relative L2 error {ens['rel_l2_vs_ensemble_mean']:.3g} against the "
                f"mean of {ens.get('n_realisations', '?')} truth realisations (random truth: one "
                "noisy path cannot be predicted, its law can), 90 % coverage of the "
                f"realisations {100 * ens.get('coverage_90', float('nan')):.0f} %")
    coverage = f"90 % coverage {100 * metrics.get('coverage_90', float('nan')):.0f} %"
    if "scaled_l2_mean" in metrics:
        return (f"held-out error {metrics['scaled_l2_mean']:.3g} of the truth's RMS size over "
                f"the horizon, {coverage}")
    if "rel_l2_mean" in metrics and metrics["rel_l2_mean"] < 10:
        return f"held-out relative L2 error {metrics['rel_l2_mean']:.3g}, {coverage}"
    if "rmse" in metrics:  # the relative error is meaningless where the truth passes zero
        return f"held-out RMSE {metrics['rmse']:.3g} (state units), {coverage}"
    return ""


def _integrator_line(model) -> str:
    """How the model's predictions integrate the latent SDE (and whether that was checked)."""
    method, substeps = model.integration_settings()
    line = f"integrator: {method}, {substeps} step{'s' if substeps > 1 else ''} per data step"
    check = getattr(model, "integration_", None) or {}
    if model.substeps is None and check.get("substeps") == substeps:
        line += (" (checked: halving it changes the rollout by "
                 f"{100 * check['change'] / max(check['error'], 1e-300):.2g} % of its error)")
    return line


class ExploreView(pn.viewable.Viewer):
    """Controls (``controls``, for a sidebar) and plots (``main``) of one session."""

    state = param.ClassSelector(class_=ExploreState, doc="The session state it shows.")
    background = param.Boolean(default=True, doc=(
        "Predict on the state's worker thread (False: inside the widget callback)."))

    def __init__(self, **params):
        if "state" not in params:
            params["state"] = ExploreState()
        super().__init__(**params)
        s = self.state
        s.param.update(background=self.background)
        served = session_dispatcher()
        s.dispatch = served or loop_dispatcher()  # in a notebook: the kernel's event loop
        if served is not None:  # served: a closed session's waiting work is dropped
            pn.state.on_session_destroyed(lambda _context: s.worker.cancel())
        self.render_seconds = 0.0
        # the page holds opaque keys, never the server's folders (a select sends its values)
        self._picker_paths: dict[str, str] = {}
        self._model_select = pn.widgets.Select(
            **label("Model"), options=self._picker_options(s.models),
            value=next((model_key(e) for e in s.models if e.path == s.model_path), None),
            sizing_mode="stretch_width")
        self._model_select.param.watch(self._on_model_picked, "value")
        self._model_info = pn.pane.Markdown("", sizing_mode="stretch_width",
                                            styles={"font-size": "12px"})
        self._cost = CostLine(s)  # weights, measured prediction time here, training run
        # a teacher's named settings of μ and the forcing (app.state.scenarios)
        self._scenario = pn.widgets.Select(**label("Scenario"), sizing_mode="stretch_width")
        self._scenario.param.watch(self._on_scenario, "value")
        self._scenario_note = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10),
                                               styles={"font-size": "12px", "color": "#555"})
        self._mu_box = pn.Column(sizing_mode="stretch_width", margin=0)
        self._family = pn.widgets.Select(**label("Forcing family"), sizing_mode="stretch_width")
        self._family.param.watch(self._on_family, "value")
        self._forcing_box = pn.Column(sizing_mode="stretch_width", margin=0)
        # linked both ways to the state's params (a restored URL moves them too); the
        # sliders write on release (``throttled``: ``value_throttled``), one prediction a drag
        self._n_paths = pn.widgets.IntSlider.from_param(
            s.param.n_paths, **label("Sample paths"), start=PATHS_RANGE[0], end=PATHS_RANGE[1],
            step=PATHS_STEP, throttled=True, sizing_mode="stretch_width")
        # the horizon's range is the model's (set in _rebuild; the state checks it)
        self._horizon = pn.widgets.EditableFloatSlider.from_param(
            s.param.horizon, **label("Horizon t_end"), start=0.0, end=1.0, throttled=True,
            sizing_mode="stretch_width")
        self._seed = pn.widgets.IntInput.from_param(s.param.seed, **label("Seed"),
                                                    sizing_mode="stretch_width")
        self._truth = pn.widgets.Checkbox.from_param(s.param.show_truth,
                                                     **label("Compare with the simulator"))
        self._truth_note = pn.pane.Markdown(
            NO_SIMULATOR_NOTE, visible=False, sizing_mode="stretch_width",
            styles={"font-size": "12px", "color": "#555"}, margin=(0, 10))
        # a model of the user's own data starts from one of the training states it kept
        self._case = pn.widgets.Select(**label("Initial state from the training data"),
                                       sizing_mode="stretch_width", visible=False)
        self._case.param.watch(self._on_case, "value")
        self._probe = pn.widgets.IntSlider(**label("Probe"), start=0, end=1, value=0,
                                           sizing_mode="stretch_width")
        self._probe.param.watch(lambda e: self._apply_result(("qoi",)), "value")
        self._phase_i = pn.widgets.Select(**label("Phase x"), width=110)
        self._phase_j = pn.widgets.Select(**label("Phase y"), width=110)
        for w in (self._phase_i, self._phase_j):
            w.param.watch(lambda e: self._apply_result(("latent",)), "value")
        # wide enough for its buttons and loop options in one row (at 320 px they were cut)
        self._frame = pn.widgets.Player(**label("Frame"), start=0, end=1, value=0, interval=200,
                                        loop_policy="loop", width=520, height=110)
        self._frame.param.watch(lambda e: self._apply_result(("maps",)), "value")
        self._warning = pn.pane.Alert("", alert_type="warning", visible=False,
                                      sizing_mode="stretch_width")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False,
                                    sizing_mode="stretch_width")
        # A fixed height (two lines, the longest status): a status line that wraps to one
        # more or one less line resizes the tab, and Bokeh then lays the whole page out
        # again and repaints every figure (~60-120 ms per message on 2 cores, measured with
        # benchmarks/ui_speed.py).
        self._status = TextMarkdown("", sizing_mode="stretch_width", height=40,
                                    styles={"font-size": "12px", "color": "#555",
                                            "line-height": "16px", "overflow-y": "auto"},
                                    stylesheets=[":host p { margin: 2px 0; }"])
        self._spinner = BusyLabel(s.busy)
        s.param.watch(self._on_busy, "busy")
        tips = {"npz": "The prediction's arrays (mean, quantiles, kept sample paths, latent, "
                       "μ, forcing) and a JSON description",
                "csv": "The probe's value over time, as plotted: t, mean, std, quantiles",
                "png": "A picture of the probe's bands and the mean and std maps"}
        self._downloads = {
            kind: pn.widgets.FileDownload(
                callback=getattr(self, f"_{kind}_bytes"), **label(f".{kind}"),
                filename=f"srom-prediction.{kind}", description=tip, width=64, height=32,
                sizing_mode="fixed", margin=(4, 2))
            for kind, tip in tips.items()}
        self._plot_box = pn.Column(sizing_mode="stretch_width")
        # an engineer's tools: a pinned reference in the probe plot; the CLI / Python code
        self._pinning = PinControls(s, self.probe_index)
        self._pinning.on_change = self._on_pin_changed
        self._snippets = SnippetCard(s)
        # a long simulator run (the cylinder's truth): its progress and a Cancel button; a
        # closed session's simulation is cancelled too
        self._simulation = SimulationProgress(s, on_cancel=lambda: setattr(self._truth, "value",
                                                                           False))
        self._mu_controls: dict[str, MuControl] = {}
        self._plots: dict = {}
        self._t_range = Range1d(0, 1)

        self.controls = pn.Column(
            self._model_select, self._model_info, self._cost.pane, self._scenario,
            self._scenario_note, "### Parameters μ", self._mu_box,
            "### Forcing", self._family, self._forcing_box, "### Sampling", self._case,
            self._n_paths, self._horizon, self._seed, self._truth, self._truth_note,
            sizing_mode="stretch_width")
        download = pn.pane.Markdown("Download", sizing_mode="fixed", width=64, height=24,
                                    margin=(4, 0, 0, 8), styles={"font-size": "12px"})
        self.main = pn.Column(self._error, self._warning,
                              pn.Row(self._status, self._spinner.pane, download,
                                     *self._downloads.values(), sizing_mode="stretch_width"),
                              self._simulation.panel, self._pinning.panel, self._plot_box, self._snippets.panel,
                              sizing_mode="stretch_width")
        self._applying_scenario = False
        self._scenarios: dict = {}
        self._presenting = False
        self._base_heights: dict[str, int] = {}
        s.param.watch(self._scenario_left, ["mu", "forcing_family", "forcing_params"])
        s.param.watch(lambda e: self._rebuild(), "model")
        s.param.watch(lambda e: self._apply_result(), "result")
        s.param.watch(lambda *events: self._sync_downloads(), ["result", "model"])
        s.param.watch(self._show_messages, ["warning", "error"])
        self._rebuild()
        self._show_messages()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(pn.Column(self.controls, width=330), self.main, sizing_mode="stretch_width")

    # ----------------------------------------------------------- models
    def _picker_options(self, entries) -> dict[str, str]:
        """``{text: key}`` of the model picker: each model's label with its held-out
        accuracy and a warning sign on a weak one (:mod:`app.state.model_summary`); plain text, as
        a select's options are never read as markup. The key
        (:func:`app.state.catalog.model_key`, e.g. ``pretrained/burgers``) stands for the model's
        folder, which stays on the server."""
        self._picker_paths.update({model_key(e): e.path for e in entries})
        return {picker_label(e.label, read_summary(e.path)): model_key(e) for e in entries}

    def _on_model_picked(self, event) -> None:
        path = self._picker_paths.get(event.new) if event.new else None
        if path is not None:
            self.state.model_path = path

    def offer_models(self, entries) -> None:
        """Offer ``entries`` (``app.state.catalog.ModelEntry``) in the model picker (session
        thread; e.g. after the Train tab saved a model)."""
        self._model_select.options = self._picker_options(entries)

    # ---------------------------------------------------------- scenarios
    def _offer_scenarios(self) -> None:
        """The loaded model's scenarios in the scenario list (hidden when there are none)."""
        found = scenarios_for(self.state)
        self._scenarios = {sc.name: sc for sc in found}
        self._applying_scenario = True
        try:
            self._scenario.param.update(options={"(your own settings)": "",
                                                 **{name: name for name in self._scenarios}},
                                        value="", visible=bool(found))
        finally:
            self._applying_scenario = False
        self._scenario_note.param.update(object="", visible=bool(found))

    def _on_scenario(self, event: param.parameterized.Event) -> None:
        scenario = self._scenarios.get(event.new) if event.new else None
        if self._applying_scenario or scenario is None:
            return
        s = self.state
        self._applying_scenario = True
        try:
            with pn.io.hold():
                apply_scenario(s, scenario)  # one update of the state: one prediction
                for name, control in self._mu_controls.items():
                    control.set(s.mu[name])  # the sliders show it, without reporting
                self._family.value = s.forcing_family
                self._build_forcing_widgets()
                self._scenario_note.object = md(scenario.description)
        except ValueError as exc:  # resolved when offered; the model may have changed since
            s.error = f"Scenario {scenario.name!r} does not fit this model: {exc}"
        finally:
            self._applying_scenario = False

    def _scenario_left(self, *events) -> None:
        """A slider moved after a scenario was picked: the inputs are the user's again."""
        if not self._applying_scenario and self._scenario.value:
            self._applying_scenario = True
            try:
                self._scenario.value = ""
                self._scenario_note.object = ""
            finally:
                self._applying_scenario = False

    # ---------------------------------------------------------- presenting
    #: how much taller the figures are in presentation mode
    PRESENT_SCALE = 1.6

    def present(self, on: bool) -> None:
        """Presentation mode: taller figures (the page hides the sidebar itself, see
        ``app.main``). 2-D maps keep their size: their height follows the field's aspect."""
        self._presenting = bool(on)
        self._scale_figures()

    def _scale_figures(self) -> None:
        """Set every figure but the 2-D maps to its built height, times ``PRESENT_SCALE``
        while presenting (on a toggle or a model switch only)."""
        with pn.io.hold():
            for key, plot in self._plots.items():
                if key.endswith("_map") and getattr(self, "_kind", "") == "field2d":
                    continue
                base = self._base_heights.setdefault(key, int(plot.figure.height))
                height = int(base * self.PRESENT_SCALE) if self._presenting else base
                if plot.figure.height != height:
                    plot.figure.height = height

    # ----------------------------------------------------------- building
    def _rebuild(self) -> None:
        """Rebuild the model-specific widgets and figures (on a model switch only)."""
        s = self.state
        with pn.io.hold():
            release_js_callbacks(self._mu_box)  # the old model's sliders are dropped
            # the previous model's timing line is not this one's
            self._status.object = FIRST_STATUS if s.busy and s.result is None else ""
            if s.model is None:
                self._mu_box[:] = []
                self._plot_box[:] = [pn.pane.Markdown(NO_MODEL_HELP, sizing_mode="stretch_width")
                                     if not s.models else pn.pane.Markdown("")]
                self._model_info.object = ""
                for w in (self._family, self._n_paths, self._horizon, self._seed, self._truth,
                          *self._downloads.values()):
                    w.disabled = True
                self._case.visible = self._truth_note.visible = False
                self._offer_scenarios()
                return
            for w in (self._family, self._n_paths, self._horizon, self._seed, self._truth):
                w.disabled = False
            # no simulator (the user's own data): nothing to compare with, and the initial
            # state is one of the training states the model kept
            self._truth.disabled = self._truth_note.visible = s.system is None
            cases = s.case_labels()
            self._case.param.update(options=cases, value=s.case if cases else None,
                                    visible=bool(cases))
            self._sync_downloads()
            m = s.model
            stem = f"srom-{m.system_ or 'model'}-prediction"
            for kind, button in self._downloads.items():
                button.filename = f"{stem}.{kind}"
            self._model_info.object = _model_card(s)
            self._mu_controls = {sp.name: MuControl(sp, s.mu.get(sp.name, sp.default),
                                                    lambda v, n=sp.name: s.set_mu(n, v))
                                 for sp in s.mu_specs}
            self._mu_box[:] = [c.panel for c in self._mu_controls.values()] or \
                [pn.pane.Markdown("*This model has no parameters.*")]
            self._family.options = list(s.param.forcing_family.objects)
            self._family.value = s.forcing_family
            self._family.disabled = not m.forcing_names_
            self._build_forcing_widgets()
            self._offer_scenarios()
            t0, t1 = float(m.t_range_[0]), float(m.t_range_[1])
            span = t1 - t0
            self._horizon.param.update(start=t0 + span / 10, end=t0 + 3 * span, value=s.horizon,
                                       step=float(m.dt_))
            self._build_plots()
        self._apply_result()

    def _build_forcing_widgets(self) -> None:
        s = self.state
        release_js_callbacks(self._forcing_box)  # the old widgets are dropped
        if s.model is None or not s.model.forcing_names_:
            self._forcing_box[:] = [pn.pane.Markdown("*This model has no forcing.*")]
            return
        fields = forcing_fields(s.forcing_family, s.trained_forcing_ranges(s.forcing_family))
        self._forcing_box[:] = [
            forcing_widget(f, s.forcing_params.get(f.name, f.default),
                           lambda v, n=f.name: s.set_forcing_param(n, v)) for f in fields]

    def _on_case(self, event: param.parameterized.Event) -> None:
        s = self.state
        if event.new is None or s.model is None or int(event.new) == s.case:
            return
        s.set_case(int(event.new))  # the case's μ too: one prediction
        for name, control in self._mu_controls.items():
            control.set(s.mu[name])

    def _on_family(self, event: param.parameterized.Event) -> None:
        s = self.state
        if event.new is None or event.new == s.forcing_family:
            return
        s.forcing_family = event.new  # resets forcing_params and predicts
        self._build_forcing_widgets()

    def _build_plots(self) -> None:
        s, m = self.state, self.state.model
        kind = _field_kind(s)
        self._kind = kind
        x = self._t_range
        p: dict = {"qoi": QoIPlot(x_range=x)}
        self._pinning.attach(p["qoi"].figure)
        if m.forcing_names_:
            unit = ""
            if s.system is not None and s.system.forcing_specs():
                unit = s.system.forcing_specs()[0].unit
            p["forcing"] = ForcingPlot(trained=tuple(m.t_range_), x_range=x, unit=unit)
        n_state = int(np.prod(m.state_shape_))
        if kind == "vector":
            self._probe.param.update(**label("Component"), start=0, end=max(n_state - 1, 1),
                                     value=0, disabled=n_state == 1)
        elif kind == "field1d":
            self._probe.param.update(**label("Probe point (index along x)"), start=0,
                                     end=n_state - 1, value=n_state // 4, disabled=False)
            p["mean_map"] = FieldPlot("Mean u(x, t)", x_range=x, name="mean")
            p["std_map"] = FieldPlot("Std u(x, t)", x_range=x, name="std")
            # shown while a pin fits the current output times (_update_pin_map)
            p["pin_map"] = FieldPlot("Mean − pinned mean", x_range=x, name="pindiff",
                                     palette=DIVERGING, symmetric=True)
        else:  # the probe is a pixel clicked on a map (its flat index stays in _probe)
            self._probe.param.update(**label("Probe pixel (flat index)"))
            self._field_maps = FieldMaps(FieldGrid.of(m.state_shape_, s.system), self._probe,
                                         self._frame, refresh=lambda: self._apply_result(("maps",)))
            p.update({f"{k}_map": plot for k, plot in self._field_maps.plots.items()})
        self._probe.visible = kind != "field2d"
        p["latent"] = LatentPlot(m.latent_dim_, x_range=x)
        coords = {f"z{k + 1}": k for k in range(m.latent_dim_)}
        self._phase_i.options, self._phase_j.options = coords, coords
        self._phase_i.value, self._phase_j.value = 0, min(1, m.latent_dim_ - 1)
        p["phase"] = PhasePlot()
        self._pinning.attach_latent(p["latent"].figure, p["phase"].figure, self._phase_axes)
        p["error"] = ErrorPlot(x_range=x)
        self._plots = p
        self._base_heights = {}
        if self._presenting:
            self._scale_figures()
        pane = lambda plot: pn.pane.Bokeh(plot.figure, sizing_mode="stretch_width")  # noqa: E731
        rows = [self._probe, pane(p["qoi"])]
        if "forcing" in p:
            rows.append(pane(p["forcing"]))
        # toggle a wrapping Column: a Bokeh pane's own `visible` is synced back from its figure;
        # the error and pinned-difference figures join their Column when first shown
        # (_show_lazy): a hidden figure's ~40 models would be built and sent with every page
        self._lazy_panes = {"error": pane(p["error"])}
        self._error_pane = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        rows.append(self._error_pane)
        if kind == "field2d":
            rows.append(self._field_maps.panel)
        elif "mean_map" in p:
            rows.append(pn.Row(pane(p["mean_map"]), pane(p["std_map"]),
                               sizing_mode="stretch_width"))
        if "pin_map" in p:
            self._lazy_panes["pin_map"] = pane(p["pin_map"])
        self._pin_map_pane = pn.Column(visible=False, sizing_mode="stretch_width", margin=0)
        rows.append(self._pin_map_pane)
        rows.append(pn.Row(pane(p["latent"]),
                           pn.Column(pn.Row(self._phase_i, self._phase_j), pane(p["phase"]),
                                     sizing_mode="stretch_width"),
                           sizing_mode="stretch_width"))
        self._plot_box[:] = rows

    # ----------------------------------------------------------- updating
    def _show_messages(self, *events) -> None:
        s = self.state
        with pn.io.hold():
            self._warning.param.update(object=md(s.warning).replace("\n", "<br>"),
                                       visible=bool(s.warning))
            self._error.param.update(object=f"**Error:** {md(s.error)}", visible=bool(s.error))
            if s.error:  # the plots keep the last prediction that worked: say so
                self._status.object = STALE_STATUS if s.result is not None else ""

    def _on_busy(self, event: param.parameterized.Event) -> None:
        self._spinner.value = bool(event.new)
        if event.new and self.state.result is None and not self.state.error:
            self._status.object = FIRST_STATUS  # a new model: nothing drawn yet

    def _apply_result(self, parts: tuple[str, ...] | None = None) -> None:
        """Push the state's result into the existing figures (no figure is re-created).

        Args:
            parts: what to refresh: ``qoi`` (probe curve, forcing, error), ``maps`` (fields)
                and ``latent`` (trajectories and phase portrait); a probe, frame or
                phase-axis change refreshes only its own part. ``None`` (a new result)
                refreshes all of them, but a preview only the probe curve: the quick first
                update is the quantity of interest with its bands, and the full prediction
                follows with the fields and the latent plots (each figure refreshed costs
                its data in the message and a repaint in the browser, 5-15 ms each on 2
                cores, measured with ``benchmarks/ui_speed.py``).
        """
        r: ExploreResult | None = self.state.result
        if r is None or not self._plots or self.state.model is None:
            return
        new_result = parts is None
        if parts is None:
            parts = ("qoi",) if r.preview else ("qoi", "maps", "latent")
        start = time.perf_counter()
        with pn.io.hold():
            if "qoi" in parts:
                self._update_qoi(r)
            if "maps" in parts:
                self._update_maps(r)
            if "latent" in parts:
                self._update_latent(r)
            if new_result:
                self._t_range.update(start=float(r.t[0]), end=float(r.t[-1]))
                self._status.object = self._status_text(r)
        self.render_seconds = time.perf_counter() - start

    def _update_qoi(self, r: ExploreResult) -> None:
        p, n_lead = self._plots, r.mean.ndim - 1

        def flat(a: np.ndarray) -> np.ndarray:  # (..., T, *S) -> (..., T, |S|)
            return a.reshape(*a.shape[: a.ndim - n_lead], -1)

        k = int(min(self._probe.value, flat(r.mean).shape[-1] - 1))
        bands = [(flat(r.quantile(lo))[:, k], flat(r.quantile(hi))[:, k]) for lo, hi in BANDS]
        truth = flat(r.truth)[:, k] if r.truth is not None else None
        p["qoi"].update(r.t, bands, flat(r.mean)[:, k], flat(r.samples)[:, :, k], truth,
                        title=self._qoi_title(k))
        self._pinning.refresh(k)  # sends nothing unless the pin or the probe changed
        if "forcing" in p and not p["forcing"].shows(r.t, r.forcing[:, 0]):  # μ moves: same f
            p["forcing"].update(r.t, r.forcing[:, 0])
        if r.truth is not None or self._error_pane.visible:  # nothing to send while hidden
            p["error"].update(r.t, r.rel_error, r.inside_band)
            self._show_lazy("error", self._error_pane, r.truth is not None)

    def _update_maps(self, r: ExploreResult) -> None:
        p = self._plots
        if self._kind == "field1d":
            xs = self._space_coords(r.mean.shape[-1])
            p["mean_map"].update(r.mean.T, (r.t[0], r.t[-1]), (xs[0], xs[-1]))
            p["std_map"].update(r.std.T, (r.t[0], r.t[-1]), (xs[0], xs[-1]))
            if self._pinning.pin is not None or self._pin_map_pane.visible:  # else: no work
                self._update_pin_map(r)
        elif self._kind == "field2d":
            # the chosen channel, colours fixed over the horizon; the pinned difference too
            self._field_maps.show(r, self._pinning.pin)

    def _update_latent(self, r: ExploreResult) -> None:
        lo, hi = r.latent_quantile(0.05), r.latent_quantile(0.95)
        self._plots["latent"].update(r.t, lo, hi, r.latent_mean)
        self._plots["phase"].update(r.latent_samples, r.latent_mean, *self._phase_axes())
        self._pinning.refresh_latent()  # sends nothing unless the pin or the axes changed

    def _phase_axes(self) -> tuple[int, int]:
        return int(self._phase_i.value or 0), int(self._phase_j.value or 0)

    def _update_pin_map(self, r: ExploreResult) -> None:
        """The current mean minus the pinned one (a 1-D field), or hide the map when nothing
        is pinned or the pin has other output times or only a probe."""
        plot, pin = self._plots.get("pin_map"), self._pinning.pin
        diff = pin.difference(r) if plot is not None and pin is not None else None
        if diff is None or plot is None or pin is None:
            self._show_lazy("pin_map", self._pin_map_pane, False)
            return
        xs = self._space_coords(diff.shape[1])
        label = pin.label if len(pin.label) <= 60 else pin.label[:59] + "…"
        plot.update(diff.T, (r.t[0], r.t[-1]), (xs[0], xs[-1]),
                    title=f"Mean − pinned mean (pinned: {label})")
        self._show_lazy("pin_map", self._pin_map_pane, True)

    def _show_lazy(self, key: str, holder: pn.Column, show: bool) -> None:
        """Show or hide ``holder``; the first time it is shown, its figure's pane (built
        in :meth:`_build_plots`, kept in ``_lazy_panes``) joins it (a change only when
        needed: each sends a message)."""
        if show and key in self._lazy_panes:
            holder[:] = [self._lazy_panes.pop(key)]
        if holder.visible != show:
            holder.visible = show

    def _on_pin_changed(self) -> None:
        """A pin was set or cleared: its difference map follows (the overlays already did)."""
        r = self.state.result
        if r is None or not self._plots or self.state.model is None or r.preview:
            return
        with pn.io.hold():
            if self._kind == "field2d":
                self._field_maps.show(r, self._pinning.pin)
            else:
                self._update_pin_map(r)

    def _space_coords(self, n: int) -> np.ndarray:
        s = self.state
        if s.system is not None:
            grid = s.system.grid()
            if len(grid) == 1:
                values = np.asarray(next(iter(grid.values())), dtype=np.float64)
                if values.size == n:
                    return values
        return np.arange(n, dtype=np.float64)

    def _qoi_title(self, k: int) -> str:
        if self._kind == "field1d":
            x = self._space_coords(int(np.prod(self.state.model.state_shape_)))[k]
            return f"u at probe x = {x:.3g}: mean, 95/90/50 % bands, sample paths"
        if self._kind == "vector":
            return f"State component {k + 1}: mean, 95/90/50 % bands, sample paths"
        return f"{self._field_maps.probe_label(k)}: mean, 95/90/50 % bands, sample paths"

    def _status_text(self, r: ExploreResult) -> str:
        n = r.n_paths or self.state.n_paths
        every = f" (every {_ordinal(r.decode_stride)})" if r.decode_stride > 1 else ""
        text = (f"{n} paths × {len(r.t)} output times{every} predicted in "
                f"{1e3 * r.seconds:.0f} ms")
        if r.preview:
            text = (f"preview: {text}; refining with {self.state.n_paths} paths at every "
                    "output time …")
        if r.truth is not None and r.rel_error is not None and r.coverage is not None:
            text += (f" · simulator {1e3 * r.truth_seconds:.0f} ms · median error "
                     "(÷ the truth's RMS size) "
                     f"{float(np.median(r.rel_error)):.3g} · truth inside the 90 % band: "
                     f"{100 * r.coverage:.0f} %")
        return text

    # ---------------------------------------------------------- probe
    @property
    def probe_widget(self) -> pn.widgets.IntSlider:
        """The probe control; its ``value`` is the flat state index the probe plot shows (a
        shared URL keeps it, :func:`app.state.url_state.bind`)."""
        return self._probe

    def set_probe(self, k: int) -> int:
        """Show flat state index ``k`` in the probe plot (bounded to the model's state);
        returns the index set."""
        n = int(np.prod(self.state.model.state_shape_)) if self.state.model is not None else 1
        k = min(max(int(k), 0), n - 1)
        self._probe.value = k
        return k

    # ---------------------------------------------------------- downloads
    def probe_index(self) -> int:
        """The flat state index the probe plot shows."""
        r = self.state.result
        size = int(np.prod(r.mean.shape[1:])) if r is not None else 1
        return int(min(self._probe.value or 0, size - 1))

    def _probe_label(self, k: int) -> str:
        return self._qoi_title(k).split(":")[0]

    def _export_extra(self) -> dict:
        k = self.probe_index()
        return {"probe": k, "probe_label": self._probe_label(k)}

    def _sync_downloads(self) -> None:
        """The download buttons work only when there is a prediction to download (a click
        without one used to log a server traceback)."""
        ready = self.state.model is not None and self.state.result is not None
        for button in self._downloads.values():
            button.disabled = not ready

    def _result_or_raise(self) -> ExploreResult:
        if self.state.result is None:
            raise ValueError("there is no prediction to download yet")
        return self.state.result

    def _npz_bytes(self):
        return io.BytesIO(export.prediction_npz(self._result_or_raise(), self._export_extra()))

    def _csv_bytes(self):
        k = self.probe_index()
        return io.BytesIO(export.qoi_csv(self._result_or_raise(), k))

    def _png_bytes(self):
        r, k = self._result_or_raise(), self.probe_index()
        space = self._space_coords(r.mean.shape[-1]) if self._kind == "field1d" else None
        return io.BytesIO(export.prediction_png(
            r, k, kind=self._kind, frame=self._frame.value, space=space,
            title=export.title(r), probe_label=self._probe_label(k)))
