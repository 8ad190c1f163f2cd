"""One GPU kernel for a whole rollout of a :class:`~engine.drift.NeuralDrift` (Triton).

A rollout through :func:`engine.rollout.integrate` launches about ten small kernels per drift
evaluation (one product per layer, the activations, the updates): on an H100 a step costs
~40 µs of launch and scheduling latency even when captured in a CUDA graph, so 300 Heun
steps took ~23 ms whatever the number of paths (``benchmarks/results/inference_cuda.md``).
Here one Triton program owns a block of ``BLOCK_PATHS`` = 64 paths (one Hopper warp group's
tensor-core product) and runs *every* step of the rollout for them: the MLP's products, the
activations and the Euler or Heun update, with the latent in registers between steps.

- **Weights resident.** Every weight is loaded once, before the steps, and Triton keeps it
  in shared memory for the whole rollout (an earlier kernel re-read the weights at every
  step through registers, spilled, and took 11-121 ms whatever the paths: the history is
  in ``benchmarks/results/fused_rollout_cuda_first_kernel.md`` and
  ``inference_cuda_fused_trial.md``).
  128-wide layers with two hidden-to-hidden ones need 220 KB of the 227 KB an H100 block
  may have (:data:`MAX_HIDDEN`, :data:`MAX_HIDDEN_LAYERS`).
- **fp32 accuracy on tensor cores** (``precision="split"``, the default): each product is
  x_hi·W_hi + x_lo·W_hi (tf32) + x_hi·W_lo (bf16), with x_hi and W_hi exact in tf32. Bare
  tf32 (``precision="tf32"``) errs ~1e-3 relative per product, and the learned drifts are
  locally expanding: it moved the Burgers paths by ~0.8 % of their scale over 300 steps.
  The split errs like torch's float32 (tests/test_fused_rollout.py scores both against a
  float64 rollout).
- **Work outside the kernel.** Everything that does not depend on ``z`` is computed before
  the launch with torch: the first layer's product with ``[μ, f(t), cos, sin]`` at every
  grid point (:func:`first_layer_table`, in float64; the kernel adds one row for all the
  paths, so paths with their own μ or f(t) are refused and take the CUDA graph) and the
  diffusion increments ``Ψ ΔW`` of :meth:`engine.solvers.base.Scheme.prepare`.

:class:`engine.rollout.RolloutEngine` takes this path when ``use_fused`` (see there for the
default) and :func:`fused_support` says the drift, scheme and sizes fit (``None``); every
other case (CPU, other drifts, ``sra1``, float64, wider or deeper networks) keeps the
CUDA-graph path. Tested against a float64 :func:`engine.rollout.integrate` on the GPU and,
on a CPU with Triton installed, in Triton's interpreter (``tests/test_fused_rollout.py``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from engine.drift import NeuralDrift
from engine.networks import ACTIVATIONS
from engine.solvers import get_scheme
from engine.solvers.grid import stage_grid

__all__ = ["fused_support", "fused_integrate", "FusedWeights", "FusedUnsupported", "pack_weights",
           "first_layer_table", "paths_share_inputs"]

#: Triton ships with torch's CUDA wheels; the CPU wheels have none. The kernel module
#: (:mod:`engine.solvers.fused_kernel`) is imported on first use only
HAS_TRITON = importlib.util.find_spec("triton") is not None

#: paths per Triton program: one Hopper warp group's tensor-core product has 64 rows (with 16
#: or 32 paths Triton falls back to slower products and spills: 79-121 ms per rollout)
BLOCK_PATHS = 64
#: the widest hidden layer the kernel takes: every weight stays in shared memory for the
#: whole rollout, and 128 wide with two hidden-to-hidden layers needs 220 KB of the 227 KB an
#: H100 block may have (compiled for sm_90, tests/test_fused_rollout.py)
MAX_HIDDEN = 128
#: the most hidden layers (activations) the kernel takes: the first layer, at most two
#: hidden-to-hidden ones and the output layer, all resident
MAX_HIDDEN_LAYERS = 3
#: launch settings. One stage: no software pipelining (the loads happen once, before the
#: steps; the steps depend on each other anyway)
NUM_WARPS, NUM_STAGES = 4, 1
#: activations the kernel computes, by :data:`engine.networks.ACTIVATIONS` name
ACTIVATION_CODES = {"silu": 0, "tanh": 1, "relu": 2, "gelu": 3}
SCHEME_CODES = {"euler": 0, "heun": 1}
#: ``tl.dot`` arithmetic: ``"split"`` (default) adds the products of the low-order parts
#: (x_lo·W_hi in tf32, x_hi·W_lo in bf16) to tf32's x_hi·W_hi, ~1e-6 relative like fp32;
#: ``"tf32"`` is the bare tensor-core product, ~1e-3 relative
PRECISIONS = ("split", "tf32")
#: clears the 13 low mantissa bits of a float32: the value tf32 keeps exactly
_TF32_MASK = -8192


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, int(n) - 1).bit_length())


def _split(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w = hi + lo``: ``hi`` exact in tf32, ``lo`` the rest rounded to bfloat16 (both
    stored as float32: the kernel converts ``lo`` to bfloat16 once, exactly)."""
    hi = (w.contiguous().view(torch.int32) & _TF32_MASK).view(torch.float32)
    return hi.contiguous(), (w - hi).to(torch.bfloat16).to(torch.float32).contiguous()


