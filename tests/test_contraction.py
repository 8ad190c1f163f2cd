"""The drift's contraction prior (engine.contraction, StochasticROM(contraction_weight=...))."""

import json

import numpy as np
import pytest
import torch
from problems import duffing_dataset

from engine import StochasticROM, load_model
from engine.contraction import (
    MAX_POINTS,
    contraction_penalty,
    encoded_drift_inputs,
    expansion_rates,
)


class LinearDrift(torch.nn.Module):
    """ψ(z) = A z, whose expansion rate is the top eigenvalue of (A + Aᵀ)/2 everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = torch.nn.Parameter(a.clone())

    def forward(self, z, t, mu, f):
        return z @ self.a.T


def _points(n, d=4):
    return torch.randn(n, d), torch.zeros(n), torch.zeros(n, 0), torch.zeros(n, 0)


def test_the_rate_is_the_top_eigenvalue_of_the_symmetric_part():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen))
    cases = [3 * torch.randn(4, 4, generator=gen) for _ in range(3)]
    # a nearly repeated top eigenvalue, and a non-normal matrix whose eigenvalues are all
    # negative but which still expands some directions
    cases += [q @ torch.diag(torch.tensor([7.0, 6.99, -5.0, -20.0])) @ q.T,
              torch.tensor([[-1.0, 10.0, 0, 0], [0, -1.0, 0, 0], [0, 0, -2.0, 0], [0, 0, 0, -3.0]])]
    for a in cases:
        rates = expansion_rates(LinearDrift(a), *_points(6))
        top = torch.linalg.eigvalsh(0.5 * (a + a.T)).max()
        assert torch.allclose(rates, top.expand(6), atol=1e-2 * max(1.0, float(top.abs())))
    assert float(expansion_rates(LinearDrift(cases[-1]), *_points(1)).detach()) == pytest.approx(4.0, abs=0.01)


def test_the_penalty_counts_expansion_only_and_its_gradient_contracts():
    contracting = LinearDrift(-torch.eye(3))
    assert float(contraction_penalty(contracting, *_points(10, 3))) == 0.0
    drift = LinearDrift(torch.diag(torch.tensor([2.0, -1.0, 0.5])))
    penalty = contraction_penalty(drift, *_points(10, 3))
    assert float(penalty) == pytest.approx(4.0, rel=1e-3)
    margin = contraction_penalty(drift, *_points(10, 3), margin=1.5)
    assert float(margin) == pytest.approx(0.25, rel=1e-2)  # (2 - 1.5)²
    assert float(contraction_penalty(drift, *_points(10, 3), margin=3.0)) == 0.0
    penalty.backward()
    # d relu(λ)²/dA = 2 λ v vᵀ with v the top eigenvector e1: only A[0, 0] moves, upwards
    expected = torch.zeros(3, 3)
    expected[0, 0] = 4.0
    assert torch.allclose(drift.a.grad, expected, atol=1e-2)


def test_many_points_are_thinned():
    drift = LinearDrift(torch.eye(2))
    calls = []
    forward = drift.forward
    drift.forward = lambda *a: calls.append(a[0].shape[0]) or forward(*a)
    contraction_penalty(drift, *_points(10 * MAX_POINTS, 2))
    assert calls == [2 * 2 * MAX_POINTS]  # 2 d shifted copies of MAX_POINTS points


@pytest.fixture(scope="module")
def data():
    return duffing_dataset(4, n_times=41, seed=0)


def _mean_expansion(model, data) -> float:
    """mean relu(λ)² along the encoded training states."""
    with torch.no_grad():
        rates = expansion_rates(model.module_.drift, *encoded_drift_inputs(model, data))
    return float(torch.relu(rates).square().mean())


def test_training_with_the_prior_learns_a_less_expanding_drift(tmp_path, data):
    args = dict(latent_dim=2, steps=150, window=16, windows_per_step=2, drift_hidden=(16,),
                log_every=50, seed=0)
    free = StochasticROM(**args).fit(data)
    held = StochasticROM(**args, contraction_weight=100.0).fit(data)
    assert _mean_expansion(held, data) < 0.7 * _mean_expansion(free, data)
    assert all(np.isfinite(v) for v in held.training_["history"][-1].values())
    held.save(tmp_path / "m")
    assert load_model(tmp_path / "m").contraction_weight == 100.0
    # bad values are refused by the config's validation (tests/test_config.py); a model
    # saved before the prior existed loads without it
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["config"]["drift"]["contraction_weight"], config["config"]["drift"]["contraction_margin"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert load_model(tmp_path / "m").contraction_weight == 0.0
