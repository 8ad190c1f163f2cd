"""Plot builders (app/views/plots.py): figures are made once, ``update`` only replaces data."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("bokeh")

from bokeh.events import Tap  # noqa: E402
from bokeh.models import ColumnDataSource, CustomJSTickFormatter, DataRange1d  # noqa: E402

from app.views.plots import (  # noqa: E402
    DIVERGING,
    MIN_HEIGHT,
    Y_LABEL_CHARS,
    ErrorPlot,
    FieldPlot,
    ForcingPlot,
    LatentPlot,
    PhasePlot,
    QoIPlot,
    colour_range,
    decimate,
    joined_paths,
)


def _bands(t):
    return [(np.sin(t) - w, np.sin(t) + w) for w in (0.3, 0.2, 0.1)]


def test_qoi_plot_updates_its_sources_in_place():
    plot = QoIPlot()
    fig, source, paths = plot.figure, plot.source, plot.paths
    t = np.linspace(0, 3, 50)
    plot.update(t, _bands(t), np.sin(t), np.stack([np.sin(t) + 0.05 * k for k in range(4)]))
    assert plot.figure is fig and plot.source is source and plot.paths is paths
    assert np.allclose(source.data["mean"], np.sin(t))
    assert np.allclose(source.data["hi2"] - source.data["lo2"], 0.2)
    # the 4 paths as one line broken by NaNs after each path
    assert paths.data["y"].shape == (4 * 51,) and np.isnan(paths.data["y"][50::51]).all()
    assert np.allclose(paths.data["y"][51:101], np.sin(t) + 0.05)
    assert np.allclose(paths.data["x"][:50], t) and not plot.truth_renderer.visible
    assert np.all(np.isnan(source.data["truth"]))
    plot.update(t, _bands(t), np.cos(t), np.zeros((2, 50)), truth=np.cos(t), title="new")
    assert plot.truth_renderer.visible and np.allclose(source.data["truth"], np.cos(t))
    assert fig.title.text == "new"


def test_joined_paths_rejects_a_flat_array_and_allows_none():
    empty = joined_paths(np.arange(3.0), np.zeros((0, 3)))
    assert empty["x"].shape == empty["y"].shape == (0,)
    with pytest.raises(ValueError, match="must be"):
        joined_paths(np.arange(3.0), np.zeros(3))


def test_long_curves_are_decimated():
    t = np.linspace(0, 1, 2001)
    plot = QoIPlot()
    plot.update(t, _bands(t), t, t[None])
    n = len(plot.source.data["t"])
    assert n <= 400 and plot.source.data["t"][0] == 0.0
    assert decimate(10) == slice(None, None, 1)


def test_field_plot_sets_extent_and_colour_range():
    plot = FieldPlot("mean")
    image = np.arange(12.0).reshape(3, 4)
    plot.update(image, (0.0, 3.0), (0.0, 1.0))
    data = plot.source.data
    assert data["image"][0].shape == (3, 4)
    assert data["x"][0] == pytest.approx(-0.5) and data["dw"][0] == pytest.approx(4.0)
    assert (plot.mapper.low, plot.mapper.high) == (0.0, 11.0)
    sym = FieldPlot("error", symmetric=True)
    sym.update(image - 3.0, (0.0, 3.0), (0.0, 1.0))
    assert sym.mapper.low == -sym.mapper.high == -8.0


def test_latent_phase_forcing_and_error_plots():
    t = np.linspace(0, 1, 30)
    z = np.stack([np.sin(t), np.cos(t), t], axis=-1)
    latent = LatentPlot(3)
    latent.update(t, z - 0.1, z + 0.1, z)
    assert np.allclose(latent.source.data["m2"], t)
    phase = PhasePlot()
    phase.update(np.stack([z, z + 0.1]), z, 0, 2)
    assert np.isnan(phase.paths.data["x"]).sum() == 2 and phase.figure.yaxis[0].axis_label == "z3"
    assert np.allclose(phase.paths.data["y"][31:61], z[:, 2] + 0.1)
    assert phase.start.data["x"] == [0.0]
    forcing = ForcingPlot(trained=(0.0, 1.0))
    assert not forcing.shows(t, 2 * t)
    forcing.update(t, 2 * t)
    assert np.allclose(forcing.source.data["f"], 2 * t)
    assert forcing.shows(t, 2 * t) and not forcing.shows(t, 3 * t)
    error = ErrorPlot()
    error.update(t, 0.1 * t, None)
    assert np.allclose(error.source.data["err"], 0.1 * t)
    assert np.all(np.isnan(error.source.data["inside"]))


def test_colour_range_covers_the_values_and_centres_signed_ones():
    assert colour_range(np.array([[1.0, 3.0], [np.nan, 2.0]])) == (1.0, 3.0)  # NaN ignored
    # both signs in earnest (a velocity component): centred on zero
    assert colour_range(np.array([-0.5, 0.1, 2.0])) == (-2.0, 2.0)
    # a positive field with a small undershoot is not centred
    assert colour_range(np.array([-0.1, 0.5, 2.0])) == (-0.1, 2.0)
    assert colour_range(np.array([-0.1, 2.0]), symmetric=True) == (-2.0, 2.0)
    assert colour_range(np.array([-2.0, 2.0]), symmetric=False) == (-2.0, 2.0)
    lo, hi = colour_range(np.full(4, 5.0))  # a constant field still gets lo < hi
    assert lo < 5.0 < hi
    assert colour_range(np.array([np.nan, np.inf])) == (0.0, 1.0)


def test_the_diverging_palette_runs_from_blue_below_zero_to_red_above():
    def rgb(colour: str) -> tuple[int, ...]:
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))

    low, high = rgb(DIVERGING[0]), rgb(DIVERGING[-1])
    assert low[2] > low[0] and high[0] > high[2]


def test_field_plot_keeps_the_true_aspect_and_a_given_colour_range():
    marker = ColumnDataSource({"x": [1.0], "y": [0.5]})
    plot = FieldPlot("mean", "x", "y", equal_aspect=True, marker=marker)
    fig = plot.figure
    assert fig.match_aspect and fig.aspect_scale == 1.0
    assert isinstance(fig.x_range, DataRange1d) and isinstance(fig.y_range, DataRange1d)
    assert fig.x_range.renderers == [plot.image] == fig.y_range.renderers  # not the marker
    assert any(r.data_source is marker for r in fig.renderers)
    wide = np.arange(4 * 22.0).reshape(4, 22)  # 4 rows of 22 pixels, unit spacing
    plot.update(wide, (0.0, 21.0), (0.0, 3.0), colours=(-100.0, 100.0))
    data = plot.source.data
    assert (data["dw"][0], data["dh"][0]) == (22.0, 4.0)  # drawn 5.5 : 1, as the field is
    assert (plot.mapper.low, plot.mapper.high) == (-100.0, 100.0)  # not the image's own
    plot.update(2 * wide, (0.0, 21.0), (0.0, 3.0), colours=(-100.0, 100.0))
    assert (plot.mapper.low, plot.mapper.high) == (-100.0, 100.0)
    plot.update(wide, (0.0, 21.0), (0.0, 3.0))  # no range given: the image's own
    assert (plot.mapper.low, plot.mapper.high) == (0.0, 87.0)
    clicks = []
    plot.on_tap(lambda x, y: clicks.append((x, y)))
    fig._trigger_event(Tap(fig, x=3.0, y=1.5))
    assert clicks == [(3.0, 1.5)]


def test_shared_figure_options_leave_room_for_title_ticks_and_toolbar():
    for plot in (ForcingPlot(height=160), QoIPlot(), FieldPlot("map")):
        fig = plot.figure
        assert fig.height >= MIN_HEIGHT and fig.toolbar_location == "right"
        axis = fig.yaxis[0]
        assert axis.major_label_orientation == "horizontal"
        assert isinstance(axis.formatter, CustomJSTickFormatter)
        assert axis.major_label_text_font == "monospace"


NODE = shutil.which("node") or shutil.which("nodejs")


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the tick formatter's code")
def test_y_tick_labels_have_one_width_whatever_the_numbers():
    """The formatter's JavaScript run as BokehJS runs it: one cache per set of ticks."""
    code = QoIPlot().figure.yaxis[0].formatter.code
    script = (
        "const f = new Function('tick', 'index', 'ticks', 'n', process.argv[1]);\n"
        "const out = JSON.parse(process.argv[2]).map((ticks) => {\n"
        "  const cache = {};\n"
        "  return ticks.map((t, i) => f.call(cache, t, i, ticks, Number(process.argv[3])));\n"
        "});\n"
        "console.log(JSON.stringify(out));")
    sets = [[0.5, 1.0, 1.5], [-0.25, 0.0, 0.25, 0.5], [-1e-5, 0.0, 1e-5], [0.0, 2e5, 4e5],
            [1000.5, 1001.0, 1001.5], [-3.0000000000000004e-17, 0.1, 0.2]]
    run = subprocess.run([NODE, "-e", script, code, json.dumps(sets), str(Y_LABEL_CHARS)],
                         capture_output=True, text=True, timeout=60, check=True)
    labels = json.loads(run.stdout)
    assert {len(label) for group in labels for label in group} == {Y_LABEL_CHARS}
    assert [s.strip() for s in labels[0]] == ["0.5", "1.0", "1.5"]
    assert [s.strip() for s in labels[1]] == ["-0.25", "0.00", "0.25", "0.50"]
    assert labels[2][0].strip() == "-1.0e-5" and labels[3][1].strip() == "2.0e+5"
    assert labels[5][0].strip() == "0.0"  # a rounding residue is not written as -0.0
