import pytest
import torch

from engine.networks import build_decoder, build_encoder, choose_architecture


@pytest.mark.parametrize("arch, shape", [
    ("mlp", (12,)), ("conv1d", (101,)), ("conv1d", (3, 64)), ("conv2d", (2, 33, 47)),
    ("conv2d", (1, 32, 32)),
])
@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_encoder_decoder_shapes(arch, shape, padding):
    if arch == "mlp" and padding == "circular":
        pytest.skip("no padding in an MLP")
    enc = build_encoder(arch, shape, 5, 2, (32, 16), "silu", 4, padding)
    dec = build_decoder(arch, shape, 5, (16, 32), "silu", 4, padding)
    x = torch.randn(7, 2, *shape)
    mean, log_var = enc(x)
    assert mean.shape == (7, 5) and log_var.shape == (7, 5)
    assert dec(mean).shape == (7, *shape)


def test_circular_padding_wraps_around_the_domain():
    torch.manual_seed(0)
    dec = build_decoder("conv1d", (64,), 3, (16,), "relu", 4, "circular")
    conv = [m for m in dec.modules() if isinstance(m, torch.nn.Conv1d)][-1]
    assert conv.padding_mode == "circular"
    # a circular conv of a signal that is non-zero only at the left edge also touches the right edge
    x = torch.zeros(1, conv.in_channels, 64)
    x[..., 0] = 1.0
    y = conv(x) - conv(torch.zeros_like(x))
    assert y[..., -1].abs().sum() > 0


def test_identity_and_architecture_choice():
    enc = build_encoder("identity", (3,), 3, 1, (8,), "silu", 4, "zeros")
    x = torch.randn(4, 1, 3)
    assert torch.equal(enc(x)[0], x[:, 0])
    assert build_decoder("identity", (3,), 3, (8,), "silu", 4, "zeros")(x[:, 0]).shape == (4, 3)
    with pytest.raises(ValueError, match="latent_dim == state size"):
        build_encoder("identity", (3,), 2, 1, (8,), "silu", 4, "zeros")
    assert choose_architecture((3,), 3) == "identity"
    assert choose_architecture((500,), 4) == "conv1d"
    assert choose_architecture((20,), 4) == "mlp"
    assert choose_architecture((2, 8, 8), 4) == "conv2d"
    with pytest.raises(ValueError, match="unknown architecture"):
        build_encoder("transformer", (3,), 3, 1, (8,), "silu", 4, "zeros")


@pytest.mark.parametrize("levels", [1, 3, 5])
def test_conv_levels_set_the_depth_and_keep_the_shape(levels):
    shape = (3, 40, 100)
    enc = build_encoder("conv2d", shape, 4, 1, (16,), "silu", 4, "zeros", conv_levels=levels)
    dec = build_decoder("conv2d", shape, 4, (16,), "silu", 4, "zeros", conv_levels=levels)
    strided = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == levels
    assert dec(enc(torch.randn(3, 1, *shape))[0]).shape == (3, *shape)


def test_identity_encoder_with_a_window_starts_as_the_identity_and_learns_a_correction():
    """n_win > 1: z = x(t) + a learned correction from the window, zero at the start."""
    enc = build_encoder("identity", (3,), 3, 4, (16,), "silu", 4, "zeros")
    x = torch.randn(5, 4, 3)
    mean, _ = enc(x)
    assert torch.equal(mean, x[:, 0])
    trainable = [p for p in enc.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) > 3  # more than the constant log-variance
    target = x.mean(1)  # e.g. the window average: reachable only through the correction
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    first = float(((enc(x)[0] - target) ** 2).mean())
    for _ in range(200):
        opt.zero_grad()
        loss = ((enc(x)[0] - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1 * first
