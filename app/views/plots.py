"""Bokeh plot builders: each creates its figure once and later only replaces source data.

On a slider move the dashboard pushes new arrays into the ``ColumnDataSource`` objects of
figures that already exist (the cheapest update measured: ~85 ms slider-to-pixels for a rich
view, against ~490 ms for re-creating HoloViews elements). Call ``update`` only from the
session's thread (inside a Panel callback), ideally under ``pn.io.hold()`` so that one
message carries every change.

Uncertainty is drawn as nested quantile bands (95 %, 90 %, 50 %) plus a few sample paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from bokeh.events import Tap
from bokeh.models import (
    ColumnDataSource,
    CustomJSTickFormatter,
    DataRange1d,
    HoverTool,
    LinearColorMapper,
    Range1d,
)

# annotations from their own module: bokeh.models re-exports them, but not to type checkers
from bokeh.models.annotations import BoxAnnotation, ColorBar, Legend, LegendItem, Title
from bokeh.models.renderers import GlyphRenderer
from bokeh.palettes import Blues256, Category10_10, Reds256, Viridis256, diverging_palette
from bokeh.plotting import figure

from app.state.specs import BANDS

__all__ = ["QoIPlot", "FieldPlot", "LatentPlot", "PhasePlot", "ForcingPlot", "ErrorPlot",
           "BAND_ALPHAS", "DIVERGING", "MIN_HEIGHT", "colour_range",
           "decimate", "joined_paths"]

BLUE = "#1f77b4"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
#: fill alpha of the bands, widest (95 %) first; they stack, so the core is darkest
BAND_ALPHAS = (0.15, 0.2, 0.3)
#: the most points drawn per curve
MAX_POINTS = 400
#: the smallest figure height: the vertical toolbar (5 tools) and a few y ticks fit
MIN_HEIGHT = 200
#: a diverging palette (blue below zero, red above) for signed fields and errors
DIVERGING = tuple(diverging_palette(Blues256, Reds256, n=256))
#: characters of every y tick label (see _steady_formatter)
Y_LABEL_CHARS = 8

# Every label has Y_LABEL_CHARS characters in a monospace font, so the y axis keeps its width
# whatever the numbers. ``this`` is a cache shared by one call's ticks: their common number
# of decimals is the fewest that write the tick spacing; huge or tiny values (or a label
# that would not fit) are written as 1.2e-5.
_STEADY_LABELS = """
if (this.digits === undefined) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : (Math.abs(tick) || 1);
  const big = Math.max(...ticks.map((v) => Math.abs(v)));
  this.step = step;
  this.exp = big >= 1e5 || (big > 0 && big < 1e-3);
  let d = 0;  // the fewest decimals that write the step exactly (0.25: 2)
  while (d < 6 && Math.abs(step * 10 ** d - Math.round(step * 10 ** d)) > 1e-6) d++;
  this.digits = d;
}
const v = Math.abs(tick) < 1e-9 * this.step ? 0 : tick;
let s = this.exp ? v.toExponential(1) : v.toFixed(this.digits);
if (s.length > n) s = v.toExponential(1);
return s.padStart(n, " ");
"""


def decimate(n: int, max_points: int = MAX_POINTS) -> slice:
    """A stride slice keeping at most ``max_points`` of ``n`` points (first one kept)."""
    return slice(None, None, max(1, -(-n // max_points)))


def _steady_formatter() -> CustomJSTickFormatter:
    """A tick formatter writing every label with ``Y_LABEL_CHARS`` characters (padded with
    spaces; give the axis a monospace font)."""
    return CustomJSTickFormatter(code=_STEADY_LABELS, args={"n": Y_LABEL_CHARS})


def _figure(title: str, x_label: str, y_label: str, height: int, x_range=None,
            steady_y_axis: bool = True, **kw):
    """A stretch-width figure with the app's tools (a vertical toolbar on the right, so it
    never covers the title or a legend above the plot), at least ``MIN_HEIGHT`` pixels high.

    ``steady_y_axis`` writes every y tick label with the same number of characters in a
    monospace font, upright, so that new data never changes the axis' width: Bokeh lays out
    the *whole page* again when a figure's side panel (axis, colour bar) changes size, and a
    wider y tick label ("-0.25" after "0.5") costs ~110 ms of layout and a second paint of
    every figure on a 2-core machine (measured by ``benchmarks/ui_speed.py``). Labels
    written along the axis kept the width too, but collided on short plots.
    """
    fig = figure(title=title, height=max(int(height), MIN_HEIGHT), sizing_mode="stretch_width",
                 tools=TOOLS, toolbar_location="right", x_axis_label=x_label,
                 y_axis_label=y_label, **({"x_range": x_range} if x_range is not None else {}),
                 **kw)
    fig.toolbar.logo = None
    if isinstance(fig.title, Title):  # always: figure() makes one from the text
        fig.title.text_font_size = "11pt"
    if steady_y_axis:
        fig.yaxis.formatter = _steady_formatter()
        fig.yaxis.major_label_text_font = "monospace"
    return fig


def colour_range(values: np.ndarray, symmetric: bool | None = None) -> tuple[float, float]:
    """The colour range ``(lo, hi)`` of ``values`` (any shape; non-finite ones ignored).

    Args:
        values: the data the range must cover, e.g. a field over the whole horizon
            ``(T, H, W)``, so that the colours keep their meaning from frame to frame.
        symmetric: centre the range on zero; ``None`` (default): when the values take both
            signs in earnest (the smaller side at least a fifth of the larger), as a velocity
            component or a pressure deviation does.

    Returns:
        ``lo < hi``; ``(0, 1)`` when no value is finite.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if symmetric is None:
        symmetric = lo < 0 < hi and min(-lo, hi) >= 0.2 * max(-lo, hi)
    if symmetric:
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    if hi <= lo:
        pad = max(abs(hi), 1.0) * 1e-9
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _legend_above(fig, items: Sequence[tuple[str, GlyphRenderer | list[GlyphRenderer]]]) -> None:
    """A horizontal, click-to-hide legend above the plot area (it never hides data);
    ``items`` are ``(label, renderer or list of renderers)``."""
    legend = Legend(items=[LegendItem(label=label, renderers=r if isinstance(r, list) else [r])
                           for label, r in items],
                    orientation="horizontal", click_policy="hide", label_text_font_size="8pt",
                    glyph_width=14, spacing=6, margin=0,
                    padding=2,  # type: ignore[arg-type]  # bokeh's stub: a nested Property
                    border_line_alpha=0)
    fig.add_layout(legend, "above")


