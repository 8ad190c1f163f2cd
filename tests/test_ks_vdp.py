"""Kuramoto–Sivashinsky and Van der Pol: numerics and physics checked against known facts."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from engine.cli import main
from engine.data import load_dataset
from engine.forcing import make_forcing
from engine.systems import generate, get_system

NO_FORCING = make_forcing("none")


# ------------------------------------------------------------ Kuramoto–Sivashinsky
def ks_attractor_states(n, length=22.0, seed=0, **overrides):
    """(n, n_grid) states on the attractor (after the default spin-up) and the system."""
    system = get_system("kuramoto_sivashinsky", **overrides)
    u = system.simulate_batch([length], [None] * n, t=[0.0, 1.0],
                              rng=np.random.default_rng(seed))[:, -1]
    return u, system


def test_ks_etdrk4_is_fourth_order():
    u0, _ = ks_attractor_states(2, length=22.0)
    ends = []
    for h in (0.0125, 0.00625, 0.003125):
        system = get_system("kuramoto_sivashinsky", dt=h)
        ends.append(system.integrate(u0, [0.0, 1.0], [22.0, 30.0])[:, -1])
    d1, d2 = np.abs(ends[0] - ends[1]).max(), np.abs(ends[1] - ends[2]).max()
    assert 1e-12 < d2 < d1 < 1e-6
    assert 12 < d1 / d2 < 20  # 2⁴ = 16 (≈ 8 at the production step: stiff order reduction)


def test_ks_matches_an_independent_physical_space_solve():
    # u_t = −u u_x − u_xx − u_xxxx + f(t) cos(2πx/L) with spectral derivatives and DOP853:
    # another form of the nonlinearity (u·u_x, not (u²/2)_x); both are exact on the modes
    # |n| <= n/3 that the 2/3 rule keeps, and the higher modes of this u0 stay zero.
    length, n = 22.0, 32
    system = get_system("kuramoto_sivashinsky", n_grid=n, forced=True)
    x = np.arange(n) * length / n
    u0 = np.cos(2 * np.pi * x / length) * (1 + np.sin(2 * np.pi * x / length))
    f = make_forcing("sine", amplitude=0.5, frequency=0.3, phase=0.2)
    k = 2 * np.pi / length * np.fft.rfftfreq(n, 1.0 / n)

    def rhs(t, u):
        uh = np.fft.rfft(u)
        ux, uxx = np.fft.irfft(1j * k * uh, n), np.fft.irfft(-k**2 * uh, n)
        du = -u * ux - uxx - np.fft.irfft(k**4 * uh, n) + f(t) * np.cos(2 * np.pi * x / length)
        return np.fft.irfft(np.fft.rfft(du) * (np.arange(k.size) <= n // 3), n)

    t = np.linspace(0.0, 5.0, 6)
    ref = solve_ivp(rhs, (0, 5.0), u0, t_eval=t, method="DOP853", rtol=1e-11, atol=1e-11).y.T
    ours = system.integrate(u0[None], t, length, [(f,)])[0]  # the default step 0.05
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    assert np.abs(ours[-1] - u0).max() > 1.0  # it moved
    fine = get_system("kuramoto_sivashinsky", n_grid=n, forced=True, dt=0.01)
    np.testing.assert_allclose(fine.integrate(u0[None], t, length, [(f,)])[0], ref, rtol=0,
                               atol=1e-8)


def test_ks_spatial_mean_is_conserved():
    system = get_system("kuramoto_sivashinsky", "small")
    u0 = system.initial_condition(3, np.random.default_rng(1)) + np.array([[0.0], [0.3], [-1.0]])
    u = system.integrate(u0, np.linspace(0.0, 50.0, 11), [22.0, 28.0, 35.0])
    np.testing.assert_allclose(u.mean(axis=-1), u0.mean(axis=-1)[:, None] * np.ones(11),
                               rtol=0, atol=1e-10)
    assert np.abs(u[:, -1] - u[:, 0]).max() > 0.5
    data = generate("kuramoto_sivashinsky", 2, seed=0, preset="small")  # zero-mean IC
    assert np.abs(data.x.mean(axis=-1)).max() < 1e-10
    forced = generate("kuramoto_sivashinsky", 2, seed=0, preset="small", forced=True,
                      forcing_family="sine", forcing_ranges={"amplitude": 1.0, "frequency": 0.2})
    assert np.abs(forced.x.mean(axis=-1)).max() < 1e-10  # cos(2πx/L) has zero mean


def test_ks_largest_lyapunov_exponent_at_L22():
    # Benettin: 8 pairs, renormalised every 10 time units over 500 after 50 to align.
    # Reference λ₁ ≈ 0.048 (Cvitanović, Davidchack & Siminos 2010) / 0.043 (Edson et al.).
    u, system = ks_attractor_states(8, length=22.0, seed=3, dt=0.25)
    d0 = 1e-8
    p = system.initial_condition(8, np.random.default_rng(4))
    both = np.concatenate([u, u + d0 * p / np.linalg.norm(p, axis=1, keepdims=True)])
    growth = np.zeros(8)
    for step in range(55):
        both = system.integrate(both, [0.0, 10.0], 22.0)[:, -1]
        d = both[8:] - both[:8]
        norm = np.linalg.norm(d, axis=1)
        if step >= 5:
            growth += np.log(norm / d0)
        both[8:] = both[:8] + d * (d0 / norm)[:, None]
    lyap = growth.mean() / 500.0
    assert 0.03 < lyap < 0.07


def test_ks_generate_shapes_seeds_and_attractor():
    system = get_system("kuramoto_sivashinsky", n_t=41, t_end=10.0)
    a = system.generate(3, seed=0)
    assert a.x.shape == (3, 41, 64) and a.mu.shape == (3, 1) and a.f.shape == (3, 41, 0)
    assert np.all((22 <= a.mu) & (a.mu <= 36)) and a.param_names == ["length"]
    np.testing.assert_array_equal(a.x, system.generate(3, seed=0).x)
    assert not np.allclose(a.x, system.generate(3, seed=1).x)
    # on the attractor: no decay and no blow-up over the stored window (|u| ~ 1–3)
    rms = np.sqrt((a.x**2).mean(axis=-1))
    assert np.all((0.7 < rms) & (rms < 3.0))
    forced = get_system("kuramoto_sivashinsky", "forced", n_t=11, t_end=2.0, spinup=5.0)
    b = forced.generate(2, seed=0)
    assert b.forcing_names == ["f"] and b.f.shape == (2, 11, 1) and np.abs(b.f).max() > 0
    assert set(forced.grid()) == {"x_over_L"}
    assert get_system("kuramoto_sivashinsky", mu_names=[]).grid()["x"][1] == 22.0 / 64


def test_ks_bad_input():
    ks = get_system("kuramoto_sivashinsky", "small")
    for bad, match in ((0.0, "must be > 0"), (-5.0, "must be > 0"), (np.nan, "finite")):
        with pytest.raises(ValueError, match=match):
            ks.simulate(mu=[bad])
    with pytest.raises(ValueError, match="must be greater than 0"):
        get_system("kuramoto_sivashinsky", length=-1.0)
    with pytest.raises(ValueError, match="times must be >= 0"):
        ks.simulate(t=[-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        ks.simulate(t=[0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="expected 0 forcing channel"):
        ks.simulate(forcing=make_forcing("sine"))
    forced = get_system("kuramoto_sivashinsky", "small", forced=True)
    with pytest.raises(ValueError, match="expected 1 forcing channel"):
        forced.simulate(forcing=[make_forcing("sine")] * 2)
    with pytest.raises(ValueError, match="n_grid must be even"):
        get_system("kuramoto_sivashinsky", "small", n_grid=33).simulate()
    with pytest.raises(ValueError, match="u0 must have shape"):
        ks.integrate(np.zeros((2, 5)), [0.0, 1.0])


# ------------------------------------------------------------------- Van der Pol
def upward_crossing_periods(x, t):
    i = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return np.diff(t[i] - x[i] * (t[i + 1] - t[i]) / (x[i + 1] - x[i]))


def test_van_der_pol_limit_cycle_amplitude_and_periods():
    system = get_system("van_der_pol", "deterministic", x0=(2.0, 0.0))
    mu = np.array([[0.1, 1.0], [0.5, 1.0], [1.0, 1.0], [0.5, 2.0], [10.0, 1.0]])
    t = np.linspace(0.0, 80.0, 8001)
    x = system.simulate_batch(mu, [NO_FORCING] * len(mu), t)[:, :, 0]
    late = t > 40
    for (damping, k), xi in zip(mu[:4], x[:4]):
        # weakly nonlinear: amplitude 2, period 2π/√k (1 + μ²/16k) (Lindstedt–Poincaré)
        assert xi[late].max() == pytest.approx(2.0, rel=0.01)
        assert -xi[late].min() == pytest.approx(2.0, rel=0.01)
        period = 2 * np.pi / np.sqrt(k) * (1 + damping**2 / (16 * k))
        assert upward_crossing_periods(xi, t)[-1] == pytest.approx(period, rel=0.005)
    # relaxation, μ = 10: Dorodnitsyn's (3 − 2 ln 2)μ + 3α μ^(−1/3) − (2/3) ln μ / μ
    # (= 19.24; a tight Radau solve gives 19.078; the leading term alone, 16.14, is 15 % low)
    dorodnitsyn = (3 - 2 * np.log(2)) * 10 + 3 * 2.33811 * 10 ** (-1 / 3) - 2 / 3 * np.log(10) / 10
    assert upward_crossing_periods(x[4], t)[-1] == pytest.approx(dorodnitsyn, rel=0.02)


def test_van_der_pol_rk4_converges_at_fourth_order():
    f = make_forcing("sine", amplitude=1.0, frequency=0.2, phase=0.3)
    ends = [get_system("van_der_pol", "deterministic", max_step=h).simulate(
        [1.0, 1.0], f, t=[0.0, 5.0, 10.0])[-1] for h in (0.1, 0.05, 0.025)]
    d1, d2 = np.abs(ends[0] - ends[1]).max(), np.abs(ends[1] - ends[2]).max()
    assert 12 < d1 / d2 < 20


def test_van_der_pol_noise_forcing_and_errors():
    noisy, clean = get_system("van_der_pol", "small"), get_system("van_der_pol", "small",
                                                                  noise=0.0)
    a, b = noisy.simulate(seed=1), clean.simulate(seed=1)
    assert 1e-4 < np.abs(a - b).max() < 0.5
    np.testing.assert_array_equal(clean.simulate(seed=1), clean.simulate(seed=2))
    resonant = clean.simulate([0.1, 1.0], make_forcing("sine", amplitude=1.0,
                                                       frequency=1 / (2 * np.pi)),
                              t=np.linspace(0, 5, 51))
    assert not np.allclose(resonant, clean.simulate([0.1, 1.0], NO_FORCING,
                                                    t=np.linspace(0, 5, 51)))
    with pytest.raises(ValueError, match="stiffness"):
        clean.simulate(mu=[1.0, 0.0])
    with pytest.raises(ValueError, match="damping"):
        clean.simulate(mu=[-0.5, 1.0])
    with pytest.raises(ValueError, match="too stiff for RK4"):
        clean.simulate(mu=[100.0, 1.0])


# ------------------------------------------------------------------ command line
@pytest.mark.parametrize("name", ["kuramoto_sivashinsky", "van_der_pol"])
def test_srom_generate(name, tmp_path):
    out = tmp_path / f"{name}.npz"
    assert main(["generate", name, "--n", "2", "--split", "train", "--seed", "0",
                 "--preset", "small", "--out", str(out)]) == 0
    data = load_dataset(out)
    assert data.system == name and data.x.shape[0] == 2 and np.all(np.isfinite(data.x))


def test_oscillator_resonance_preset_matches_the_linear_response():
    """The built-in drive A sin(2πνt) as μ: with β = 0 and no noise, the steady amplitude is
    A / sqrt((ω0² − ω²)² + (δω)²), largest near ω0 (resonance)."""
    osc = get_system("oscillator", "resonance", beta=0.0, noise=0.0,
                     mu_names=["delta", "drive_amplitude", "drive_frequency"])
    delta, amp, omega0 = 0.1, 0.5, 1.0  # α = 1
    nus = np.array([0.5, 1.0, 2.0]) * omega0 / (2 * np.pi)
    mu = np.column_stack([np.full(3, delta), np.full(3, amp), nus])
    t = np.linspace(0.0, 200.0, 4001)
    x = osc.simulate_batch(mu, [(make_forcing("none"),)] * 3, t, np.random.default_rng(0))[:, :, 0]
    tail = x[:, t > 150.0]
    measured = 0.5 * (tail.max(1) - tail.min(1))
    w = 2 * np.pi * nus
    expected = amp / np.sqrt((omega0**2 - w**2) ** 2 + (delta * w) ** 2)
    np.testing.assert_allclose(measured, expected, rtol=0.03)
    assert measured[1] > 5 * max(measured[0], measured[2])


def test_resonance_presets_put_the_drive_in_mu():
    for name, first in (("oscillator", ["delta", "beta"]), ("van_der_pol", ["damping", "stiffness"])):
        data = generate(name, 2, preset="resonance", seed=0)
        assert data.param_names == [*first, "drive_amplitude", "drive_frequency"]
        assert np.all(data.f == 0) and np.all(np.isfinite(data.x))
