"""Encoders and decoders of the probabilistic autoencoder, chosen by the state shape.

Shapes: a batch of M snapshots of state shape ``S`` is ``(M, *S)``; an encoder input is a
forward-looking window ``(M, n_win, *S)``; a latent is ``(M, d)``.

=================  ==================  =============================================
architecture       state shape         networks
=================  ==================  =============================================
``mlp``            (D,)                fully connected
``conv1d``         (L,) or (C, L)      strided Conv1d down, upsample + Conv1d up
``conv2d``         (C, H, W)           strided Conv2d down, upsample + Conv2d up
``identity``       (D,) with D = d     z = x (encoder; with n_win > 1, z = x + a
                                      learned correction from the window), x = z
                                      (decoder)
=================  ==================  =============================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast, get_args

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd  # the base of Conv1d/2d and ConvTranspose1d/2d

__all__ = [
    "ACTIVATIONS", "mlp", "choose_architecture", "build_encoder", "build_decoder",
    "Encoder", "Decoder",
]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU,
               "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}

#: the padding modes of torch's convolutions
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


def _padding_mode(mode: str) -> PaddingMode:
    """``mode`` checked against torch's padding modes."""
    if mode not in get_args(PaddingMode):
        raise ValueError(f"padding_mode '{mode}': use one of {', '.join(get_args(PaddingMode))}")
    return cast(PaddingMode, mode)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}': choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _xavier_normal_(weight: torch.Tensor) -> None:
    """Xavier-normal initialisation, skipped on the meta device, where a model is only
    sized (and where torch's ``normal_`` first imports torch._dynamo: a second)."""
    if weight.device.type != "meta":
        nn.init.xavier_normal_(weight)