def joined_paths(xs: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
    """``k`` curves as one line broken by NaNs: ``xs``, ``ys`` ``(k, T)`` (``xs`` may be one
    ``(T,)`` row shared by all) → ``{"x": (k·(T+1),), "y": (k·(T+1),)}``.

    Two arrays instead of ``2k`` (a ``multi_line`` sends every curve as its own binary
    buffer): fewer websocket frames and less work in the page per update.
    """
    ys = np.asarray(ys, dtype=np.float64)
    if ys.ndim != 2:
        raise ValueError(f"ys must be (k, T), got shape {ys.shape}")
    xs = np.broadcast_to(np.asarray(xs, dtype=np.float64), ys.shape)
    gap = np.full((ys.shape[0], 1), np.nan)
    return {"x": np.concatenate([xs, gap], axis=1).ravel(),
            "y": np.concatenate([ys, gap], axis=1).ravel()}


def _nan_if_none(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64)


class QoIPlot:
    """One quantity over time: nested bands, sample paths, the mean and the truth.

    Args:
        title, y_label: texts; x_range: a range to share with other time plots.
        n_bands: the number of nested bands (drawn widest first).
    """

    def __init__(self, title: str = "Quantity of interest", y_label: str = "value",
                 x_range=None, n_bands: int = 3, height: int = 300, name: str = "qoi"):
        self.n_bands = n_bands
        cols: dict[str, list] = {"t": [], "mean": [], "truth": []}
        for b in range(n_bands):
            cols[f"lo{b}"], cols[f"hi{b}"] = [], []
        self.source = ColumnDataSource(cols, name=f"{name}-bands")
        self.paths = ColumnDataSource({"x": [], "y": []}, name=f"{name}-paths")  # joined_paths
        self.figure = _figure(title, "t", y_label, height, x_range)
        labels = ([f"{100 * (hi - lo):.0f} %" for lo, hi in BANDS] if n_bands == len(BANDS)
                  else [f"band {b}" for b in range(n_bands)])
        items = []
        for b in range(n_bands):
            items.append((labels[b], self.figure.varea(
                x="t", y1=f"lo{b}", y2=f"hi{b}", source=self.source, color=BLUE,
                fill_alpha=BAND_ALPHAS[b % len(BAND_ALPHAS)])))
        items.append(("sample paths", self.figure.line(
            x="x", y="y", source=self.paths, color=BLUE, line_alpha=0.45, line_width=1)))
        items.append(("mean", self.figure.line(x="t", y="mean", source=self.source,
                                               color="#0b3d91", line_width=2.5)))
        self.truth_renderer = self.figure.line(x="t", y="truth", source=self.source, color="black",
                                               line_dash="dashed", line_width=2, visible=False)
        items.append(("simulator", self.truth_renderer))
        _legend_above(self.figure, items)

    def update(self, t: np.ndarray, bands: Sequence[tuple[np.ndarray, np.ndarray]],
               mean: np.ndarray, samples: np.ndarray, truth: np.ndarray | None = None,
               title: str | None = None) -> None:
        """Replace the data: ``t (T,)``, ``bands`` widest first as ``(lo (T,), hi (T,))``,
        ``mean (T,)``, ``samples (k, T)``, ``truth (T,)`` or ``None``."""
        sl = decimate(len(t))
        tt = np.asarray(t, dtype=np.float64)[sl]
        data = {"t": tt, "mean": np.asarray(mean, np.float64)[sl],
                "truth": _nan_if_none(truth, len(t))[sl]}
        for b, (lo, hi) in enumerate(bands):
            data[f"lo{b}"] = np.asarray(lo, np.float64)[sl]
            data[f"hi{b}"] = np.asarray(hi, np.float64)[sl]
        self.source.data = data
        self.paths.data = joined_paths(tt, np.asarray(samples, np.float64)[:, sl])
        self.truth_renderer.visible = truth is not None
        if title is not None:
            self.figure.title.text = title


class FieldPlot:
    """An image: a space–time map (x = time, y = space) or a 2-D field.

    Args:
        title: the figure title; x_label, y_label: axis labels.
        palette: a Bokeh palette; symmetric: centre the colour range that ``update``
            computes on zero.
        equal_aspect: draw a unit of x as long as a unit of y, so that a 2-D field keeps
            its true shape (the axes' ranges then follow the image, padded to the frame).
        mapper: a colour mapper shared with other maps (one colour scale for all of them;
            its palette wins over ``palette``).
        marker: a source ``{"x": (n,), "y": (n,)}`` of points to mark (e.g. a probe); it
            may be shared by several maps, so that one update moves every mark.
    """

    def __init__(self, title: str, x_label: str = "t", y_label: str = "x", palette=Viridis256,
                 x_range=None, height: int = 280, name: str = "field", symmetric: bool = False,
                 equal_aspect: bool = False, mapper: LinearColorMapper | None = None,
                 marker: ColumnDataSource | None = None):
        self.symmetric = symmetric
        self.equal_aspect = equal_aspect
        self._own_x_range = x_range is None and not equal_aspect
        self.source = ColumnDataSource({"image": [np.zeros((1, 1))], "x": [0.0], "y": [0.0],
                                        "dw": [1.0], "dh": [1.0]}, name=f"{name}-image")
        self.mapper = mapper if mapper is not None else LinearColorMapper(palette=palette,
                                                                         low=0.0, high=1.0)
        y_range: Range1d | DataRange1d
        aspect: dict[str, Any]
        data_ranges: tuple[DataRange1d, DataRange1d] | None = None
        if equal_aspect:
            # match_aspect works with data ranges only; they follow the image alone
            data_ranges = DataRange1d(range_padding=0), DataRange1d(range_padding=0)
            x_range, y_range = data_ranges
            aspect = {"match_aspect": True, "aspect_scale": 1.0}
        else:
            x_range = x_range if x_range is not None else Range1d(start=0, end=1)
            y_range, aspect = Range1d(start=0, end=1), {}
        self.figure = _figure(title, x_label, y_label, height, x_range, y_range=y_range,
                              name=f"{name}-figure", **aspect)
        self.image = self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh",
                                       source=self.source, color_mapper=self.mapper)
        if data_ranges is not None:
            data_ranges[0].renderers = data_ranges[1].renderers = [self.image]
        # below and horizontal: its height does not depend on the tick labels (see _figure)
        self.figure.add_layout(ColorBar(color_mapper=self.mapper, orientation="horizontal",
                                        height=8, padding=2), "below")
        self.figure.grid.visible = False
        self.figure.add_tools(HoverTool(renderers=[self.image], tooltips=[
            (x_label, "$x{0.[000]}"), (y_label, "$y{0.[000]}"), ("value", "@image{0.[0000]}")]))
        if marker is not None:  # a white cross on a black one: seen on any colour
            for color, width in (("black", 4), ("white", 2)):
                self.figure.scatter(x="x", y="y", source=marker, marker="cross", size=16,
                                    line_color=color, line_width=width)

    def on_tap(self, callback) -> None:
        """Call ``callback(x, y)`` (data coordinates, floats) when the map is clicked; it runs
        on the session's thread."""
        self.figure.on_event(Tap, lambda event: callback(event.x, event.y))

    def set_colour_range(self, lo: float, hi: float) -> None:
        """Fix the colour scale to ``[lo, hi]`` (sent only when it changes)."""
        lo, hi = float(lo), float(hi)
        if (self.mapper.low, self.mapper.high) != (lo, hi):
            self.mapper.update(low=lo, high=hi)

    def update(self, image: np.ndarray, x_extent: tuple[float, float],
               y_extent: tuple[float, float], title: str | None = None,
               colours: tuple[float, float] | None = None) -> None:
        """``image (ny, nx)``: row i at y, column j at x; extents are the coordinate
        ranges of the first and last pixel centres; ``colours``: a fixed colour range
        (default: this image's own, see :func:`colour_range`)."""
        image = np.asarray(image, dtype=np.float64)
        ny, nx = image.shape
        (x0, x1), (y0, y1) = x_extent, y_extent
        hx = (x1 - x0) / max(nx - 1, 1) / 2
        hy = (y1 - y0) / max(ny - 1, 1) / 2
        if nx == 1:
            hx = 0.5
        if ny == 1:
            hy = 0.5
        self.source.data = {"image": [image], "x": [x0 - hx], "y": [y0 - hy],
                            "dw": [x1 - x0 + 2 * hx], "dh": [y1 - y0 + 2 * hy]}
        self.set_colour_range(*(colours if colours is not None
                                else colour_range(image, symmetric=self.symmetric)))
        if self._own_x_range:
            self.figure.x_range.update(start=x0 - hx, end=x1 + hx)
        if not self.equal_aspect:
            self.figure.y_range.update(start=y0 - hy, end=y1 + hy)
        if title is not None:
            self.figure.title.text = title


