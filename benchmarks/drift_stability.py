"""How fast do a learned drift's nearby paths part, against the truth's? (issue 14, item 2)

A model's rollout error grows with the rate at which its latent dynamics amplify a small
error. For each shipped model named, along the encoded paths of its validation split
(``z(t)`` = the encoder's mean of each snapshot):

- the local expansion rate λ(z), the top eigenvalue of the symmetric part of the drift's
  Jacobian (``engine.contraction.expansion_rates``): what ``contraction_weight`` penalises;
- the finite-time Lyapunov exponent of the drift's tangent flow along those paths: the log
  of the largest singular value of the propagator of ``v' = J v`` (Euler steps at the data
  step) per time unit, i.e. how much the worst initial error grows over the horizon;
- the residual integrand's size at the end of training (from the saved training history),
  to put a ``contraction_weight`` in scale (the penalty is added to that integrand).

For forced viscous Burgers (``--truth burgers``), the simulator's growth of an initial error:
the paper preset solved with RK45 (rtol 1e-9) from its initial bump and from the bump plus a
small perturbation sin(k π x), k = 1..5, for three viscosities spanning its range; per
viscosity the shape that grew most, its growth over the horizon and its log growth rate
between t = 0.5 and the end. Five shapes bound the worst case from below only.

Usage:
    python benchmarks/drift_stability.py [--models burgers_paper_d3,burgers_paper,burgers_paper_d5]

Writes ``benchmarks/results/drift_stability_cpu.json`` and ``.md`` (CPU, ~1 min).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def model_row(model, data, name: str) -> dict:
    """The figures of one fitted model along the encoded paths of ``data``."""
    import torch

    from engine.contraction import drift_jacobians, encoded_drift_inputs, expansion_rates

    if model.n_win != 1:
        raise SystemExit(f"{name}: an encoder window (n_win > 1) is not supported here")
    z, t, mu, f = encoded_drift_inputs(model, data)
    with torch.no_grad():
        rates = expansion_rates(model.module_.drift, z, t, mu, f).numpy()
        jac = drift_jacobians(model.module_.drift, z, t, mu, f).double()
    n_traj, n_t = data.x.shape[:2]
    d = z.shape[1]
    jac = jac.view(n_traj, n_t, d, d)
    dt = np.diff(data.t)
    exponents = []
    for i in range(n_traj):
        # the propagator of v' = J v along the path (Euler at the data step), rescaled as it
        # goes; its largest singular value is the most any initial error grows
        propagator, log_scale = torch.eye(d, dtype=torch.float64), 0.0
        for k in range(n_t - 1):
            propagator = (torch.eye(d, dtype=torch.float64) + float(dt[k]) * jac[i, k]) @ propagator
            size = float(propagator.abs().max())
            log_scale += math.log(size)
            propagator = propagator / size
        top = float(torch.linalg.svdvals(propagator)[0])
        exponents.append((log_scale + math.log(top)) / float(data.t[-1] - data.t[0]))
    history = model.training_.get("history") or []
    residual = float(np.mean([r["residual"] for r in history[-20:]])) if history else float("nan")
    window, state = int(model.window), int(np.prod(model.state_shape_))
    # the normalized residual is ½ (t_last - t_first) · mean(integrand) / (window · |S|)
    integrand = residual * window * state / (0.5 * (window - 1) * float(model.dt_))
    return {"model": name, "latent_dim": d, "n_trajectories": n_traj,
            "rate_mean": float(rates.mean()), "rate_median": float(np.median(rates)),
            "rate_p90": float(np.quantile(rates, 0.9)), "rate_max": float(rates.max()),
            "penalty": float(np.mean(np.maximum(rates, 0) ** 2)),
            "exponent_mean": float(np.mean(exponents)),
            "exponents": [round(e, 3) for e in exponents],
            "residual_integrand": integrand,
            "horizon": float(data.t[-1] - data.t[0])}


#: perturbation shapes sin(k π x), k = 1..SHAPES, of the simulator's initial state
SHAPES = 5


def burgers_truth(size: float = 1e-3) -> list[dict]:
    """The paper preset's perturbation growth for three viscosities: per viscosity the
    shape that grew most (module docstring)."""
    from engine.systems import get_system
    from engine.systems.burgers import _solve_rk45

    system = get_system("burgers", "paper")
    system.rtol, system.atol = 1e-9, 1e-11
    t = np.linspace(0.0, 3.0, 1001)
    signals = system._signals(system.sample_forcings(3, np.random.default_rng(0)), t)
    u0 = system._initial(signals, 0.0)
    x = np.linspace(0.0, 1.0, system.n_x)
    rows = []
    k = int(np.searchsorted(t, 0.5))
    for i, nu in enumerate((0.05, 0.075, 0.1)):
        base = _solve_rk45(system, nu, signals[i], u0[i], t)
        best = None
        for mode in range(1, SHAPES + 1):
            bump = size * np.abs(u0[i]).max() * np.sin(mode * np.pi * x)
            diff = np.linalg.norm(_solve_rk45(system, nu, signals[i], u0[i] + bump, t) - base, axis=1)
            row = {"nu": nu, "mode": mode, "growth_over_horizon": float(diff[-1] / diff[0]),
                   "exponent": float(np.log(diff[-1] / diff[k]) / (t[-1] - t[k]))}
            if best is None or row["growth_over_horizon"] > best["growth_over_horizon"]:
                best = row
        rows.append(best)
    return rows


def run(names: list[str], truth: str | None) -> dict:
    import pretrained as P
    from engine import load_dataset, load_model

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            spec = P._spec(name)
            files = P._datasets(spec, Path(cache), smoke=False,
                                skip=tuple(s for s in spec["generate"]["n"] if s != "val"))
            start = time.perf_counter()
            model = load_model(ROOT / "pretrained" / name)
            rows.append({**model_row(model, load_dataset(files["val"]), name),
                         "seconds": time.perf_counter() - start})
            print(f"{name}: rate mean {rows[-1]['rate_mean']:.2f}, exponent "
                  f"{rows[-1]['exponent_mean']:.2f}", flush=True)
    return {"date": time.strftime("%Y-%m-%d"), "host": platform.node(),
            "python": platform.python_version(), "rows": rows,
            "truth": {"system": truth, "rows": burgers_truth()} if truth == "burgers" else None}


def markdown(result: dict) -> str:
    lines = ["# How fast the learned drifts' nearby paths part", "",
             f"`python benchmarks/drift_stability.py`, {result['date']} on {result['host']} (CPU). "
             "Along the encoded validation paths of each shipped model: the drift's local "
             "expansion rate λ (top eigenvalue of its Jacobian's symmetric part, what "
             "`contraction_weight` penalises), the largest Lyapunov exponent of its tangent "
             "flow (per time unit: the worst initial error's growth), and the residual integrand at the end of training (the "
             "penalty mean relu(λ)² is added to it with weight `contraction_weight`).", "",
             "| model | d | λ mean / median / 90 % / max | mean relu(λ)² | residual integrand | "
             "finite-time Lyapunov exponent (mean over trajectories) | worst error growth over the horizon |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['latent_dim']} | {r['rate_mean']:.2f} / "
                     f"{r['rate_median']:.2f} / {r['rate_p90']:.2f} / {r['rate_max']:.2f} | "
                     f"{r['penalty']:.1f} | {r['residual_integrand']:.0f} | "
                     f"{r['exponent_mean']:.2f} | ×{np.exp(r['exponent_mean'] * r['horizon']):.1f} |")
    if result.get("truth"):
        lines += ["", "The simulator (forced viscous Burgers, paper preset, RK45 at rtol 1e-9): of "
                  "small perturbations sin(k π x), k = 1..5, of the initial bump, the one that "
                  "grew most per viscosity (a lower bound of the worst case):", "",
                  "| ν | shape k | growth from t = 0 to the end | log growth rate from t = 0.5 |",
                  "|---|---|---|---|"]
        lines += [f"| {r['nu']:g} | {r['mode']} | ×{r['growth_over_horizon']:.2f} | "
                  f"{r['exponent']:.2f} |" for r in result["truth"]["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="burgers_paper_d3,burgers_paper,burgers_paper_d5")
    parser.add_argument("--truth", choices=["burgers", "none"], default="burgers")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    result = run(names, None if args.truth == "none" else args.truth)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift_stability_cpu.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "drift_stability_cpu.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
