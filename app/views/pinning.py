"""Pin a reference prediction and compare the current one with it (the Explore tab).

"Pin" keeps the shown prediction's mean and 90 % band (:class:`Pin`); the probe plot then
draws them in another colour behind the current prediction (:class:`PinOverlay`: one more
Bokeh source on the existing figure, its legend entry naming the pinned μ and forcing). The
latent plot and the phase portrait draw the pinned latent mean the same way
(:class:`LatentPinOverlay`), and a 1-D field gets a map of the current mean minus the pinned
one (:meth:`Pin.difference`, shown by the Explore view while a pin fits the current times).
Slider moves do not touch the pinned curves: only pinning, clearing, a probe or phase-axis
change send their data; the difference map is the one figure a new (full) prediction
refreshes because of a pin, and only while one is set. A model switch clears the pin
(another model's state need not match this one's).

:class:`Pin` and :func:`settings_text` hold no GUI object; :class:`PinOverlay` draws with
Bokeh and :class:`PinControls` (which imports Panel when made) holds the buttons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.core.properties import value

from app.state.explore import COVERAGE_BAND, ExploreResult

__all__ = ["PIN_COLOUR", "MAX_PIN_VALUES", "Pin", "settings_text", "PinOverlay",
           "LatentPinOverlay", "PinControls"]

PIN_COLOUR = "#d95f02"  # orange: apart from the prediction's blues and the truth's black
#: most state values × times kept per pinned array; beyond it only the probe's series is
#: kept (a 3 × 80 × 440 flow over 134 times would hold 56 MB per array)
MAX_PIN_VALUES = 2**21
#: longest legend label (the full text goes beside the buttons)
LEGEND_CHARS = 60


def settings_text(inputs: Mapping[str, Any]) -> str:
    """The μ and forcing of a prediction in one line: ``nu = 0.03 · u_left: sine(amplitude=2,
    frequency=1)`` (``no inputs`` for a model without μ and forcing)."""
    parts = []
    mu = inputs.get("mu") or {}
    if mu:
        parts.append(", ".join(f"{n} = {float(v):.4g}" for n, v in mu.items()))
    for name, spec in (inputs.get("forcing") or {}).items():
        spec = dict(spec)
        family = spec.pop("family", "?")
        if family == "none":
            continue
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in spec.items())
        parts.append(f"{name}: {family}({values})")
    return " · ".join(parts) or "no inputs"


@dataclass(frozen=True)
class Pin:
    """A pinned prediction, reduced to what the probe plot draws.

    Attributes:
        t: ``(T,)`` output times.
        mean, lo, hi: ``(T, N)`` float32 mean and 90 % band of the flattened state (``N``
            values), or ``(T, 1)`` of the probe ``probe`` alone when the state is large.
        probe: the one state index kept, or ``None`` when every index is.
        label: the pinned settings (:func:`settings_text`).
        model_path: the model that made it.
        latent_mean: ``(T, d)`` float32 latent mean (``None`` for a pin made without it).
    """

    t: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    probe: int | None
    label: str
    model_path: str | None
    latent_mean: np.ndarray | None = None

    @classmethod
    def of(cls, result: ExploreResult, probe: int, max_values: int = MAX_PIN_VALUES) -> Pin:
        """Pin ``result`` (its probe ``probe`` is kept at least)."""
        if result.preview:
            raise ValueError("a preview cannot be pinned: wait for the full prediction")
        def flat(a: np.ndarray) -> np.ndarray:  # (T, *S) -> (T, |S|)
            return np.asarray(a).reshape(a.shape[0], -1)

        mean = flat(result.mean)
        probe = int(probe)
        if not 0 <= probe < mean.shape[1]:
            raise ValueError(f"probe must be 0..{mean.shape[1] - 1}, got {probe}")
        lo, hi = (flat(result.quantile(q)) for q in COVERAGE_BAND)
        keep: slice | list[int] = slice(None)
        kept: int | None = None
        if mean.size > max_values:
            keep, kept = [probe], probe
        return cls(t=np.array(result.t, dtype=np.float64),
                   mean=mean[:, keep].astype(np.float32), lo=lo[:, keep].astype(np.float32),
                   hi=hi[:, keep].astype(np.float32), probe=kept,
                   label=settings_text(result.inputs),
                   model_path=result.inputs.get("model_path"),
                   latent_mean=np.asarray(result.latent_mean, dtype=np.float32).copy())

    def series(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(t, mean, lo, hi)``, each ``(T,)`` float64, at flat state index ``k``; ``None``
        when only another probe was kept or ``k`` is out of range."""
        if self.probe is not None:
            if int(k) != self.probe:
                return None
            k = 0
        if not 0 <= int(k) < self.mean.shape[1]:
            return None
        return (self.t, self.mean[:, k].astype(np.float64), self.lo[:, k].astype(np.float64),
                self.hi[:, k].astype(np.float64))


    def difference(self, result: ExploreResult) -> np.ndarray | None:
        """``(T, N)`` float64: ``result``'s mean (flattened) minus the pinned mean, or
        ``None`` when there is nothing to compare value by value: only a probe was kept, or
        ``result`` has other output times or another state size."""
        if self.probe is not None:
            return None
        mean = np.asarray(result.mean).reshape(result.mean.shape[0], -1)
        if mean.shape != self.mean.shape or not np.allclose(result.t, self.t, rtol=0,
                                                            atol=1e-9 * max(1.0, abs(self.t[-1]))):
            return None
        return mean - self.mean.astype(np.float64)


