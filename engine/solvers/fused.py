"""One GPU kernel for a whole rollout of a :class:`~engine.drift.NeuralDrift` (Triton).

A rollout through :func:`engine.rollout.integrate` launches about ten small kernels per drift
evaluation (one product per layer, the activations, the updates): on an H100 a step costs
~40 µs of launch and scheduling latency even when captured in a CUDA graph, so 300 Heun
steps took ~23 ms whatever the number of paths (``benchmarks/results/inference_cuda.md``).
Here one Triton program owns a block of ``BLOCK_PATHS`` paths and runs *every* step of the
rollout for them: the MLP's products (``tl.dot`` in IEEE fp32, the same arithmetic as
torch's fp32 matmuls, only summed in another order), the activations and the Euler or Heun
update, with the latent held in registers between steps. Everything that does not depend
on ``z`` is computed before the launch with torch: the MLP's other inputs ``[μ, f(t),
cos, sin]`` at every stage time and the diffusion increments ``Ψ ΔW`` of
:meth:`engine.solvers.base.Scheme.prepare`.

**Off by default: measured slower than the CUDA graph** on an H100 with the Burgers paper
model, for 1 to 16384 paths (IEEE fp32, 16 paths per program, 4 warps:
``benchmarks/results/inference_cuda_fused_trial.md``, columns ``ours_latent_fused`` against
``ours_latent``). ``benchmarks/fused_rollout.py`` times the settings against the graph
(``benchmarks/results/fused_rollout_cuda.md``, H100, 2026-12-07): with tensor-core ``tf32``
and 64 paths per program a rollout takes 11.3 ms for 1 and for 1 024 paths (the graph: 9.6
and 20.2 ms), so the time is the latency of the chain of dependent products, not their
work; but ``tf32`` moves the paths by up to 0.8 % of their scale over the 300 steps, more
than an accurate integrator may; ``tf32x3`` with 64 paths needs 315 KB of shared memory
(an H100 block may have 227 KB) and 16 or 32 paths per program are 4-10x slower (IEEE
fp32, 16 paths: 79 ms with 4 warps, 47 ms with 8, for one path).
:class:`engine.rollout.RolloutEngine` takes this path only when asked (``use_fused=True``
or ``SROM_FUSED_ROLLOUT=1``) and :func:`fused_support` says the drift, scheme and sizes fit (``None``); every other case (CPU, other drifts, ``sra1``,
float64, layers wider than :data:`MAX_HIDDEN`) keeps the CUDA-graph path.
Tested against :func:`engine.rollout.integrate` on the GPU and, on a CPU with Triton
installed, in Triton's interpreter (``tests/test_fused_rollout.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from engine.drift import NeuralDrift
from engine.networks import ACTIVATIONS
from engine.solvers import get_scheme
from engine.solvers.grid import stage_grid

__all__ = ["fused_support", "fused_integrate", "FusedWeights", "pack_weights"]

try:  # Triton ships with torch's CUDA wheels; the CPU wheels have none
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None

#: paths per Triton program (``tl.dot`` needs at least 16 rows)
BLOCK_PATHS = 16
#: the widest hidden layer the kernel takes (its weights are re-read from L1/L2 every step;
#: compiled for sm_90, 128 wide needs 74 KB of shared memory, 256 wide 280 KB: more than the
#: 227 KB an H100 block may have)
MAX_HIDDEN = 128
#: activations the kernel computes, by :data:`engine.networks.ACTIVATIONS` name
#: launch settings. One stage: no software pipelining of the loads across steps (with
#: Triton's default of 3 the 128-wide kernel asks for 326 KB of shared memory and fails to
#: launch; the steps depend on each other anyway)
NUM_WARPS, NUM_STAGES = 4, 1
ACTIVATION_CODES = {"silu": 0, "tanh": 1, "relu": 2, "gelu": 3}
SCHEME_CODES = {"euler": 0, "heun": 1}


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, int(n) - 1).bit_length())


@dataclass(frozen=True)
class FusedWeights:
    """A NeuralDrift's MLP, zero-padded to the kernel's power-of-two sizes (``DP`` latent,
    ``OP`` other inputs, ``HP`` hidden), transposed to ``(in, out)``, contiguous.

    Attributes:
        w_z: ``(DP, HP)`` first layer, latent part; w_other: ``(OP, HP)`` its other inputs'
            part; b_first: ``(HP,)``.
        w_hidden: ``(L − 1, HP, HP)`` the hidden-to-hidden layers; b_hidden: ``(L − 1, HP)``
            (one dummy row when ``L = 1``).
        w_out: ``(HP, DP)``; b_out: ``(DP,)``.
        n_hidden: L, the hidden layers; activation: its code in :data:`ACTIVATION_CODES`.
    """

    w_z: torch.Tensor
    w_other: torch.Tensor
    b_first: torch.Tensor
    w_hidden: torch.Tensor
    b_hidden: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    latent_dim: int
    n_other: int
    n_hidden: int
    activation: int

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(DP, OP, HP)``."""
        return self.w_z.shape[0], self.w_other.shape[0], self.w_z.shape[1]


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
    if triton is None:
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
    if any(p.dtype != torch.float32 or p.device != z0.device for p in drift.parameters()):
        return "the drift's weights are not float32 on the paths' device"
    n_other = linears[0].in_features - drift.latent_dim
    if n_grid * z0.shape[0] * max(_pow2(n_other), _pow2(drift.latent_dim)) >= 2 ** 31:
        return "too many paths × steps for 32-bit offsets"
    return None


