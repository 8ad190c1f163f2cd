"""Post-hoc calibration of the uncertainty scale (engine.calibration)."""

import json

import numpy as np
import pytest
from problems import duffing_dataset

from engine import StochasticROM, load_model
from engine.cli import main as cli_main
from engine.metrics import interval_coverage


@pytest.fixture(scope="module")
def fitted():
    model = StochasticROM(latent_dim=2, steps=60, window=16, windows_per_step=2,
                          drift_hidden=(16,), log_every=20, seed=0)
    return model.fit(duffing_dataset(6, n_times=41, seed=0))


def _coverage(model, data, level):
    pred = model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=64, seed=0)
    return interval_coverage(pred.samples, data.x, level)


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_calibration_hits_the_level_on_the_calibration_set(fitted, level):
    val = duffing_dataset(6, n_times=41, seed=1)
    result = fitted.calibrate(val, level=level, n_samples=64, seed=0)
    assert result["coverage_after"] == pytest.approx(level, abs=0.02)
    assert fitted.uncertainty_scale_ == result["scale"] > 0
    # the scale widens or narrows the bands in the right direction
    if result["coverage_before"] < level:
        assert result["scale"] > 1
    else:
        assert result["scale"] < 1
    # a held-out set lands near the level too (not exactly: different trajectories)
    assert abs(_coverage(fitted, duffing_dataset(6, n_times=41, seed=2), level) - level) < 0.2


def test_scale_changes_spread_not_mean(fitted):
    data = duffing_dataset(2, n_times=41, seed=3)
    fitted.uncertainty_scale_ = 1.0
    a = fitted.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=256, seed=5)
    fitted.uncertainty_scale_ = 0.25
    b = fitted.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=256, seed=5)
    fitted.uncertainty_scale_ = 1.0
    assert np.all(b.std[:, 1:] < a.std[:, 1:])
    assert np.abs(a.mean - b.mean).max() < 0.5 * np.abs(a.std).max()


