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
from engine.solvers.fused import fused_integrate, fused_support, pack_weights

ROOT = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None

# (activation, scheme, substeps, hidden widths, latent d, time features)
CASES = [("silu", "heun", 1, (32, 32, 32), 4, True),
         ("tanh", "euler", 2, (20, 24), 3, False),
         ("gelu", "heun", 3, (16,), 5, True),
         ("relu", "heun", 1, (40, 40), 2, True)]

COMPARE = textwrap.dedent("""
    import json, sys, torch
    from engine.drift import NeuralDrift
    from engine.rollout import integrate
    from engine.solvers import get_scheme
    from engine.solvers.fused import fused_integrate
    device = sys.argv[1]
    results = []
    for act, method, substeps, hidden, d, timed in json.loads(sys.argv[2]):
        torch.manual_seed(0)
        drift = NeuralDrift(d, 2, 1, hidden=hidden, act=act, time_period=2.0 if timed else None)
        drift = drift.to(device)
        m, n_t = 21, 12
        z0 = torch.randn(m, d, device=device)
        t = torch.linspace(0, 1, n_t, device=device)
        mu, f = torch.randn(m, 2, device=device), torch.randn(m, n_t, 1, device=device)
        psi = 0.1 * torch.rand(d, device=device)
        noise = torch.randn(get_scheme(method).noise_shape(n_t - 1, substeps, m, d), device=device)
        fused = fused_integrate(drift, z0, t, mu, f, psi, noise, method, substeps)
        with torch.no_grad():
            same = integrate(drift, z0, t, mu, f, psi, noise, method, substeps)
            other = integrate(drift, z0, t, mu, f, psi, noise,
                              "euler" if method == "heun" else "heun", substeps)
        results.append({"case": [act, method, substeps],
                        "error": (fused - same).abs().max().item(),
                        "scale": same.abs().max().item(),
                        "other_scheme": (fused - other).abs().max().item(),
                        "start": (fused[:, 0] - z0).abs().max().item()})
    print(json.dumps(results))
""")


def _compare(device: str, env: dict) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", COMPARE, device, json.dumps(CASES)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check(results: list[dict]) -> None:
    for r in results:
        assert r["start"] == 0.0, r
        # the same arithmetic summed in another order: fp32 rounding only
        assert r["error"] <= 1e-5 * max(1.0, r["scale"]), r
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
        assert "float32" in fused_support(drift.cuda(), "heun", cuda_z0.double(), 10)
        summed = SumDrift(LibraryDrift(3, 1, 1, degree=2), NeuralDrift(3, 1, 1)).cuda()
        assert "SumDrift" in fused_support(summed, "heun", cuda_z0, 10)
    with pytest.raises(ValueError, match="no fused rollout"):
        noise = torch.zeros(get_scheme("heun").noise_shape(2, 1, 4, 3))
        fused_integrate(drift, z0, torch.linspace(0, 1, 3), torch.zeros(4, 1),
                        torch.zeros(4, 3, 1), torch.ones(3), noise)


def test_packed_weights_compute_the_same_network():
    """The padded, transposed layout is the same function (checked with plain torch)."""
    torch.manual_seed(2)
    drift = NeuralDrift(3, 2, 1, hidden=(20, 24), act="tanh", time_period=1.5)
    w = pack_weights(drift)
    dp, op, hp = w.sizes
    assert (dp, op, hp) == (16, 16, 32) and w.n_hidden == 2
    z, t = torch.randn(7, 3), torch.rand(7)
    mu, f = torch.randn(7, 2), torch.randn(7, 1)
    other = drift._other_inputs(t, mu, f)
    zp = torch.zeros(7, dp)
    zp[:, :3] = z
    op_in = torch.zeros(7, op)
    op_in[:, :other.shape[1]] = other
    x = torch.tanh(zp @ w.w_z + op_in @ w.w_other + w.b_first)
    x = torch.tanh(x @ w.w_hidden[0] + w.b_hidden[0])
    y = x @ w.w_out + w.b_out
    with torch.no_grad():
        expected = drift(z, t, mu, f)
    torch.testing.assert_close(y[:, :3], expected, rtol=1e-5, atol=1e-6)
    assert torch.all(y[:, 3:] == 0)


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (torch's CPU wheels have none)")
def test_the_widest_kernel_fits_an_h100_block_when_compiled_for_sm90():
    """Compiled ahead for Hopper (no GPU needed): the widest network the kernel takes must
    fit the 227 KB of shared memory an H100 block may have (with Triton's default
    pipelining it asked for 326 KB and failed at launch)."""
    code = textwrap.dedent("""
        import json, triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from engine.solvers import fused
        from engine.drift import NeuralDrift
        kernel = fused._rollout_kernel
        w = fused.pack_weights(NeuralDrift(8, 2, 2, hidden=[fused.MAX_HIDDEN] * 3, time_period=1.0))
        dp, op, hp = w.sizes
        consts = {"BLOCK": fused.BLOCK_PATHS, "DP": dp, "OP": op, "HP": hp,
                  "N_HIDDEN": w.n_hidden, "ACT": w.activation, "HEUN": True,
                  "PRECISION": "ieee"}
        signature = {n: "constexpr" if n in consts else "*fp32" if n.endswith("_ptr") else "i32"
                     for n in kernel.arg_names}
        compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=consts),
                                  target=GPUTarget("cuda", 90, 32),
                                  options={"num_stages": fused.NUM_STAGES,
                                           "num_warps": fused.NUM_WARPS})
        print(json.dumps({"shared": compiled.metadata.shared}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT),
                                           "TRITON_INTERPRET": "0"})
    if out.returncode != 0 and "ptxas" in out.stderr.lower():
        pytest.skip("no ptxas to compile with")
    assert out.returncode == 0, out.stderr[-3000:]
    shared = json.loads(out.stdout.strip().splitlines()[-1])["shared"]
    assert 0 < shared <= 227 * 1024
