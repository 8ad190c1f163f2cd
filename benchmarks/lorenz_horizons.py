"""Lorenz-63 parameter recovery against the length of the training series (horizon).

The amortized-reparametrization paper's claim: ours learns σ, ρ, β of the Lorenz physics
drift from noisy observations whatever the horizon, while the gradient of a solver-based
loss (an adaptive solver with adjoints through the whole horizon) blows up on a chaotic
system as the horizon grows.

For each horizon T (time units; observations every 0.005 with noise σ_obs = 1, as the
``paper`` preset, one trajectory):

- ``ours``: ``StochasticROM`` with the ``lorenz63`` physics drift, started at
  σ, ρ, β = 5, 15, 1 (the pretrained model's recipe), trained for ``--steps`` steps; the
  learned parameters and their relative errors are recorded, with the time per step;
- ``adjoint``: the same physics with the same starting parameters, integrated over the
  whole horizon with ``torchdiffeq.odeint_adjoint`` (dopri5) from the first observation;
  the norm of the gradient of the mean squared error to the observations with respect to
  (σ, ρ, β) is recorded, with the drift evaluations and the wall clock of one
  forward + backward pass. A step of gradient descent with that gradient is what
  solver-based training would take.

Usage:
    python benchmarks/lorenz_horizons.py [--horizons 1,3,10,30,100] [--steps 2000]

Writes ``benchmarks/results/lorenz_horizons.json`` and ``.md`` (nothing typed by hand).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import StochasticROM, systems  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TRUTH = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
START = {"sigma": 5.0, "rho": 15.0, "beta": 1.0}
OURS = dict(architecture="identity", drift="physics", physics="lorenz63", window=64,
            windows_per_step=4, lr=1e-2, lr_decay_steps=1000, decoder_log_var_init=-6.0,
            physics_params=START, seed=0, device="cpu", log_every=100)


def observations(horizon: float):
    """One noisy Lorenz trajectory on [0, horizon] (the ``paper`` preset's noise and step)."""
    return systems.generate("lorenz63", n=1, split="train", seed=0, preset="paper",
                            t_end=float(horizon), time_split=None)


def run_ours(data, steps: int) -> dict:
    params = {**OURS, "log_every": max(1, min(OURS["log_every"], steps // 5))}
    model = StochasticROM(**params, steps=steps, substeps=1).fit(data)  # no step check
    learned = model.drift_parameters_
    errors = {k: abs(learned[k] - v) / abs(v) for k, v in TRUTH.items()}
    history = model.training_["history"]
    per_step = (history[-1]["seconds"] - history[0]["seconds"]) / (history[-1]["step"] - history[0]["step"])
    return {"learned": learned, "relative_errors": errors, "max_relative_error": max(errors.values()),
            "steps": model.training_["steps"], "s_per_step": per_step,
            "finite": all(math.isfinite(v) for v in learned.values())}


class _LorenzRHS(torch.nn.Module):
    def __init__(self, theta: dict):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([theta["sigma"], theta["rho"], theta["beta"]],
                                                     dtype=torch.float64))
        self.calls = 0

    def forward(self, t, z):
        self.calls += 1
        s, r, b = self.theta
        x, y, w = z[..., 0], z[..., 1], z[..., 2]
        return torch.stack([s * (y - x), x * (r - w) - y, x * y - b * w], dim=-1)


def run_adjoint(data, rtol: float, atol: float, theta: dict) -> dict:
    from torchdiffeq import odeint_adjoint

    rhs = _LorenzRHS(theta)
    t = torch.as_tensor(data.t, dtype=torch.float64)
    obs = torch.as_tensor(data.x[0], dtype=torch.float64)
    start = time.perf_counter()
    try:
        path = odeint_adjoint(rhs, obs[0], t, rtol=rtol, atol=atol, method="dopri5")
        forward_calls = rhs.calls
        loss = ((path - obs) ** 2).mean()
        loss.backward()
        grad = rhs.theta.grad.detach().numpy()
        status = "ok"
    except (AssertionError, RuntimeError) as exc:  # underflow in dt, non-finite values
        forward_calls, loss, grad, status = rhs.calls, torch.tensor(float("nan")), np.full(3, np.nan), \
            f"failed: {str(exc)[:120]}"
    seconds = time.perf_counter() - start
    norm = float(np.linalg.norm(grad))
    return {"loss": loss.item(), "grad": dict(zip(("sigma", "rho", "beta"), map(float, grad))),
            "grad_norm": norm, "finite": bool(np.isfinite(norm)), "seconds": seconds,
            "drift_calls_forward": forward_calls, "drift_calls_total": rhs.calls,
            "status": status}


def _f(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.3g}"


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / "lorenz_horizons"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    s = result["settings"]
    lines = [
        f"# Lorenz-63: parameter recovery against the horizon ({result['device']}, torch {result['torch']})",
        "", f"Generated by `python benchmarks/lorenz_horizons.py`; do not edit. One noisy trajectory "
        f"(σ_obs = 1, step 0.005) on [0, T]; physics drift started at σ, ρ, β = "
        f"{START['sigma']:g}, {START['rho']:g}, {START['beta']:g} (truth 10, 28, 8/3). Ours: "
        f"{s['steps']} training steps. Adjoint: one forward + backward pass of "
        f"`torchdiffeq.odeint_adjoint` (dopri5, rtol {s['rtol']:g}, atol {s['atol']:g}) over the "
        "whole horizon from the first observation; the gradient is that of the mean squared "
        "error with respect to (σ, ρ, β) at the starting parameters.", "",
        "| T | ours: learned σ, ρ, β | ours: largest relative error | ours: ms/step | "
        "adjoint: ‖∇θ loss‖ at the start | adjoint: ‖∇θ loss‖ at the truth | "
        "adjoint: drift calls | adjoint: s per pass |",
        "|---|---|---|---|---|---|---|---|"]

    def grad(a: dict) -> str:
        return _f(a["grad_norm"]) if a["status"] == "ok" else a["status"]

    for row in result["horizons"]:
        o, a, b = row["ours"], row["adjoint"], row["adjoint_at_truth"]
        learned = ", ".join(_f(o["learned"][k]) for k in ("sigma", "rho", "beta"))
        lines.append(f"| {row['T']:g} | {learned} | {100 * o['max_relative_error']:.1f} % | "
                     f"{1e3 * o['s_per_step']:.2f} | {grad(a)} | {grad(b)} | "
                     f"{a['drift_calls_total']} | {a['seconds']:.2f} |")
    first, last = result["horizons"][0], result["horizons"][-1]
    g0, g1 = first["adjoint_at_truth"]["grad_norm"], last["adjoint_at_truth"]["grad_norm"]
    growth = (f"at the true (chaotic) parameters the adjoint gradient norm grows {g1 / g0:.3g}-fold from T = {first['T']:g} to "
              f"T = {last['T']:g}" if math.isfinite(g0) and math.isfinite(g1) and g0 > 0
              else "the adjoint gradient is not finite at every horizon")
    worst = max(r["ours"]["max_relative_error"] for r in result["horizons"])
    lines += ["", f"Summary: {growth}; ours recovers every parameter within {100 * worst:.1f} % "
              f"at every horizon (largest relative error over σ, ρ, β and T), at a cost per "
              "step that does not depend on T. The starting parameters (ρ = 15) are not "
              "chaotic, so the gradient there stays moderate; it is near the truth that the "
              "solver-based loss becomes unusable.", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--horizons", default="1,3,10,30,100")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for horizon in (float(h) for h in args.horizons.split(",")):
        data = observations(horizon)
        ours = run_ours(data, args.steps)
        adjoint = run_adjoint(data, args.rtol, args.atol, START)
        at_truth = run_adjoint(data, args.rtol, args.atol, TRUTH)
        print(f"T = {horizon:g}: ours max rel. error {ours['max_relative_error']:.3f} "
              f"({1e3 * ours['s_per_step']:.2f} ms/step); adjoint |grad| {adjoint['grad_norm']:.3g} "
              f"at the start, {at_truth['grad_norm']:.3g} at the truth "
              f"({adjoint['drift_calls_total']} calls, {adjoint['seconds']:.1f} s, {adjoint['status']})",
              flush=True)
        rows.append({"T": horizon, "n_times": data.n_times, "ours": ours, "adjoint": adjoint,
                     "adjoint_at_truth": at_truth})
    result = {"device": f"cpu ({platform.machine()}, {args.threads} threads)",
              "torch": torch.__version__, "truth": TRUTH, "start": START,
              "settings": {"steps": args.steps, "rtol": args.rtol, "atol": args.atol,
                           "ours": {k: v for k, v in OURS.items() if k != "physics_params"}},
              "horizons": rows}
    write_report(result, Path(args.out))
    print((Path(args.out) / "lorenz_horizons.md").read_text())
    return result


if __name__ == "__main__":
    main()