def test_cli_calibrate_saves_the_scale(tmp_path, fitted):
    fitted.save(tmp_path / "m")
    val = duffing_dataset(6, n_times=41, seed=1)
    val.save(tmp_path / "val.npz")
    assert cli_main(["calibrate", str(tmp_path / "m"), str(tmp_path / "val.npz"),
                     "--level", "0.9", "--device", "cpu"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["calibration"]["level"] == 0.9
    loaded = load_model(tmp_path / "m")
    assert loaded.uncertainty_scale_ == pytest.approx(config["calibration"]["scale"])


def test_a_bad_saved_scale_is_a_clear_error(tmp_path, fitted):
    from engine import ModelFileError

    fitted.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["calibration"] = {"scale": -1}
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="scale"):
        load_model(tmp_path / "m")


def test_spread_mode_keeps_the_mean_and_scales_every_paths_distance_to_it(fitted):
    data = duffing_dataset(2, n_times=41, seed=3)
    args = (data.x[:, 0], data.mu, data.t, data.f)
    try:
        fitted.uncertainty_scale_, fitted.uncertainty_mode_ = 1.0, "noise"
        plain = fitted.predict(*args, n_samples=64, seed=5, quantiles=[0.05, 0.95])
        fitted.uncertainty_scale_, fitted.uncertainty_mode_ = 2.5, "spread"
        wide = fitted.predict(*args, n_samples=64, seed=5, quantiles=[0.05, 0.95])
        deterministic = fitted.predict(*args, n_samples=3, seed=5, deterministic=True)
        # the noise sources are not scaled: the latent paths are the uncalibrated ones
        np.testing.assert_array_equal(wide.latent, plain.latent)
    finally:
        fitted.uncertainty_scale_, fitted.uncertainty_mode_ = 1.0, "noise"
    np.testing.assert_allclose(wide.mean, plain.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(wide.std, 2.5 * plain.std, rtol=1e-6, atol=1e-12)
    centre = plain.mean[:, None]
    size = np.abs(plain.samples).max()  # float32 paths: compare at its rounding
    np.testing.assert_allclose(wide.samples - centre, 2.5 * (plain.samples - centre),
                               rtol=0, atol=1e-5 * size)
    lo, hi = wide.quantiles([0.05, 0.95])
    plo, phi = plain.quantiles([0.05, 0.95])
    assert np.all(hi - lo >= phi - plo - 1e-9) and np.any(hi - lo > 2 * (phi - plo))
    assert np.all(deterministic.std == 0)  # a deterministic rollout has nothing to widen


def test_spread_calibration_hits_the_level_and_is_saved(tmp_path, fitted):
    val = duffing_dataset(6, n_times=41, seed=1)
    try:
        result = fitted.calibrate(val, level=0.9, n_samples=64, seed=0, mode="spread")
        assert result["mode"] == "spread"
        assert result["coverage_after"] == pytest.approx(0.9, abs=0.02)
        # fitted exactly from one prediction: the reported coverage is the calibrated one's
        pred = fitted.predict(val.x[:, 0], val.mu, val.t, val.f, n_samples=64, seed=0,
                              quantiles=[0.05, 0.95])
        lo, hi = pred.quantiles([0.05, 0.95])
        assert np.mean((val.x >= lo) & (val.x <= hi)) == pytest.approx(result["coverage_after"],
                                                                      abs=1e-9)
        fitted.save(tmp_path / "m")
    finally:
        fitted.uncertainty_scale_, fitted.uncertainty_mode_ = 1.0, "noise"
        fitted.calibration_ = {}
    loaded = load_model(tmp_path / "m")
    assert loaded.uncertainty_mode_ == "spread"
    assert loaded.uncertainty_scale_ == pytest.approx(result["scale"])
    with pytest.raises(ValueError, match="mode"):
        fitted.calibrate(val, mode="both")
    # a hand-edited mode is refused at load, with the field named
    from engine import ModelFileError

    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["calibration"]["mode"] = "<b>wide</b>"
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="calibration mode"):
        load_model(tmp_path / "m")


def test_cli_calibrate_takes_the_spread_mode(tmp_path, fitted, capsys):
    fitted.save(tmp_path / "m")
    duffing_dataset(6, n_times=41, seed=1).save(tmp_path / "val.npz")
    assert cli_main(["calibrate", str(tmp_path / "m"), str(tmp_path / "val.npz"),
                     "--mode", "spread", "--device", "cpu"]) == 0
    assert "spread about the mean" in capsys.readouterr().err
    assert load_model(tmp_path / "m").uncertainty_mode_ == "spread"


def test_lead_mode_covers_the_level_in_every_bin_of_lead_time_and_keeps_the_mean(tmp_path, fitted):
    """``mode='lead'``: one factor per bin of lead time, fitted exactly from one prediction
    (the coverage it reports is that of a prediction with those factors), the mean
    unchanged, saved and loaded; a hand-edited factor list is refused at load."""
    from engine import ModelFileError
    from engine.calibration import lead_time_factors

    val = duffing_dataset(6, n_times=41, seed=1)
    args = (val.x[:, 0], val.mu, val.t, val.f)
    plain = fitted.predict(*args, n_samples=64, seed=0, quantiles=[0.05, 0.95])
    try:
        result = fitted.calibrate(val, level=0.9, n_samples=64, seed=0, mode="lead")
        assert result["mode"] == "lead" and len(result["lead_times"]) == 9  # lead 0 + 8 bins
        assert result["lead_times"][0] == 0 and np.all(np.diff(result["lead_times"]) > 0)
        wide = fitted.predict(*args, n_samples=64, seed=0, quantiles=[0.05, 0.95])
        fitted.save(tmp_path / "m")
    finally:
        fitted.uncertainty_scale_, fitted.uncertainty_mode_ = 1.0, "noise"
        fitted.calibration_ = {}
    np.testing.assert_allclose(wide.mean, plain.mean, rtol=0, atol=1e-12)
    lo, hi = wide.quantiles([0.05, 0.95])
    inside = (val.x >= lo) & (val.x <= hi)
    assert inside.mean() == pytest.approx(result["coverage_after"], abs=1e-9)
    # in every bin of lead time after the start, the level is met (at least; ties aside)
    factors = lead_time_factors(val.t - val.t[0], result["lead_times"], result["lead_scales"])
    np.testing.assert_allclose(wide.std, plain.std * factors[None, :, None], rtol=1e-5,
                               atol=1e-12)
    per_time = inside.mean(axis=(0, 2))
    for a, b in zip(range(1, 41, 5), range(6, 42, 5)):
        assert per_time[a:b].mean() >= 0.8
    loaded = load_model(tmp_path / "m")
    assert loaded.uncertainty_mode_ == "lead"
    again = loaded.predict(*args, n_samples=64, seed=0, quantiles=[0.05, 0.95])
    np.testing.assert_allclose(again.quantiles([0.95])[0], hi, rtol=1e-5, atol=1e-6)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["calibration"]["lead_scales"][2] = -1.0
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="scale"):
        load_model(tmp_path / "m")
    config["calibration"]["lead_scales"] = [1.0]
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="equal length"):
        load_model(tmp_path / "m")
