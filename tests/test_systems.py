"""Simulated systems: datasets, reproducibility, validation and physics checks (small sizes)."""

import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from engine.data import Dataset, load_dataset
from engine.forcing import make_forcing
from engine.systems import generate, get_system, list_systems, lorenz_rhs

SYSTEMS = list_systems()


def test_registry_lists_all_systems():
    assert set(SYSTEMS) == {"heat", "burgers", "reaction_diffusion", "lotka_volterra",
                            "lorenz63", "predprey4", "pendulum_video", "oscillator", "cylinder",
                            "kuramoto_sivashinsky", "van_der_pol"}
    for name in SYSTEMS:
        system = get_system(name)
        assert {"default", "small"} <= set(type(system).presets)
        json.dumps(system.describe())


@pytest.mark.parametrize("name", SYSTEMS)
def test_small_preset_generates_a_valid_dataset(name):
    system = get_system(name, "small")
    data = generate(name, 3, split="train", seed=1, preset="small")
    assert isinstance(data, Dataset)
    t = system.time_grid()
    p, f = len(system.param_specs()), len(system.forcing_specs())
    assert data.x.shape == (3, t.size) + system.state_shape
    assert data.mu.shape == (3, p) and data.f.shape == (3, t.size, f)
    np.testing.assert_array_equal(data.t, t)
    assert np.all(np.isfinite(data.x))
    assert data.system == name
    assert data.param_names == system.param_names
    assert data.forcing_names == system.forcing_names
    for j, spec in enumerate(system.param_specs()):
        assert np.all((data.mu[:, j] >= spec.range[0]) & (data.mu[:, j] <= spec.range[1]))
    attrs = data.attrs
    assert (attrs["preset"], attrs["seed"], attrs["split"]) == ("small", 1, "train")
    assert len(attrs["forcings"]) == 3 and all(len(row) == f for row in attrs["forcings"])
    json.dumps(attrs)
    # the recorded forcing parameters reproduce the stored forcing signal
    for i, row in enumerate(attrs["forcings"]):
        for c, fd in enumerate(row):
            np.testing.assert_allclose(data.f[i, :, c], make_forcing(**fd)(t))


@pytest.mark.parametrize("name", SYSTEMS)
def test_seeds_reproducible_and_splits_differ(name):
    a = generate(name, 2, split="train", seed=5, preset="small")
    b = generate(name, 2, split="train", seed=5, preset="small")
    c = generate(name, 2, split="val", seed=5, preset="small")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.mu, b.mu)
    assert not np.array_equal(a.mu, c.mu)
    assert not np.array_equal(a.x, c.x)
    system = get_system(name, "small")
    np.testing.assert_array_equal(system.simulate(seed=3), system.simulate(seed=3))


