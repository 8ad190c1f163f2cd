"""The initial latent state fitted to a window of snapshots through the learned dynamics
(engine.assimilation, StochasticROM(assimilate_iterations=...))."""

import json

import numpy as np
import pytest
import torch
from problems import duffing_dataset

from engine import StochasticROM, load_model
from engine.assimilation import assimilate_initial_latent
from engine.rollout import integrate


@pytest.fixture(scope="module")
def fitted():
    model = StochasticROM(latent_dim=2, n_win=6, steps=60, window=16, windows_per_step=2,
                          drift_hidden=(16,), log_every=20, seed=0)
    return model.fit(duffing_dataset(4, n_times=41, seed=0))


def _window_of(model, z_true, n):
    """Decoded deterministic flow of the model from ``z_true`` at the data's spacing."""
    module = model.module_
    t = torch.arange(n, dtype=torch.float32) * float(model.dt_)
    b, d = z_true.shape
    mu = torch.zeros(b, model.n_params_)
    f = torch.zeros(b, n, model.n_forcing_)
    with torch.no_grad():
        paths = integrate(module.drift, z_true, t, mu, f, torch.zeros(d),
                          torch.zeros(n - 1, 1, b, d), "heun", 1)
        frames = module.decode(paths.reshape(b * n, d)).view(b, n, -1)
    return t, mu, f, frames


def test_the_fit_finds_the_state_that_made_the_window(fitted):
    z_true = torch.tensor([[0.3, -0.2], [-0.4, 0.5]])
    t, mu, f, frames = _window_of(fitted, z_true, 6)
    prior_mean = z_true + torch.tensor([[0.8, -0.6], [0.5, 0.7]])
    prior_log_var = torch.full_like(z_true, np.log(100.0))  # a weak prior: the data decide
    mean, log_var = assimilate_initial_latent(
        fitted.module_, frames, torch.tensor([6, 6]), t, mu, f, prior_mean, prior_log_var,
        "heun", 1, iterations=100)
    assert torch.abs(mean - z_true).max() < 0.05 < torch.abs(prior_mean - z_true).min()
    # the Laplace variance is the data's, far below the weak prior's
    assert torch.all(log_var < np.log(100.0) - 2)
    # the model's parameters are left as they were (and still train)
    assert all(p.requires_grad for p in fitted.module_.parameters())


def test_a_window_of_one_real_snapshot_keeps_the_encoders_state(fitted):
    z_true = torch.tensor([[0.3, -0.2], [-0.4, 0.5]])
    t, mu, f, frames = _window_of(fitted, z_true, 6)
    prior_mean, prior_log_var = z_true + 0.5, torch.zeros_like(z_true)
    mean, log_var = assimilate_initial_latent(
        fitted.module_, frames, torch.tensor([1, 6]), t, mu, f, prior_mean, prior_log_var,
        "heun", 1, iterations=50)
    assert torch.equal(mean[0], prior_mean[0]) and torch.equal(log_var[0], prior_log_var[0])
    assert not torch.equal(mean[1], prior_mean[1])
    with pytest.raises(ValueError, match="iterations"):
        assimilate_initial_latent(fitted.module_, frames, torch.tensor([6, 6]), t, mu, f,
                                  prior_mean, prior_log_var, "heun", 1, iterations=0)


@pytest.mark.filterwarnings("ignore::engine.model.ExtrapolationWarning")
def test_predictions_use_it_when_asked_and_it_is_saved(tmp_path, fitted):
    data = duffing_dataset(2, n_times=41, seed=5)
    window = data.x[:, :6]
    plain = fitted.predict(window, data.mu, data.t, data.f, n_samples=1, deterministic=True)
    try:
        fitted.assimilate_iterations = 20
        fitted_start = fitted.predict(window, data.mu, data.t, data.f, n_samples=1,
                                      deterministic=True)
        # a single snapshot (padded to the window) has nothing to fit: the encoder's state
        single = fitted.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=1,
                                deterministic=True)
        fitted.save(tmp_path / "m")
    finally:
        fitted.assimilate_iterations = 0
    fitted.assimilate_iterations = 0
    before = fitted.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=1, deterministic=True)
    np.testing.assert_array_equal(single.mean, before.mean)
    assert not np.allclose(fitted_start.mean, plain.mean)
    # the fitted start follows the window at least as closely as the encoder's
    err = lambda p: np.mean((p.mean[:, :6] - window) ** 2)  # noqa: E731
    assert err(fitted_start) <= err(plain) * 1.01
    loaded = load_model(tmp_path / "m")
    assert loaded.assimilate_iterations == 20
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["config"]["integrator"]["assimilate_iterations"] = -3
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    from engine import ModelFileError

    with pytest.raises(ModelFileError, match="assimilate_iterations"):
        load_model(tmp_path / "m")


def test_a_wider_prior_lets_the_window_decide(fitted):
    """The prior scale multiplies the encoder's variance: with an overconfident prior far
    from the state that made the window the fit stays near the prior; scaled up, it finds
    the state."""
    z_true = torch.tensor([[0.3, -0.2], [-0.4, 0.5]])
    t, mu, f, frames = _window_of(fitted, z_true, 6)
    prior_mean = z_true + torch.tensor([[0.8, -0.6], [0.5, 0.7]])
    tight = torch.full_like(z_true, np.log(1e-3))
    args = (fitted.module_, frames, torch.tensor([6, 6]), t, mu, f, prior_mean, tight, "heun", 1)
    held, _ = assimilate_initial_latent(*args, iterations=100)
    freed, _ = assimilate_initial_latent(*args, iterations=100, prior_scale=1e5)
    assert torch.all(torch.abs(held - prior_mean) < 0.5 * torch.abs(prior_mean - z_true))
    assert torch.abs(freed - z_true).max() < 0.05
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="prior_scale"):
            assimilate_initial_latent(*args, iterations=5, prior_scale=bad)


def test_the_prior_scale_is_saved_and_checked_at_load(tmp_path, fitted):
    try:
        fitted.assimilate_prior_scale = 100.0
        fitted.save(tmp_path / "m")
    finally:
        fitted.assimilate_prior_scale = 1.0
    assert load_model(tmp_path / "m").assimilate_prior_scale == 100.0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for bad in (0, -2.0, "wide", True, 1e300):
        config["config"]["integrator"]["assimilate_prior_scale"] = bad
        (tmp_path / "m" / "config.json").write_text(json.dumps(config))
        from engine import ModelFileError

        with pytest.raises(ModelFileError, match="assimilate_prior_scale"):
            load_model(tmp_path / "m")
    del config["config"]["integrator"]["assimilate_prior_scale"]  # a model saved before it
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert load_model(tmp_path / "m").assimilate_prior_scale == 1.0
