"""The Sensitivity tab: sweep one input (or a grid of two) and rank the inputs by effect.

A thin ``pn.viewable.Viewer`` over :class:`app.state.sensitivity.SensitivityState`: widgets write its
inputs; "Run sweep" and "Rank inputs" start a run on the state's worker thread (a spinner and a
progress bar show while it runs) and the results are drawn on the session's thread, through
:func:`app.views.explore.session_dispatcher`, as the HoloViews elements of
:mod:`engine.plotting` (``sweep``, ``grid``, ``tornado_ends``: the same pictures a notebook
gets) in ``pn.pane.HoloViews`` panes. A result arrives once per run, so a new element per
result costs little (``benchmarks/ui_plot_updates.py``); the Explore tab's slider path keeps
its Bokeh sources. The nominal inputs are the Explore tab's current μ, forcing, horizon and
seed at the time of the run.
"""

from __future__ import annotations

import io

import numpy as np
import panel as pn
import param

from app.state.explore import ExploreState
from app.state.export import field_kind
from app.state.safe_text import md
from app.state.sensitivity import STATISTICS, SensitivityState, SweepInput
from app.views.controls import BusyLabel, TextMarkdown, label
from app.views.explore import session_dispatcher
from app.views.polling import loop_dispatcher
from app.views.result_plot import ResultPlot, named_figure, named_source
from engine import plotting

__all__ = ["SensitivityView"]

HELP = """Sweep an input across its **trained range**, the others held at the Explore tab's
current values (μ, forcing, horizon, seed). The statistic is computed for every sample path;
the plot shows its mean and its 50 % and 90 % bands over the paths. A second input makes a
grid (maps of the statistic's mean and std). **Rank inputs** sets each input to the two ends
of its range and sorts them by the swing of the statistic."""