def mlp(n_in: int, hidden: Sequence[int], n_out: int, act: str = "silu",
        zero_last: bool = False) -> nn.Sequential:
    """A fully connected network ``n_in → hidden… → n_out``, Xavier-normal init, zero biases."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    last = nn.Linear(width, n_out)
    layers.append(last)
    for layer in layers:
        if isinstance(layer, nn.Linear):
            _xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    if zero_last:
        nn.init.zeros_(last.weight)
    return nn.Sequential(*layers)


def choose_architecture(state_shape: Sequence[int], latent_dim: int) -> str:
    """The default architecture for a state shape (see the module table)."""
    state_shape = tuple(state_shape)
    if len(state_shape) == 1:
        if state_shape[0] == latent_dim and latent_dim <= 8:
            return "identity"
        return "conv1d" if state_shape[0] >= 64 else "mlp"
    if len(state_shape) == 2:
        return "conv1d"
    if len(state_shape) == 3:
        return "conv2d"
    raise ValueError(f"state shape {state_shape}: expected 1 to 3 axes")


def _n_down(sizes: Sequence[int], target: int = 16, max_layers: int = 5) -> int:
    """How many stride-2 layers take the smallest spatial size down to about ``target``."""
    smallest = min(sizes)
    n = 0
    while n < max_layers and math.ceil(smallest / 2 ** (n + 1)) >= max(target // 2, 2):
        n += 1
        if math.ceil(smallest / 2 ** n) <= target:
            break
    return max(n, 1)


class _ConvStack(nn.Module):
    """Shared geometry of the conv encoder/decoder pair: channel widths and sizes per level."""

    def __init__(self, state_shape: Sequence[int], base_channels: int, n_levels: int | None):
        super().__init__()
        shape = tuple(state_shape)
        self.spatial_dims = 1 if len(shape) <= 2 else 2
        self.channels = 1 if len(shape) == 1 else shape[0]
        self.sizes0 = shape[-self.spatial_dims:]
        levels = n_levels or _n_down(self.sizes0)
        self.widths = [base_channels * 2 ** i for i in range(levels)]
        sizes = [tuple(self.sizes0)]
        for _ in range(levels):
            sizes.append(tuple((s - 1) // 2 + 1 for s in sizes[-1]))
        self.level_sizes = sizes

    def conv(self, c_in: int, c_out: int, stride: int, padding_mode: str) -> nn.Module:
        cls = nn.Conv1d if self.spatial_dims == 1 else nn.Conv2d
        layer = cls(c_in, c_out, kernel_size=5, stride=stride, padding=2,
                    padding_mode=_padding_mode(padding_mode))
        _xavier_normal_(layer.weight)
        if layer.bias is not None:  # always: the layer is made with a bias
            nn.init.zeros_(layer.bias)
        return layer


class Encoder(nn.Module):
    """Maps a window of snapshots to the mean and log-variance of the latent.

    Input ``(M, n_win, *S)`` (normalized), output ``(mean, log_var)`` each ``(M, d)``.
    The variance is either a learned constant vector (``variance="constant"``, as in the
    ROM paper) or predicted from the input (``"amortized"``).
    """

    def __init__(self, body: nn.Module, latent_dim: int, variance: str, log_var_init: float,
                 n_features: int, residual_identity: bool = False):
        super().__init__()
        self.body = body
        self.latent_dim = latent_dim
        self.variance = variance
        self.residual_identity = residual_identity
        if variance == "constant":
            self.log_var = nn.Parameter(torch.full((latent_dim,), float(log_var_init)))
        elif variance == "amortized":
            self.log_var_head = nn.Linear(n_features, latent_dim)
            nn.init.zeros_(self.log_var_head.weight)
            nn.init.constant_(self.log_var_head.bias, float(log_var_init))
        else:
            raise ValueError(f"encoder variance '{variance}': use 'constant' or 'amortized'")
        self.mean_head = None if residual_identity else nn.Linear(n_features, latent_dim)
        if self.mean_head is not None:
            _xavier_normal_(self.mean_head.weight)
            nn.init.zeros_(self.mean_head.bias)

    def forward(self, x_win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x_win)
        if self.mean_head is None:  # residual_identity
            mean = x_win[:, 0].reshape(x_win.shape[0], -1) + features
        else:
            mean = self.mean_head(features)
        if self.variance == "constant":
            log_var = self.log_var.expand_as(mean)
        else:
            log_var = self.log_var_head(features)
        return mean, log_var


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class _MergeWindow(nn.Module):
    """``(M, n_win, C, *spatial)`` → ``(M, n_win·C, *spatial)`` for the conv encoders."""

    def __init__(self, channels: int, spatial_dims: int):
        super().__init__()
        self.channels, self.spatial_dims = channels, spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[-self.spatial_dims:]
        return x.reshape(x.shape[0], -1, *spatial)


class _ZeroFeatures(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.width)


def build_encoder(architecture: str, state_shape: Sequence[int], latent_dim: int, n_win: int,
                  hidden: Sequence[int], act: str, base_channels: int, padding_mode: str,
                  variance: str = "constant", log_var_init: float = -4.0,
                  conv_levels: int | None = None, window_correction: bool = True) -> Encoder:
    """An encoder for ``architecture`` (see the module table); ``conv_levels`` stride-2
    layers of the conv stacks (``None``: down to about 16 points on the smallest axis);
    ``window_correction=False``: an identity encoder ignores the rest of its window (as
    models saved before the correction existed)."""
    state_shape = tuple(state_shape)
    n_state = math.prod(state_shape)
    if architecture == "identity":
        if n_state != latent_dim:
            raise ValueError(
                f"identity encoder needs latent_dim == state size, got {latent_dim} and {n_state}"
            )
        # one snapshot: z = x exactly. A window of n_win > 1 noisy snapshots: z = x(t) plus a
        # learned correction from the whole window (zero at the start), so the encoder can
        # learn to filter observation noise out of the initial state while the latent stays
        # the physical state that a physics drift needs
        body: nn.Module = (_ZeroFeatures(latent_dim) if n_win == 1 or not window_correction
                           else nn.Sequential(
            _Flatten(), mlp(n_win * n_state, hidden, latent_dim, act, zero_last=True)))
        return Encoder(body, latent_dim, variance, log_var_init, latent_dim,
                       residual_identity=True)
    if architecture == "mlp":
        body = nn.Sequential(_Flatten(), mlp(n_win * n_state, hidden[:-1], hidden[-1], act),
                             activation(act))
        return Encoder(body, latent_dim, variance, log_var_init, hidden[-1])
    if architecture in ("conv1d", "conv2d"):
        geo = _ConvStack(state_shape, base_channels, conv_levels)
        if (geo.spatial_dims == 1) != (architecture == "conv1d"):
            raise ValueError(f"architecture '{architecture}' does not fit state shape {state_shape}")
        layers: list[nn.Module] = [_MergeWindow(geo.channels, geo.spatial_dims)]
        c_in = n_win * geo.channels
        for width in geo.widths:
            layers += [geo.conv(c_in, width, 2, padding_mode), activation(act)]
            c_in = width
        n_flat = geo.widths[-1] * math.prod(geo.level_sizes[-1])
        layers += [_Flatten(), nn.Linear(n_flat, hidden[-1]), activation(act)]
        return Encoder(nn.Sequential(*layers), latent_dim, variance, log_var_init, hidden[-1])
    raise ValueError(
        f"unknown architecture '{architecture}': use 'mlp', 'conv1d', 'conv2d' or 'identity'"
    )


class Decoder(nn.Module):
    """Maps latents ``(M, d)`` to the decoded mean ``(M, *S)`` (normalized units)."""

    def __init__(self, net: nn.Module | None, state_shape: Sequence[int]):
        super().__init__()
        self.net = net
        self.state_shape = tuple(state_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            return z.reshape(z.shape[0], *self.state_shape)
        return self.net(z).reshape(z.shape[0], *self.state_shape)


class _Unflatten(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class _UpsampleConv(nn.Module):
    """Double the spatial size to exactly ``size``, then convolve (k = 5).

    With zero padding this is one stride-2 transposed convolution (the ROM paper's form,
    half the arithmetic of upsample + conv). With circular padding (periodic domains,
    which transposed convolutions do not support) it is nearest-neighbour repetition,
    cropped to ``size``, followed by a circular convolution. Both avoid
    ``F.interpolate(mode="linear")``, whose CUDA kernel is very slow at these shapes.
    """

    def __init__(self, c_in: int, c_out: int, size_in: Sequence[int], size: Sequence[int],
                 padding_mode: str):
        super().__init__()
        self.size = tuple(size)
        dims = len(self.size)
        self.transposed = padding_mode == "zeros"
        self.conv: _ConvNd
        if self.transposed:
            extra = [n - (2 * m - 1) for n, m in zip(self.size, size_in)]
            if dims == 1:
                self.conv = nn.ConvTranspose1d(c_in, c_out, kernel_size=5, stride=2, padding=2,
                                               output_padding=extra[0])
            else:
                self.conv = nn.ConvTranspose2d(c_in, c_out, kernel_size=5, stride=2, padding=2,
                                               output_padding=(extra[0], extra[1]))
        else:
            cls = nn.Conv1d if dims == 1 else nn.Conv2d
            self.conv = cls(c_in, c_out, kernel_size=5, padding=2,
                            padding_mode=_padding_mode(padding_mode))
        _xavier_normal_(self.conv.weight)
        if self.conv.bias is not None:  # always: the layer is made with a bias
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return self.conv(x)
        for axis, n in enumerate(self.size):
            dim = x.dim() - len(self.size) + axis
            x = x.repeat_interleave(2, dim=dim).narrow(dim, 0, n)
        return self.conv(x)


def build_decoder(architecture: str, state_shape: Sequence[int], latent_dim: int,
                  hidden: Sequence[int], act: str, base_channels: int,
                  padding_mode: str, conv_levels: int | None = None) -> Decoder:
    """A decoder mirroring :func:`build_encoder`."""
    state_shape = tuple(state_shape)
    n_state = math.prod(state_shape)
    if architecture == "identity":
        return Decoder(None, state_shape)
    if architecture == "mlp":
        return Decoder(mlp(latent_dim, hidden, n_state, act), state_shape)
    geo = _ConvStack(state_shape, base_channels, conv_levels)
    widths = geo.widths[::-1]
    sizes = geo.level_sizes[::-1]
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, hidden[-1]), activation(act),
        nn.Linear(hidden[-1], widths[0] * math.prod(sizes[0])), activation(act),
        _Unflatten((widths[0],) + tuple(sizes[0])),
    ]
    for i, width in enumerate(widths):
        c_out = widths[i + 1] if i + 1 < len(widths) else widths[-1]
        layers += [_UpsampleConv(width, c_out, sizes[i], sizes[i + 1], padding_mode), activation(act)]
    layers.append(geo.conv(widths[-1], geo.channels, 1, padding_mode))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            _xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return Decoder(nn.Sequential(*layers), state_shape)