@dataclass(frozen=True)
class FusedWeights:
    """A NeuralDrift's MLP, zero-padded to the kernel's power-of-two sizes (``DP`` latent,
    ``HP`` hidden), transposed to ``(in, out)`` and split into a tf32-exact high part and a
    bfloat16-rounded low part (:func:`_split`).

    Attributes:
        w_z_hi, w_z_lo: ``(DP, HP)`` the first layer's latent part.
        w_other: ``(n_other, HP)`` its other inputs' part, float32; b_first: ``(HP,)``:
            applied with torch before the launch (they do not depend on ``z``).
        w_hidden_hi, w_hidden_lo: ``(2, HP, HP)`` the hidden-to-hidden layers (unused rows
            zero); b_hidden: ``(2, HP)``.
        w_out_hi, w_out_lo: ``(HP, DP)``; b_out: ``(DP,)``.
        n_hidden: L, the hidden layers; activation: its code in :data:`ACTIVATION_CODES`.
    """

    w_z_hi: torch.Tensor
    w_z_lo: torch.Tensor
    w_other: torch.Tensor
    b_first: torch.Tensor
    w_hidden_hi: torch.Tensor
    w_hidden_lo: torch.Tensor
    b_hidden: torch.Tensor
    w_out_hi: torch.Tensor
    w_out_lo: torch.Tensor
    b_out: torch.Tensor
    latent_dim: int
    n_other: int
    n_hidden: int
    activation: int

    @property
    def sizes(self) -> tuple[int, int]:
        """``(DP, HP)``."""
        return self.w_z_hi.shape[0], self.w_z_hi.shape[1]


def _layers(drift: NeuralDrift) -> tuple[list[nn.Linear], str] | None:
    """The Linear layers and the activation name of a plain ``mlp()`` network, else None."""
    net = drift.net
    if len(net) < 3 or len(net) % 2 == 0:
        return None
    linears = [layer for layer in list(net)[0::2] if type(layer) is nn.Linear]
    acts = list(net)[1::2]
    if len(linears) != len(net) // 2 + 1:
        return None
    names = {name for name, cls in ACTIVATIONS.items() for a in acts if type(a) is cls}
    if len(names) != 1 or not all(type(a) is ACTIVATIONS[next(iter(names))] for a in acts):
        return None
    name = next(iter(names))
    if name == "gelu" and any(getattr(a, "approximate", "none") != "none" for a in acts):
        return None
    return linears, name


