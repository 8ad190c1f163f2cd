"""Predictions as labelled xarray data and HoloViews elements (engine.plotting)."""

import numpy as np
import pytest

from engine import StochasticROM
from engine.systems import get_system

xr = pytest.importorskip("xarray")
hv = pytest.importorskip("holoviews")


@pytest.fixture(scope="module")
def burgers_prediction():
    data = get_system("burgers", n_x=64, n_t=41).generate(3, "train", seed=0)
    model = StochasticROM(latent_dim=2, steps=10, window=8, device="cpu", substeps=1).fit(data)
    return model.predict(data.x[:2, 0], mu=data.mu[:2], t=data.t, f=data.f[:2], n_samples=16,
                         seed=0, return_samples=True), data


def test_to_xarray_labels_every_axis(burgers_prediction):
    pred, data = burgers_prediction
    ds = pred.to_xarray()
    assert ds["mean"].dims == ("case", "time", "x")
    assert ds["samples"].dims == ("case", "path", "time", "x")
    assert ds["latent"].dims == ("case", "path", "time", "latent_dim")
    assert list(ds.param.values) == data.param_names
    assert list(ds.forcing_channel.values) == data.forcing_names
    np.testing.assert_allclose(ds.x.values, data.attrs["grid"]["x"])
    np.testing.assert_array_equal(ds["mean"].values, pred.mean)
    np.testing.assert_array_equal(ds["mu"].values, pred.mu)
    np.testing.assert_allclose(ds["quantile_value"].sel(quantile=0.5).values,
                               np.quantile(pred.samples, 0.5, axis=1), rtol=1e-5, atol=1e-6)
    assert ds.attrs["system"] == "burgers" and ds.param.attrs["units"]["nu"]
    # selection by label works as xarray users expect
    assert ds["mean"].sel(case=1).isel(time=-1).shape == (data.state_shape[0],)


def test_to_xarray_of_vectors_and_fields():
    from engine.prediction import Prediction

    def make(shape):
        b, n, t = 1, 3, 4
        return Prediction(t=np.arange(t, dtype=float), mean=np.zeros((b, t, *shape)),
                          std=np.ones((b, t, *shape)), samples=np.zeros((b, n, t, *shape)),
                          latent=np.zeros((b, n, t, 2)), mu=np.zeros((b, 0)), f=np.zeros((b, t, 0)))
    assert make((2,)).to_xarray()["mean"].dims == ("case", "time", "component")
    assert make((3, 5, 6)).to_xarray()["std"].dims == ("case", "time", "channel", "y", "x")


def test_interval_bands_draws_arrays_and_checks_their_shapes():
    from engine import plotting

    t = np.linspace(0.0, 1.0, 6)
    mean, truth = np.sin(t), np.cos(t)
    samples = np.stack([t, 2 * t, 3 * t])  # (k, T)
    overlay = plotting.interval_bands(t, mean, [(mean - 2, mean + 2), (mean - 1, mean + 1)],
                                      ["95 %", "50 %"], samples=samples, truth=truth, label="u")
    areas = [el for el in overlay if isinstance(el, hv.Area)]
    assert [a.label for a in areas] == ["95 %", "50 %"]
    np.testing.assert_allclose(areas[0].dimension_values(2), mean + 2)
    (paths,) = [el for el in overlay if el.label == "sample paths"]
    drawn = paths.dimension_values(1).reshape(3, t.size + 1)  # a NaN after each path
    np.testing.assert_allclose(drawn[:, :-1], samples)
    assert np.isnan(drawn[:, -1]).all()
    (drawn_truth,) = [el for el in overlay if el.label == "truth"]
    np.testing.assert_allclose(drawn_truth.dimension_values(1), truth)
    with pytest.raises(ValueError, match="labels"):
        plotting.interval_bands(t, mean, [(mean, mean)], ["a", "b"])
    with pytest.raises(ValueError, match="shape of t"):
        plotting.interval_bands(t, mean[:3], [])
    with pytest.raises(ValueError, match="shape of t"):
        plotting.interval_bands(t, mean, [(mean[:2], mean)])


def test_holoviews_elements(burgers_prediction):
    from engine import plotting

    pred, _ = burgers_prediction
    overlay = plotting.bands(pred, case=1, index=10)
    areas = [el for el in overlay if isinstance(el, hv.Area)]
    assert len(areas) == len(plotting.BAND_LEVELS)
    lo, hi = pred.quantiles([0.025, 0.975])[:, 1, :, 10]
    widest = areas[0]  # widest first, so the narrower bands are drawn over it
    np.testing.assert_allclose(widest.dimension_values(1), lo, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(widest.dimension_values(2), hi, rtol=1e-5, atol=1e-6)
    assert "nu = " in overlay.opts.get().kwargs["title"]
    layout = plotting.bands(pred) + plotting.latent_phase(pred) + plotting.field(pred)
    assert isinstance(layout, hv.Layout) and len(layout) == 3
    assert len(plotting.sample_paths(pred, n=5)) == 5
    with pytest.raises(ValueError, match="index"):
        plotting.bands(pred, index=10_000)
    with pytest.raises(ValueError, match="case"):
        plotting.latent_phase(pred, case=5)
