"""The pinned reference beyond the probe plot (issue 17): the latent plot and the phase
portrait draw the pinned latent mean, and a field model gets a map of the current mean minus
the pinned one (app/views/pinning.py, app/views/explore.py, app/views/field_maps.py); nothing is sent on a
slider move that the pin does not need."""

from __future__ import annotations

import numpy as np
import pytest
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

from app.state import catalog
from app.state.explore import QUANTILE_LEVELS, ExploreResult, ExploreState
from app.views.pinning import Pin

pn = pytest.importorskip("panel")


def _result(n_t: int = 6, n: int = 4, d: int = 3, shift: float = 0.0,
            t_end: float = 1.0) -> ExploreResult:
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(n_t, n)) + shift
    levels = np.array(QUANTILE_LEVELS)
    latent = rng.normal(size=(n_t, d))
    return ExploreResult(
        t=np.linspace(0, t_end, n_t), mean=mean, std=np.ones_like(mean), levels=levels,
        quantiles=mean[None] + (levels - 0.5)[:, None, None], samples=mean[None],
        latent_mean=latent, latent_quantiles=latent[None] + (levels - 0.5)[:, None, None],
        latent_samples=latent[None], forcing=np.zeros((n_t, 1)), mu=np.array([0.03]),
        seconds=0.01, inputs={"model_path": "/m", "mu": {"nu": 0.03}})


def test_the_difference_is_defined_only_on_the_same_times_and_whole_fields():
    pinned = _result()
    pin = Pin.of(pinned, probe=1)
    now = _result(shift=0.5)
    np.testing.assert_allclose(pin.difference(now), now.mean - pinned.mean, rtol=1e-6)
    np.testing.assert_allclose(pin.latent_mean, pinned.latent_mean, rtol=1e-6)
    assert pin.difference(_result(t_end=2.0)) is None  # another horizon
    assert pin.difference(_result(n_t=7)) is None
    assert pin.difference(_result(n=5)) is None
    probe_only = Pin.of(pinned, probe=1, max_values=2)  # a large field keeps one probe
    assert probe_only.difference(now) is None


def test_the_latent_overlay_draws_the_pin_and_sends_only_on_a_change():
    from app.views.pinning import LatentPinOverlay
    from app.views.plots import LatentPlot, PhasePlot

    latent, phase = LatentPlot(3), PhasePlot()
    overlay = LatentPinOverlay(latent.figure, phase.figure)
    assert not any(item.visible for item in overlay.items)
    r = _result()
    pin = Pin.of(r, probe=0)
    overlay.show(pin, 0, 2)
    x, y = overlay.latent.data["x"], overlay.latent.data["y"]
    assert len(x) == 3 * (len(r.t) + 1) and np.isnan(y[len(r.t)])  # one NaN-broken line
    np.testing.assert_allclose(y[: len(r.t)], r.latent_mean[:, 0], rtol=1e-6)
    np.testing.assert_allclose(overlay.phase.data["y"], r.latent_mean[:, 2], rtol=1e-6)
    assert all(item.visible for item in overlay.items)
    sent = overlay.latent.data
    overlay.show(pin, 0, 2)  # nothing moved: nothing sent
    assert overlay.latent.data is sent
    overlay.show(pin, 1, 0)  # other phase axes
    np.testing.assert_allclose(overlay.phase.data["x"], r.latent_mean[:, 1], rtol=1e-6)
    overlay.show(None, 1, 0)
    assert len(overlay.latent.data["x"]) == 0 and not any(i.visible for i in overlay.items)


@pytest.fixture
def view(tiny_model_dir):  # noqa: F811
    from app.views.explore import ExploreView

    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=16), background=False)


def test_a_field_model_shows_the_difference_from_the_pin_while_it_fits(view):
    s, pinning = view.state, view._pinning
    assert view._kind == "field1d" and not view._pin_map_pane.visible
    pin_image = view._plots["pin_map"].source
    before = pin_image.data
    lo, hi = s.mu_specs[0].trained
    s.set_mu("nu", lo)  # no pin: the difference map is not touched
    assert pin_image.data is before and not view._pin_map_pane.visible

    pinning._pin_button.clicks += 1
    assert view._pin_map_pane.visible
    np.testing.assert_allclose(pin_image.data["image"][0], 0.0, atol=1e-6)  # itself
    assert len(pinning.latent_overlay.latent.data["x"]) > 0
    assert pinning.latent_overlay.items[0].visible

    s.set_mu("nu", hi)  # a new prediction: the map shows how far it moved
    diff = pin_image.data["image"][0]
    mean = s.result.mean.T - pinning.pin.mean.T
    np.testing.assert_allclose(diff, mean, rtol=1e-5, atol=1e-6)
    assert np.abs(diff).max() > 0

    s.horizon = float(s.horizon) * 1.5  # other output times: no value-by-value difference
    assert not view._pin_map_pane.visible
    s.horizon = float(s.model.t_range_[1])
    assert view._pin_map_pane.visible
    pinning._clear_button.clicks += 1
    assert not view._pin_map_pane.visible
    assert len(pinning.latent_overlay.latent.data["x"]) == 0


def test_a_2d_field_shows_the_pinned_difference_at_the_frame():
    from app.views.field_maps import FieldGrid, FieldMaps

    c, h, w, n_t = 2, 3, 4, 5
    grid = FieldGrid(names=("u", "v"), ys=np.arange(h, dtype=float), xs=np.arange(w, dtype=float))
    maps = FieldMaps(grid, pn.widgets.IntSlider(start=0, end=1, value=0),
                     pn.widgets.Player(start=0, end=1, value=0))

    def field(shift: float) -> ExploreResult:
        r = _result(n_t=n_t, n=c * h * w, shift=shift)
        r.mean = r.mean.reshape(n_t, c, h, w)
        r.std = np.ones_like(r.mean)
        r.quantiles = r.mean[None] + (r.levels - 0.5)[:, None, None, None, None]
        return r

    pinned, now = field(0.0), field(0.7)
    pin = Pin.of(pinned, probe=0)
    maps.show(now)  # no pin: the map stays hidden
    assert not maps.pin_row.visible
    maps.channel.value = 1
    maps.frame.value = 3
    maps.show(now, pin)
    assert maps.pin_row.visible
    image = maps.plots["pinned"].source.data["image"][0]
    expected = grid.oriented(now.mean[3, 1] - pinned.mean[3, 1])
    np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-6)
    lo, hi = maps.plots["pinned"].mapper.low, maps.plots["pinned"].mapper.high
    assert lo == pytest.approx(-hi) and hi >= np.abs(now.mean[:, 1] - pinned.mean[:, 1]).max() - 1e-6
    maps.frame.value = 4
    maps.show(now, pin)  # another frame: the same colour scale
    assert (maps.plots["pinned"].mapper.low, maps.plots["pinned"].mapper.high) == (lo, hi)
    maps.show(now, Pin.of(pinned, probe=0, max_values=2))  # a probe-only pin: no map
    assert not maps.pin_row.visible
