import math

import numpy as np
import torch

from engine.elbo import (
    gaussian_log_likelihood,
    kl_weight,
    lyapunov_rate,
    path_residual,
    stratified_times,
)


def test_lyapunov_rate_solves_the_diagonal_lyapunov_equation():
    torch.manual_seed(0)
    var = torch.rand(7, 3, dtype=torch.float64) + 0.1
    log_var_rate = torch.randn(7, 3, dtype=torch.float64)
    disp_var = torch.rand(3, dtype=torch.float64) + 0.05
    a = lyapunov_rate(var, log_var_rate, disp_var)
    var_rate = var * log_var_rate  # Ṡ
    # A S + S Aᵀ = Σ − Ṡ, diagonal: 2 A S = Σ − Ṡ
    assert torch.allclose(2 * a * var, disp_var - var_rate)
    assert torch.allclose(a, 0.5 * (disp_var - var_rate) / var)


def test_residual_is_zero_when_posterior_is_the_prior_linear_sde():
    # Prior: dz = (−k z + b(t)) dt + Ψ dβ. Its marginals solve ṁ = −k m + b, Ṡ = −2kS + Ψ².
    k = torch.tensor([0.7, 2.0], dtype=torch.float64)
    psi2 = torch.tensor([0.3, 0.05], dtype=torch.float64)
    t = torch.linspace(0, 2, 50, dtype=torch.float64)[:, None]
    b = torch.sin(3 * t) + 0.5
    s0 = torch.tensor([0.2, 0.01], dtype=torch.float64)
    # closed forms
    s = psi2 / (2 * k) + (s0 - psi2 / (2 * k)) * torch.exp(-2 * k * t)
    s_rate = -2 * k * s + psi2
    m = torch.randn(50, 2, dtype=torch.float64)  # any mean path: set ṁ from the ODE
    m_rate = -k * m + b
    z = m + s.sqrt() * torch.randn(50, 2, dtype=torch.float64)
    drift = -k * z + b
    r = path_residual(m, m_rate, s, s_rate / s, z, drift, psi2)
    assert torch.allclose(r, torch.zeros_like(r), atol=1e-12)
    # and any other drift leaves a residual
    r_other = path_residual(m, m_rate, s, s_rate / s, z, drift + 0.1, psi2)
    assert torch.allclose(r_other, torch.full_like(r, -0.1))


def test_stratified_quadrature_is_unbiased():
    torch.manual_seed(1)
    a, b = torch.tensor([0.3], dtype=torch.float64), torch.tensor([2.5], dtype=torch.float64)
    exact = (math.cos(3 * 0.3) - math.cos(3 * 2.5)) / 3 + (2.5**3 - 0.3**3) / 3

    def estimate(times):
        g = torch.sin(3 * times) + times**2
        return ((b - a)[:, None] * g).mean(-1)

    draws = torch.stack([estimate(stratified_times(a, b, 8)) for _ in range(4000)]).squeeze()
    mean, sem = draws.mean().item(), draws.std().item() / math.sqrt(len(draws))
    assert abs(mean - exact) < 4 * sem + 1e-12
    # fine midpoint rule agrees, and stratification beats plain uniform sampling
    uniform = torch.stack([estimate(a[:, None] + (b - a)[:, None] * torch.rand(1, 8, dtype=torch.float64))
                           for _ in range(4000)]).squeeze()
    assert draws.var() < 0.2 * uniform.var()


def test_stratified_times_lie_in_their_strata():
    t = stratified_times(torch.zeros(3), torch.full((3,), 4.0), 4, n_draws=2)
    assert t.shape == (3, 8)
    strata = torch.floor(t).long()
    assert torch.equal(strata, torch.arange(4).repeat(2).expand(3, 8))


def test_gaussian_log_likelihood_matches_scipy():
    from scipy.stats import norm

    x, mean, var = np.random.default_rng(0).normal(size=(3, 4, 5))
    var = np.abs(var) + 0.1
    ours = gaussian_log_likelihood(torch.tensor(x), torch.tensor(mean), torch.tensor(var), 1)
    ref = norm.logpdf(x, mean, np.sqrt(var)).sum(-1)
    assert np.allclose(ours.numpy(), ref)


def test_kl_weight_schedule():
    steps = torch.tensor([0, 5, 10, 15, 30])
    assert torch.allclose(kl_weight(steps, 5, 10), torch.tensor([0, 0, 0.5, 1.0, 1.0]))
    assert torch.equal(kl_weight(steps, 10, 0), torch.tensor([0.0, 0, 1, 1, 1]))


def test_library_features_are_the_monomials():
    import torch

    from engine.drift import LibraryDrift

    drift = LibraryDrift(latent_dim=2, n_params=0, n_forcing=1, degree=2)
    z, f = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0]])
    feats = drift.features(z, torch.zeros(1, 0), f)[0]
    # monomials of [1, z1, z2, f] up to degree 2, in combinations_with_replacement order
    v = [1.0, 2.0, 3.0, 5.0]
    expected = [v[i] * v[j] for i in range(4) for j in range(i, 4)]
    assert feats.tolist() == expected
