"""The Explore view's 2-D field maps: one channel of the prediction at one output time.

The predicted mean and standard deviation side by side and, when the simulator comparison
is on, the truth and the error of the mean (mean − truth) below them. Each map keeps the
field's true shape (equal units on both axes). A map's colour range is fixed over the whole
horizon of what it shows (computed once per prediction and channel, not per frame), so a
colour means the same value in every frame while the player runs; the mean and the truth
share one scale, and signed quantities (the error, a velocity component) get a diverging
scale centred on zero. A click on any map moves the probe, the pixel whose time series the
probe plot shows, marked by a cross on every map.

The component keeps the view's fast path: figures are created once per model; a frame,
channel or probe change only sends new data to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, LinearColorMapper
from bokeh.palettes import Magma256, Viridis256

from app.state.safe_text import md
from app.views.controls import label
from app.views.plots import DIVERGING, FieldPlot, colour_range

__all__ = ["FieldGrid", "FieldMaps", "horizon_colour_ranges"]

#: the frame's width at which a map of aspect 1 is laid out (for its height)
_MAP_WIDTH = 460
#: the pixels of a figure around its frame (title, colour bar, x axis)
_CHROME = 130


@dataclass(frozen=True)
class FieldGrid:
    """Where the pixels of a ``(C, H, W)`` field state lie.

    Attributes:
        names: ``(C,)`` channel names, e.g. ``("u", "v", "p")``.
        ys: ``(H,)`` the y coordinate of each row; xs: ``(W,)`` the x coordinate of each
            column (either may decrease, e.g. image rows counted from the top).
    """

    names: tuple[str, ...]
    ys: np.ndarray
    xs: np.ndarray

    @classmethod
    def of(cls, state_shape: Sequence[int], system=None) -> FieldGrid:
        """The grid of a state of shape ``(H, W)`` or ``(C, H, W)`` (more leading axes are
        counted as channels): coordinates and channel names from ``system`` (an
        :class:`engine.systems.System`) when it declares them for this shape, else pixel
        indices and ``channel 1``, …

        Raises:
            ValueError: a state with fewer than two axes.
        """
        shape = tuple(int(n) for n in state_shape)
        if len(shape) < 2:
            raise ValueError(f"a 2-D field state needs (H, W) or (C, H, W), got {shape}")
        n_ch, (h, w) = math.prod(shape[:-2]), shape[-2:]
        names: tuple[str, ...] = ()
        ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
        if system is not None:
            grid = system.grid()
            if np.size(grid.get("y", ())) == h and np.size(grid.get("x", ())) == w:
                ys = np.asarray(grid["y"], dtype=np.float64)
                xs = np.asarray(grid["x"], dtype=np.float64)
            names = tuple(str(n) for n in getattr(system, "channel_names", tuple)())
        if len(names) != n_ch:
            names = tuple(f"channel {c + 1}" for c in range(n_ch))
        return cls(names=names, ys=ys, xs=xs)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return len(self.names), self.ys.size, self.xs.size

    def flat_index(self, channel: int, row: int, col: int) -> int:
        """The index of pixel ``(row, col)`` of ``channel`` in the flattened state."""
        n_ch, h, w = self.shape
        if not (0 <= channel < n_ch and 0 <= row < h and 0 <= col < w):
            raise ValueError(f"pixel (channel {channel}, row {row}, col {col}) is outside "
                             f"the field of shape {self.shape}")
        return (channel * h + row) * w + col

    def unflat(self, k: int) -> tuple[int, int, int]:
        """``(channel, row, col)`` of flat index ``k`` (clipped into the field)."""
        n_ch, h, w = self.shape
        k = int(min(max(int(k), 0), n_ch * h * w - 1))
        return k // (h * w), (k // w) % h, k % w

    def pixel_at(self, x: float, y: float) -> tuple[int, int] | None:
        """``(row, col)`` of the pixel holding the point ``(x, y)`` (data coordinates), or
        ``None`` for a point outside the map or not finite (clicks are untrusted input)."""
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            return None
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        hits = []
        for value, coords in ((y, self.ys), (x, self.xs)):
            half = abs(float(coords[-1] - coords[0])) / max(coords.size - 1, 1) / 2 or 0.5
            if not coords.min() - half <= value <= coords.max() + half:
                return None
            hits.append(int(np.argmin(np.abs(coords - value))))
        return hits[0], hits[1]

    def extents(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((x_first, x_last), (y_first, y_last))`` pixel centres, increasing."""
        return ((float(self.xs.min()), float(self.xs.max())),
                (float(self.ys.min()), float(self.ys.max())))

    def oriented(self, image: np.ndarray) -> np.ndarray:
        """``image (H, W)`` with rows of increasing y and columns of increasing x (as a
        Bokeh image is drawn: first row at the bottom)."""
        if self.ys.size > 1 and self.ys[-1] < self.ys[0]:
            image = image[::-1]
        if self.xs.size > 1 and self.xs[-1] < self.xs[0]:
            image = image[:, ::-1]
        return image

    def aspect(self) -> float:
        """Width over height of the map in data units (1 for a single pixel)."""
        (x0, x1), (y0, y1) = self.extents()
        w = (x1 - x0) * self.xs.size / max(self.xs.size - 1, 1) or 1.0
        h = (y1 - y0) * self.ys.size / max(self.ys.size - 1, 1) or 1.0
        return float(w / h)


