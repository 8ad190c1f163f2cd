"""Initial states of the training data kept with a model (engine/initial_states.py)."""

import numpy as np
import pytest
from problems import duffing_dataset, ou_dataset

from engine import ModelFileError, StochasticROM, load_model
from engine.initial_states import (
    INITIAL_STATES_NAME,
    MAX_CASES,
    initial_states_from_dataset,
    load_initial_states,
    save_initial_states,
)


@pytest.fixture(scope="module")
def small_model():
    return StochasticROM(latent_dim=2, steps=4, window=8, windows_per_step=2,
                         drift_hidden=(8,), log_every=4).fit(duffing_dataset(12, n_times=21))


def test_fit_keeps_spread_initial_windows_their_mu_and_the_forcing_range(small_model):
    data = duffing_dataset(12, n_times=21)
    cases = small_model.initial_states_
    assert cases.n_cases == MAX_CASES and cases.index[0] == 0 and cases.index[-1] == 11
    assert cases.x0.shape == (MAX_CASES, 1, 2)
    np.testing.assert_array_equal(cases.x0[:, 0], data.x[cases.index, 0])
    np.testing.assert_array_equal(cases.mu, data.mu[cases.index])
    assert cases.f_range.shape == (1, 2)
    assert cases.f_range[0, 0] == data.f.min() and cases.f_range[0, 1] == data.f.max()


def test_windows_and_models_without_parameters_or_forcing():
    data = ou_dataset(3, n_times=10)
    cases = initial_states_from_dataset(data, n_win=4)
    assert cases.x0.shape == (3, 4, 2) and cases.mu.shape == (3, 0)
    assert cases.f_range.shape == (0, 2)
    np.testing.assert_array_equal(cases.x0, data.x[:, :4])


def test_round_trip_and_prediction_from_a_kept_state(tmp_path, small_model):
    small_model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    a, b = small_model.initial_states_, loaded.initial_states_
    for name in ("x0", "mu", "index", "f_range"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    t = np.linspace(0.0, 10.0, 21)
    pred = loaded.predict(b.x0[2], b.mu[2], t, np.zeros((21, 1)), n_samples=4, seed=0)
    assert np.isfinite(pred.mean).all()


def test_a_model_without_the_file_loads_with_none(tmp_path, small_model):
    small_model.save(tmp_path / "m")
    (tmp_path / "m" / INITIAL_STATES_NAME).unlink()
    assert load_model(tmp_path / "m").initial_states_ is None


def test_saving_a_model_without_states_removes_a_stale_file(tmp_path, small_model):
    small_model.save(tmp_path / "m")
    kept = small_model.initial_states_
    try:
        small_model.initial_states_ = None
        small_model.save(tmp_path / "m")
    finally:
        small_model.initial_states_ = kept
    assert not (tmp_path / "m" / INITIAL_STATES_NAME).exists()


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.__class__(c.x0[:, :, :1], c.mu, c.index, c.f_range), "x0 must be"),
    (lambda c: c.__class__(c.x0, c.mu[:, :0], c.index, c.f_range), "mu must be"),
    (lambda c: c.__class__(c.x0 * np.nan, c.mu, c.index, c.f_range), "NaN"),
    (lambda c: c.__class__(c.x0, c.mu, c.index, c.f_range[:, ::-1] - 1), "low above"),
    (lambda c: c.__class__(c.x0, c.mu, c.index - 1, c.f_range), "index must be"),
])
def test_a_file_that_does_not_fit_the_model_is_refused(tmp_path, small_model, edit, match):
    small_model.save(tmp_path / "m")
    save_initial_states(tmp_path / "m", edit(small_model.initial_states_))
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "m")


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    (tmp_path / INITIAL_STATES_NAME).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_initial_states(tmp_path, (2,), 1, 1)
