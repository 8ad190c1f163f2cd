"""Write ``docs/reproduction.md`` (and the raw ``docs/reproduction.json``) from evaluation output.

    python scripts/reproduction.py

Reads the papers' reference figures from ``docs/paper_results.json`` (taken from their
public result files, with the source named there) and our figures from
``pretrained/<model>/eval.json`` (written by ``scripts/pretrained.py train`` from
``srom evaluate --json``) and from benchmark results under ``benchmarks/results/``. No
number in the output is typed by hand; a model or result that is missing is reported as
missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


ATTEMPTS = ROOT / "docs" / "attempts"


def record_attempt(model_dir: Path, tag: str) -> Path:
    """Keep the raw evaluation of a training that is not shipped (``docs/attempts``), so the
    table can say what was tried without typing its numbers."""
    record = json.loads((model_dir / "eval.json").read_text())
    training = json.loads((model_dir / "config.json").read_text())["training"]
    record["training"] = {k: training.get(k) for k in ("status", "message", "steps", "seconds",
                                                       "device_name")}
    record["tag"] = tag
    ATTEMPTS.mkdir(parents=True, exist_ok=True)
    out = ATTEMPTS / f"{record['name']}-{tag}.json"
    out.write_text(json.dumps(record, indent=2))
    return out


def _attempts_text(model: str) -> str:
    """One clause per recorded attempt of ``model`` (rel. L2 on its test split)."""
    parts = []
    for path in sorted(ATTEMPTS.glob(f"{model}-*.json")):
        rec = json.loads(path.read_text())
        err, train = rec["test"]["rel_l2_mean"], rec["training"]
        score = f"rel. L2 {err:.4f}" if err == err else "predictions diverged (non-finite)"
        parts.append(f"[{rec['tag']}](attempts/{path.name}): {score} after {train['steps']} steps "
                     f"(`{' '.join(rec['train_args'])}`)")
    return ("not shipped: " if parts else "") + "; ".join(parts)


def _seeds_cell(record: dict) -> str:
    """Mean ± std of the held-out error over the training seeds (``train --seeds``)."""
    seeds = record.get("seeds")
    if not seeds:
        return "one seed"
    return (f"{_pm(seeds['test_rel_l2_mean_mean'], seeds['test_rel_l2_mean_std'])} "
            f"({len(seeds['seeds'])}; {seeds['worst_over_best']:.2f})")


def rom_visde_rows(refs: dict, pretrained: Path) -> tuple[list[str], list[dict]]:
    lo, hi = refs["coverage_target"]
    lines = ["| problem | d | paper (mean ± std) | ours, papers' protocol | ours vs paper | "
             "ours, headline (128 paths, calibrated) | ours, former Euler at the data step | "
             "over training seeds: headline mean ± std (n; worst / best) | "
             f"90% coverage (target [{lo:.2f}, {hi:.2f}]) | 50% coverage | CRPS | model |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    raw = []
    for ref in refs["rom_visde"]:
        record = _load(pretrained / ref["model"] / "eval.json")
        paper = _pm(ref["mean"], ref["std"])
        attempts = _attempts_text(ref["model"])
        if record is None or record.get("smoke"):
            state = "no model shipped" if attempts else "not trained yet"
            lines.append(f"| {ref['problem']} | {ref['latent_dim']} | {paper} | {state}: "
                         f"{ref.get('tried', '')} {attempts} | – | – | – | – | – | – | – | "
                         f"`{ref['model']}` (missing) |")
            raw.append({**ref, "ours": None})
            continue
        test = record["test"]
        # like with like: the papers' protocol (32 paths × 64 decoder samples, converged
        # integration, no calibration) where it was scored, else the headline
        paper_like = test.get("paper_protocol") or test
        ratio = paper_like["rel_l2_mean"] / ref["mean"]
        verdict = ("meets (≤ paper)" if ratio <= 1 else f"misses by {paper_like['rel_l2_mean'] - ref['mean']:.4f} "
                   f"({100 * (ratio - 1):.0f}% above); {ref.get('tried', '')}"
                   + (f" Other trainings, {attempts.removeprefix('not shipped: ')}" if attempts else ""))
        cov = test["coverage_90"]
        cov_note = "in range" if lo <= cov <= hi else ("too wide" if cov > hi else "too narrow")
        euler = record.get("euler_data_step")
        scheme = f"{test['integrator']} ×{test['substeps']}" if "integrator" in test else "euler ×1"
        lines.append(
            f"| {ref['problem']} | {ref['latent_dim']} | {paper} | "
            f"{_pm(paper_like['rel_l2_mean'], paper_like['rel_l2_std'])} | {verdict} | "
            f"{_pm(test['rel_l2_mean'], test['rel_l2_std'])} ({scheme}) | "
            f"{_pm(euler['rel_l2_mean'], euler['rel_l2_std']) if euler else '–'} | "
            f"{_seeds_cell(record)} | {cov:.3f} ({cov_note}) | "
            f"{test['coverage_50']:.3f} | {test['crps']:.4g} | [`{ref['model']}`](../pretrained/{ref['model']}/card.md) |")
        raw.append({**ref, "ours": test, "euler_data_step": euler,
                    "calibration": record.get("calibration"),
                    "train_seconds": record.get("train_wall_seconds")})
    return lines, raw


def _nfe_summary(bench: dict) -> str:
    """Drift evaluations (batched calls, the papers' NFE) per method, medians over seeds, as
    the competitor table summarises them: to reach its target error where most seeds got
    there, and by the end of the budget, with the error there."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import competitors  # the benchmark's own reading of its results

    target, budget = bench["target"], bench["settings"]["budgets"][-1]
    parts = []
    for row in competitors.summarize(bench):
        got = (f"{row['calls_to_target']:.3g} calls to reach rel. L2 ≤ {target:g} "
               f"({row['reached']}/{row['seeds']} seeds), " if row["calls_to_target"] is not None
               else f"did not reach rel. L2 ≤ {target:g} in most seeds "
                    f"({row['reached']}/{row['seeds']}); ")
        errors = ", ".join(f"{e:.3g}" for e in row["errors_at_end"])
        parts.append(f"`{row['method']}` {got}{row['calls_at_end']:.3g} calls → rel. L2 "
                     f"{errors} at the end")
    return (f"drift evaluations (batched calls; ours evaluates its W·Q quadrature points in one "
            f"call) in a {budget:g} s budget on {bench['device_name']}, medians over seeds: "
            + "; ".join(parts))


def _horizon_summary(sweep: dict) -> str:
    """Largest relative parameter error of ours and the adjoint gradient norm, per horizon."""
    parts = []
    for row in sweep["horizons"]:
        grad = row["adjoint_at_truth"]
        g = f"{grad['grad_norm']:.3g}" if grad["status"] == "ok" else "failed"
        parts.append(f"T = {row['T']:g}: ours ≤ {100 * row['ours']['max_relative_error']:.1f} % off, "
                     f"adjoint ‖∇θ‖ {g}")
    return ("horizons 1–100 (ours trained " + str(sweep["settings"]["steps"]) + " steps each; "
            "adjoint gradient of the whole-horizon loss at the true parameters): " + "; ".join(parts))


def arcta_rows(refs: dict, pretrained: Path) -> tuple[list[str], list[dict]]:
    lines = ["| experiment | paper | ours | source |", "|---|---|---|---|"]
    raw = []
    for ref in refs["arcta"]:
        if "unavailable" in ref:
            lines.append(f"| {ref['experiment']} | {ref['paper']} | **not run**: {ref['unavailable']} | – |")
            raw.append({**ref, "ours": None})
            continue
        record = _load(pretrained / ref["model"] / "eval.json")
        if record is None or record.get("smoke"):
            ours, entry = "not trained yet", None
        else:
            test = record["test"]
            euler = record.get("euler_data_step")
            parts = [f"{'val' if record.get('eval_split') == 'val' else 'test'} RMSE {test['rmse']:.4g}"
                     + (f" ({test['integrator']} ×{test['substeps']}; former Euler at the data "
                        f"step {euler['rmse']:.4g})" if euler and "integrator" in test else ""),
                     f"rel. L2 {_pm(test['rel_l2_mean'], test['rel_l2_std'])}",
                     f"90% coverage {test['coverage_90']:.3f}"]
            base = test.get("baselines")
            if base:  # predictions that need no model, on the same frames
                parts.append(f"against predictions that need no model: the average training "
                             f"frame rel. L2 {base['average_state_rel_l2']:.4g}, the last seen "
                             f"frame held {base['last_seen_state_rel_l2']:.4g}")
            seeds = record.get("seeds")
            if seeds:
                rmse = [s["test_rmse"] for s in seeds["seeds"] if s.get("test_rmse") is not None]
                parts.append(f"over {len(seeds['seeds'])} training seeds: RMSE "
                             + ", ".join(f"{v:.4g}" for v in rmse)
                             + ", 90% coverage " + ", ".join(f"{s['coverage_90']:.3f}"
                                                             for s in seeds["seeds"]))
            if ref.get("truth"):
                learned = record.get("drift_parameters", {})
                parts.append("learned " + ", ".join(
                    f"{k} = {learned[k]:.4g} (true {v:.4g}, {100 * abs(learned[k] - v) / abs(v):.1f}% off)"
                    for k, v in ref["truth"].items() if k in learned))
            ours, entry = "; ".join(parts), test
        source = f"[`{ref['model']}`](../pretrained/{ref['model']}/card.md)"
        if ref.get("horizons"):
            sweep = _load(ROOT / ref["horizons"])
            ours += "; " + (_horizon_summary(sweep) if sweep else "horizon sweep not run yet")
            source += f", [`{ref['horizons']}`](../{ref['horizons'].replace('.json', '.md')})"
        if ref.get("result"):
            bench = _load(ROOT / ref["result"])
            ours += "; " + (_nfe_summary(bench) if bench else "NFE comparison: benchmark result not produced yet")
            source += f", [`{ref['result']}`](../{ref['result'].replace('.json', '.md')})"
        lines.append(f"| {ref['experiment']} | {ref['paper']} | {ours} | {source} |")
        raw.append({**ref, "ours": entry})
    return lines, raw


#: issue 14's targets for a random or chaotic truth (the model's scores against the ensemble)
ENSEMBLE_TARGETS = {
    "van_der_pol": ("rel_l2", 0.10), "oscillator": ("rel_l2", 0.10),
    "lorenz63": ("vpt", 1.0), "kuramoto_sivashinsky": ("vpt", 1.0),
}


def ensemble_rows(pretrained: Path) -> tuple[list[str], list[dict]]:
    """Models scored against truth ensembles (``scripts/pretrained.py ensemble``)."""
    lines = ["| model | truth | rel. L2 of the mean vs the truth's mean (± over cases) | "
             "90 % coverage of the realisations (perfect model with 32 samples) | valid "
             "prediction time, Lyapunov times (holding x0; the exact dynamics from the noisy x0) | "
             "target | verdict |",
             "|---|---|---|---|---|---|---|"]
    raw = []
    for path in sorted(pretrained.glob("*/eval.json")):
        record = json.loads(path.read_text())
        ens = record.get("ensemble")
        if not ens:
            continue
        name = path.parent.name
        coverage_ok = 0.85 <= ens["coverage_90"] <= 0.95
        kind, bound = ENSEMBLE_TARGETS.get(name, (None, None))
        if kind == "rel_l2":
            target = f"≤ {bound:g}, coverage in [0.85, 0.95]"
            met = ens["rel_l2_vs_ensemble_mean"] <= bound and coverage_ok
            verdict = "met" if met else "missed: " + ", ".join(
                ([f"error {ens['rel_l2_vs_ensemble_mean']:.3f}"] if ens["rel_l2_vs_ensemble_mean"] > bound else [])
                + ([f"coverage {ens['coverage_90']:.3f}"] if not coverage_ok else []))
        elif kind == "vpt":
            target = f"≥ {bound:g} Lyapunov time"
            verdict = ("met" if ens["valid_lyapunov_times"] >= bound else
                       f"missed ({ens['valid_lyapunov_times'] / bound:.2f} of it)")
        else:
            target, verdict = "–", "reported"
        exact_from_x0 = ens.get("observed_start_valid_lyapunov_times")
        vpt = (f"{ens['valid_lyapunov_times']:.2f} ({ens['persistence_valid_lyapunov_times']:.2f}"
               + (f"; {exact_from_x0:.2f}" if exact_from_x0 is not None else "") + ")"
               if "valid_lyapunov_times" in ens else "–")
        cases = f"{ens['n_cases']} case{'s' if ens['n_cases'] > 1 else ''}"
        lines.append(f"| {name} | {ens['kind'].replace('_', ' ')}, {cases} × "
                     f"{ens['n_realisations']} | {ens['rel_l2_vs_ensemble_mean']:.3f} "
                     f"(± {ens['rel_l2_vs_ensemble_mean_case_std']:.3f}) | {ens['coverage_90']:.3f} "
                     + (f"({ens['oracle']['coverage_90']:.3f})" if "oracle" in ens else "(–)")
                     + f" | {vpt} | "
                     f"{target} | {verdict} |")
        raw.append({"model": name, **{k: v for k, v in ens.items() if k != "description"},
                    "target": target, "verdict": verdict})
    return lines, raw


def training_cost_rows(refs: dict, pretrained: Path) -> list[str]:
    """What each shipped model's training cost, from its config.json."""
    paper = {row["model"]: row["mean"] for row in refs["rom_visde"] + refs.get("arcta", [])
             if isinstance(row, dict) and row.get("model") and row.get("mean") is not None}
    lines = ["| model | device | steps | training s | wall s with set-up | ms / step | time to "
             "the paper's error on validation |", "|---|---|---|---|---|---|---|"]
    for path in sorted(pretrained.glob("*/config.json")):
        training = json.loads(path.read_text())["training"]
        record = _load(path.parent / "eval.json") or {}
        name = path.parent.name
        scored = [h for h in training["history"] if h.get("val_rel_l2") is not None]
        if name not in paper:
            reach = "no paper figure"
        elif not scored:
            reach = "not recorded (trained without validation scoring)"
        else:
            first = next((h for h in scored if h["val_rel_l2"] <= paper[name]), None)
            reach = (f"{first['seconds']:.0f} s (step {first['step']})" if first else
                     f"not reached (best {min(h['val_rel_l2'] for h in scored):.3f} vs {paper[name]:.3f})")
        wall = record.get("train_wall_seconds")
        lines.append(f"| {name} | {training.get('device_name', training.get('device'))} | "
                     f"{training['steps']} | {training['seconds']:.0f} | "
                     f"{'–' if wall is None else f'{wall:.0f}'} | "
                     f"{1e3 * training['seconds'] / max(training['steps'], 1):.2f} | {reach} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained", default=str(ROOT / "pretrained"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "reproduction.md"))
    parser.add_argument("--record-attempt", type=Path, metavar="MODEL_DIR",
                        help="keep this trained model's eval.json under docs/attempts (with --tag)")
    parser.add_argument("--tag", default="attempt")
    args = parser.parse_args()
    if args.record_attempt:
        print(f"wrote {record_attempt(args.record_attempt, args.tag)}")
        return
    refs = json.loads((ROOT / "docs" / "paper_results.json").read_text())
    pretrained = Path(args.pretrained)
    visde_lines, visde_raw = rom_visde_rows(refs, pretrained)
    arcta_lines, arcta_raw = arcta_rows(refs, pretrained)
    ensemble_lines, ensemble_raw = ensemble_rows(pretrained)
    text = "\n".join([
        "# Reproduction of the papers' results",
        "",
        "Generated by `python scripts/reproduction.py` from `pretrained/*/eval.json` (written by "
        "`scripts/pretrained.py train` from `srom evaluate --json`) and the papers' reference "
        "figures in `docs/paper_results.json`; raw values in `docs/reproduction.json`. Do not edit "
        "by hand.",
        "",
        "Protocol (both papers): encode the first snapshot of each test trajectory, predict the "
        "whole horizon with its μ and forcing, and report the mean ± std of the per-step relative "
        "L2 error of the predictive mean over all test steps. Three figures per model:",
        "",
        "- **papers' protocol** (compared with the paper): 32 latent paths × 64 decoder samples, "
        "the latent SDE integrated to convergence (SRA1 at half the checked step, standing in for "
        "the papers' adaptive torchsde solvers), no calibration (`engine.protocols`);",
        "- **headline**: 128 paths with the model's default integrator (stochastic Heun with the "
        "substeps its halving check chose on validation data, `srom tune-step`) and the "
        "uncertainty calibrated on the validation split (`srom calibrate`); the coverages and "
        "CRPS below are of this prediction;",
        "- **former Euler**: the same with Euler–Maruyama at the data step, the default before "
        "issue 13, to show what the integrator changed.",
        "",
        "## Stochastic ROM paper (forced Burgers, flow control, reaction–diffusion)",
        "",
        refs["_source"],
        "",
        *visde_lines,
        "",
        "## Amortized reparametrization paper",
        "",
        *arcta_lines,
        "",
        "## Stochastic and chaotic truth",
        "",
        "A random truth is a law, not a path: these models are scored against 64 realisations "
        "of each test case (same initial state, μ and f; new noise), regenerated with the "
        "simulator that made the test set (`python scripts/pretrained.py ensemble`, "
        "`srom evaluate --ensemble 64`). Heat is scored against its exact law given the first "
        "snapshot; chaotic systems by their valid prediction time (normalised RMSE ≤ 0.3 "
        "against the noise-free path) in Lyapunov times, the exponent measured on the "
        "simulator (`engine.systems.lyapunov`). Targets from issue 14.",
        "",
        *ensemble_lines,
        "",
        "## What a training costs",
        "",
        "From each model's `config.json` (training seconds exclude data generation and "
        "evaluation; the wall time includes set-up). The time to the paper's error can only "
        "be read where the training scored validation rollouts as it went.",
        "",
        *training_cost_rows(refs, pretrained),
        "",
    ])
    Path(args.out).write_text(text)
    raw = {"rom_visde": visde_raw, "arcta": arcta_raw, "ensemble": ensemble_raw}
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
