"""One page of every target of the benchmark issue, read from the committed result files.

    python benchmarks/summary.py            # writes benchmarks/results/summary.md

Reads the JSON files that the benchmark scripts wrote (competitors, cost independence,
engine performance, inference) and states, for each target, what was measured, whether it
was met and by how much it was missed. Nothing here is typed by hand: a target whose file
is missing says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import competitors  # noqa: E402  (the tables' own summaries: one reading of the results)
import cost_independence as cost_independence_bench  # noqa: E402
import work_precision as work_precision_bench  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _g(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def _link(name: str) -> str:
    md = name.replace(".json", ".md")
    return f"[{md}]({md})"


def _missing(label: str, name: str) -> list[tuple[str, str, str, str]]:
    return [(label, f"no result file `{name}`", "not measured", name)]


def _rows(result: dict) -> dict[str, dict]:
    """The competitor table's rows (``competitors.summarize``) by method."""
    return {row["method"]: row for row in competitors.summarize(result)}


def burgers_wall_clock() -> list[tuple[str, str, str, str]]:
    """Ours against the fastest solver-based method to the Burgers target, and the error
    within the largest budget; read through the competitor table's own summary."""
    name = "competitors_cuda_burgers.json"
    label = "≥ 10× less wall-clock than the fastest solver-based method to reach Burgers rel. L2"
    result = _load(name)
    if result is None:
        return _missing(label, name)
    target, largest = result["target"], max(result["settings"]["budgets"])
    rows = _rows(result)
    ours = rows["ours"]
    verdict = competitors._target_lines(list(rows.values()), target)[-1]
    measured = "; ".join(
        f"`{m}` " + (f"median {_g(r['time_to_target'])} s" if r["time_to_target"] is not None
                     else "not in most seeds") + f" ({r['reached']}/{r['seeds']} seeds)"
        for m, r in rows.items())
    reached = ours["reached"]  # within the runs' budget, which is below 5 minutes
    return [
        (f"{label} ≤ {target:g} (H100)", measured, verdict, _link(name)),
        (f"Burgers paper preset to rel. L2 ≤ {target:g} in ≤ 5 min of training (H100)",
         f"{reached}/{ours['seeds']} seeds reached it (runs of {_g(largest)} s); error at "
         f"{_g(largest)} s: " + ", ".join(_g(e) for e in ours["errors_at_last_budget"]),
         "met" if 2 * reached > ours["seeds"] else "missed (in most seeds)", _link(name)),
    ]


def lotka_volterra_evaluations() -> list[tuple[str, str, str, str]]:
    """Drift calls (the papers' NFE) of ours to the Lotka–Volterra target against every
    adjoint baseline's (dopri5 at 1e-3 and at the paper's 1e-2 / 1e-4 / 1e-6)."""
    name = "competitors_cuda_lotka_volterra.json"
    label = ("≥ 10× fewer drift evaluations than the adjoint baseline on Lotka–Volterra at "
             "similar error (H100)")
    result = _load(name)
    if result is None:
        return _missing(label, name)
    target, rows = result["target"], _rows(result)
    ours = rows.get("ours")
    adjoints = {m: r for m, r in rows.items() if m.startswith("odeint_adjoint")}
    if ours is None or ours["calls_to_target"] is None or not adjoints:
        return [(label, "ours did not reach the target, or no adjoint run", "not measured",
                 _link(name))]
    measured = (f"ours: median {_g(ours['calls_to_target'])} drift calls to rel. L2 ≤ {target:g} "
                f"({ours['reached']}/{ours['seeds']} seeds); " + "; ".join(
                    f"`{m}`: {_g(r['calls_at_end'])} calls by the end, rel. L2 "
                    + ", ".join(_g(e) for e in r["errors_at_end"]) for m, r in adjoints.items()))
    reached = {m: r for m, r in adjoints.items() if r["calls_to_target"] is not None}
    if reached:
        best = min(r["calls_to_target"] for r in reached.values())
        ratio = best / ours["calls_to_target"]
        verdict = "met" if ratio >= 10 else f"missed: {ratio:.1f}× instead of 10×"
    else:
        spent = min(r["calls_at_end"] for r in adjoints.values()) / ours["calls_to_target"]
        error = min(e for r in adjoints.values() for e in r["errors_at_end"]) / target
        verdict = (f"not measured at similar error: no adjoint got there; by the end each had "
                   f"spent ≥ {spent:.1f}× the calls ours needed, with an error still ≥ "
                   f"{error:.0f}× the target (a lower bound on the ratio)")
    return [(label, measured, verdict, _link(name))]


def training_step() -> list[tuple[str, str, str, str]]:
    name, label = "engine_perf_cuda.json", "training step at Burgers size ≤ 2.5 ms (CUDA graph, H100)"
    result = _load(name)
    if result is None:
        return _missing(label, name)
    ms = result["train_graph"]["ms_per_step"]
    return [(label, f"{_g(ms)} ms per step ({result['problem']})",
             "met" if ms <= 2.5 else f"missed by {100 * (ms / 2.5 - 1):.0f} %", _link(name))]


