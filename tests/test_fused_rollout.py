"""The fused Triton rollout (engine.solvers.fused) against engine.rollout.integrate.

On a GPU the kernel itself runs; on a CPU with Triton installed the same kernel runs in
Triton's interpreter (a subprocess with ``TRITON_INTERPRET=1``, which must be set before
Triton is imported). Without Triton (the CPU wheels of torch have none) only the
refusals are checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.drift import LibraryDrift, NeuralDrift, SumDrift
from engine.rollout import RolloutEngine
from engine.solvers import get_scheme
from engine.solvers.fused import (
    first_layer_table,
    fused_integrate,
    fused_support,
    pack_weights,
    paths_share_inputs,
)

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None

# (activation, scheme, substeps, hidden widths, latent d, time features)
CASES = [("silu", "heun", 1, (32, 32, 32), 4, True),
         ("tanh", "euler", 2, (20, 24), 3, False),
         ("gelu", "heun", 3, (16,), 5, True),
         ("relu", "heun", 1, (40, 40), 2, True)]

COMPARE = textwrap.dedent("""
    import copy, json, sys, torch
    from engine.drift import NeuralDrift
    from engine.rollout import integrate
    from engine.solvers import get_scheme
    from engine.solvers.fused import FusedUnsupported, fused_integrate
    device = sys.argv[1]
    results = []
    for act, method, substeps, hidden, d, timed in json.loads(sys.argv[2]):
        torch.manual_seed(0)
        drift = NeuralDrift(d, 2, 1, hidden=hidden, act=act, time_period=2.0 if timed else None)
        drift = drift.to(device)
        m, n_t = 70, 12  # two programs of 64 paths, the second one masked
        z0 = torch.randn(m, d, device=device)
        t = torch.linspace(0, 1, n_t, device=device)
        mu = torch.randn(1, 2, device=device).expand(m, 2)
        f = torch.randn(1, n_t, 1, device=device).expand(m, n_t, 1)
        psi = 0.1 * torch.rand(d, device=device)
        noise = torch.randn(get_scheme(method).noise_shape(n_t - 1, substeps, m, d), device=device)
        fused = fused_integrate(drift, z0, t, mu, f, psi, noise, method, substeps)
        tf32 = fused_integrate(drift, z0, t, mu, f, psi, noise, method, substeps, precision="tf32")
        with torch.no_grad():
            exact = integrate(copy.deepcopy(drift).double(), z0.double(), t.double(), mu.double(),
                              f.double(), psi.double(), noise.double(), method, substeps)
            single = integrate(drift, z0, t, mu, f, psi, noise, method, substeps)
            other = integrate(drift, z0, t, mu, f, psi, noise,
                              "euler" if method == "heun" else "heun", substeps)
        try:  # paths with their own μ: the kernel refuses them
            fused_integrate(drift, z0, t, torch.randn(m, 2, device=device), f, psi, noise,
                            method, substeps)
            refused = False
        except FusedUnsupported:
            refused = True
        results.append({"case": [act, method, substeps],
                        "error": (fused.double() - exact).abs().max().item(),
                        "tf32_error": (tf32.double() - exact).abs().max().item(),
                        "fp32_error": (single.double() - exact).abs().max().item(),
                        "scale": exact.abs().max().item(),
                        "other_scheme": (fused - other).abs().max().item(),
                        "start": (fused[:, 0] - z0).abs().max().item(),
                        "refused_per_path_mu": refused})
    print(json.dumps(results))
