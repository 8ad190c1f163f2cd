"""End-to-end behaviour of StochasticROM on small problems (CPU, seeded)."""

import math
import warnings

import numpy as np
import pytest
import torch
from problems import duffing_dataset, ou_dataset

from engine import ExtrapolationWarning, NotFittedError, StochasticROM

OU_RATE, OU_SIGMA = 1.0, 0.5


@pytest.fixture(scope="module")
def ou_model(ou_train):
    model = StochasticROM(
        latent_dim=2, drift="physics", physics="linear", normalize=False, window=64,
        windows_per_step=8, lr=1e-2, steps=1000, encoder_log_var_init=-8.0,
        decoder_log_var_init=-9.0, decoder_log_var_prior=(-9.0, 1.0), log_every=100, seed=0)
    return model.fit(ou_train)


@pytest.fixture(scope="module")
def duffing_model():
    model = StochasticROM(latent_dim=2, steps=1500, lr=3e-3, windows_per_step=8, window=32,
                          drift_hidden=(64, 64), decoder_log_var_init=-7.0, log_every=100, seed=0)
    return model.fit(duffing_dataset(32, seed=0))


def test_oracle_recovers_drift_and_diffusion(ou_model):
    params = ou_model.module_.drift.parameter_values()
    a = np.asarray(params["A"])
    assert np.allclose(np.diag(a), -OU_RATE, rtol=0.15), a
    assert np.all(np.abs(a[~np.eye(2, dtype=bool)]) < 0.15 * OU_RATE)
    assert np.allclose(ou_model.dispersion_, OU_SIGMA, rtol=0.15), ou_model.dispersion_
    assert ou_model.training_["status"] == "completed"


def test_oracle_predictive_interval_is_calibrated(ou_model):
    metrics = ou_model.evaluate(ou_dataset(32, seed=1), n_samples=200)
    assert 0.85 <= metrics["coverage_90"] <= 0.95, metrics
    assert 0.40 <= metrics["coverage_50"] <= 0.60, metrics


def test_forced_oscillator_generalizes_to_new_parameters_and_forcing(duffing_model):
    metrics = duffing_model.evaluate(duffing_dataset(8, seed=1), n_samples=64)
    # relative L2 error of the predictive mean, averaged over steps and held-out cases
    assert metrics["rel_l2_mean"] < 0.35, metrics
    assert metrics["coverage_90"] > 0.7, metrics


@pytest.mark.parametrize("method, sde_type", [("euler", "ito"), ("heun", "stratonovich")])
def test_prediction_agrees_with_torchsde(duffing_model, method, sde_type):
    """Our scheme and torchsde's scheme of the same name, on the same step, agree in law
    (additive noise: Itô and Stratonovich agree, so torchsde's Heun applies)."""
    torchsde = pytest.importorskip("torchsde")
    model = duffing_model
    data = duffing_dataset(1, seed=7)
    t = data.t[:41]
    n_paths = 3000
    pred = model.predict(data.x[0, 0], data.mu[0], t, data.f[0, :41], n_samples=n_paths, seed=1,
                         return_samples=False, substeps=4, integrator=method)
    norm = model.normalization_
    dtype = torch.float32
    mu = torch.tensor((data.mu[0] - norm.mu_mean) / norm.mu_std, dtype=dtype).expand(n_paths, -1)
    f_grid = torch.tensor((data.f[0, :41] - norm.f_mean) / norm.f_std, dtype=dtype)
    t_grid = torch.tensor(t, dtype=dtype)
    module = model.module_

    class LatentSDE(torch.nn.Module):
        noise_type = "diagonal"

        def f(self, s, z):
            j = int(torch.clamp(torch.searchsorted(t_grid, s.reshape(1), right=True) - 1, 0, len(t) - 2))
            w = (s - t_grid[j]) / (t_grid[j + 1] - t_grid[j])
            force = (1 - w) * f_grid[j] + w * f_grid[j + 1]
            return module.drift(z, s.expand(z.shape[0]), mu, force.expand(z.shape[0], -1))

        def g(self, s, z):
            return module.dispersion.std().expand_as(z)

    mean0, log_var0 = model.encode(data.x[0, :1])
    gen = torch.Generator().manual_seed(3)
    z0 = torch.tensor(mean0, dtype=dtype) + torch.tensor(np.sqrt(log_var0), dtype=dtype) * \
        torch.randn(n_paths, 2, generator=gen)
    with torch.no_grad():
        sde = LatentSDE()
        sde.sde_type = sde_type
        ref = torchsde.sdeint(sde, z0, t_grid, method=method, dt=0.0125).numpy()  # (T, n, d)
    ours = pred.latent[0].transpose(1, 0, 2)
    for k in (10, 25, 40):
        m1, m2 = ours[k].mean(0), ref[k].mean(0)
        s1, s2 = ours[k].std(0), ref[k].std(0)
        se_mean = np.sqrt((s1**2 + s2**2) / n_paths)
        assert np.all(np.abs(m1 - m2) < 5 * se_mean + 1e-3), (k, m1, m2)
        assert np.all(np.abs(s1 - s2) < 5 * np.sqrt((s1**2 + s2**2) / (2 * n_paths)) + 1e-3), (k, s1, s2)