def fused_support(drift: nn.Module, method: str, z0: torch.Tensor, n_grid: int) -> str | None:
    """``None`` when :func:`fused_integrate` can run this rollout, else the reason it cannot.

    Args:
        drift: the latent drift; method: the scheme's name; z0: ``(M, d)`` initial latents;
        n_grid: the stage grid's evaluation points.
    """
    if not HAS_TRITON:
        return "Triton is not installed"
    if not z0.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        return "not on a CUDA device"
    if type(drift) is not NeuralDrift:
        return f"the drift is a {type(drift).__name__}, not a NeuralDrift"
    if method not in SCHEME_CODES:
        return f"no fused kernel for '{method}' (only {', '.join(SCHEME_CODES)})"
    if z0.dtype != torch.float32:
        return f"dtype {z0.dtype} (the kernel is float32)"
    found = _layers(drift)
    if found is None:
        return "the drift's network is not a plain MLP with one supported activation"
    linears, act = found
    if act not in ACTIVATION_CODES:
        return f"activation '{act}' has no fused form"
    if _pow2(max(layer.out_features for layer in linears[:-1])) > MAX_HIDDEN:
        return f"hidden layers wider than {MAX_HIDDEN}"
    if len(linears) - 1 > MAX_HIDDEN_LAYERS:
        return f"more than {MAX_HIDDEN_LAYERS} hidden layers"
    if any(p.dtype != torch.float32 or p.device != z0.device for p in drift.parameters()):
        return "the drift's weights are not float32 on the paths' device"
    hp = _pow2(max(layer.out_features for layer in linears[:-1]))
    if n_grid * z0.shape[0] * max(hp, _pow2(drift.latent_dim)) >= 2 ** 31:
        return "too many paths × steps for 32-bit offsets"
    return None


def pack_weights(drift: NeuralDrift) -> FusedWeights:
    """The drift's MLP in the kernel's layout (see :class:`FusedWeights`)."""
    found = _layers(drift)
    if found is None:
        raise ValueError("the drift's network is not a plain MLP")
    linears, act = found
    if len(linears) - 1 > MAX_HIDDEN_LAYERS:
        raise ValueError(f"more than {MAX_HIDDEN_LAYERS} hidden layers")
    d = drift.latent_dim
    dp = _pow2(d)
    hp = _pow2(max(layer.out_features for layer in linears[:-1]))
    first, hidden, last = linears[0], linears[1:-1], linears[-1]
    like = first.weight
    with torch.no_grad():
        w_z = like.new_zeros(dp, hp)
        w_z[:d, :first.out_features] = first.weight[:, :d].T
        w_other = like.new_zeros(first.in_features - d, hp)
        w_other[:, :first.out_features] = first.weight[:, d:].T
        b_first = like.new_zeros(hp)
        b_first[:first.out_features] = first.bias
        w_hidden = like.new_zeros(MAX_HIDDEN_LAYERS - 1, hp, hp)
        b_hidden = like.new_zeros(MAX_HIDDEN_LAYERS - 1, hp)
        for i, layer in enumerate(hidden):
            w_hidden[i, :layer.in_features, :layer.out_features] = layer.weight.T
            b_hidden[i, :layer.out_features] = layer.bias
        w_out = like.new_zeros(hp, dp)
        w_out[:last.in_features, :d] = last.weight.T
        b_out = like.new_zeros(dp)
        b_out[:d] = last.bias
        (w_z_hi, w_z_lo), (w_hidden_hi, w_hidden_lo), (w_out_hi, w_out_lo) = (
            _split(w_z), _split(w_hidden), _split(w_out))
    return FusedWeights(w_z_hi, w_z_lo, w_other.contiguous(), b_first, w_hidden_hi, w_hidden_lo,
                        b_hidden.contiguous(), w_out_hi, w_out_lo, b_out,
                        latent_dim=d, n_other=first.in_features - d, n_hidden=len(linears) - 1,
                        activation=ACTIVATION_CODES[act])


class FusedUnsupported(ValueError):
    """:func:`fused_integrate` cannot run this rollout (the message says why); the caller
    can take another path."""


def paths_share_inputs(mu: torch.Tensor, f: torch.Tensor) -> bool:
    """Whether every path has the same μ ``(M, P)`` and f(t) ``(M, T, F)``: the kernel adds
    one first-layer row for all the paths of a grid point (a per-path table costs 32 KB more
    shared memory than an H100 block has left)."""
    return all(torch.equal(v, v[:1].expand_as(v)) for v in (mu, f) if v.shape[0] > 1)


