"""The Train tab: choose data and settings, start a training, watch it live, stop it, resume
it, save it or download it as a zip.

A thin ``pn.viewable.Viewer`` over :class:`app.state.training.TrainingState`. Widgets are built
from the state's params. The training itself runs on the process-wide worker thread
(:mod:`app.state.worker`), which never touches this view: a periodic callback of the session
(every ``poll_ms``) drains the job's news into the state on the session's thread, and
watchers push them into the existing widgets and Bokeh sources under ``pn.io.hold()`` (Bokeh,
not :mod:`engine.plotting`'s HoloViews elements: on the session thread a Bokeh update costs
well under a millisecond, the HoloViews ones tens of milliseconds and, for the validation
plot inside this view, once over 100 ms; ``benchmarks/ui_plot_updates.py`` measures both). The
same callback notices models saved by any session (:func:`app.state.catalog.generation`) and
refreshes the Explore tab's model picker. When the session closes, the callback stops and
the session's queued job is cancelled (a running one is stopped).
"""

from __future__ import annotations

import io

import panel as pn
import param

from app.state import catalog
from app.state.safe_text import md
from app.state.training import MODEL_NAME_RULE, TrainingState
from app.state.upload import SUFFIXES, max_upload_mb
from app.views.controls import label
from app.views.plots import QoIPlot
from app.views.polling import start_polling
from app.views.training_plots import TrainingCurves

#: the keyword that colours a button: ``color`` (Panel >= 1.9) or ``button_type``
_COLOR = "color" if "color" in pn.widgets.Button.param else "button_type"

__all__ = ["TrainingView", "format_duration"]


def format_duration(seconds: float) -> str:
    """``"8 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _refresh_explore_models(explore) -> None:
    """Offer the models on disk now in the Explore tab's picker (session thread)."""
    entries = catalog.discover_models()
    state = explore.state
    state.param.model_path.objects = [e.path for e in entries]
    state.models = entries
    explore.offer_models(entries)  # with each model's accuracy, as when the page opened