class PinOverlay:
    """The pinned mean and band on an existing figure (a :class:`app.views.plots.QoIPlot`'s), with
    a legend entry (hidden while nothing is pinned)."""

    def __init__(self, figure: Any, name: str = "qoi"):
        from bokeh.models import ColumnDataSource
        from bokeh.models.annotations import LegendItem  # (bokeh.models: untyped re-export)

        from app.views.plots import decimate

        self._decimate = decimate
        self.source = ColumnDataSource({"t": [], "mean": [], "lo": [], "hi": []},
                                       name=f"{name}-pin")
        band = figure.varea(x="t", y1="lo", y2="hi", source=self.source, color=PIN_COLOUR,
                            fill_alpha=0.15)
        line = figure.line(x="t", y="mean", source=self.source, color=PIN_COLOUR, line_width=2,
                           line_dash="dashdot")
        self.item = LegendItem(label="pinned", renderers=[band, line], visible=False)
        if figure.legend:
            legend = figure.legend[0]
            legend.items = [*legend.items, self.item]
        self.shown: tuple[int, int] | None = None  # (id of the pin, probe) on the figure

    def show(self, pin: Pin | None, k: int) -> None:
        """Draw ``pin`` at flat index ``k`` (nothing if ``None`` or that index was not kept);
        sends data only when the pin or the probe changed."""
        key = None if pin is None else (id(pin), int(k))
        if key == self.shown:
            return
        self.shown = key
        data = pin.series(k) if pin is not None else None
        if data is None:
            self.source.data = {"t": [], "mean": [], "lo": [], "hi": []}
            self.item.visible = False
            return
        t, mean, lo, hi = data
        sl = self._decimate(len(t))
        self.source.data = {"t": t[sl], "mean": mean[sl], "lo": lo[sl], "hi": hi[sl]}
        label = f"pinned: {pin.label}" if pin is not None else "pinned"
        if len(label) > LEGEND_CHARS:
            label = label[: LEGEND_CHARS - 1] + "…"
        # a plain string set later would be read as a column name of the source
        self.item.update(label=value(label), visible=True)


class LatentPinOverlay:
    """The pinned latent mean on the latent plot (every coordinate, as one NaN-broken line)
    and on the phase portrait (the two coordinates shown), with legend entries hidden while
    nothing is pinned.

    Args:
        latent_figure, phase_figure: the figures of an :class:`app.views.plots.LatentPlot` and an
            :class:`app.views.plots.PhasePlot`.
    """

    def __init__(self, latent_figure: Any, phase_figure: Any):
        from bokeh.models import ColumnDataSource
        from bokeh.models.annotations import LegendItem

        self.latent = ColumnDataSource({"x": [], "y": []}, name="latent-pin")
        self.phase = ColumnDataSource({"x": [], "y": []}, name="phase-pin")
        self.items = []
        for figure, source in ((latent_figure, self.latent), (phase_figure, self.phase)):
            line = figure.line(x="x", y="y", source=source, color=PIN_COLOUR, line_width=2,
                               line_dash="dashdot")
            item = LegendItem(label=value("pinned"), renderers=[line], visible=False)
            if figure.legend:
                figure.legend[0].items = [*figure.legend[0].items, item]
            self.items.append(item)
        self.shown: tuple[int, int, int] | None = None  # (id of the pin, i, j) drawn

    def show(self, pin: Pin | None, i: int, j: int) -> None:
        """Draw ``pin``'s latent mean, coordinate ``j`` against ``i`` in the phase portrait;
        sends data only when the pin or the axes changed."""
        from app.views.plots import decimate, joined_paths

        latent = None if pin is None else pin.latent_mean
        key = None if latent is None else (id(pin), int(i), int(j))
        if key == self.shown:
            return
        self.shown = key
        if pin is None or latent is None:
            for source in (self.latent, self.phase):
                source.data = {"x": [], "y": []}
            for item in self.items:
                item.visible = False
            return
        d = latent.shape[1]
        i, j = min(int(i), d - 1), min(int(j), d - 1)
        sl = decimate(len(pin.t))
        self.latent.data = joined_paths(pin.t[sl], latent[sl].T)
        self.phase.data = {"x": latent[sl, i].astype(np.float64),
                           "y": latent[sl, j].astype(np.float64)}
        for item in self.items:
            item.visible = True


