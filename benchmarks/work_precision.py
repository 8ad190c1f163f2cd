"""Work-precision of the SDE schemes on a shipped model: error against wall-clock.

For each scheme of :mod:`engine.solvers` (``euler``, ``heun``, ``sra1``) and each number of
substeps per data step (1, 2, 4, …), on the pretrained forced-Burgers model
``pretrained/burgers_paper`` (d = 4) and the test trajectories of its preset:

- ``integration error``: per-step relative L2 distance of the *deterministic* decoded rollout
  (encoder mean, no noise) from a converged reference (SRA1 with ``--reference-substeps``
  substeps), averaged over trajectories and steps: the error the integrator alone adds;
- ``test error``: the headline, the per-step relative L2 error of the predictive mean
  (``--paths`` sample paths, seed 0) against the simulator, averaged likewise;
- ``latent ms``: one ``predict_latent`` call, 1024 paths × 300 data steps (issue 13's budget:
  10 ms on an H100), median over repeats after warm-up;
- ``decode ms``: one ``predict`` call, 256 paths × 300 data steps, decoding every frame and
  5 quantiles on the device (budget: 25 ms on an H100; timed on a GPU, or with ``--decode``).

The last table lists, for a few levels of integration error, the cheapest setting that
reaches each level: a scheme with more drift calls per step pays for itself when it reaches
the level with fewer steps.

Usage:
    python benchmarks/work_precision.py --device cpu     # ~5 min on 2 cores
    python benchmarks/work_precision.py --device cuda

Writes ``benchmarks/results/work_precision_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
try:
    import engine  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from _stats import summarize  # noqa: E402

from engine import load_dataset, load_model  # noqa: E402
from engine.metrics import relative_l2  # noqa: E402
from engine.model import ExtrapolationWarning  # noqa: E402
from engine.solvers import METHODS, get_scheme  # noqa: E402
from engine.solvers.step_check import deterministic_rollouts  # noqa: E402
from engine.systems import generate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = ROOT / "pretrained" / "burgers_paper"
SUBSTEPS = {"euler": [1, 2, 4, 8, 16, 32], "heun": [1, 2, 4, 8], "sra1": [1, 2, 4, 8]}
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
TIMING_STEPS = 300
ERROR_LEVELS = (1e-2, 3e-3, 1e-3, 3e-4)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def test_error(model, data, method: str, substeps: int, paths: int) -> float:
    errors = [relative_l2(pred.mean, data.x[sl])
              for sl, pred in model.predict_dataset(data, paths, 0, None, return_samples=False,
                                                    integrator=method, substeps=substeps)]
    return float(np.mean(np.concatenate(errors)))


def time_call(fn, device: torch.device, repeats: int, budget_s: float) -> dict:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2 if device.type == "cuda" else 1):  # warm-up: graph capture, allocator
        fn()
    samples, spent = [], 0.0
    while len(samples) < repeats or (spent < budget_s and len(samples) < 5 * repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        samples.append(1e3 * (time.perf_counter() - start))
        spent += samples[-1] / 1e3
    return summarize(samples)


def measure(args) -> dict:
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ExtrapolationWarning)
    model = load_model(args.model, device=str(device))
    info = getattr(model, "dataset_info_", {}) or {}
    start = time.perf_counter()
    if args.data:
        data = load_dataset(args.data).subset(range(args.n_test))
    else:
        data = generate(model.system_, n=args.n_test, split="test", seed=0,
                        preset=info.get("preset", "default"))
    log(f"generated {data} in {time.perf_counter() - start:.0f} s")
    reference = deterministic_rollouts(model, data, "sra1", args.reference_substeps)
    check = deterministic_rollouts(model, data, "sra1", args.reference_substeps // 2)
    reference_change = float(np.mean(relative_l2(check, reference)))
    x0, mu = data.x[0, 0], data.mu[0]
    t, f = data.t[: TIMING_STEPS + 1], data.f[0, : TIMING_STEPS + 1]
    rows = []
    for method in METHODS:
        scheme = get_scheme(method)
        for substeps in [n for n in SUBSTEPS[method] if n <= args.max_substeps]:
            det = deterministic_rollouts(model, data, method, substeps)
            row = {"integrator": method, "substeps": substeps,
                   "drift_calls_per_data_step": scheme.drift_evaluations * substeps,
                   "integration_error": float(np.mean(relative_l2(det, reference))),
                   "deterministic_test_error": float(np.mean(relative_l2(det, data.x))),
                   "test_error": test_error(model, data, method, substeps, args.paths)}
            kw = {"integrator": method, "substeps": substeps}
            row["latent_ms"] = time_call(
                lambda kw=kw: model.predict_latent(x0, mu, t, f, n_samples=1024, seed=1, **kw),
                device, args.repeats, args.budget_s)
            row["decode_ms"] = time_call(
                lambda kw=kw: model.predict(x0, mu, t, f, n_samples=256, seed=1,
                                            return_samples=False, quantiles=LEVELS, **kw),
                device, args.repeats, args.budget_s) if args.decode else None
            rows.append(row)
            log(f"{method} x{substeps}: integration error {row['integration_error']:.2e}, test "
                f"{row['test_error']:.4f}, latent {row['latent_ms']['median']:.1f} ms"
                + (f", decode {row['decode_ms']['median']:.1f} ms" if row["decode_ms"] else ""))
    return {
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"),
        "torch": torch.__version__,
        "model": str(Path(args.model).resolve().relative_to(ROOT))
        if Path(args.model).resolve().is_relative_to(ROOT) else str(args.model),
        "data": repr(data), "paths": args.paths, "decode_timed": bool(args.decode),
        "reference": {"integrator": "sra1", "substeps": args.reference_substeps,
                      "change_from_half_as_many": reference_change},
        "model_choice": getattr(model, "integration_", {}),
        "rows": rows, "wall_s": time.perf_counter() - start,
    }


def cheapest(rows: list[dict], level: float, key: str) -> dict | None:
    """The row of least median ``key`` time whose integration error is ≤ ``level``."""
    ok = [r for r in rows if r["integration_error"] <= level]
    return min(ok, key=lambda r: r[key]["median"]) if ok else None


def write_markdown(result: dict, path: Path) -> None:
    ref = result["reference"]
    choice = result.get("model_choice") or {}
    lines = [
        f"# Work-precision of the SDE schemes: {result['device_name']}, torch {result['torch']}", "",
        f"Generated by `{result.get('command') or 'python benchmarks/work_precision.py --device ' + result['device']}`; do not "
        f"edit. Model `{result['model']}`; data: {result['data']}.", "",
        f"- integration error: per-step relative L2 distance of the deterministic decoded "
        f"rollout from SRA1 with {ref['substeps']} substeps (which moves by "
        f"{ref['change_from_half_as_many']:.1e} from half as many substeps);",
        "- deterministic / predictive test error: per-step relative L2 error against the "
        f"simulator of the deterministic rollout / of the mean of {result['paths']} sample paths;",
        "- latent ms: `predict_latent`, 1024 paths × 300 data steps; decode ms: `predict`, 256 "
        "paths × 300 data steps with every frame decoded and 5 quantiles (median, p95).", "",
    ]
    if choice:
        lines += [f"The model's own step check (`tune_integrator`, on {choice.get('n_trajectories')} "
                  f"validation trajectories) chose `{choice.get('integrator')}` with "
                  f"{choice.get('substeps')} substeps.", ""]
    lines += ["| scheme | substeps | drift calls / data step | integration error | deterministic "
              "test error | predictive test error | latent ms (p95) | decode ms (p95) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['integrator']} | {r['substeps']} | {r['drift_calls_per_data_step']} | "
            f"{r['integration_error']:.2e} | {r['deterministic_test_error']:.4f} | "
            f"{r['test_error']:.4f} | {r['latent_ms']['median']:.1f} ({r['latent_ms']['p95']:.1f}) | "
            + (f"{r['decode_ms']['median']:.1f} ({r['decode_ms']['p95']:.1f}) |" if r.get("decode_ms")
               else "not timed |"))
    lines += ["", "Cheapest setting per level of integration error (by the latent call's median):", "",
              "| integration error ≤ | scheme | substeps | latent ms | euler needs (substeps, ms) |",
              "|---|---|---|---|---|"]
    for level in ERROR_LEVELS:
        best = cheapest(result["rows"], level, "latent_ms")
        euler = cheapest([r for r in result["rows"] if r["integrator"] == "euler"], level, "latent_ms")
        euler_text = (f"{euler['substeps']}, {euler['latent_ms']['median']:.1f}" if euler
                      else f"not reached with ≤ {SUBSTEPS['euler'][-1]}")
        lines.append(f"| {level:.0e} | {best['integrator'] if best else '—'} | "
                     f"{best['substeps'] if best else '—'} | "
                     f"{best['latent_ms']['median']:.1f} | {euler_text} |" if best else
                     f"| {level:.0e} | none reached | — | — | {euler_text} |")
    lines += ["", f"Measured in {result['wall_s']:.0f} s.", ""]
    path.write_text("\n".join(lines))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default=str(MODEL))
    p.add_argument("--n-test", type=int, default=10, help="test trajectories")
    p.add_argument("--data", default=None,
                   help="a test set file to read instead of generating the preset's")
    p.add_argument("--paths", type=int, default=128, help="sample paths of the test error")
    p.add_argument("--reference-substeps", type=int, default=64)
    p.add_argument("--max-substeps", type=int, default=64,
                   help="skip settings with more substeps per data step (a shorter run)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=2.0, help="timing budget per call kind")
    p.add_argument("--threads", type=int, default=2, help="torch threads on a CPU")
    p.add_argument("--decode", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the decoding call (default: on a GPU only; on a 2-core CPU "
                        "it takes ~8 s a call and does not depend on the scheme)")
    p.add_argument("--out", default=str(RESULTS))
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.decode is None:
        args.decode = args.device.startswith("cuda")
    result = measure(args)
    result["command"] = " ".join(["python benchmarks/work_precision.py",
                                  *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"work_precision_{result['device']}.json"
    json_path.write_text(json.dumps(result, indent=1))
    write_markdown(result, json_path.with_suffix(".md"))
    print(json_path.with_suffix(".md").read_text())
    return result


if __name__ == "__main__":
    main()