class LatentPlot:
    """The d latent coordinates over time: a 90 % band and the mean each, one colour each."""

    def __init__(self, latent_dim: int, x_range=None, height: int = 280, name: str = "latent"):
        self.d = int(latent_dim)
        cols: dict[str, list] = {"t": []}
        for j in range(self.d):
            cols.update({f"lo{j}": [], f"hi{j}": [], f"m{j}": []})
        self.source = ColumnDataSource(cols, name=f"{name}-bands")
        self.figure = _figure("Latent trajectories (mean and 90 % band)", "t", "z", height, x_range)
        items = []
        for j in range(self.d):
            color = Category10_10[j % 10]
            band = self.figure.varea(x="t", y1=f"lo{j}", y2=f"hi{j}", source=self.source,
                                     color=color, fill_alpha=0.18)
            line = self.figure.line(x="t", y=f"m{j}", source=self.source, color=color,
                                    line_width=2)
            items.append((f"z{j + 1}", [band, line]))
        _legend_above(self.figure, items)

    def update(self, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray) -> None:
        """``t (T,)``; ``lo``, ``hi``, ``mean``: ``(T, d)``."""
        sl = decimate(len(t))
        data = {"t": np.asarray(t, np.float64)[sl]}
        for j in range(self.d):
            data[f"lo{j}"] = np.asarray(lo[sl, j], np.float64)
            data[f"hi{j}"] = np.asarray(hi[sl, j], np.float64)
            data[f"m{j}"] = np.asarray(mean[sl, j], np.float64)
        self.source.data = data


