"""Convergence of the SDE schemes in engine.solvers: each measured order must lie within
±0.25 of the declared one (strong, weak and noise-free), on an Ornstein–Uhlenbeck process,
a 2-D linear SDE with known moments and a nonlinear, time- and forcing-dependent drift
(reference: SRA1 on a much finer step driven by the same Brownian path).

Every draw is seeded, so these tests are deterministic. A scheme swapped for another of a
lower order (Heun replaced by Euler, say) fails them: the noise-free and the weak slopes
of Heun and SRA1 are 2, Euler's 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from engine.rollout import integrate
from engine.solvers import METHODS, SCHEMES, get_scheme
from engine.solvers.grid import stage_grid

DTYPE = torch.float64
TOL = 0.25


def slope(counts, errors) -> float:
    """Least-squares slope of log(error) against log(step size), from step counts."""
    return float(np.polyfit(-np.log(counts), np.log(errors), 1)[0])


def brownian(n_steps: int, n_paths: int, dim: int, horizon: float, seed: int):
    """Increments ``dW`` and ``dZ = ∫(W(s) − W(t)) ds`` on ``n_steps`` equal steps, ``(n, M, d)``."""
    gen = torch.Generator().manual_seed(seed)
    h = horizon / n_steps
    xi = torch.randn(2, n_steps, n_paths, dim, generator=gen, dtype=DTYPE)
    dW = math.sqrt(h) * xi[0]
    dZ = 0.5 * h * (dW + math.sqrt(h) * xi[1] / math.sqrt(3.0))
    return dW, dZ


def coarsen(dW: torch.Tensor, dZ: torch.Tensor, h: float, factor: int):
    """The same Brownian path on steps ``factor`` times longer (exact for dW and dZ)."""
    n, m, d = dW.shape
    dW_f, dZ_f = dW.reshape(n // factor, factor, m, d), dZ.reshape(n // factor, factor, m, d)
    before = torch.cumsum(dW_f, dim=1) - dW_f  # W(s_j) − W(s_0) at each fine start
    return dW_f.sum(1), (before * h + dZ_f).sum(1)


def solve(method: str, drift, x0: torch.Tensor, horizon: float, n_steps: int, dW, dZ,
          psi: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
    """``X(horizon)`` ``(M, d)`` with ``n_steps`` steps driven by (dW, dZ) given on a finer grid."""
    scheme = get_scheme(method)
    factor = dW.shape[0] // n_steps
    h_fine = horizon / dW.shape[0]
    dW_c, dZ_c = coarsen(dW, dZ, h_fine, factor) if factor > 1 else (dW, dZ)
    h = torch.full((n_steps,), horizon / n_steps, dtype=DTYPE)
    noise = scheme.brownian_to_noise(dW_c, dZ_c, h)  # (n, M, n_noise·d)
    m = x0.shape[0]
    t = torch.tensor([0.0, horizon], dtype=DTYPE)
    f = forcing if forcing is not None else torch.zeros(m, 2, 0, dtype=DTYPE)
    mu = torch.zeros(m, 0, dtype=DTYPE)
    out = integrate(drift, x0, t, mu, f, psi, noise[None], method=method, substeps=n_steps)
    return out[:, -1]


def linear_drift(matrix: torch.Tensor):
    return lambda z, t, mu, f: z @ matrix.T


# --------------------------------------------------------------- declarations
def test_every_scheme_declares_its_orders():
    assert set(METHODS) == {"euler", "heun", "sra1"}
    declared = {name: (s.strong_order, s.weak_order, s.deterministic_order)
                for name, s in SCHEMES.items()}
    assert declared == {"euler": (1.0, 1.0, 1), "heun": (1.0, 2.0, 2), "sra1": (1.5, 2.0, 2)}
    with pytest.raises(ValueError, match="unknown integrator"):
        get_scheme("rk45")


def test_stage_grid_places_stages_and_interpolates_forcing():
    t = torch.tensor([0.0, 1.0, 3.0], dtype=DTYPE)
    f = torch.tensor([[[0.0], [2.0], [6.0]]], dtype=DTYPE)  # f(t) = 2t: linear everywhere
    grid = stage_grid(get_scheme("sra1"), t, f, substeps=2)
    expected = [0, 0.375, 0.5, 0.875, 1.0, 1.75, 2.0, 2.75, 3.0]
    assert torch.allclose(grid.times, torch.tensor(expected, dtype=DTYPE))
    assert torch.allclose(grid.forcing[0, :, 0], 2 * grid.times)
    assert torch.allclose(grid.step_sizes, torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=DTYPE))
    assert grid.index(3, 1) == 7 and grid.index(4, 0) == 8


def test_integrate_rejects_noise_of_the_wrong_shape():
    z0 = torch.zeros(3, 2)
    args = (torch.linspace(0, 1, 5), torch.zeros(3, 0), torch.zeros(3, 5, 0), torch.ones(2))
    with pytest.raises(ValueError, match="noise: expected shape"):
        integrate(lambda z, t, mu, f: -z, z0, *args, torch.zeros(4, 1, 3, 2), method="sra1")


# ------------------------------------------------------------ Ornstein–Uhlenbeck
OU_RATE, OU_SIGMA, OU_X0, OU_T = 1.5, 0.8, 1.0, 2.0
OU_STEPS = [8, 16, 32, 64]


@pytest.mark.parametrize("method", METHODS)
def test_ou_noise_free_order(method):
    """Without noise the scheme is a Runge–Kutta method of its deterministic order."""
    drift = linear_drift(torch.tensor([[-OU_RATE]], dtype=DTYPE))
    x0 = torch.full((1, 1), OU_X0, dtype=DTYPE)
    exact = OU_X0 * math.exp(-OU_RATE * OU_T)
    errors = []
    for n in OU_STEPS:
        zeros = torch.zeros(n, 1, 1, dtype=DTYPE)
        x = solve(method, drift, x0, OU_T, n, zeros, zeros, torch.ones(1, dtype=DTYPE))
        errors.append(abs(float(x) - exact))
    assert abs(slope(OU_STEPS, errors) - get_scheme(method).deterministic_order) <= TOL, errors


def impulse_variance(method: str, drift, dim: int, n_steps: int, horizon: float,
                     psi: torch.Tensor) -> torch.Tensor:
    """Exact covariance ``(d, d)`` of a scheme's ``X(horizon)`` for a *linear* drift: the
    scheme is then linear in its normal draws, so running it from 0 with one unit draw at a
    time gives each draw's column of the response, and the covariance is their sum of
    outer products (no Monte-Carlo error)."""
    scheme = get_scheme(method)
    k = scheme.n_noise * dim
    n_draws = n_steps * k
    noise = torch.eye(n_draws, dtype=DTYPE).reshape(n_draws, n_steps, k).transpose(0, 1)
    x0 = torch.zeros(n_draws, dim, dtype=DTYPE)
    t = torch.tensor([0.0, horizon], dtype=DTYPE)
    out = integrate(drift, x0, t, torch.zeros(n_draws, 0, dtype=DTYPE),
                    torch.zeros(n_draws, 2, 0, dtype=DTYPE), psi, noise[None],
                    method=method, substeps=n_steps)[:, -1]  # (n_draws, d)
    return out.T @ out


@pytest.mark.parametrize("method", METHODS)
def test_ou_weak_order_of_the_variance(method):
    drift = linear_drift(torch.tensor([[-OU_RATE]], dtype=DTYPE))
    psi = torch.full((1,), OU_SIGMA, dtype=DTYPE)
    exact = OU_SIGMA**2 * (1 - math.exp(-2 * OU_RATE * OU_T)) / (2 * OU_RATE)
    errors = [abs(float(impulse_variance(method, drift, 1, n, OU_T, psi)) - exact)
              for n in OU_STEPS]
    assert abs(slope(OU_STEPS, errors) - get_scheme(method).weak_order) <= TOL, errors


# ------------------------------------------------ 2-D linear SDE with known moments
LIN_A = torch.tensor([[-0.5, -2.0], [2.0, -0.5]], dtype=DTYPE)  # a damped rotation
LIN_PSI = torch.tensor([0.6, 0.3], dtype=DTYPE)
LIN_X0 = torch.tensor([[1.0, -0.5]], dtype=DTYPE)
LIN_T = 2.0
LIN_STEPS = [16, 32, 64, 128]


def linear_exact_moments():
    a = LIN_A.numpy()
    mean = scipy.linalg.expm(a * LIN_T) @ LIN_X0.numpy()[0]
    # Σ(T) = ∫_0^T e^{As} Q e^{Aᵀs} ds with Q = diag(Ψ²): Van Loan's block exponential
    q = np.diag(LIN_PSI.numpy() ** 2)
    block = np.block([[-a, q], [np.zeros_like(a), a.T]]) * LIN_T
    e = scipy.linalg.expm(block)
    cov = e[2:, 2:].T @ e[:2, 2:]
    return mean, cov


@pytest.mark.parametrize("method", METHODS)
def test_linear_sde_weak_orders_of_mean_and_covariance(method):
    drift = linear_drift(LIN_A)
    mean_exact, cov_exact = linear_exact_moments()
    mean_errors, cov_errors = [], []
    for n in LIN_STEPS:
        zeros = torch.zeros(n, 1, 2, dtype=DTYPE)
        mean = solve(method, drift, LIN_X0, LIN_T, n, zeros, zeros, LIN_PSI)[0].numpy()
        cov = impulse_variance(method, drift, 2, n, LIN_T, LIN_PSI).numpy()
        mean_errors.append(np.linalg.norm(mean - mean_exact))
        cov_errors.append(np.linalg.norm(cov - cov_exact))
    scheme = get_scheme(method)
    assert abs(slope(LIN_STEPS, mean_errors) - scheme.deterministic_order) <= TOL, mean_errors
    assert abs(slope(LIN_STEPS, cov_errors) - scheme.weak_order) <= TOL, cov_errors


#: on a linear drift the error terms of SRA1's order 1.5 vanish (they carry the drift's
#: curvature) and it converges pathwise with order 2
LINEAR_STRONG_ORDER = {"euler": 1.0, "heun": 1.0, "sra1": 2.0}


@pytest.mark.parametrize("method", METHODS)
def test_linear_sde_strong_order(method):
    n_fine, paths = 2048, 2000
    dW, dZ = brownian(n_fine, paths, 2, LIN_T, seed=11)
    drift = linear_drift(LIN_A)
    x0 = LIN_X0.expand(paths, -1)
    reference = solve("sra1", drift, x0, LIN_T, n_fine, dW, dZ, LIN_PSI)
    errors = []
    for n in LIN_STEPS:
        x = solve(method, drift, x0, LIN_T, n, dW, dZ, LIN_PSI)
        errors.append(float(((x - reference) ** 2).sum(-1).mean().sqrt()))
    assert get_scheme(method).strong_order <= LINEAR_STRONG_ORDER[method]
    assert abs(slope(LIN_STEPS, errors) - LINEAR_STRONG_ORDER[method]) <= TOL, errors


# ------------------------------------------------------------- a nonlinear drift
NL_T = 1.0
NL_STEPS = [4, 8, 16, 32]  # weak errors
NL_STRONG_STEPS = [32, 64, 128, 256]  # strong errors: SRA1 reaches its order on finer steps


def nonlinear_drift(z, t, mu, f):
    """``ψ = z − z³ + cos(3t) + f``: bistable, time- and forcing-dependent."""
    return z - z**3 + torch.cos(3 * t)[:, None] + f


def nonlinear_forcing(paths: int) -> torch.Tensor:
    return torch.tensor([1.0, -1.0], dtype=DTYPE).expand(paths, 2)[..., None]  # linear in t


@pytest.mark.parametrize("method", METHODS)
def test_nonlinear_strong_order(method):
    n_fine, paths, psi = 4096, 1000, torch.tensor([1.0], dtype=DTYPE)
    dW, dZ = brownian(n_fine, paths, 1, NL_T, seed=5)
    x0 = torch.full((paths, 1), 0.2, dtype=DTYPE)
    f = nonlinear_forcing(paths)
    reference = solve("sra1", nonlinear_drift, x0, NL_T, n_fine, dW, dZ, psi, f)
    errors = [float(((solve(method, nonlinear_drift, x0, NL_T, n, dW, dZ, psi, f)
                      - reference) ** 2).mean().sqrt()) for n in NL_STRONG_STEPS]
    assert abs(slope(NL_STRONG_STEPS, errors) - get_scheme(method).strong_order) <= TOL, errors


@pytest.mark.parametrize("method", METHODS)
def test_nonlinear_weak_order(method):
    """Error of E[X] and E[X²] against the fine reference on the same 40 000 paths (the
    coupling removes most of the Monte-Carlo noise from the difference)."""
    n_fine, paths, psi = 512, 40000, torch.tensor([0.5], dtype=DTYPE)
    dW, dZ = brownian(n_fine, paths, 1, NL_T, seed=9)
    x0 = torch.full((paths, 1), 0.2, dtype=DTYPE)
    f = nonlinear_forcing(paths)
    reference = solve("sra1", nonlinear_drift, x0, NL_T, n_fine, dW, dZ, psi, f)
    errors = []
    for n in NL_STEPS:
        x = solve(method, nonlinear_drift, x0, NL_T, n, dW, dZ, psi, f)
        errors.append(float(abs((x - reference).mean()) + abs((x**2 - reference**2).mean())))
    assert abs(slope(NL_STEPS, errors) - get_scheme(method).weak_order) <= TOL, errors