def test_prediction_shapes_quantiles_and_seed(duffing_model):
    data = duffing_dataset(3, seed=2)
    pred = duffing_model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=16, seed=4)
    assert pred.mean.shape == (3, data.n_times, 2) and pred.std.shape == pred.mean.shape
    assert pred.samples.shape == (3, 16, data.n_times, 2)
    assert pred.latent.shape == (3, 16, data.n_times, 2)
    q = pred.quantiles([0.05, 0.5, 0.95])
    assert q.shape == (3, 3, data.n_times, 2) and np.all(q[0] <= q[2])
    again = duffing_model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=16, seed=4)
    assert np.array_equal(pred.samples, again.samples)
    single = duffing_model.predict(data.x[0, 0], data.mu[0], data.t, lambda tt: np.sin(tt),
                                   n_samples=4, seed=1, integrator="heun")
    assert single.mean.shape == (1, data.n_times, 2)


def test_predict_latent_is_predicts_latent_without_decoding(duffing_model):
    data = duffing_dataset(2, seed=3)
    args = (data.x[:, 0], data.mu, data.t, data.f)
    pred = duffing_model.predict(*args, n_samples=8, seed=5, integrator="heun", substeps=2)
    latent = duffing_model.predict_latent(*args, n_samples=8, seed=5, integrator="heun", substeps=2)
    assert latent.shape == (2, 8, data.n_times, duffing_model.latent_dim_)
    assert np.array_equal(latent, pred.latent)
    other = duffing_model.predict_latent(*args, n_samples=8, seed=6)
    assert not np.array_equal(other, latent)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        duffing_model.predict_latent(*args, n_samples=0)