def pack_weights(drift: NeuralDrift) -> FusedWeights:
    """The drift's MLP in the kernel's layout (see :class:`FusedWeights`)."""
    found = _layers(drift)
    if found is None:
        raise ValueError("the drift's network is not a plain MLP")
    linears, act = found
    d = drift.latent_dim
    n_other = linears[0].in_features - d
    dp, op = _pow2(d), _pow2(n_other)
    hp = _pow2(max(layer.out_features for layer in linears[:-1]))
    first, hidden, last = linears[0], linears[1:-1], linears[-1]
    like = first.weight
    with torch.no_grad():
        w_z = like.new_zeros(dp, hp)
        w_z[:d, :first.out_features] = first.weight[:, :d].T
        w_other = like.new_zeros(op, hp)
        w_other[:n_other, :first.out_features] = first.weight[:, d:].T
        b_first = like.new_zeros(hp)
        b_first[:first.out_features] = first.bias
        w_hidden = like.new_zeros(max(1, len(hidden)), hp, hp)
        b_hidden = like.new_zeros(max(1, len(hidden)), hp)
        for i, layer in enumerate(hidden):
            w_hidden[i, :layer.in_features, :layer.out_features] = layer.weight.T
            b_hidden[i, :layer.out_features] = layer.bias
        w_out = like.new_zeros(hp, dp)
        w_out[:last.in_features, :d] = last.weight.T
        b_out = like.new_zeros(dp)
        b_out[:d] = last.bias
    return FusedWeights(w_z, w_other, b_first, w_hidden, b_hidden, w_out, b_out,
                        latent_dim=d, n_other=n_other, n_hidden=len(linears) - 1,
                        activation=ACTIVATION_CODES[act])