def horizon_colour_ranges(mean: np.ndarray, std: np.ndarray, truth: np.ndarray | None = None
                          ) -> dict[str, tuple[float, float]]:
    """Colour ranges of one channel over the whole horizon, fixed while the frames change.

    Args:
        mean, std: ``(T, H, W)`` the predicted mean and standard deviation.
        truth: ``(T, H, W)`` the simulator's field, or ``None``.

    Returns:
        ``{"mean": …, "std": …, "error": …}``: the mean's range (covering the truth too,
        which shares the mean's scale; centred on zero when the values take both signs in
        earnest, see :func:`app.views.plots.colour_range`), the std's from zero, and the error's
        (mean − truth, centred on zero; ``(-1, 1)`` without a truth).
    """
    both = mean if truth is None else np.concatenate([np.ravel(mean), np.ravel(truth)])
    std_hi = colour_range(std)[1]
    return {"mean": colour_range(both),
            "std": (0.0, std_hi if std_hi > 0 else 1.0),
            "error": (colour_range(np.asarray(mean) - truth, symmetric=True)
                      if truth is not None else (-1.0, 1.0))}


class FieldMaps:
    """The maps, the channel selector and the probe's pixel of a 2-D field model.

    Args:
        grid: the field's pixels and channel names.
        probe: the view's probe widget (an ``IntSlider`` over flat state indices, bounded);
            a click or a row/column entry sets it, and its watchers refresh the probe plot.
        frame: the view's frame player (output-time index of the full result).
        refresh: called (on the session's thread) when the maps must be drawn again for
            another channel; the view then calls :meth:`show` with its result.
    """

    def __init__(self, grid: FieldGrid, probe: pn.widgets.IntSlider, frame: pn.widgets.Player,
                 refresh: Callable[[], None] | None = None):
        self.grid, self.probe, self.frame, self.refresh = grid, probe, frame, refresh
        n_ch, h, w = grid.shape
        self.channel = pn.widgets.Select(**label("Channel"), options={
            name: c for c, name in enumerate(grid.names)}, value=0, width=120,
            disabled=n_ch == 1)
        self.row = pn.widgets.IntInput(**label(f"Probe row (0–{h - 1})"), start=0, end=h - 1,
                                       value=h // 2, width=120)
        self.col = pn.widgets.IntInput(**label(f"Probe column (0–{w - 1})"), start=0,
                                       end=w - 1, value=w // 2, width=140)
        self.where = pn.pane.Markdown("", width=440, height=40, margin=(22, 10, 0, 10),
                                      styles={"font-size": "12px"})
        self.marker = ColumnDataSource({"x": [], "y": []}, name="probe-marker")
        map_height = int(np.clip(_MAP_WIDTH / grid.aspect(), 90, 360)) + _CHROME
        value_scale = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0)
        x_label, y_label = ("x", "y")

        def field(title: str, name: str, **kw) -> FieldPlot:
            plot = FieldPlot(title, x_label, y_label, name=name, height=map_height,
                             equal_aspect=True, marker=self.marker, **kw)
            plot.on_tap(self.probe_at)
            return plot

        self.plots = {"mean": field("Mean", "mean", mapper=value_scale),
                      "std": field("Std", "std", palette=Magma256),
                      "truth": field("Simulator", "truth", mapper=value_scale),
                      "error": field("Error of the mean (mean − simulator)", "error",
                                     palette=DIVERGING),
                      "pinned": field("Mean − pinned mean", "pindiff", palette=DIVERGING)}
        pane = lambda plot: pn.pane.Bokeh(plot.figure, sizing_mode="stretch_width")  # noqa: E731
        # toggled as a wrapping Column: a Bokeh pane's own `visible` is synced from its figure
        self.truth_row = pn.Column(pn.Row(pane(self.plots["truth"]), pane(self.plots["error"]),
                                          sizing_mode="stretch_width"),
                                   sizing_mode="stretch_width", margin=0, visible=False)
        # while a pin of the whole field fits the result's times (see show)
        self.pin_row = pn.Column(pn.Row(pane(self.plots["pinned"]), sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width", margin=0, visible=False)
        self.panel = pn.Column(
            pn.Row(self.channel, self.row, self.col, self.where, sizing_mode="stretch_width"),
            frame, pn.Row(pane(self.plots["mean"]), pane(self.plots["std"]),
                          sizing_mode="stretch_width"),
            self.truth_row, self.pin_row, sizing_mode="stretch_width")
        self._pin_ranged: tuple | None = None  # (result, pin, channel) of _pin_range
        self._pin_range: tuple[float, float] | None = None
        self._ranged: tuple | None = None  # (result, channel) whose colour ranges are set
        self._ranges: dict[str, tuple[float, float]] = {}
        self._syncing = False  # the inputs are being set from the probe: no feedback
        probe.param.update(start=0, end=max(n_ch * h * w - 1, 1), disabled=False,
                           value=grid.flat_index(0, h // 2, w // 2))
        self._show_probe()
        probe.param.watch(lambda e: self._show_probe(), "value")
        self.row.param.watch(lambda e: self._set_pixel(row=e.new), "value")
        self.col.param.watch(lambda e: self._set_pixel(col=e.new), "value")
        self.channel.param.watch(lambda e: self._on_channel(), "value")

    # ------------------------------------------------------------- probe
    def probe_at(self, x: float, y: float) -> bool:
        """Move the probe to the pixel at ``(x, y)`` (a click on a map, data coordinates);
        ``False`` (and nothing changes) for a point outside the map."""
        pixel = self.grid.pixel_at(x, y)
        if pixel is None:
            return False
        self._set_pixel(*pixel)
        return True

    def _on_channel(self) -> None:
        with pn.io.hold():  # one message: the probe curve and the maps of the new channel
            self._set_pixel()
            if self.refresh is not None:
                self.refresh()

    def _set_pixel(self, row: int | None = None, col: int | None = None) -> None:
        if self._syncing:
            return
        _, h, w = self.grid.shape
        row = self.row.value if row is None else row
        col = self.col.value if col is None else col
        # the inputs are bounded in the page, but a value may still arrive out of range
        row = int(min(max(int(row if row is not None else h // 2), 0), h - 1))
        col = int(min(max(int(col if col is not None else w // 2), 0), w - 1))
        with pn.io.hold():
            self.probe.value = self.grid.flat_index(int(self.channel.value or 0), row, col)

    def _show_probe(self) -> None:
        """Sync the marker, the row/column inputs and the coordinates with the probe."""
        c, row, col = self.grid.unflat(self.probe.value or 0)
        x, y = float(self.grid.xs[col]), float(self.grid.ys[row])
        # held: the probe slider's callback may run without the document lock, where a
        # figure's source changed outside a hold fails in the server
        with pn.io.hold():
            self.marker.data = {"x": [x], "y": [y]}
            self._syncing = True
            try:
                for widget, value in ((self.row, row), (self.col, col), (self.channel, c)):
                    if widget.value != value:
                        widget.value = value
            finally:
                self._syncing = False
            self.where.object = (f"probe **{md(self.grid.names[c])}** at (x, y) = "
                                 f"({x:.3g}, {y:.3g}) · (row, col) = ({row}, {col})")

    def probe_label(self, k: int) -> str:
        """What the probe plot shows for flat index ``k``, e.g. ``v at (x, y) = (1.1, 0.2)``."""
        c, row, col = self.grid.unflat(k)
        return (f"{self.grid.names[c]} at (x, y) = ({self.grid.xs[col]:.3g}, "
                f"{self.grid.ys[row]:.3g})")

    # ------------------------------------------------------------- maps
    def show(self, r, pin=None) -> None:
        """Draw the shown channel of result ``r`` (an :class:`app.state.explore.ExploreResult`) at
        the player's frame; the colour ranges are recomputed only for a new result or
        channel. With ``pin`` (an :class:`app.views.pinning.Pin` of the whole field on the same
        times, see :meth:`~app.views.pinning.Pin.difference`) the mean minus the pinned mean is
        drawn too, on a colour scale fixed over the horizon."""
        c = int(self.channel.value or 0)
        _, h, w = self.grid.shape

        def channel(a: np.ndarray) -> np.ndarray:  # (T, *S) -> (T, H, W) of channel c
            return a.reshape(a.shape[0], -1, h, w)[:, c]

        # the frame counts the full result's output times; a preview holds every
        # decode_stride-th of them, so it shows the nearest one it has
        stride = max(1, int(r.decode_stride))
        if stride == 1:
            self.frame.end = max(len(r.t) - 1, 1)
        i = min(int(round((self.frame.value or 0) / stride)), len(r.t) - 1)
        mean, std = channel(r.mean), channel(r.std)
        truth = channel(r.truth) if r.truth is not None else None
        if self._ranged is None or self._ranged[0] is not r or self._ranged[1] != c:
            self._set_colour_ranges(horizon_colour_ranges(mean, std, truth))
            self._ranged = (r, c)
        name = self.grid.names[c]
        at = f" at t = {r.t[i]:.3g}"
        extents = self.grid.extents()
        shown = {"mean": (mean[i], f"Mean {name}{at}"), "std": (std[i], f"Std {name}{at}")}
        if truth is not None:
            shown["truth"] = (truth[i], f"Simulator {name}{at}")
            shown["error"] = (mean[i] - truth[i], f"Error of the mean {name} (mean − simulator)"
                                                  f"{at}")
        pinned = self._pinned_channel(r, pin, c, channel) if stride == 1 else None
        if pinned is not None and self._pin_range is not None:
            shown["pinned"] = (mean[i] - pinned[i], f"Mean {name} − pinned mean{at}")
        for key, (image, title) in shown.items():
            colours = self._pin_range if key == "pinned" else self._ranges[
                "mean" if key == "truth" else key]
            self.plots[key].update(self.grid.oriented(image), *extents, title=title,
                                   colours=colours)
        self.truth_row.visible = truth is not None
        if self.pin_row.visible != ("pinned" in shown):  # a layout pass: only on a change
            self.pin_row.visible = "pinned" in shown

    def _pinned_channel(self, r, pin, c: int,
                        channel: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
        """``(T, H, W)`` the pinned mean of channel ``c`` when ``pin`` fits ``r``, else
        ``None``; the difference's colour range is computed once per result, pin and
        channel (not per frame)."""
        if pin is None or pin.probe is not None:
            return None
        key = (id(r), id(pin), c)
        if self._pin_ranged != key:
            diff = pin.difference(r)  # (T, N) or None
            self._pin_range = (colour_range(channel(diff), symmetric=True)
                               if diff is not None else None)
            self._pin_ranged = key
        if self._pin_range is None:
            return None
        return channel(pin.mean)

    def _set_colour_ranges(self, ranges: dict[str, tuple[float, float]]) -> None:
        self._ranges = ranges
        lo, hi = ranges["mean"]
        # a diverging palette where the mean's scale is centred on zero (a signed field)
        palette = DIVERGING if math.isclose(lo, -hi) else Viridis256
        mapper = self.plots["mean"].mapper  # shared with the truth map
        if tuple(mapper.palette) != tuple(palette):
            mapper.palette = list(palette)
        for key in ("mean", "std", "error"):
            self.plots[key].set_colour_range(*ranges[key])
