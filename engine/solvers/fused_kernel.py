"""The Triton kernel of :mod:`engine.solvers.fused` (imported only when a rollout runs on a
GPU, or in Triton's interpreter: importing Triton costs ~0.1 s, and torch's CPU wheels have
none). Layouts, arithmetic and the reasons behind them: :mod:`engine.solvers.fused`."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["rollout_kernel"]


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
def _low_part(w, LO_BF16: tl.constexpr):
    if LO_BF16:  # exact: the values were rounded to bfloat16 when packed
        w = w.to(tl.bfloat16)
    return w


@triton.jit
def _product(x, w_hi, w_lo, bias, SPLIT: tl.constexpr, LO_BF16: tl.constexpr):
    """``x @ w + bias`` on tensor cores, ``x (BLOCK, K)``; with SPLIT ``x = x_hi + x_lo``
    (x_hi exact in tf32) and ``w = w_hi + w_lo``: the small terms first, x_lo·w_lo left
    out (~2⁻²² of the product). ``w_lo`` is bfloat16 when LO_BF16, else the same values
    in float32 (Triton's interpreter multiplies bfloat16 wrongly)."""
    if SPLIT:
        # -8192 clears the 13 low mantissa bits, as fused._TF32_MASK does on the host
        x_hi = (x.to(tl.int32, bitcast=True) & -8192).to(tl.float32, bitcast=True)
        acc = tl.dot(x - x_hi, w_hi, input_precision="tf32") + bias
        if LO_BF16:
            acc = tl.dot(x_hi.to(tl.bfloat16), w_lo, acc)
        else:  # the same products in tf32 (bf16 values are exact in tf32): interpreter
            acc = tl.dot(x_hi.to(tl.bfloat16).to(tl.float32), w_lo, acc,
                         input_precision="tf32")
        acc = tl.dot(x_hi, w_hi, acc, input_precision="tf32")
    else:
        acc = tl.dot(x, w_hi, input_precision="tf32") + bias
    return acc


@triton.jit
def _drift(z, first, w_z_hi, w_z_lo, w_1_hi, w_1_lo, b_1, w_2_hi, w_2_lo, b_2, w_out_hi,
           w_out_lo, b_out, N_HIDDEN: tl.constexpr, ACT: tl.constexpr, SPLIT: tl.constexpr,
           LO_BF16: tl.constexpr):
    """ψ for the block's paths: ``z (BLOCK, DP) -> (BLOCK, DP)``; ``first (1, HP)`` is the
    first layer's bias plus its product with the inputs other than ``z``."""
    x = _activation(_product(z, w_z_hi, w_z_lo, first, SPLIT, LO_BF16), ACT)
    if N_HIDDEN >= 2:
        x = _activation(_product(x, w_1_hi, w_1_lo, b_1, SPLIT, LO_BF16), ACT)
    if N_HIDDEN >= 3:
        x = _activation(_product(x, w_2_hi, w_2_lo, b_2, SPLIT, LO_BF16), ACT)
    return _product(x, w_out_hi, w_out_lo, b_out, SPLIT, LO_BF16)


# the sizes that change from call to call are not specialised on (Triton would compile
# again for every new divisibility of the number of paths or steps)
@triton.jit(do_not_specialize=["n_paths", "n_steps", "substeps", "n_out"])
def rollout_kernel(z0_ptr, first_ptr, diffusion_ptr, h_ptr, out_ptr,
                    w_z_hi_ptr, w_z_lo_ptr, w_hidden_hi_ptr, w_hidden_lo_ptr, b_hidden_ptr,
                    w_out_hi_ptr, w_out_lo_ptr, b_out_ptr,
                    n_paths, latent_dim, n_steps, substeps, n_out,
                    BLOCK: tl.constexpr, DP: tl.constexpr, HP: tl.constexpr,
                    N_HIDDEN: tl.constexpr, ACT: tl.constexpr, HEUN: tl.constexpr,
                    SPLIT: tl.constexpr, LO_BF16: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    row_mask = rows < n_paths
    dcols = tl.arange(0, DP)
    hcols = tl.arange(0, HP)
    mask = row_mask[:, None] & (dcols[None, :] < latent_dim)
    # every weight is loaded once: Triton keeps them in shared memory for all the steps
    dh = dcols[:, None] * HP + hcols[None, :]
    hh = hcols[:, None] * HP + hcols[None, :]
    hd = hcols[:, None] * DP + dcols[None, :]
    w_z_hi = tl.load(w_z_hi_ptr + dh)
    w_z_lo = _low_part(tl.load(w_z_lo_ptr + dh), LO_BF16)
    w_1_hi = tl.load(w_hidden_hi_ptr + hh)
    w_1_lo = _low_part(tl.load(w_hidden_lo_ptr + hh), LO_BF16)
    b_1 = tl.load(b_hidden_ptr + hcols)[None, :]
    w_2_hi = tl.load(w_hidden_hi_ptr + HP * HP + hh)
    w_2_lo = _low_part(tl.load(w_hidden_lo_ptr + HP * HP + hh), LO_BF16)
    b_2 = tl.load(b_hidden_ptr + HP + hcols)[None, :]
    w_out_hi = tl.load(w_out_hi_ptr + hd)
    w_out_lo = _low_part(tl.load(w_out_lo_ptr + hd), LO_BF16)
    b_out = tl.load(b_out_ptr + dcols)[None, :]
    z = tl.load(z0_ptr + rows[:, None] * latent_dim + dcols[None, :], mask=mask, other=0.0)
    out_rows = out_ptr + rows[:, None] * (n_out * latent_dim) + dcols[None, :]
    tl.store(out_rows, z, mask=mask)
    for k in range(n_steps):
        h = tl.load(h_ptr + k)
        diffusion = tl.load(diffusion_ptr + (k * n_paths + rows)[:, None] * latent_dim
                            + dcols[None, :], mask=mask, other=0.0)
        base = z + diffusion
        first = tl.load(first_ptr + k * HP + hcols)[None, :]
        a = _drift(z, first, w_z_hi, w_z_lo, w_1_hi, w_1_lo, b_1, w_2_hi, w_2_lo, b_2,
                   w_out_hi, w_out_lo, b_out, N_HIDDEN, ACT, SPLIT, LO_BF16)
        if HEUN:
            predicted = base + a * h
            first_end = tl.load(first_ptr + (k + 1) * HP + hcols)[None, :]
            a_end = _drift(predicted, first_end, w_z_hi, w_z_lo, w_1_hi, w_1_lo, b_1,
                           w_2_hi, w_2_lo, b_2, w_out_hi, w_out_lo, b_out, N_HIDDEN, ACT,
                           SPLIT, LO_BF16)
            z = base + (a + a_end) * (0.5 * h)
        else:
            z = base + a * h
        if (k + 1) % substeps == 0:
            tl.store(out_rows + ((k + 1) // substeps) * latent_dim, z, mask=mask)
