"""CUDA-only checks (skipped without a GPU): graph-captured training and rollouts."""

import numpy as np
import pytest
import torch
from problems import duffing_dataset, ou_dataset

from engine import StochasticROM
from engine.rollout import RolloutEngine, integrate
from engine.solvers import METHODS, get_scheme

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_training_step_is_captured_as_a_cuda_graph_and_learns():
    data = ou_dataset(16, seed=0)
    model = StochasticROM(
        latent_dim=2, drift="physics", physics="linear", normalize=False, window=64,
        windows_per_step=8, lr=1e-2, steps=1000, encoder_log_var_init=-8.0,
        decoder_log_var_init=-9.0, decoder_log_var_prior=(-9.0, 1.0), log_every=100,
        device="cuda", cuda_graph=True, seed=0).fit(data)
    assert model.training_["cuda_graph"] and model.training_["status"] == "completed"
    a = np.asarray(model.module_.drift.parameter_values()["A"])
    assert np.allclose(np.diag(a), -1.0, rtol=0.15), a
    assert np.allclose(model.dispersion_, 0.5, rtol=0.15), model.dispersion_
    metrics = model.evaluate(ou_dataset(32, seed=1), n_samples=200)
    assert 0.85 <= metrics["coverage_90"] <= 0.95


def test_graph_and_eager_training_agree_on_a_forced_problem():
    data = duffing_dataset(16, seed=0)
    losses = {}
    for graph in (False, True):
        model = StochasticROM(latent_dim=2, steps=600, lr=3e-3, windows_per_step=8, window=32,
                              device="cuda", cuda_graph=graph, log_every=100, seed=0).fit(data)
        losses[graph] = model.training_["history"][-1]["loss"]
        assert model.training_["cuda_graph"] == graph
    assert abs(losses[True] - losses[False]) < 0.5 * abs(losses[False]) + 0.5, losses


@pytest.mark.parametrize("method", METHODS)
def test_graph_rollout_equals_eager(method):
    torch.manual_seed(0)
    drift = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3)).cuda()

    def fn(z, t, mu, f):
        return drift(torch.cat([z, mu, f], -1))

    class Wrap(torch.nn.Module):
        def forward(self, z, t, mu, f):
            return fn(z, t, mu, f)

    z0 = torch.randn(64, 3, device="cuda")
    t = torch.linspace(0, 1, 50, device="cuda")
    mu = torch.randn(64, 1, device="cuda")
    f = torch.randn(64, 50, 1, device="cuda")
    psi = torch.full((3,), 0.2, device="cuda")
    noise = torch.randn(get_scheme(method).noise_shape(49, 2, 64, 3), device="cuda")
    engine = RolloutEngine(Wrap(), use_graph=True)
    with torch.no_grad():
        eager = integrate(fn, z0, t, mu, f, psi, noise, method, 2)
        first = engine(z0, t, mu, f, psi, noise, method, 2)
        second = engine(z0 * 2, t, mu, f, psi, noise, method, 2)  # replay with new inputs
        eager2 = integrate(fn, z0 * 2, t, mu, f, psi, noise, method, 2)
    assert torch.allclose(first, eager, atol=1e-5)
    assert torch.allclose(second, eager2, atol=1e-5)


def test_predict_on_cuda_is_reproducible_and_matches_cpu_statistics():
    data = duffing_dataset(8, seed=0)
    model = StochasticROM(latent_dim=2, steps=200, window=32, windows_per_step=4,
                          device="cuda", log_every=100).fit(data)
    a = model.predict(data.x[0, 0], data.mu[0], data.t, data.f[0], n_samples=64, seed=5)
    b = model.predict(data.x[0, 0], data.mu[0], data.t, data.f[0], n_samples=64, seed=5)
    assert np.array_equal(a.samples, b.samples)


def test_resume_on_cuda(tmp_path):
    data = duffing_dataset(4, n_times=41)
    ckpt = tmp_path / "c.safetensors"
    kw = dict(latent_dim=2, window=16, windows_per_step=2, device="cuda", log_every=10, seed=0)
    StochasticROM(steps=20, **kw).fit(data, checkpoint=ckpt)
    for graph in (False, True):
        model = StochasticROM(steps=40, cuda_graph=graph, **kw).fit(data, resume_from=ckpt)
        assert model.training_["resumed_from_step"] == 20 and model.training_["status"] == "completed"


def test_library_drift_on_a_periodic_conv2d_model_is_captured():
    """The reaction–diffusion reproduction set-up: library drift + circular conv2d."""
    from engine.systems import generate

    data = generate("reaction_diffusion", 2, preset="small", seed=0)
    model = StochasticROM(latent_dim=2, drift="library", periodic=True, window=8, steps=50,
                          log_every=25, device="cuda", cuda_graph=True, seed=0).fit(data)
    assert model.training_["cuda_graph"] and model.training_["status"] == "completed"


def test_the_dashboard_predicts_on_the_gpu_by_default(monkeypatch):
    """``$SROM_DEVICE`` unset (auto): the dashboard's models load on CUDA; a preview and the
    full prediction are finite, reproducible and agree in their mean with the CPU's."""
    pytest.importorskip("param")
    from app.state import catalog
    from app.state.explore import ExploreState, predict_request

    def predictions(device: str):
        monkeypatch.setenv(catalog.ENV_DEVICE, device)
        catalog.clear_cache()
        state = ExploreState(background=False, n_paths=256)
        assert state.error == "" and state.model is not None
        assert next(state.model.module_.parameters()).device.type == device
        req = state.request()
        quick, _ = predict_request(req, **state.preview_settings(req))
        return quick, predict_request(req)[0], predict_request(req)[0]

    monkeypatch.delenv(catalog.ENV_DEVICE, raising=False)
    assert catalog.serving_device() == "cuda"
    quick, full, again = predictions("cuda")
    assert quick.preview and np.isfinite(quick.mean).all() and np.isfinite(full.mean).all()
    assert np.array_equal(full.mean, again.mean)  # same seed, same paths
    cpu = predictions("cpu")[1]
    catalog.clear_cache()
    # different random streams on the two devices: the means of 256 paths agree closely
    err = np.linalg.norm(full.mean - cpu.mean) / np.linalg.norm(cpu.mean)
    assert err < 0.05, err
