"""The Explore view's 2-D field maps (app/views/field_maps.py): true aspect, colours fixed over the
horizon, the channel selector, the truth and error maps, the probe chosen by a click."""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from bokeh.events import Tap  # noqa: E402

from app.state.explore import ExploreResult  # noqa: E402
from app.views.field_maps import FieldGrid, FieldMaps, horizon_colour_ranges  # noqa: E402
from app.views.plots import DIVERGING  # noqa: E402
from engine.systems import get_system  # noqa: E402

C, H, W, T = 3, 4, 6, 5


def _result(truth: bool = False, seed: int = 0) -> ExploreResult:
    """A prediction of a (3, 4, 6) field over 5 times whose channels differ in scale and sign:
    channel 0 positive and growing in time, channel 1 signed, channel 2 large."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, T)
    mean = np.empty((T, C, H, W))
    mean[:, 0] = 1.0 + t[:, None, None] * np.arange(H * W).reshape(H, W)
    mean[:, 1] = rng.standard_normal((T, H, W))
    mean[:, 2] = 100.0 + rng.random((T, H, W))
    std = 0.1 * np.abs(mean) + 0.01
    levels = np.array([0.5])
    return ExploreResult(
        t=t, mean=mean, std=std, levels=levels, quantiles=mean[None], samples=mean[None],
        latent_mean=np.zeros((T, 2)), latent_quantiles=np.zeros((1, T, 2)),
        latent_samples=np.zeros((1, T, 2)), forcing=np.zeros((T, 0)), mu=np.zeros(0),
        seconds=0.0, truth=mean + 0.5 * rng.standard_normal(mean.shape) if truth else None)


def _grid() -> FieldGrid:
    # physical coordinates: columns 0.2 apart, rows 0.1 apart (W·0.2 = 1.2 by H·0.1 = 0.4)
    return FieldGrid(names=("u", "v", "p"), ys=0.05 + 0.1 * np.arange(H),
                     xs=0.1 + 0.2 * np.arange(W))


def _maps(grid: FieldGrid | None = None):
    probe = pn.widgets.IntSlider(start=0, end=1, value=0)
    frame = pn.widgets.Player(start=0, end=1, value=0)
    refreshed: list[int] = []
    maps = FieldMaps(grid or _grid(), probe, frame, refresh=lambda: refreshed.append(1))
    return maps, probe, frame, refreshed


def test_the_grid_takes_names_and_coordinates_from_the_system():
    system = get_system("cylinder", "small")
    grid = FieldGrid.of(system.state_shape, system)
    assert grid.names == ("u", "v", "p") and grid.shape == (3, 16, 88)
    # the channel is 2.2 long and 0.41 high: drawn 5.4 : 1, not as a square of pixels
    assert grid.aspect() == pytest.approx(2.2 / 0.41, rel=1e-6)
    rd = get_system("reaction_diffusion", "small", channels="uv")
    assert FieldGrid.of(rd.state_shape, rd).names == ("u", "v")
    custom = FieldGrid.of((2, 5, 7))  # no simulator: pixel indices, numbered channels
    assert custom.names == ("channel 1", "channel 2") and custom.aspect() == pytest.approx(7 / 5)
    assert FieldGrid.of((5, 7)).shape == (1, 5, 7)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        FieldGrid.of((12,))


def test_pixels_from_clicks_are_checked_and_bounded():
    grid = _grid()
    assert grid.pixel_at(0.1, 0.05) == (0, 0)
    assert grid.pixel_at(0.92, 0.26) == (2, 4)  # nearest pixel centre
    assert grid.pixel_at(1.19, 0.39) == (3, 5)  # inside the last pixel's half width
    for x, y in ((1.25, 0.2), (-0.05, 0.2), (0.5, 0.45), (np.nan, 0.1), (0.1, np.inf),
                 ("1e400", 0.1), (None, 0.2)):
        assert grid.pixel_at(x, y) is None, (x, y)
    k = grid.flat_index(2, 3, 5)
    assert k == C * H * W - 1 and grid.unflat(k) == (2, 3, 5)
    assert grid.unflat(10**9) == (2, 3, 5) and grid.unflat(-4) == (0, 0, 0)
    with pytest.raises(ValueError, match="outside the field"):
        grid.flat_index(3, 0, 0)


def test_rows_counted_from_the_top_are_drawn_upright():
    grid = FieldGrid(names=("image",), ys=np.array([1.0, 0.5, 0.0]), xs=np.arange(2.0))
    image = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # first row at y = 1 (the top)
    np.testing.assert_array_equal(grid.oriented(image), image[::-1])
    assert grid.pixel_at(0.0, 0.9) == (0, 0) and grid.extents() == ((0.0, 1.0), (0.0, 1.0))


def test_horizon_colour_ranges():
    r = _result(truth=True)
    mean, std, truth = r.mean[:, 1], r.std[:, 1], r.truth[:, 1]
    ranges = horizon_colour_ranges(mean, std, truth)
    both = np.concatenate([mean.ravel(), truth.ravel()])
    m = max(-both.min(), both.max())  # a signed field: centred on zero
    assert ranges["mean"] == pytest.approx((-m, m))
    assert ranges["std"] == pytest.approx((0.0, std.max()))
    e = np.abs(mean - truth).max()
    assert ranges["error"] == pytest.approx((-e, e))
    positive = horizon_colour_ranges(r.mean[:, 0], r.std[:, 0])
    assert positive["mean"] == pytest.approx((r.mean[:, 0].min(), r.mean[:, 0].max()))


def test_colours_stay_fixed_while_the_frames_change():
    maps, probe, frame, _ = _maps()
    r = _result()
    maps.show(r)
    assert frame.end == T - 1
    mean = maps.plots["mean"]
    first = np.array(mean.source.data["image"][0])
    scale = (mean.mapper.low, mean.mapper.high)
    # channel 0 over the whole horizon, not the first frame's range
    assert scale == pytest.approx((r.mean[:, 0].min(), r.mean[:, 0].max()))
    assert scale[1] > first.max() + 1
    for i in range(1, T):
        frame.value = i
        maps.show(r)
        np.testing.assert_allclose(mean.source.data["image"][0], r.mean[i, 0])
        assert (mean.mapper.low, mean.mapper.high) == scale
    assert maps.plots["std"].mapper.low == 0.0
    assert mean.figure.title.text == f"Mean u at t = {r.t[-1]:.3g}"
    assert not maps.truth_row.visible
    maps.show(_result(seed=1))  # a new prediction: its own range (channel 0 is the same)
    assert (mean.mapper.low, mean.mapper.high) == scale


def test_the_channel_selector_shows_another_channel_at_the_same_probe_pixel():
    maps, probe, frame, refreshed = _maps()
    grid = maps.grid
    r = _result()
    maps.show(r)
    assert list(maps.channel.options) == ["u", "v", "p"]
    maps.probe_at(0.5, 0.25)  # (row 2, col 2)
    assert probe.value == grid.flat_index(0, 2, 2)
    maps.channel.value = 2
    assert refreshed == [1]  # the view is asked to draw the maps again
    assert probe.value == grid.flat_index(2, 2, 2)  # same pixel, new channel
    maps.show(r)
    mean = maps.plots["mean"]
    np.testing.assert_allclose(mean.source.data["image"][0], r.mean[0, 2])
    assert (mean.mapper.low, mean.mapper.high) == pytest.approx(
        (r.mean[:, 2].min(), r.mean[:, 2].max()))
    assert "Mean p" in mean.figure.title.text
    assert maps.probe_label(probe.value) == "p at (x, y) = (0.5, 0.25)"
    maps.channel.value = 1  # a signed channel: a scale centred on zero, diverging colours
    maps.show(r)
    assert mean.mapper.low == -mean.mapper.high and tuple(mean.mapper.palette) == DIVERGING


def test_a_click_on_a_map_moves_the_probe_and_its_marks():
    maps, probe, _, _ = _maps()
    grid = maps.grid
    maps.show(_result())
    fig = maps.plots["std"].figure
    fig._trigger_event(Tap(fig, x=1.1, y=0.34))  # a click in the browser: pixel (3, 5)
    assert probe.value == grid.flat_index(0, 3, 5)
    assert maps.marker.data == {"x": [pytest.approx(1.1)], "y": [pytest.approx(0.35)]}
    assert (maps.row.value, maps.col.value) == (3, 5)
    assert "(row, col) = (3, 5)" in maps.where.object and "(x, y) = (1.1, 0.35)" in maps.where.object
    before = probe.value
    fig._trigger_event(Tap(fig, x=5.0, y=0.2))  # outside the map: ignored
    fig._trigger_event(Tap(fig, x=float("nan"), y=0.2))
    assert probe.value == before
    maps.row.value = 1  # typed in the row input
    assert probe.value == grid.flat_index(0, 1, 5)
    assert maps.marker.data["y"] == [pytest.approx(0.15)]
    # every map marks the probe with the same source (one update moves all the crosses)
    for plot in maps.plots.values():
        assert any(r.data_source is maps.marker for r in plot.figure.renderers)


def test_truth_and_error_maps_show_with_the_simulator():
    maps, _, frame, _ = _maps()
    r = _result(truth=True)
    frame.value = 2
    maps.show(r)
    assert maps.truth_row.visible
    truth, error = maps.plots["truth"], maps.plots["error"]
    np.testing.assert_allclose(truth.source.data["image"][0], r.truth[2, 0])
    np.testing.assert_allclose(error.source.data["image"][0], r.mean[2, 0] - r.truth[2, 0])
    assert truth.mapper is maps.plots["mean"].mapper  # one scale for the mean and the truth
    assert error.mapper.high > 0 and error.mapper.low == -error.mapper.high
    for plot in maps.plots.values():  # equal units on both axes: the field's true shape
        assert plot.figure.match_aspect and plot.equal_aspect
    maps.show(_result())
    assert not maps.truth_row.visible