class TrainingView(pn.viewable.Viewer):
    """Settings (``controls``) and live progress (``main``) of one session's trainings.

    Args:
        state: the session's :class:`TrainingState` (default: a new one on the shared worker).
        explore: the session's ``ExploreView``, whose model picker learns of saved models.
        poll_ms: period of the session's polling callback (served sessions only). Once a
            second: a page left on this tab during a training redraws its curves at each
            poll, and at 2.5 polls a second it took ~19 % of a core of the 2-core server
            machine in its browser, 7 % at one (with ``app.views.idle_painter``).
    """

    state = param.ClassSelector(class_=TrainingState, doc="The session state it shows.")

    def __init__(self, explore=None, poll_ms: int = 1000, **params):
        if "state" not in params:
            params["state"] = TrainingState()
        super().__init__(**params)
        s = self.state
        self.explore = explore
        self._catalog_seen = catalog.generation()
        self._n_drawn = 0
        w = dict(sizing_mode="stretch_width")
        self._source = pn.widgets.RadioButtonGroup.from_param(s.param.source, **w)
        self._system = pn.widgets.Select.from_param(s.param.system, **w)
        self._preset = pn.widgets.Select.from_param(s.param.preset, **w)
        self._n = pn.widgets.IntInput.from_param(s.param.n_trajectories, **w)
        self._seed = pn.widgets.IntInput.from_param(s.param.seed, **w)
        self._latent = pn.widgets.IntInput.from_param(s.param.latent_dim, **w)
        self._architecture = pn.widgets.Select.from_param(s.param.architecture, **w)
        # bounded by the params: the browser cannot send a value outside them
        self._lr = pn.widgets.FloatInput.from_param(s.param.lr, step=1e-4,
                                                    format="0.[000000]", **w)
        self._window = pn.widgets.IntInput.from_param(s.param.window, **w)
        self._steps = pn.widgets.IntInput.from_param(s.param.steps, **w)
        self._device = pn.widgets.Select.from_param(s.param.device, **w)
        self._validate = pn.widgets.IntInput.from_param(s.param.validate_every, **w)
        limit = max_upload_mb()
        self._dropper = self._new_dropper()
        #: the dropper shows a file whose check has not been answered yet
        self._dropped = False
        self._upload_info = pn.pane.Alert("", alert_type="success", visible=False, **w)
        self._upload_error = pn.pane.Alert("", alert_type="danger", visible=False, **w)
        self._start = pn.widgets.Button(**label("Start"), **{_COLOR: "primary"}, **w)
        self._stop = pn.widgets.Button(**label("Stop"), **{_COLOR: "danger"}, disabled=True, **w)
        self._resume = pn.widgets.Button(**label("Resume"), disabled=True, **w)
        self._resume_note = pn.pane.Markdown("", visible=False,
                                             styles={"font-size": "11px", "color": "#555"}, **w)
        self._start.on_click(lambda e: s.start())
        self._stop.on_click(lambda e: s.stop())
        self._resume.on_click(lambda e: s.resume())
        self._name = pn.widgets.TextInput.from_param(s.param.model_name,
                                                     placeholder="e.g. my-oscillator", **w)
        self._save = pn.widgets.Button(**label("Save model"), **{_COLOR: "success"},
                                       disabled=True, **w)
        self._save.on_click(lambda e: s.save())
        self._download = pn.widgets.FileDownload(
            callback=self._zip_bytes, filename=f"{s.archive_name()}.zip", disabled=True,
            **label("Download model (.zip)"),
            description="The model folder (config.json, model.safetensors and its initial "
                        "states) as a zip: load it with engine.load_model or srom predict", **w)
        self._status = pn.pane.Markdown("", **w)
        self._progress = pn.indicators.Progress(value=0, max=1, active=False, bar_color="primary",
                                                css_classes=["srom-train-progress"], **w)
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, **w)
        self._warning = pn.pane.Alert("", alert_type="warning", visible=False, **w)
        self.curves = TrainingCurves()
        self.validation_plot = QoIPlot("Validation prediction (held-out trajectory)",
                                       height=300, name="val")

        self._system_box = pn.Column(self._system, self._preset, self._seed, margin=0, **w)
        self.controls = pn.Column(
            "### Data", self._source, self._system_box, self._n,
            pn.pane.Markdown(f"**Bring your own data**: an .npz or HDF5 dataset "
                             f"({', '.join(SUFFIXES)}, at most {limit} MB; see the README's "
                             "data format)", styles={"font-size": "12px"}, **w),
            self._dropper, self._upload_error, self._upload_info,
            "### Model and training", self._latent, self._architecture, self._lr,
            self._window, self._steps, self._device, self._validate,
            pn.Row(self._start, self._stop, **w), self._resume, self._resume_note,
            "### Save", self._name,
            pn.pane.Markdown(MODEL_NAME_RULE, styles={"font-size": "11px", "color": "#555"}, **w),
            self._save, self._download, **w)
        pane = lambda fig: pn.pane.Bokeh(fig, **w)  # noqa: E731
        self.main = pn.Column(
            self._status, self._progress, self._error, self._warning,
            pn.Row(*(pane(f) for f in self.curves.figures), **w),
            pane(self.validation_plot.figure), **w)

        s.param.watch(lambda *e: self._show_status(),
                      ["status", "message", "step", "total_steps", "eta", "elapsed",
                       "queue_position", "metrics"])
        s.param.watch(self._show_history, "history")
        s.param.watch(lambda *e: self._show_validation(), "validation")
        s.param.watch(lambda *e: self._show_messages(), ["error", "warning"])
        s.param.watch(lambda *e: self._show_upload(), ["upload", "upload_error", "upload_pending"])
        s.param.watch(lambda *e: self._sync_enabled(),
                      ["status", "model", "source", "resumable_step"])
        s.param.watch(lambda *e: setattr(self._download, "filename", f"{s.archive_name()}.zip"),
                      ["model_name", "system", "source"])
        self.curves.append(s.history)  # a state that has trained already
        self._n_drawn = len(s.history)
        self._show_validation()
        self._show_status()
        self._show_messages()
        self._show_upload()
        self._sync_enabled()

        # served or in a notebook (JupyterLab: the kernel's event loop), a background poll
        # (else Panel marks the page busy at every poll, and the header's busy spinner never
        # stops: issue 17); None in scripts and tests, which call poll() themselves
        self._periodic = start_polling(self.poll, poll_ms)
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # served: clean up at the end
            pn.state.on_session_destroyed(self._on_session_destroyed)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(pn.Column(self.controls, width=330), self.main,
                      sizing_mode="stretch_width")

    # ----------------------------------------------------------- polling
    def poll(self) -> None:
        """Apply the worker's news and refresh the model picker if the catalog changed
        (the periodic callback; tests call it directly)."""
        try:
            with pn.io.hold():
                self.state.poll()
                seen = catalog.generation()
                if seen != self._catalog_seen and self.explore is not None:
                    self._catalog_seen = seen
                    _refresh_explore_models(self.explore)
        except Exception as exc:  # noqa: BLE001 - a periodic callback must not die
            self.state.error = f"{type(exc).__name__}: {exc}"

    def _on_session_destroyed(self, session_context) -> None:
        if self._periodic is not None:
            try:
                self._periodic.stop()
            except Exception:  # noqa: BLE001 - the document may already be gone
                pass
        self.state.close()

    # ----------------------------------------------------------- showing
    def _show_status(self) -> None:
        s = self.state
        parts = [f"**{s.status}**"]
        if s.status not in ("idle", "queued", "preparing", "cancelled") and s.total_steps:
            parts.append(f"step {s.step} / {s.total_steps}")
            if s.elapsed:
                parts.append(f"{format_duration(s.elapsed)} elapsed")
            if s.status == "running" and s.eta is not None:
                parts.append(f"ETA {format_duration(s.eta)}")
        text = " · ".join(parts)
        if s.message:
            text += f"<br>{md(s.message)}"
        if s.metrics and not s.active:
            m = s.metrics
            text += (f"<br>held-out: relative L2 error {m.get('rel_l2_mean', float('nan')):.3g}"
                     f", 90 % band coverage {100 * m.get('coverage_90', float('nan')):.0f} %")
        self._status.object = text
        if s.status in ("queued", "preparing"):
            self._progress.param.update(value=-1, active=True)
        else:
            total = max(int(s.total_steps), 1)
            value = min(int(s.step), total)
            bar = self._progress
            bar.active = False
            if total >= bar.max:  # value is bounded by max: keep them consistent throughout
                bar.max, bar.value = total, value
            else:
                bar.value, bar.max = value, total

    def _show_history(self, event: param.parameterized.Event) -> None:
        history = event.new
        if len(history) < self._n_drawn or not history:  # a new training
            self.curves.reset()
            self._n_drawn = 0
        self.curves.append(history[self._n_drawn:])
        self._n_drawn = len(history)

    def _show_validation(self) -> None:
        c = self.state.validation
        if c is None:
            return
        self.validation_plot.update(
            c.t, c.bands, c.mean, c.samples, c.truth,
            title=f"Validation at step {c.step}: {c.label}, {c.source} "
                  f"(relative L2 error {c.rel_l2:.3g})")

    def _show_messages(self) -> None:
        s = self.state
        self._error.param.update(object=f"**Error:** {md(s.error)}", visible=bool(s.error))
        self._warning.param.update(object=md(s.warning), visible=bool(s.warning))

    def _new_dropper(self) -> pn.widgets.FileDropper:
        """An empty file dropper. FileDropper sends the file in chunks: an upload is not
        bound by the websocket's message size limit (FileInput would be, 20 MB by default)."""
        dropper = pn.widgets.FileDropper(multiple=False, max_file_size=f"{max_upload_mb()}MB",
                                         layout="compact", sizing_mode="stretch_width")
        dropper.param.watch(self._on_upload, "value")
        return dropper

    def _show_upload(self) -> None:
        s = self.state
        self._upload_error.param.update(object=f"**Upload refused:** {md(s.upload_error)}",
                                        visible=bool(s.upload_error))
        if s.upload_error and self._dropped and not s.upload_pending:
            # the dropper's own green "Upload complete" only means the bytes arrived: a
            # refused file must not stay listed as complete, so an empty dropper replaces it
            self._dropped = False
            i = self.controls.objects.index(self._dropper)
            self._dropper = self._new_dropper()
            self.controls[i] = self._dropper
        if s.upload_pending:
            self._upload_info.param.update(
                object=f"Checking **{md(s.upload_pending)}** in a separate process…", visible=True)
            return
        self._upload_info.param.update(
            object=s.upload.summary_markdown() if s.upload else "",
            visible=s.upload is not None and not s.upload_error)

    def _sync_enabled(self) -> None:
        s = self.state
        busy = s.active
        self._start.disabled = busy
        self._stop.disabled = not busy
        self._save.disabled = not s.can_save
        self._download.disabled = not s.can_save
        for widget in (self._source, self._system, self._preset, self._n, self._seed,
                       self._latent, self._architecture, self._lr, self._window, self._steps,
                       self._device, self._validate):
            widget.disabled = busy
        self._system_box.visible = s.source == "simulator"
        can_resume = s.resumable_step is not None and not busy
        self._resume.disabled = not can_resume
        self._resume_note.param.update(
            object=(f"Resume goes on from the checkpoint at step {int(s.resumable_step)}, with "
                    "the stopped training's data and settings" if can_resume else ""),
            visible=can_resume)

    def _zip_bytes(self) -> io.BytesIO:
        """The download button's file: the trained model folder as a zip."""
        try:
            return io.BytesIO(self.state.model_zip())
        except Exception as exc:  # noqa: BLE001 - said on the page (the click also fails)
            self.state.error = f"Could not download the model: {exc}"
            raise

    # ------------------------------------------------------------ upload
    def _on_upload(self, event: param.parameterized.Event) -> None:
        files = dict(event.new or {})
        if not files:
            return
        for name, data in files.items():
            if isinstance(data, str):  # FileDropper decodes text/* types
                data = data.encode("utf-8")
            # checked in a separate process; the periodic poll shows the answer (served),
            # tests and scripts without a server wait for it
            self._dropped = True
            self.state.add_upload(name, data, wait=self._periodic is None)
        event.obj.value = {}  # the dataset is kept in the state; drop the raw bytes