class PinControls:
    """"Pin this prediction" and "Clear pin" buttons with the pinned settings beside them.

    Args:
        state: the session's :class:`app.state.explore.ExploreState` (its ``result`` is pinned).
        probe: returns the flat state index the probe plot shows now.
    """

    def __init__(self, state: Any, probe: Callable[[], int]):
        import panel as pn

        from app.views.controls import label

        self.state = state
        self._probe = probe
        self.pin: Pin | None = None
        self.overlay: PinOverlay | None = None
        self.latent_overlay: LatentPinOverlay | None = None
        self._axes: Callable[[], tuple[int, int]] = lambda: (0, 1)
        #: called after the pin changed (the view refreshes its difference map)
        self.on_change: Callable[[], None] | None = None
        self._pin_button = pn.widgets.Button(
            **label("Pin as reference"), width=150, height=32, margin=(4, 2), disabled=True,
            description="Keep this prediction's mean and 90 % band in the probe plot, to "
                        "compare other μ and forcing settings with it")
        self._clear_button = pn.widgets.Button(**label("Clear pin"), width=90, height=32,
                                               margin=(4, 2), disabled=True)
        # a fixed height: a text that wraps to another line count would re-lay out the page
        self.text = pn.pane.Markdown("", height=36, sizing_mode="stretch_width",
                                     styles={"font-size": "12px", "color": PIN_COLOUR,
                                             "overflow-y": "auto"},
                                     stylesheets=[":host p { margin: 2px 0; }"])
        self._pin_button.on_click(lambda event: self.pin_current())
        self._clear_button.on_click(lambda event: self.clear())
        self.panel = pn.Row(self._pin_button, self._clear_button, self.text,
                            sizing_mode="stretch_width", height=44)
        state.param.watch(lambda event: self._sync_buttons(), "result")
        state.param.watch(lambda event: self._on_model(), "model")
        self._last_full: Any = None  # the last full (not preview) prediction
        self._sync_buttons()  # a state that predicted before the view was built

    def _on_model(self) -> None:
        self._last_full = None  # the previous model's
        self.clear()
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        """Pinning takes the last full prediction (a preview of the next move may be on
        screen), so the button is enabled from the first one on: it is not toggled at every
        slider move (a widget's state change makes the page lay itself out again)."""
        r = self.state.result
        if r is not None and not r.preview:
            self._last_full = r
        ready = self._last_full is not None
        if self._pin_button.disabled == ready:
            self._pin_button.disabled = not ready

    def attach(self, figure: Any) -> None:
        """Draw on ``figure`` (the probe plot of a newly built model view)."""
        self.overlay = PinOverlay(figure)
        self.overlay.show(self.pin, self._probe())

    def attach_latent(self, latent_figure: Any, phase_figure: Any,
                      axes: Callable[[], tuple[int, int]]) -> None:
        """Draw on the latent plot and phase portrait of a newly built model view;
        ``axes()`` gives the phase portrait's coordinates ``(i, j)``."""
        self.latent_overlay = LatentPinOverlay(latent_figure, phase_figure)
        self._axes = axes
        self.refresh_latent()

    def refresh(self, k: int) -> None:
        """The probe plot now shows index ``k`` (cheap when neither it nor the pin moved)."""
        if self.overlay is not None:
            self.overlay.show(self.pin, k)

    def refresh_latent(self) -> None:
        """Sync the latent overlays with the pin and the phase axes (cheap when neither
        moved)."""
        if self.latent_overlay is not None:
            self.latent_overlay.show(self.pin, *self._axes())

    def pin_current(self) -> None:
        """Pin the shown prediction (an error shows in place of the pinned text)."""
        import panel as pn

        from app.state.safe_text import md

        r = self._last_full
        if r is None:
            return
        try:
            pin = Pin.of(r, self._probe())
        except ValueError as exc:
            self.text.object = f"⚠ {md(exc)}"
            return
        where = "" if pin.probe is None else " (a large field: this probe only)"
        with pn.io.hold():  # see _changed
            self.pin = pin
            self.text.object = f"**Pinned**{where}: {md(pin.label)}"
            self._clear_button.disabled = False
            self._changed()

    def _changed(self) -> None:
        """Redraw the overlays and the difference map. Call it under ``pn.io.hold()``: a
        button's callback may run without the Bokeh document lock (Panel schedules it so
        while other changes of the session are queued), and a figure's source changed
        outside a hold then fails in the server and never reaches the page."""
        self.refresh(self._probe() if self.overlay is not None else 0)
        self.refresh_latent()
        if self.on_change is not None:
            self.on_change()

    def clear(self) -> None:
        """Forget the pin."""
        import panel as pn

        with pn.io.hold():  # see _changed
            self.pin = None
            self.text.object = ""
            self._clear_button.disabled = True
            self._changed()