def prediction_latency() -> list[tuple[str, str, str, str]]:
    """Issue 13's budgets, with the scheme the predictions use by default."""
    name = "inference_cuda.json"
    result = _load(name)
    if result is None:
        return _missing("predict 1024 paths × 300 steps ≤ 10 ms (H100)", name)
    scheme = result.get("integrator", "euler")
    out = []
    for variant, paths, target, what in (("ours_latent", 1024, 10.0, "latent paths"),
                                         ("ours_decode", 256, 25.0, "decoding every frame")):
        label = f"predict {paths} paths × 300 steps, {what} ≤ {target:g} ms (H100, {scheme})"
        row = next((r for r in result["rows"] if r["variant"] == variant and r["paths"] == paths
                    and r.get("status") == "ok"), None)
        if row is None:
            out.append((label, f"no {paths}-path row", "not measured", _link(name)))
            continue
        p50 = row["p50_ms"]
        out.append((label, f"p50 {_g(p50)} ms, p95 {_g(row['p95_ms'])} ms",
                    "met" if p50 <= target else f"missed ({p50 / target:.1f}× the target)",
                    _link(name)))
    return out


def work_precision() -> list[tuple[str, str, str, str]]:
    """Whether the default scheme pays for itself: the cheapest setting per error level."""
    out = []
    for device in ("cpu", "cuda"):
        name = f"work_precision_{device}.json"
        result = _load(name)
        if result is None:
            continue
        euler1 = next(r for r in result["rows"] if r["integrator"] == "euler" and r["substeps"] == 1)
        level = euler1["integration_error"] / 10
        best = work_precision_bench.cheapest(result["rows"], level, "latent_ms")
        euler = work_precision_bench.cheapest(
            [r for r in result["rows"] if r["integrator"] == "euler"], level, "latent_ms")
        label = (f"a higher-order step pays for itself: integration error ≤ {level:.1e} (a tenth of "
                 f"Euler's at the data step) at least cost ({result['device_name']})")
        if best is None:
            out.append((label, "no setting reached it", "not measured", _link(name)))
            continue
        measured = (f"cheapest: {best['integrator']} ×{best['substeps']} "
                    f"{_g(best['latent_ms']['median'])} ms; Euler: "
                    + (f"×{euler['substeps']} {_g(euler['latent_ms']['median'])} ms" if euler
                       else "never within the substeps tried"))
        verdict = ("met" if best["integrator"] != "euler" else "missed: Euler is cheapest")
        out.append((label, measured, verdict, _link(name)))
    return out


def cost_independence() -> list[tuple[str, str, str, str]]:
    name = "cost_independence_cuda.json"
    label = "flat step cost and memory (±15 %) as length, trajectories and stiffness grow (H100)"
    result = _load(name)
    if result is None:
        return _missing(label, name)
    out = []
    for sweep, rows in result["sweeps"].items():
        checks = cost_independence_bench.flatness(rows)
        unit = {"s_per_step": ("ms", 1e3), "peak_mb": ("MB", 1.0)}
        parts = [f"{c['name']} " + " / ".join(_g(unit[c["key"]][1] * v) for v in c["values"])
                 + f" {unit[c['key']][0]} (±{100 * c['spread']:.0f} %)" for c in checks]
        verdict = ("met" if all(c["met"] for c in checks) else "missed") if checks else "not measured"
        out.append((f"{label}: {sweep}", "; ".join(parts) or "not measured", verdict, _link(name)))
    return out


def calibration() -> list[tuple[str, str, str, str]]:
    """Ours' interval coverage at the final budget (no target: reported for every method)."""
    out = []
    for system in ("burgers", "lotka_volterra"):
        name = f"competitors_cuda_{system}.json"
        result = _load(name)
        if result is None:
            continue
        finals = [r["checkpoints"][-1] for r in result["runs"]
                  if r["method"] == "ours" and r.get("checkpoints")]
        cov = [c["coverage_90"] for c in finals if c.get("coverage_90") is not None]
        if cov:
            out.append((f"calibration of ours on {system} (90 % interval, ideal 0.9; no target)",
                        "coverage " + ", ".join(_g(c) for c in cov) + " over seeds", "reported",
                        _link(name)))
    return out


def main() -> Path:
    rows = (burgers_wall_clock() + lotka_volterra_evaluations() + training_step()
            + prediction_latency() + work_precision() + cost_independence() + calibration())
    lines = ["# Benchmark targets at a glance", "",
             "Generated by `python benchmarks/summary.py` from the result files in this folder; "
             "do not edit. Each row links the table it is read from, which says how it was "
             "measured.", "",
             "| target | measured | verdict | from |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {v} | {s} |" for t, m, v, s in rows]
    path = RESULTS / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