class PhasePlot:
    """Two latent coordinates against each other: sample paths, the mean path, the start."""

    def __init__(self, height: int = 280, name: str = "phase"):
        self.paths = ColumnDataSource({"x": [], "y": []}, name=f"{name}-paths")  # joined_paths
        self.mean = ColumnDataSource({"x": [], "y": []}, name=f"{name}-mean")
        self.start = ColumnDataSource({"x": [], "y": []})
        self.figure = _figure("Phase portrait", "z1", "z2", height)
        _legend_above(self.figure, [
            ("sample paths", self.figure.line(x="x", y="y", source=self.paths, color=BLUE,
                                              line_alpha=0.4)),
            ("mean", self.figure.line(x="x", y="y", source=self.mean, color="#0b3d91",
                                      line_width=2.5)),
            ("start", self.figure.scatter(x="x", y="y", source=self.start, size=9,
                                          color="#d62728"))])

    def update(self, samples: np.ndarray, mean: np.ndarray, i: int = 0, j: int = 1) -> None:
        """``samples (k, T, d)``, ``mean (T, d)``; plot coordinate ``j`` against ``i``."""
        d = mean.shape[-1]
        i, j = min(i, d - 1), min(j, d - 1)
        sl = decimate(mean.shape[0])
        samples = np.asarray(samples)
        self.paths.data = joined_paths(samples[:, sl, i], samples[:, sl, j])
        self.mean.data = {"x": np.asarray(mean[sl, i], np.float64),
                          "y": np.asarray(mean[sl, j], np.float64)}
        self.start.data = {"x": [float(mean[0, i])], "y": [float(mean[0, j])]}
        self.figure.xaxis.axis_label = f"z{i + 1}"
        self.figure.yaxis.axis_label = f"z{j + 1}"


