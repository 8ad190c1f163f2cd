"""How much does a chaotic model's valid prediction time depend on the prediction's seed?

The valid time of a predictive mean is the first time its normalised RMSE against the
noise-free truth passes 0.3 (``engine.metrics.valid_prediction_time``): a first-passage time
of a noisy curve, so one prediction (one draw of the initial states and Brownian paths) says
little. For each shipped chaotic model this script regenerates the truth of its test cases
(``engine.truth_ensembles.make_truth_ensemble``, as ``scripts/pretrained.py ensemble`` does),
predicts them with ``--seeds`` different seeds (128 paths each) and reports the valid time in
Lyapunov times per seed and its mean, median, spread and the standard error of the mean;
for a model that fits its initial state to the window (``assimilate_iterations``) the same
without that fit, so both figures come from one committed run.

Usage:
    python benchmarks/valid_time_seeds.py [--models lorenz63,kuramoto_sivashinsky] [--seeds 24]

Writes ``benchmarks/results/valid_time_seeds.json`` and ``.md`` (CPU, ~2 min for the
default models).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: far-apart seeds (predict_dataset seeds case i with seed + i)
SEED_STRIDE = 7919


def seed_runs(model, truth, seeds: int, n_samples: int) -> list[float]:
    """The valid time (Lyapunov times, mean over cases) of ``seeds`` predictions."""
    from engine.ensemble_evaluation import valid_lyapunov_times

    out = []
    for k in range(seeds):
        mean = np.concatenate([p.mean for _, p in model.predict_dataset(
            truth.cases, n_samples, k * SEED_STRIDE, return_samples=False)])
        # each case in its own Lyapunov times, as `srom evaluate --ensemble` reports
        out.append(float(np.mean(valid_lyapunov_times(mean, truth))))
    return out


def summary(values: list[float]) -> dict:
    v = np.asarray(values)
    return {"per_seed": [round(x, 4) for x in values], "mean": float(v.mean()),
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "sem": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0}


def run(names: list[str], seeds: int, n_samples: int) -> dict:
    import pretrained as P
    from engine import load_dataset, load_model
    from engine.model import ExtrapolationWarning
    from engine.truth_ensembles import make_truth_ensemble

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            spec = P._spec(name)
            split = spec.get("eval", "test")
            files = P._datasets(spec, Path(cache), smoke=False,
                                skip=tuple(s for s in spec["generate"]["n"] if s != split))
            truth = make_truth_ensemble(load_dataset(files[split]), 2, seed=1234)
            if truth.lyapunov_exponents is None:
                raise SystemExit(f"{name}: not a chaotic system")
            model = load_model(ROOT / "pretrained" / name)
            variants = [("as shipped", int(model.assimilate_iterations))]
            if model.assimilate_iterations:
                variants.append(("initial state from the encoder alone", 0))
            for label, iterations in variants:
                model.assimilate_iterations = iterations
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    values = seed_runs(model, truth, seeds, n_samples)
                rows.append({"model": name, "variant": label, "assimilate_iterations": iterations,
                             "n_cases": truth.cases.n_trajectories, "n_samples": n_samples,
                             "seconds": time.perf_counter() - start, **summary(values)})
                print(f"{name} ({label}): mean {rows[-1]['mean']:.3f} median "
                      f"{rows[-1]['median']:.3f} [{rows[-1]['min']:.2f}, {rows[-1]['max']:.2f}]",
                      flush=True)
    return {"date": time.strftime("%Y-%m-%d"), "host": platform.node(),
            "python": platform.python_version(), "seeds": seeds, "seed_stride": SEED_STRIDE,
            "rows": rows}


def write(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "valid_time_seeds.json").write_text(json.dumps(result, indent=2))
    lines = ["# Valid prediction time over prediction seeds", "",
             f"`python benchmarks/valid_time_seeds.py`, {result['date']} on {result['host']} (CPU). "
             f"Each shipped chaotic model predicts its test cases {result['seeds']} times (seeds "
             f"0, {result['seed_stride']}, …; 128 paths each); the valid time is when the "
             "predictive mean's normalised RMSE against the noise-free truth first passes 0.3, "
             "in each case's own Lyapunov times, averaged over the cases. `srom evaluate "
             "--ensemble` reports "
             "the mean of the first 8 of these seeds.", "",
             "| model | initial state | cases | mean ± s.e. | median | min – max | std over seeds |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['variant']} | {r['n_cases']} | {r['mean']:.3f} ± "
                     f"{r['sem']:.3f} | {r['median']:.3f} | {r['min']:.2f} – {r['max']:.2f} | "
                     f"{r['std']:.3f} |")
    (RESULTS / "valid_time_seeds.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lorenz63,kuramoto_sivashinsky")
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args()
    if not 2 <= args.seeds <= 256:
        raise SystemExit("--seeds must be in 2..256")
    write(run([n.strip() for n in args.models.split(",") if n.strip()], args.seeds, args.samples))


if __name__ == "__main__":
    main()