""")


def _pythonpath() -> str:
    """The repository first, then whatever PYTHONPATH already holds (a Triton install)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def _compare(device: str, env: dict) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", COMPARE, device, json.dumps(CASES)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "PYTHONPATH": _pythonpath(), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check(results: list[dict]) -> None:
    for r in results:
        assert r["start"] == 0.0, r
        assert r["refused_per_path_mu"], r
        # against a float64 rollout: the split products err like torch's float32 (within a
        # few times its rounding), where bare tf32 errs ~100x more (the bound can fail)
        bound = 2e-5 * max(1.0, r["scale"])
        assert r["error"] <= bound, r
        assert r["tf32_error"] > bound, r
        assert r["fp32_error"] <= bound, r
        # and the scheme matters: Heun and Euler differ far beyond rounding on this grid
        assert r["other_scheme"] > 1e3 * max(r["error"], 1e-7), r


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (torch's CPU wheels have none)")
@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU test runs the kernel itself")
def test_fused_kernel_matches_integrate_in_the_interpreter():
    _check(_compare("cpu", {"TRITON_INTERPRET": "1"}))


@pytest.mark.skipif(not torch.cuda.is_available() or not HAS_TRITON, reason="needs CUDA and Triton")
def test_fused_kernel_matches_integrate_on_the_gpu():
    _check(_compare("cuda", {}))


@pytest.mark.skipif(not torch.cuda.is_available() or not HAS_TRITON, reason="needs CUDA and Triton")
def test_rollout_engine_takes_the_fused_path_on_cuda_and_agrees_with_the_graph():
    torch.manual_seed(1)
    drift = NeuralDrift(4, 1, 1, hidden=(128, 128, 128), time_period=3.0).cuda()
    m, n_t = 300, 101
    z0 = torch.randn(m, 4, device="cuda")
    t = torch.linspace(0, 1, n_t, device="cuda")
    mu, f = torch.randn(m, 1, device="cuda"), torch.randn(m, n_t, 1, device="cuda")
    psi = torch.full((4,), 0.05, device="cuda")
    noise = torch.randn(n_t - 1, 1, m, 4, device="cuda")
    fused_engine, graph_engine = RolloutEngine(drift, use_fused=True), RolloutEngine(drift)
    fused = fused_engine(z0, t, mu, f, psi, noise, "heun", 1)
    graph = graph_engine(z0, t, mu, f, psi, noise, "heun", 1)
    assert (fused_engine.last_path, graph_engine.last_path) == ("fused", "graph")
    assert (fused - graph).abs().max().item() <= 1e-4 * max(1.0, graph.abs().max().item())
    # a changed parameter is packed again (an optimizer step between two predictions)
    with torch.no_grad():
        drift.net[-1].bias += 1.0
    assert not torch.allclose(fused_engine(z0, t, mu, f, psi, noise, "heun", 1), fused)
    # paths with their own μ: the kernel refuses them and the graph takes them
    own_mu = torch.randn(m, 1, device="cuda")
    out = fused_engine(z0, t, own_mu, f, psi, noise, "heun", 1)
    assert fused_engine.last_path == "graph"
    torch.testing.assert_close(out, graph_engine(z0, t, own_mu, f, psi, noise, "heun", 1))


def test_refusals_name_their_reason():
    z0 = torch.zeros(4, 3)
    drift = NeuralDrift(3, 1, 1, hidden=(16,))
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter runs CPU tensors")
    reason = fused_support(drift, "heun", z0, 10)
    assert reason in ("Triton is not installed", "not on a CUDA device")
    if HAS_TRITON and torch.cuda.is_available():
        cuda_z0 = z0.cuda()
        assert fused_support(drift.cuda(), "sra1", cuda_z0, 10).startswith("no fused kernel")
        wide = NeuralDrift(3, 1, 1, hidden=(256,)).cuda()
        assert "wider" in fused_support(wide, "heun", cuda_z0, 10)
        deep = NeuralDrift(3, 1, 1, hidden=(16,) * 4).cuda()
        assert "hidden layers" in fused_support(deep, "heun", cuda_z0, 10)
        assert "float32" in fused_support(drift.cuda(), "heun", cuda_z0.double(), 10)
        summed = SumDrift(LibraryDrift(3, 1, 1, degree=2), NeuralDrift(3, 1, 1)).cuda()
        assert "SumDrift" in fused_support(summed, "heun", cuda_z0, 10)
    with pytest.raises(ValueError, match="no fused rollout"):
        noise = torch.zeros(get_scheme("heun").noise_shape(2, 1, 4, 3))
        fused_integrate(drift, z0, torch.linspace(0, 1, 3), torch.zeros(4, 1),
                        torch.zeros(4, 3, 1), torch.ones(3), noise)


def test_packed_weights_compute_the_same_network():
    """The padded, transposed, split layout is the same function (checked with plain torch
    in float64: hi + lo is the weight to bfloat16's rounding of the low part)."""
    torch.manual_seed(2)
    drift = NeuralDrift(3, 2, 1, hidden=(20, 24), act="tanh", time_period=1.5)
    w = pack_weights(drift)
    dp, hp = w.sizes
    assert (dp, hp) == (16, 32) and w.n_hidden == 2
    # the high parts are exact in tf32 (13 low mantissa bits clear), the low parts in bf16
    for hi, lo in ((w.w_z_hi, w.w_z_lo), (w.w_hidden_hi, w.w_hidden_lo), (w.w_out_hi, w.w_out_lo)):
        assert torch.all(hi.view(torch.int32) & 8191 == 0)
        assert torch.equal(lo, lo.to(torch.bfloat16).float())
    z, t = torch.randn(7, 3), torch.rand(7)
    mu, f = torch.randn(1, 2).expand(7, 2), torch.randn(7, 1)
    other = drift._other_inputs(t, mu, f)
    zp = torch.zeros(7, dp, dtype=torch.float64)
    zp[:, :3] = z
    first = first_layer_table(w, other)  # 7 grid points
    x = torch.tanh(zp @ (w.w_z_hi.double() + w.w_z_lo.double()) + first.double())
    x = torch.tanh(x @ (w.w_hidden_hi[0].double() + w.w_hidden_lo[0].double())
                   + w.b_hidden[0].double())
    y = x @ (w.w_out_hi.double() + w.w_out_lo.double()) + w.b_out.double()
    with torch.no_grad():
        expected = drift(z, t, mu, f).double()
    torch.testing.assert_close(y[:, :3], expected, rtol=1e-5, atol=1e-6)
    assert torch.all(y[:, 3:] == 0)



def test_the_kernel_takes_only_paths_that_share_mu_and_forcing():
    mu, f = torch.randn(1, 2).expand(5, 2), torch.randn(1, 9, 1).expand(5, 9, 1)
    assert paths_share_inputs(mu, f) and paths_share_inputs(mu[:1], torch.randn(1, 9, 1))
    own_mu = mu.clone()
    own_mu[3, 1] += 1e-6
    own_f = f.clone()
    own_f[4, 8, 0] += 1e-6
    assert not paths_share_inputs(own_mu, f) and not paths_share_inputs(mu, own_f)


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (torch's CPU wheels have none)")
def test_the_widest_kernel_fits_an_h100_block_when_compiled_for_sm90():
    """Compiled ahead for Hopper (no GPU needed): the widest, deepest network the kernel takes
    must fit the 227 KB of shared memory an H100 block may have, with every weight resident
    (with Triton's default pipelining an earlier kernel asked for 326 KB and failed at
    launch)."""
    code = textwrap.dedent("""
        import json, triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from engine.solvers import fused
        from engine.drift import NeuralDrift
        from engine.solvers.fused_kernel import rollout_kernel as kernel
        w = fused.pack_weights(NeuralDrift(8, 2, 2, hidden=[fused.MAX_HIDDEN] * 3, time_period=1.0))
        dp, hp = w.sizes
        consts = {"BLOCK": fused.BLOCK_PATHS, "DP": dp, "HP": hp, "N_HIDDEN": w.n_hidden,
                  "ACT": w.activation, "HEUN": True, "SPLIT": True, "LO_BF16": True}
        signature = {n: "constexpr" if n in consts else "*fp32" if n.endswith("_ptr") else "i32"
                     for n in kernel.arg_names}
        compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=consts),
                                  target=GPUTarget("cuda", 90, 32),
                                  options={"num_stages": fused.NUM_STAGES,
                                           "num_warps": fused.NUM_WARPS})
        lines = compiled.asm["ttgir"].splitlines()
        loop = min(i for i, line in enumerate(lines) if "scf.for" in line)
        allocs = [i for i, line in enumerate(lines) if "local_alloc" in line]
        print(json.dumps({"shared": compiled.metadata.shared, "allocs": len(allocs),
                          "allocs_in_loop": sum(i > loop for i in allocs)}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=600, env={**os.environ, "PYTHONPATH": _pythonpath(),
                                           "TRITON_INTERPRET": "0"})
    if out.returncode != 0 and "ptxas" in out.stderr.lower():
        pytest.skip("no ptxas to compile with")
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < found["shared"] <= 227 * 1024
    # every weight is put in shared memory once, before the steps, and stays there
    assert found["allocs"] >= 8 and found["allocs_in_loop"] == 0
