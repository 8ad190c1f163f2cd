"""Observation models (engine.likelihoods) and the Bernoulli likelihood end to end."""

import numpy as np
import pytest
import torch

from engine import StochasticROM, load_model
from engine.likelihoods import log_likelihood, observations, predictive_moments
from engine.metrics import model_free_baselines
from engine.systems import get_system


def test_bernoulli_log_likelihood_is_the_log_of_the_bernoulli_mass():
    logits = torch.tensor([[-2.0, 0.5, 3.0]])
    x = torch.tensor([[0.0, 1.0, 1.0]])
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(log_likelihood("bernoulli", x, logits, None, 1), expected)


def test_gaussian_log_likelihood_is_unchanged():
    x, mean, var = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 2.5]]), torch.tensor([0.1, 0.2])
    expected = torch.distributions.Normal(mean, var.sqrt()).log_prob(x).sum(-1)
    torch.testing.assert_close(log_likelihood("gaussian", x, mean, var, 1), expected)


def test_bernoulli_predictive_moments_and_samples():
    logits = torch.randn(2, 64, 5, 3, generator=torch.Generator().manual_seed(0))
    p = torch.sigmoid(logits)
    mean, var = predictive_moments("bernoulli", logits, torch.ones(()))
    torch.testing.assert_close(mean, p.mean(1))
    torch.testing.assert_close(var, p.mean(1) * (1 - p.mean(1)))  # a coin flip per pixel
    _, spread = predictive_moments("bernoulli", logits, None)  # the latent spread alone
    torch.testing.assert_close(spread, p.var(1, unbiased=False))
    draws = observations("bernoulli", logits, torch.ones(()), torch.Generator().manual_seed(1))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(observations("bernoulli", logits, None, None), p)


@pytest.fixture(scope="module")
def frames():
    return get_system("pendulum_video", "small").generate(3, "train", seed=0)


def test_bernoulli_model_predicts_probabilities_and_round_trips(frames, tmp_path):
    model = StochasticROM(latent_dim=2, n_win=2, likelihood="bernoulli", steps=20, window=8,
                          device="cpu", substeps=1, seed=0).fit(frames)
    assert np.all(model.normalization_.x_mean == 0) and np.all(model.normalization_.x_std == 1)
    pred = model.predict(frames.x[:1, :2], mu=frames.mu[:1], t=frames.t, n_samples=6, seed=3,
                         return_samples=True)
    assert pred.mean.min() >= 0 and pred.mean.max() <= 1
    assert set(np.unique(pred.samples)) <= {0.0, 1.0}
    np.testing.assert_allclose(pred.std**2, pred.mean * (1 - pred.mean), rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m").predict(frames.x[:1, :2], mu=frames.mu[:1], t=frames.t,
                                               n_samples=6, seed=3, return_samples=True)
    assert load_model(tmp_path / "m").likelihood == "bernoulli"
    np.testing.assert_array_equal(again.samples, pred.samples)


def test_bernoulli_refuses_states_outside_unit_interval():
    data = get_system("oscillator").generate(2, "train", seed=0)
    with pytest.raises(ValueError, match=r"needs states in \[0, 1\]"):
        StochasticROM(likelihood="bernoulli", steps=2, device="cpu").fit(data)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        StochasticROM(likelihood="poisson", steps=2, device="cpu").fit(data)


def test_model_free_baselines():
    train = np.zeros((1, 4, 2)) + np.array([1.0, 0.0])  # average state (1, 0)
    test = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    scores = model_free_baselines(train, test, last_seen=np.array([[0.0, 1.0]]))
    # average: error 0 then √2; last seen (0, 1): √2 then 0 — both 0.5 · √2 on average
    assert scores["average_state_rel_l2"] == pytest.approx(np.sqrt(2) / 2)
    assert scores["last_seen_state_rel_l2"] == pytest.approx(np.sqrt(2) / 2)
    assert model_free_baselines(train, test)["last_seen_state_rel_l2"] == pytest.approx(np.sqrt(2) / 2)
    with pytest.raises(ValueError, match="last_seen"):
        model_free_baselines(train, test, last_seen=np.zeros((2, 2)))