@pytest.mark.parametrize("name", SYSTEMS)
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_generated_data_round_trips(name, suffix, tmp_path):
    data = generate(name, 2, seed=0, preset="small")
    path = data.save(tmp_path / f"{name}{suffix}")
    back = load_dataset(path)
    for field in ("t", "x", "mu", "f"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    assert back.param_names == data.param_names and back.forcing_names == data.forcing_names
    assert back.system == name and back.attrs == data.attrs


# ----------------------------------------------------------------- validation
def test_validation_errors():
    with pytest.raises(ValueError, match="unknown system"):
        get_system("navier_stokes")
    with pytest.raises(ValueError, match="unknown preset"):
        get_system("heat", "huge")
    with pytest.raises(ValueError, match="unknown setting"):
        get_system("heat", n_points=3)
    with pytest.raises(ValueError, match="must be greater than 0"):
        get_system("burgers", nu=-1.0)
    heat = get_system("heat", "small")
    with pytest.raises(ValueError, match="mu must have 1"):
        heat.simulate(mu=[0.05, 0.1])
    with pytest.raises(ValueError, match="kappa"):
        heat.simulate(mu=[-0.05])
    with pytest.raises(ValueError, match="unknown forcing family"):
        heat.simulate(forcing={"family": "bogus"})
    picky = get_system("heat", "small", accepted_families=["sine"])
    with pytest.raises(ValueError, match="not accepted"):
        picky.simulate(forcing=make_forcing("step"))
    with pytest.raises(ValueError, match="forcing channel"):
        get_system("lorenz63", "small").simulate(forcing=make_forcing("sine"))
    with pytest.raises(ValueError, match="split must be one of"):
        generate("lotka_volterra", 1, split="test", preset="paper")
    with pytest.raises(ValueError, match="mu_names|unknown parameter"):
        get_system("heat", mu_names=["viscosity"])
    # outside the training range but physically valid: allowed (extrapolation)
    assert np.all(np.isfinite(heat.simulate(mu=[0.5])))


# ----------------------------------------------------------------------- heat
def test_heat_exact_moments_match_monte_carlo():
    heat = get_system("heat", "small", initial="stationary", obs_noise=0.01)
    forcing = make_forcing("sine", amplitude=1.2, frequency=2.0, phase=0.3)
    n = 2000
    x = heat.simulate_batch([0.03], [forcing] * n, rng=np.random.default_rng(11))
    mean, cov = heat.exact_moments([0.03], forcing)
    var = np.einsum("tii->ti", cov)
    z_mean = (x.mean(axis=0) - mean) / np.sqrt(var / n)
    z_var = (x.var(axis=0, ddof=1) - var) / (var * np.sqrt(2.0 / (n - 1)))
    assert np.abs(z_mean).max() < 4.5
    assert np.abs(z_var).max() < 4.5
    assert np.abs(mean).max() > 0.2  # the forcing is visible above the noise


def test_heat_exact_mean_matches_an_ode_solve():
    heat = get_system("heat", "small", substeps=256)
    forcing = make_forcing("sine", amplitude=1.0, frequency=2.5, phase=1.0)
    t = np.sort(np.r_[0.0, np.random.default_rng(0).uniform(0.0, 2.0, 15)])  # non-uniform
    means, _ = heat.mode_moments([0.05], forcing, t)
    lam = 0.05 * (np.arange(1, heat.n_modes + 1) * np.pi) ** 2
    b = heat.source_modes()
    sol = solve_ivp(lambda s, a: -lam * a + b * forcing(s), (t[0], t[-1]),
                    np.zeros(heat.n_modes), t_eval=t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(means, sol.y.T, atol=1e-4)


# -------------------------------------------------------------------- burgers
def test_burgers_paper_boundary_is_the_integrated_rate():
    burgers = get_system("burgers", "paper", n_x=64, t_end=0.6, n_t=201)
    data = burgers.generate(2, seed=0)
    for i, (row,) in enumerate(data.attrs["forcings"]):
        w = row["frequency"]
        assert 0.8 <= w <= 1.0
        np.testing.assert_allclose(row["amplitude"], -5 * np.pi * w)
        np.testing.assert_allclose(data.f[i, :, 0], -5 * np.pi * w * np.sin(2 * np.pi * w * data.t))
        np.testing.assert_allclose(data.x[i, :, 0], 2.5 * (1 + np.cos(2 * np.pi * w * data.t)),
                                   atol=1e-3)
    assert burgers.spacing == pytest.approx(6 / 63)
    assert get_system("burgers", "paper", grid_spacing="physical", n_x=64).spacing == 1 / 63
    # the paper's viscosity range, ν ~ U[0.05, 0.10]
    assert np.all((data.mu >= 0.05) & (data.mu <= 0.10))
    assert tuple(data.attrs["config"]["ranges"]["nu"]) == (0.05, 0.10)


def test_burgers_value_mode_and_integrators_agree():
    rk4 = get_system("burgers", "small")
    rk45 = get_system("burgers", "small", integrator="rk45", rtol=1e-8, atol=1e-10)
    forcing = make_forcing("smooth_random", length_scale=0.3, amplitude=1.0, offset=3.0, seed=2)
    a, b = rk4.simulate([0.07], forcing), rk45.simulate([0.07], forcing)
    np.testing.assert_allclose(a[:, 0], forcing(rk4.time_grid()))
    np.testing.assert_allclose(a, b, atol=1e-4)


# --------------------------------------------------------- reaction-diffusion
def test_reaction_diffusion_keeps_a_spiral():
    data = generate("reaction_diffusion", 2, preset="small", seed=0)
    u = data.x[:, :, 0]
    assert np.abs(u).max() <= 1.05
    assert u[:, -1].std() > 0.3  # a wave pattern, not a uniform state
    assert np.abs(u[:, -1] - u[:, 0]).max() > 0.1  # it rotates


def test_reaction_diffusion_paper_layout_on_a_reduced_grid():
    kw = dict(n_grid=16, n_t=30, t_end=1.45, split_counts=(20, 5))
    parts = {s: generate("reaction_diffusion", 1, split=s, preset="paper", **kw)
             for s in ("train", "val", "test", "all")}
    assert [parts[s].n_times for s in ("train", "val", "test")] == [20, 5, 5]
    assert parts["train"].x.dtype == np.float32 and parts["all"].n_params == 0
    np.testing.assert_array_equal(np.concatenate([parts[s].x for s in ("train", "val", "test")],
                                                 axis=1), parts["all"].x)
    noisy = generate("reaction_diffusion", 1, split="all", preset="paper_noisy", **kw)
    assert 0.005 < np.std(noisy.x - parts["all"].x) < 0.02


# ------------------------------------------------------------- low-dim models
def test_lorenz_without_noise_matches_solve_ivp():
    system = get_system("lorenz63", "small", obs_noise=0.0)
    t = system.time_grid()
    x = system.simulate([28.0], seed=0)
    ref = solve_ivp(lambda _t, z: lorenz_rhs(z, 10.0, 28.0, 8 / 3), (t[0], t[-1]),
                    [8.0, -2.0, 36.05], t_eval=t, method="DOP853", rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x, ref.y.T, atol=1e-4)
    assert lorenz_rhs(np.zeros((5, 4, 3))).shape == (5, 4, 3)


def test_time_split_pieces_cover_one_trajectory():
    train = generate("lotka_volterra", 1, split="train", preset="paper", seed=2)
    val = generate("lotka_volterra", 1, split="val", preset="paper", seed=2)
    full = generate("lotka_volterra", 1, split="all", preset="paper", seed=2)
    assert full.n_times == 650 and full.t[-1] == 65.0
    assert train.t[-1] <= 50.0 < val.t[0]
    np.testing.assert_array_equal(np.concatenate([train.x, val.x], axis=1), full.x)


def test_oscillator_without_noise_matches_solve_ivp():
    system = get_system("oscillator", "deterministic")
    forcing = make_forcing("sine", amplitude=1.0, frequency=0.3, phase=0.5)
    t = system.time_grid()
    x = system.simulate([0.2, 1.5], forcing)
    ref = solve_ivp(lambda s, z: [z[1], forcing(s) - 0.2 * z[1] - z[0] - 1.5 * z[0] ** 3],
                    (t[0], t[-1]), [1.0, 0.0], t_eval=t, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x, ref.y.T, atol=1e-6)


def test_pendulum_frames_follow_the_bob():
    system = get_system("pendulum_video", "paper", t_end=3.2, n_t=33)
    frames = system.simulate()
    assert frames.shape == (33, 1, 32, 32) and set(np.unique(frames)) <= {0.0, 1.0}
    theta = system.angles(system.default_mu(), system.time_grid())[0]
    cols = np.arange(32)
    centroid = np.array([(f[0] * cols).sum() / f[0].sum() for f in frames]) - 15.5
    assert np.corrcoef(centroid, np.sin(theta))[0, 1] > 0.95


def test_time_splits_from_one_solve_equal_generate_per_split():
    from engine.systems import get_system

    system = get_system("reaction_diffusion", preset="paper", n_grid=8, t_end=4.9, n_t=50,
                        split_counts=(30, 10), obs_noise=0.01)
    pieces = system.generate_time_splits(1, seed=3)
    assert list(pieces) == ["train", "val", "test"]
    for name, data in pieces.items():
        alone = system.generate(1, split=name, seed=3)
        np.testing.assert_array_equal(data.x, alone.x)
        np.testing.assert_array_equal(data.t, alone.t)
        assert data.attrs["split"] == name
    assert [d.n_times for d in pieces.values()] == [30, 10, 10]
    with pytest.raises(ValueError, match="unknown splits"):
        system.generate_time_splits(1, splits=["nope"])