class SensitivityView(pn.viewable.Viewer):
    """Controls and plots of the Sensitivity tab of one session."""

    state = param.ClassSelector(class_=SensitivityState, doc="The tab's state.")

    def __init__(self, explore: ExploreState | None = None, **params):
        if "state" not in params:
            params["state"] = SensitivityState(explore or ExploreState())
        super().__init__(**params)
        s = self.state
        s.param.update(background=True)
        served = session_dispatcher()
        s.dispatch = served or loop_dispatcher()  # in a notebook: the kernel's event loop
        if served is not None:  # served: a closed session's sweep stops between points
            pn.state.on_session_destroyed(lambda _context: s.worker.cancel())
        self._kind = "vector"
        w = {"sizing_mode": "stretch_width"}
        self._input = pn.widgets.Select(**label("Input"), **w)
        self._input.param.watch(lambda e: setattr(s, "parameter", e.new), "value")
        self._input2 = pn.widgets.Select(**label("Second input (a grid)"), **w)
        self._input2.param.watch(lambda e: self._on_input2(e.new), "value")
        # linked both ways to the state's params; the probe and the time write on release
        self._statistic = pn.widgets.Select.from_param(
            s.param.statistic, **label("Statistic"),
            options={v: k for k, v in STATISTICS.items()}, **w)
        self._probe = pn.widgets.IntSlider.from_param(
            s.param.probe, **label("Probe"), start=0, end=1, throttled=True, **w)
        # not from_param: the state's None ("the last output time") is no slider position
        self._time = pn.widgets.FloatSlider(**label("Time of the statistic"), start=0.0,
                                            end=1.0, value=1.0, **w)
        self._time.param.watch(lambda e: setattr(s, "stat_time", float(e.new)),
                               "value_throttled")
        # the widgets offer narrower ranges than the state accepts (a run's cost)
        self._points = pn.widgets.IntSlider.from_param(
            s.param.n_points, **label("Points of the sweep"), start=3, end=25, **w)
        self._grid_points = pn.widgets.IntSlider.from_param(
            s.param.n_grid, **label("Points per grid axis"), start=3, end=15, visible=False, **w)
        self._paths = pn.widgets.IntSlider.from_param(
            s.param.n_paths, **label("Sample paths per point"), start=8, end=256, step=8, **w)
        primary = ({"color": "primary"} if "color" in pn.widgets.Button.param
                   else {"button_type": "primary"})  # `button_type` is deprecated in Panel 1.9
        self._run = pn.widgets.Button(**label("Run sweep"), **primary, **w)
        self._run.on_click(lambda e: s.run("sweep"))
        self._rank = pn.widgets.Button(**label("Rank inputs"), **w)
        self._rank.on_click(lambda e: s.run("tornado"))
        # CSV of the shown results (engine.sensitivity's rows; off until there is one)
        self._sweep_csv = pn.widgets.FileDownload(
            callback=self._sweep_csv_bytes, **label("Sweep .csv"), filename="srom-sweep.csv",
            description="The sweep as plotted: each value of the input (a grid: each pair), "
                        "the statistic's mean, standard error, std and quantiles",
            disabled=True, **w)
        self._tornado_csv = pn.widgets.FileDownload(
            callback=self._tornado_csv_bytes, **label("Ranking .csv"),
            filename="srom-ranking.csv",
            description="The ranking, largest swing first: each input's low and high values, "
                        "the statistic's mean there, the swing and its standard error",
            disabled=True, **w)
        self._spinner = BusyLabel(False)
        self._progress = pn.indicators.Progress(value=0, max=100, width=200, margin=(12, 8),
                                                visible=False)
        self._nominal = TextMarkdown("", styles={"font-size": "12px", "color": "#555"}, **w)
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, **w)
        self._status = pn.pane.Markdown("", styles={"font-size": "12px", "color": "#555"}, **w)

        # a result's plots: engine.plotting's elements, updated in place after the first
        self.sweep_plot = ResultPlot(plotting.sweep, {
            "Overlay": {"height": 320, "responsive": True, "legend_position": "top_left",
                        "hooks": [named_figure("sweep-figure")]},
            "Curve": {"tools": ["hover"], "color": "#0b3d91", "line_width": 2.5},
            "Scatter": {"tools": ["hover"], "color": "#0b3d91",
                        "hooks": [named_source("sweep-mean")]},
            "Area": {"color": "#1f77b4"}}, **w)
        self.mean_map, self.std_map = (
            ResultPlot(lambda g, k=k: plotting.grid(g, k), {"QuadMesh": {
                "height": 300, "responsive": True, "cmap": "viridis", "tools": ["hover"],
                "hooks": [named_figure(f"sens-{k}-figure")]}}, **w) for k in ("mean", "std"))
        self.tornado_plot = ResultPlot(plotting.tornado_ends, {
            "Overlay": {"height": 300, "responsive": True, "legend_position": "top",
                        "hooks": [named_figure("tornado-figure")]},
            "Rectangles": {"hooks": [named_source("tornado-bars", "input at the low end")]}},
            **w)
        self._sweep_box = pn.Column(self.sweep_plot.pane, margin=0, visible=False, **w)
        self._grid_box = pn.Column(pn.Row(self.mean_map.pane, self.std_map.pane, **w),
                                   margin=0, visible=False, **w)
        self._tornado_box = pn.Column(self.tornado_plot.pane, margin=0, **w)

        self.controls = pn.Column(
            pn.pane.Markdown(HELP, styles={"font-size": "13px"}, **w), self._input, self._input2,
            self._statistic, self._probe, self._time, self._points, self._grid_points,
            self._paths, pn.Row(self._run, self._rank, **w),
            pn.Row(self._sweep_csv, self._tornado_csv, **w),
            pn.Row(self._spinner.pane, self._progress, **w), self._nominal, width=340)
        self.main = pn.Column(self._error, self._status, self._sweep_box, self._grid_box,
                              self._tornado_box, **w)

        s.param.watch(lambda e: self._rebuild(), "reset_event")  # a model or family switch
        s.param.watch(lambda e: self._show_sweep(), "sweep")
        s.param.watch(lambda e: self._show_grid(), "grid")
        s.param.watch(lambda e: self._show_tornado(), "tornado")
        s.param.watch(self._show_progress, ["busy", "progress", "error"])
        s.param.watch(lambda e: self._on_statistic(e.new), "statistic")
        s.param.watch(lambda e: setattr(s, "probe_label", self._probe_label(int(e.new))),
                      "probe")
        s.explore.param.watch(lambda *e: self._show_nominal(),
                              ["mu", "forcing_params", "forcing_family", "horizon", "seed"])
        s.explore.param.watch(lambda *e: self._update_time_slider(), ["horizon", "max_frames"])
        self._rebuild()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(self.controls, self.main, sizing_mode="stretch_width")

    # ----------------------------------------------------------- building
    def _inputs(self) -> dict[str, SweepInput]:
        return {i.key: i for i in self.state.inputs()}

    def _rebuild(self) -> None:
        """Offer the current model's inputs, probe and times (after a model switch)."""
        s, ex = self.state, self.state.explore
        inputs = self._inputs()
        with pn.io.hold():
            has_inputs = bool(inputs) and ex.model is not None
            for widget in (self._input, self._input2, self._run, self._rank, self._probe,
                           self._time):
                widget.disabled = not has_inputs
            options = {i.label: k for k, i in inputs.items()}
            self._input.param.update(options=options, value=s.parameter)
            # "" stands for None: a Select shows a None value as an empty box
            self._input2.param.update(options={"— none (a 1-D sweep)": "", **options},
                                      value=s.parameter2 or "")
            self._grid_points.visible = s.parameter2 is not None
            if ex.model is not None:
                size = int(np.prod(ex.model.state_shape_))
                has_grid = ex.system is not None and bool(ex.system.grid())
                self._kind = field_kind(ex.model.state_shape_, has_grid)
                name = {"vector": "Component", "field1d": "Probe point (index along x)",
                        "field2d": "Probe pixel (flat index)"}[self._kind]
                self._probe.param.update(**label(name), start=0, end=max(size - 1, 1),
                                         value=s.probe)
                s.probe_label = self._probe_label(s.probe)
                self._update_time_slider()
            self._show_nominal()
            self._show_sweep()
            self._show_grid()
            self._show_tornado()
            self._status.object = ("" if has_inputs else
                                   "*This model has no input with a trained range to sweep.*")

    def _update_time_slider(self) -> None:
        ex = self.state.explore
        if ex.model is None:
            return
        try:
            t, _ = ex.time_grid()
        except ValueError:
            return
        step = float(t[1] - t[0])
        value = self.state.stat_time
        value = float(t[-1]) if value is None else float(np.clip(value, t[0], t[-1]))
        self._time.param.update(start=float(t[0]), end=float(t[-1]), step=step, value=value)

    def _probe_label(self, k: int) -> str:
        ex = self.state.explore
        if self._kind == "field1d" and ex.system is not None:
            grid = ex.system.grid()
            if len(grid) == 1:
                xs = np.asarray(next(iter(grid.values())), dtype=np.float64)
                if xs.size > k:
                    return f"u(x = {xs[k]:.3g})"
        if self._kind == "vector":
            return f"x{k + 1}"
        return f"x[{k}]"

    # ---------------------------------------------------------- callbacks
    def _on_input2(self, key: str | None) -> None:
        self.state.parameter2 = key or None
        self._grid_points.visible = bool(key)

    def _on_statistic(self, key: str) -> None:
        self._time.disabled = key not in ("probe", "energy")
        self._probe.disabled = key == "energy"

    # ----------------------------------------------------------- results
    def _show_nominal(self) -> None:
        inputs = self._inputs().values()
        text = ", ".join(f"{md(i.name)} = {i.nominal:.4g}" for i in inputs)
        self._nominal.object = f"Nominal (from Explore): {text}" if text else ""

    def _show_progress(self, *events) -> None:
        s = self.state
        with pn.io.hold():
            self._spinner.value = s.busy
            self._progress.param.update(value=int(round(100 * s.progress)), visible=s.busy)
            self._error.param.update(object=f"**Error:** {md(s.error)}", visible=bool(s.error))

    def _sweep_csv_bytes(self) -> io.BytesIO:
        result = self.state.grid if self.state.grid is not None else self.state.sweep
        if result is None:
            raise ValueError("there is no sweep to download yet")
        return io.BytesIO(result.to_csv().encode("utf-8"))

    def _tornado_csv_bytes(self) -> io.BytesIO:
        if self.state.tornado is None:
            raise ValueError("there is no ranking to download yet")
        return io.BytesIO(self.state.tornado.to_csv().encode("utf-8"))

    def _show_sweep(self) -> None:
        r = self.state.sweep
        self._sweep_box.visible = r is not None and self.state.grid is None
        self._sweep_csv.disabled = r is None and self.state.grid is None
        if r is None:
            return
        self.sweep_plot.show(r)
        self._status.object = (f"{len(r.values)} points × {r.stats.shape[1]} paths in "
                               f"{r.seconds:.2f} s")

    def _show_grid(self) -> None:
        g = self.state.grid
        self._grid_box.visible = g is not None
        self._sweep_box.visible = g is None and self.state.sweep is not None
        self._sweep_csv.disabled = g is None and self.state.sweep is None
        self._sweep_csv.filename = "srom-sweep-grid.csv" if g is not None else "srom-sweep.csv"
        if g is None:
            return
        self.mean_map.show(g)
        self.std_map.show(g)
        va, vb = g.values
        self._status.object = (f"{va.size} × {vb.size} grid × {g.stats.shape[-1]} paths in "
                               f"{g.seconds:.2f} s")

    def _show_tornado(self) -> None:
        r = self.state.tornado
        self._tornado_box.visible = r is not None
        self._tornado_csv.disabled = r is None
        if r is not None:
            self.tornado_plot.show(r)