def test_decode_stride_keeps_the_full_prediction_paths_at_fewer_times():
    data = duffing_dataset(2, n_times=41, seed=5)
    model = StochasticROM(latent_dim=2, drift_hidden=(16, 16), hidden=(16,), seed=0)
    model.initialize(data)  # untrained networks: only the bookkeeping is tested
    args = dict(x0=data.x[:, 0], mu=data.mu, t=data.t, f=data.f, n_samples=8, seed=3,
                quantiles=[0.1, 0.9], substeps=2)
    full = model.predict(**args)
    quick = model.predict(**args, decode_stride=3)
    keep = [*range(0, 41, 3), 40]  # every third time and the last one
    assert np.array_equal(quick.t, data.t[keep]) and np.array_equal(quick.f, full.f[:, keep])
    # the same integration and noise: the kept latent paths are the full prediction's
    assert np.array_equal(quick.latent, full.latent[:, :, keep])
    assert np.allclose(quick.mean, full.mean[:, keep], rtol=1e-5, atol=1e-6)
    assert np.allclose(quick.std, full.std[:, keep], rtol=1e-5, atol=1e-6)
    assert quick.samples.shape == (2, 8, len(keep), 2)
    assert quick.quantiles([0.1, 0.9]).shape == (2, 2, len(keep), 2)
    assert np.array_equal(model.predict(**args, decode_stride=1).samples, full.samples)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="decode_stride must be a positive integer"):
            model.predict(**args, decode_stride=bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x0=np.zeros(3)), "x0: expected shape"),
    (dict(x0=np.array([np.nan, 0.0])), "x0: contains NaN"),
    (dict(mu=None), "mu: this model needs 1 parameters"),
    (dict(mu=[0.1, 0.2]), r"mu: expected shape \(1,\)"),
    (dict(mu=[np.nan]), "mu: contains NaN"),
    (dict(t=np.array([0.0, 0.2, 0.1])), "strictly increasing"),
    (dict(f=None), "f: this model needs forcing"),
    (dict(f=np.zeros((5, 1))), r"f: expected shape \(11, 1\)"),
    (dict(n_samples=0), "n_samples must be a positive integer"),
    (dict(integrator="rk45"), "integrator must be one of"),
])
def test_predict_rejects_bad_input(duffing_model, kwargs, match):
    args = dict(x0=np.zeros(2), mu=[0.3], t=np.linspace(0, 1, 11), f=np.zeros((11, 1)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        duffing_model.predict(**args)


def test_extrapolation_warns_but_predicts(duffing_model):
    with pytest.warns(ExtrapolationWarning, match="outside the trained range"):
        pred = duffing_model.predict(np.zeros(2), [5.0], np.linspace(0, 1, 11), np.zeros((11, 1)),
                                     n_samples=2)
    assert np.all(np.isfinite(pred.mean))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        duffing_model.predict(np.zeros(2), [0.3], np.linspace(0, 1, 11), np.zeros((11, 1)), n_samples=2)


def test_estimator_discipline():
    model = StochasticROM(latent_dim=3, hidden=(16, 16))
    assert model.get_params()["hidden"] == [16, 16] and model.hidden == (16, 16)
    assert not any(name.endswith("_") for name in vars(model))
    with pytest.raises(NotFittedError):
        model.predict(np.zeros(3))
    with pytest.raises(ValueError, match="unknown parameter"):
        model.set_params(bogus=1)
    with pytest.raises(ValueError, match="quadrature"):
        StochasticROM(quadrature="trapezoid").fit(ou_dataset(2, n_times=20))
    with pytest.raises(TypeError, match="engine.Dataset"):
        StochasticROM().fit(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("params, match", [
    # found by tests/test_properties.py (srom train --set, config.json): TypeError,
    # OverflowError and RuntimeError, or terabytes asked of the allocator
    (dict(activation=[1]), "activation must be one of"),
    (dict(dispersion_prior=5), "dispersion_prior must be a \\(mean, std\\) pair"),
    (dict(lr=None), "lr must be a finite number > 0"),
    (dict(encoder_log_var_init=1e308), "encoder_log_var_init must be a finite number"),
    (dict(kl_warmup=float("inf")), "kl_warmup must be an integer >= 0"),
    (dict(windows_per_step=True), "windows_per_step must be a positive integer"),
    (dict(seed=-1), "seed must be an integer in 0..2\\*\\*63 - 1"),
    (dict(latent_dim=10**12), "latent_dim must be None or an integer in 1..65536"),
    (dict(n_samples=10**12), "too large to train: one step's decoded snapshots"),
    # the identity encoder of a window learns a correction from it: its weights grow first
    (dict(n_win=10**12), "too large to train: the networks' weights"),
    (dict(n_win=10**8, hidden=[8], windows_per_step=4),
     "too large to train: one step's encoder inputs"),
    (dict(latent_dim=4, hidden=[8], conv_channels=10**12, architecture="conv1d"),
     "too large to train: its networks cannot even be sized"),
    (dict(drift="library", library_degree=10**12), "monomials; at most 100000"),
])
def test_bad_hyperparameters_are_refused_before_building(params, match):
    with pytest.raises(ValueError, match=match):
        StochasticROM(steps=1, window=8, **params).fit(ou_dataset(2, n_times=20))


@pytest.mark.parametrize("quadrature", ["stratified", "data"])
def test_fit_on_fields_with_conv_autoencoder(quadrature):
    from engine import Dataset

    rng = np.random.default_rng(0)
    x_grid = np.linspace(0, 1, 40)
    t = np.linspace(0, 1, 30)
    amp = rng.uniform(0.5, 1.5, 4)
    x = amp[:, None, None] * np.exp(-t[None, :, None]) * np.sin(np.pi * x_grid)[None, None]
    data = Dataset(t, x[:, :, None, :], mu=amp[:, None])  # (N, T, 1, 40): a 1-channel 1-D field
    model = StochasticROM(latent_dim=2, steps=30, window=16, windows_per_step=2,
                          quadrature=quadrature, log_every=10).fit(data)
    assert model.architecture_ == "conv1d" and model.training_["status"] == "completed"
    pred = model.predict(x[:2, 0, None, :], amp[:2, None], t, n_samples=3)
    assert pred.mean.shape == (2, 30, 1, 40)


def test_device_quantiles_match_numpy(duffing_model):
    data = duffing_dataset(2, seed=3)
    levels = [0.05, 0.5, 0.95]
    pred = duffing_model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=32, seed=1,
                                 quantiles=levels)
    ref = np.quantile(pred.samples, levels, axis=1)
    assert np.allclose(pred.quantiles(levels), ref, atol=1e-5)
    lean = duffing_model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=32, seed=1,
                                 quantiles=levels, return_samples=False)
    assert lean.samples is None and np.allclose(lean.quantiles([0.95]), ref[2:], atol=1e-5)
    with pytest.raises(ValueError, match="no samples"):
        lean.quantiles([0.3])


@pytest.mark.parametrize("time_period", [None, 2.0])
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_the_neural_drift_stepper_is_the_drift(time_period, method):
    """``NeuralDrift.stepper`` (first-layer terms by blocks, plain addmm) gives the drift's
    values, across block boundaries, and the rollout through it equals the plain one."""
    from engine.drift import NeuralDrift
    from engine.rollout import integrate

    torch.manual_seed(0)
    drift = NeuralDrift(3, 2, 1, hidden=(16, 16), time_period=time_period)
    m, k = 5, 23
    t = torch.linspace(0, 1.5, k)[:, None].expand(-1, m)
    mu, f, z = torch.randn(m, 2), torch.randn(m, k, 1), torch.randn(m, 3)
    step = drift.stepper(t, mu, f, block=4)
    for i in [0, 3, 4, 9, 8, 22, 0]:  # in order, across blocks and back
        assert torch.allclose(step(i, z), drift(z, t[i], mu, f[:, i]), atol=1e-6)

    class Plain(torch.nn.Module):  # the same drift without a stepper
        def __init__(self):
            super().__init__()
            self.inner = drift

        def forward(self, *args):
            return self.inner(*args)

    grid = torch.linspace(0, 1, 12)
    noise = torch.randn(11, 2, m, 3)
    args = (torch.randn(m, 3), grid, mu, torch.randn(m, 12, 1), torch.full((3,), 0.1), noise)
    with torch.no_grad():
        fast = integrate(drift, *args, method=method, substeps=2)
        plain = integrate(Plain(), *args, method=method, substeps=2)
    assert torch.allclose(fast, plain, atol=1e-5)


def test_the_second_order_drift_is_a_velocity_and_an_acceleration():
    """``drift='second_order'``: the positions' rate is exactly the velocities, the
    acceleration is an MLP of the whole state; its stepper is the drift; an odd latent
    dimension is refused before anything is built."""
    from engine.drift import SecondOrderDrift
    from engine.rollout import integrate

    torch.manual_seed(0)
    drift = SecondOrderDrift(4, 1, 0, hidden=(16,), act="tanh", time_period=None)
    m, k = 6, 9
    z, mu, f = torch.randn(m, 4), torch.randn(m, 1), torch.zeros(m, k, 0)
    t = torch.linspace(0, 1, k)[:, None].expand(-1, m)
    rate = drift(z, t[0], mu, f[:, 0])
    assert torch.equal(rate[:, :2], z[:, 2:])
    moved = z.clone()
    moved[:, 2:] += 1.0  # the acceleration sees the velocities too
    assert not torch.allclose(drift(moved, t[0], mu, f[:, 0])[:, 2:], rate[:, 2:])
    step = drift.stepper(t, mu, f, block=4)
    for i in (0, 5, 8):
        assert torch.allclose(step(i, z), drift(z, t[i], mu, f[:, i]), atol=1e-6)
    # a harmonic acceleration a = -q makes the rollout a rotation: q(t) = q0 cos t + v0 sin t
    drift.acceleration.use_stepper = False  # its stepper reads the weights, not forward
    drift.acceleration.forward = lambda z, t, mu, f: -z[..., :2]
    grid = torch.linspace(0, 1.0, 201)
    path = integrate(drift, z, grid, mu, torch.zeros(m, 201, 0), torch.zeros(4),
                     torch.zeros(200, 1, m, 4), method="heun", substeps=1)
    exact = z[:, :2] * math.cos(1.0) + z[:, 2:] * math.sin(1.0)
    assert torch.allclose(path[:, -1, :2], exact, atol=1e-4)
    with pytest.raises(ValueError, match="even latent_dim"):
        StochasticROM(latent_dim=3, drift="second_order").config.validate()
    with pytest.raises(ValueError, match="drift must be one of"):
        StochasticROM(latent_dim=2, drift="sindy").config.validate()
    with pytest.raises(ValueError, match="decode_positions_only needs"):
        StochasticROM(latent_dim=2, decode_positions_only=True).config.validate()


def test_a_positions_only_decoder_ignores_the_velocities():
    """``decode_positions_only``: the decoded state does not change with the velocity half
    of z, and the model trains, saves and loads."""
    from problems import duffing_dataset

    data = duffing_dataset(3, n_times=31)
    model = StochasticROM(latent_dim=2, architecture="mlp", drift="second_order",
                          decode_positions_only=True, drift_hidden=(8,), steps=5, window=8,
                          log_every=5).fit(data)
    z = torch.randn(4, 2)
    moved = z.clone()
    moved[:, 1] += 3.0
    with torch.no_grad():
        assert torch.equal(model.module_.decode(z), model.module_.decode(moved))
    assert model.module_.decoder.net[0].in_features == 1