class ForcingPlot:
    """A small preview of f(t), with the trained time range shaded."""

    def __init__(self, trained: tuple[float, float] | None = None, x_range=None,
                 height: int = 160, unit: str = "", name: str = "forcing"):
        self.source = ColumnDataSource({"t": [], "f": []}, name=f"{name}-line")
        self.figure = _figure("Forcing f(t)", "t", f"f [{unit}]" if unit else "f", height, x_range)
        if trained is not None:
            self.figure.add_layout(BoxAnnotation(left=trained[0], right=trained[1],
                                                 fill_color="#2ca02c", fill_alpha=0.07))
        self.figure.line(x="t", y="f", source=self.source, color="#ff7f0e", line_width=2)

    @staticmethod
    def _data(t: np.ndarray, f: np.ndarray) -> dict[str, np.ndarray]:
        sl = decimate(len(t))
        return {"t": np.asarray(t, np.float64)[sl], "f": np.asarray(f, np.float64)[sl]}

    def shows(self, t: np.ndarray, f: np.ndarray) -> bool:
        """Whether the plot already shows ``f`` over ``t`` (then ``update`` is not needed)."""
        new, old = self._data(t, f), self.source.data
        return all(np.array_equal(np.asarray(old.get(k, [])), v, equal_nan=True)
                   for k, v in new.items())

    def update(self, t: np.ndarray, f: np.ndarray) -> None:
        """``t (T,)``, ``f (T,)``."""
        self.source.data = self._data(t, f)


class ErrorPlot:
    """Against the simulator: the error of the mean (scaled by the truth's RMS size over the
    horizon, so it stays finite where the truth passes zero) and the share inside the 90 % band."""

    def __init__(self, x_range=None, height: int = 200, name: str = "error"):
        self.source = ColumnDataSource({"t": [], "err": [], "inside": []}, name=f"{name}-lines")
        self.figure = _figure("Against the simulator", "t", "share", height, x_range)
        _legend_above(self.figure, [
            ("error of the mean ÷ the truth's RMS size over the horizon", self.figure.line(
                x="t", y="err", source=self.source, color="#d62728", line_width=2)),
            ("share of the truth inside the 90 % band", self.figure.line(
                x="t", y="inside", source=self.source, color="#2ca02c", line_width=2))])

    def update(self, t: np.ndarray, rel_error: np.ndarray | None,
               inside: np.ndarray | None) -> None:
        """``t (T,)``; ``rel_error``, ``inside``: ``(T,)`` or ``None`` (cleared)."""
        sl = decimate(len(t))
        n = len(t)
        self.source.data = {"t": np.asarray(t, np.float64)[sl],
                            "err": _nan_if_none(rel_error, n)[sl],
                            "inside": _nan_if_none(inside, n)[sl]}