if triton is not None:

    @triton.jit
    def _activation(x, ACT: tl.constexpr):
        if ACT == 0:  # silu
            y = x * tl.sigmoid(x)
        elif ACT == 1:  # tanh
            y = 2.0 * tl.sigmoid(2.0 * x) - 1.0
        elif ACT == 2:  # relu
            y = tl.maximum(x, 0.0)
        else:  # gelu (exact, with erf)
            y = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
        return y

    @triton.jit
    def _drift(z, g, rows, row_mask, other_ptr, n_paths, n_other,
               w_z_ptr, w_other_ptr, b_first_ptr, w_hidden_ptr, b_hidden_ptr, w_out_ptr, b_out_ptr,
               DP: tl.constexpr, OP: tl.constexpr, HP: tl.constexpr,
               N_HIDDEN: tl.constexpr, ACT: tl.constexpr, PRECISION: tl.constexpr):
        """ψ at grid point ``g`` for the block's paths: ``z (BLOCK, DP) -> (BLOCK, DP)``."""
        dcols = tl.arange(0, DP)
        ocols = tl.arange(0, OP)
        hcols = tl.arange(0, HP)
        other = tl.load(other_ptr + (g * n_paths + rows)[:, None] * n_other + ocols[None, :],
                        mask=row_mask[:, None] & (ocols[None, :] < n_other), other=0.0)
        w_z = tl.load(w_z_ptr + dcols[:, None] * HP + hcols[None, :])
        w_other = tl.load(w_other_ptr + ocols[:, None] * HP + hcols[None, :])
        x = tl.dot(other, w_other, input_precision=PRECISION) + tl.load(b_first_ptr + hcols)[None, :]
        x = tl.dot(z, w_z, acc=x, input_precision=PRECISION)
        for layer in tl.static_range(N_HIDDEN - 1):
            x = _activation(x, ACT)
            w = tl.load(w_hidden_ptr + layer * HP * HP + hcols[:, None] * HP + hcols[None, :])
            bias = tl.load(b_hidden_ptr + layer * HP + hcols)
            x = tl.dot(x, w, input_precision=PRECISION) + bias[None, :]
        x = _activation(x, ACT)
        w_out = tl.load(w_out_ptr + hcols[:, None] * DP + dcols[None, :])
        return tl.dot(x, w_out, input_precision=PRECISION) + tl.load(b_out_ptr + dcols)[None, :]

    # the sizes that change from call to call are not specialised on (Triton would compile
    # again for every new divisibility of the number of paths or steps)
    @triton.jit(do_not_specialize=["n_paths", "n_steps", "substeps", "n_out"])
    def _rollout_kernel(z0_ptr, other_ptr, diffusion_ptr, h_ptr, out_ptr,
                        w_z_ptr, w_other_ptr, b_first_ptr, w_hidden_ptr, b_hidden_ptr,
                        w_out_ptr, b_out_ptr,
                        n_paths, latent_dim, n_other, n_steps, substeps, n_out,
                        BLOCK: tl.constexpr, DP: tl.constexpr, OP: tl.constexpr,
                        HP: tl.constexpr, N_HIDDEN: tl.constexpr, ACT: tl.constexpr,
                        HEUN: tl.constexpr, PRECISION: tl.constexpr):
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        row_mask = rows < n_paths
        dcols = tl.arange(0, DP)
        mask = row_mask[:, None] & (dcols[None, :] < latent_dim)
        z = tl.load(z0_ptr + rows[:, None] * latent_dim + dcols[None, :], mask=mask, other=0.0)
        out_rows = out_ptr + rows[:, None] * (n_out * latent_dim) + dcols[None, :]
        tl.store(out_rows, z, mask=mask)
        for k in range(n_steps):
            h = tl.load(h_ptr + k)
            diffusion = tl.load(diffusion_ptr + (k * n_paths + rows)[:, None] * latent_dim
                                + dcols[None, :], mask=mask, other=0.0)
            base = z + diffusion
            a = _drift(z, k, rows, row_mask, other_ptr, n_paths, n_other, w_z_ptr, w_other_ptr,
                       b_first_ptr, w_hidden_ptr, b_hidden_ptr, w_out_ptr, b_out_ptr,
                       DP, OP, HP, N_HIDDEN, ACT, PRECISION)
            if HEUN:
                predicted = base + a * h
                a_end = _drift(predicted, k + 1, rows, row_mask, other_ptr, n_paths, n_other,
                               w_z_ptr, w_other_ptr, b_first_ptr, w_hidden_ptr, b_hidden_ptr,
                               w_out_ptr, b_out_ptr, DP, OP, HP, N_HIDDEN, ACT, PRECISION)
                z = base + (a + a_end) * (0.5 * h)
            else:
                z = base + a * h
            if (k + 1) % substeps == 0:
                tl.store(out_rows + ((k + 1) // substeps) * latent_dim, z, mask=mask)


@torch.no_grad()
def fused_integrate(drift: NeuralDrift, z0: torch.Tensor, t: torch.Tensor, mu: torch.Tensor,
                    f: torch.Tensor, dispersion_std: torch.Tensor, noise: torch.Tensor,
                    method: str = "heun", substeps: int = 1,
                    weights: FusedWeights | None = None, block: int = BLOCK_PATHS,
                    precision: str = "ieee", num_warps: int = NUM_WARPS) -> torch.Tensor:
    """:func:`engine.rollout.integrate` for a NeuralDrift in one kernel (same arguments).

    Args:
        weights: :func:`pack_weights` of ``drift``, reusable while its parameters do not
            change (packed here when None).
        block: paths per program (a power of two ≥ 16); precision: ``tl.dot``'s
            ``input_precision`` (``"ieee"``: fp32 FMA, torch's arithmetic; ``"tf32x3"``:
            tensor cores, ~fp32 accuracy; ``"tf32"``: tensor cores, ~1e-3 relative);
            num_warps: warps per program (``benchmarks/fused_rollout.py`` compares them).

    Returns:
        ``(M, T, d)`` paths, ``out[:, 0] == z0``.

    Raises:
        ValueError: :func:`fused_support` refuses this rollout (its reason).
    """
    scheme = get_scheme(method)
    m, d = z0.shape
    expected = scheme.noise_shape(t.shape[0] - 1, substeps, m, d)
    if tuple(noise.shape) != expected:
        raise ValueError(f"noise: expected shape {expected} for '{method}', got {tuple(noise.shape)}")
    grid = stage_grid(scheme, t, f, substeps)
    reason = fused_support(drift, method, z0, grid.times.shape[0])
    if reason is not None:
        raise ValueError(f"no fused rollout: {reason}")
    packed = pack_weights(drift) if weights is None else weights
    (diffusion,) = scheme.prepare(noise.reshape(grid.n_steps, m, -1), grid.step_sizes,
                                  dispersion_std)
    t_paths = grid.times[:, None].expand(-1, m)
    other = drift._other_inputs(t_paths, mu, grid.forcing.transpose(0, 1))  # (K, M, n_other)
    other = other.to(torch.float32).contiguous()
    diffusion = diffusion.to(torch.float32).contiguous()
    h = grid.step_sizes.to(torch.float32).contiguous()
    out = z0.new_empty(m, t.shape[0], d)
    dp, op, hp = packed.sizes
    if precision not in ("ieee", "tf32x3", "tf32"):
        raise ValueError(f"precision {precision!r}: use ieee, tf32x3 or tf32")
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two ≥ 16, got {block}")
    _rollout_kernel[(triton.cdiv(m, block),)](
        z0.contiguous(), other, diffusion, h, out,
        packed.w_z, packed.w_other, packed.b_first, packed.w_hidden, packed.b_hidden,
        packed.w_out, packed.b_out,
        m, d, packed.n_other, grid.n_steps, substeps, t.shape[0],
        BLOCK=block, DP=dp, OP=op, HP=hp, N_HIDDEN=packed.n_hidden,
        ACT=packed.activation, HEUN=method == "heun", PRECISION=precision,
        num_warps=num_warps, num_stages=NUM_STAGES)
    return out
