"""Plot builders (app/plots.py): figures are made once, ``update`` only replaces data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bokeh")

from app.plots import (  # noqa: E402
    ErrorPlot,
    FieldPlot,
    ForcingPlot,
    LatentPlot,
    PhasePlot,
    QoIPlot,
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
