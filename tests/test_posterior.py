import torch

from engine.posterior import DeepKernel, WindowPosterior, robust_cholesky


def fitted(seed=0, nugget=1e-2):
    torch.manual_seed(seed)
    kernel = DeepKernel(length_scale=0.3, nugget=nugget).double()
    t = torch.linspace(0.0, 2.0, 24, dtype=torch.float64).expand(2, 24)
    h = torch.sin(t[..., None] * torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64))
    return WindowPosterior(kernel).fit_window(t, h), t, h


def test_time_derivatives_match_finite_differences():
    fit, _, _ = fitted()
    q = torch.rand(2, 9, dtype=torch.float64) * 1.8 + 0.1
    values, rates = fit.moments_and_rates(q)
    eps = 1e-6
    fd = (fit.moments(q + eps) - fit.moments(q - eps)) / (2 * eps)
    assert torch.allclose(values, fit.moments(q))
    assert torch.allclose(rates, fd, atol=1e-6, rtol=1e-5)


def test_interpolant_reproduces_smooth_node_values():
    fit, t, h = fitted(nugget=1e-6)
    assert torch.allclose(fit.moments(t), h, atol=1e-3)
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    truth = torch.sin(mid[..., None] * torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64))
    assert torch.allclose(fit.moments(mid), truth, atol=1e-2)


def test_gradients_flow_to_encoder_outputs_and_kernel():
    kernel = DeepKernel()
    h = torch.randn(1, 16, 4, requires_grad=True)
    fit = WindowPosterior(kernel).fit_window(torch.linspace(0, 1, 16)[None], h)
    values, rates = fit.moments_and_rates(torch.rand(1, 5))
    (values.sum() + rates.pow(2).sum()).backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    assert kernel.raw_length.grad is not None and kernel.raw_nugget.grad is not None


def test_cholesky_ladder_handles_singular_and_nan_free():
    v = torch.randn(6, 1, dtype=torch.float64)
    singular = (v @ v.T).expand(3, 6, 6)  # rank one
    chol = robust_cholesky(singular)
    assert torch.isfinite(chol).all()
    rebuilt = chol @ chol.transpose(-1, -2)
    assert torch.allclose(rebuilt, singular, atol=0.1 * singular.diagonal(dim1=-2, dim2=-1).mean())
    spd = torch.eye(6, dtype=torch.float64) * 2
    assert torch.allclose(robust_cholesky(spd), torch.linalg.cholesky(spd))


def test_cpu_shortcut_and_graph_ladder_give_the_same_factor_and_gradient(monkeypatch):
    """The CPU factors the matrix alone first; the ladder (the GPU's path) must agree, for
    a batch where every matrix factors and for one where a rung of jitter is needed."""
    import engine.posterior as posterior

    torch.manual_seed(0)
    t = torch.linspace(0.0, 1.0, 24, dtype=torch.float64)
    smooth = torch.exp(-0.5 * ((t[:, None] - t[None]) / 0.3) ** 2)
    v = torch.randn(24, 1, dtype=torch.float64)
    for batch in (smooth.expand(3, 24, 24) + 1e-3 * torch.eye(24, dtype=torch.float64),
                  torch.stack([smooth + 1e-3 * torch.eye(24, dtype=torch.float64), v @ v.T])):
        upstream = torch.randn(batch.shape, dtype=torch.float64)
        results = []
        for devices in (("cpu",), ()):
            monkeypatch.setattr(posterior, "FACTOR_FIRST_DEVICES", devices)
            matrix = batch.clone().requires_grad_()
            factor = robust_cholesky(matrix)
            (factor * upstream).sum().backward()
            results.append((factor.detach(), matrix.grad))
        (f_cpu, g_cpu), (f_ladder, g_ladder) = results
        assert torch.equal(f_cpu, f_ladder)
        assert torch.allclose(g_cpu, g_ladder, rtol=1e-12, atol=1e-12)


def test_hand_written_tangent_matches_torch_func_jvp():
    for act in ("tanh", "silu", "relu"):
        torch.manual_seed(3)
        kernel = DeepKernel(act=act).double()
        for p in kernel.warp_net.parameters():  # a non-trivial warp
            torch.nn.init.normal_(p, std=0.5)
        t = torch.linspace(0.0, 1.0, 16, dtype=torch.float64).expand(3, 16)
        fit = WindowPosterior(kernel).fit_window(t, torch.randn(3, 16, 4, dtype=torch.float64))
        q = torch.rand(3, 7, dtype=torch.float64)
        values, rates = fit.moments_and_rates(q)
        ref_values, ref_rates = fit.moments_and_rates_jvp(q)
        assert torch.allclose(values, ref_values) and torch.allclose(rates, ref_rates), act