def first_layer_table(weights: FusedWeights, other: torch.Tensor) -> torch.Tensor:
    """The first layer's bias plus its product with the inputs other than ``z``, computed in
    float64 and stored in float32: ``(K, HP)``.

    Args:
        other: ``(K, n_other)`` :meth:`NeuralDrift._other_inputs` at the K grid points (the
            same for every path: :func:`paths_share_inputs`).
    """
    table = other.double() @ weights.w_other.double() + weights.b_first.double()
    return table.to(torch.float32).contiguous()


@torch.no_grad()
def fused_integrate(drift: NeuralDrift, z0: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
                    f: torch.Tensor, dispersion_std: torch.Tensor, noise: torch.Tensor,
                    method: str = "heun", substeps: int = 1,
                    weights: FusedWeights | None = None, block: int = BLOCK_PATHS,
                    precision: str = "split", num_warps: int = NUM_WARPS) -> torch.Tensor:
    """:func:`engine.rollout.integrate` for a NeuralDrift in one kernel (same arguments).

    Args:
        weights: :func:`pack_weights` of ``drift``, reusable while its parameters do not
            change (packed here when None).
        block: paths per program (a power of two ≥ 64: a warp group's product has 64 rows);
            precision: one of :data:`PRECISIONS`; num_warps: warps per program (4 per 64
            paths; ``benchmarks/fused_rollout.py`` compares settings).

    Returns:
        ``(M, T, d)`` paths, ``out[:, 0] == z0``.

    Raises:
        FusedUnsupported: :func:`fused_support` refuses this rollout (its reason), or the
            paths' μ or f(t) differ.
        ValueError: a bad noise shape, precision or block.
    """
    scheme = get_scheme(method)
    m, d = z0.shape
    expected = scheme.noise_shape(t.shape[0] - 1, substeps, m, d)
    if tuple(noise.shape) != expected:
        raise ValueError(f"noise: expected shape {expected} for '{method}', got {tuple(noise.shape)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if block < 64 or block & (block - 1):
        raise ValueError(f"block must be a power of two ≥ 64, got {block}")
    # the paths share f(t) (checked below), so the grid needs the first path's only
    grid = stage_grid(scheme, t, f[:1], substeps)
    reason = fused_support(drift, method, z0, grid.times.shape[0])
    if reason is not None:
        raise FusedUnsupported(f"no fused rollout: {reason}")
    if not paths_share_inputs(mu, f):
        raise FusedUnsupported("no fused rollout: the paths' μ or f(t) differ")
    packed = pack_weights(drift) if weights is None else weights
    (diffusion,) = scheme.prepare(noise.reshape(grid.n_steps, m, -1), grid.step_sizes,
                                  dispersion_std)
    # one path's inputs stand for all (paths_share_inputs)
    other = drift._other_inputs(grid.times[:, None], mu[:1], grid.forcing.transpose(0, 1))
    first = first_layer_table(packed, other[:, 0])  # (K, n_other) -> (K, HP)
    diffusion = diffusion.to(torch.float32).contiguous()
    h = grid.step_sizes.to(torch.float32).contiguous()
    out = z0.new_empty(m, t.shape[0], d)
    dp, hp = packed.sizes
    from engine.solvers.fused_kernel import rollout_kernel  # Triton, on first use

    rollout_kernel[(math.ceil(m / block),)](
        z0.contiguous(), first, diffusion, h, out,
        packed.w_z_hi, packed.w_z_lo, packed.w_hidden_hi, packed.w_hidden_lo, packed.b_hidden,
        packed.w_out_hi, packed.w_out_lo, packed.b_out,
        m, d, grid.n_steps, substeps, t.shape[0],
        BLOCK=block, DP=dp, HP=hp, N_HIDDEN=packed.n_hidden, ACT=packed.activation,
        HEUN=method == "heun", SPLIT=precision == "split",
        LO_BF16=os.environ.get("TRITON_INTERPRET") != "1",
        num_warps=num_warps, num_stages=NUM_STAGES)
    return out
