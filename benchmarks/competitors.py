"""Competitor training benchmark: test error against training wall-clock, side by side.

Every neural method trains the same StochasticROM modules (encoder, decoder, drift on
[z, μ, f(t)], dispersion; same latent size, initial weights, Adam learning rate, fp32/TF32)
on the same data; only the training algorithm differs (see ``_solvers.py``):

- ``ours``: ``StochasticROM.fit`` (amortized reparametrization, no solver; CUDA graph);
- ``em_graph``: Euler–Maruyama in the loop, plain torch, whole step as one CUDA graph;
- ``torchsde_euler``, ``torchsde_adjoint``: torchsde latent SDE (direct / adjoint);
- ``odeint_dopri5``, ``odeint_dopri5_1e-3``, ``odeint_adjoint``: torchdiffeq latent ODEs;

plus classical ROMs fitted on the CPU (``pod_sindy``, ``pod_opinf``, ``pod_dmdc``; see
``_classical.py``; skipped with a message when their packages are missing).

Each (method, seed) trains for the largest of ``--budgets`` seconds of training wall-clock;
the timer is paused while the model is evaluated at log-spaced checkpoints and at each
budget (test relative L2 error of the predictive mean, and CRPS and 50 % / 90 % interval
coverage of the predictive distribution, ``_harness.evaluate``, which integrates with the
predictions' accurate default scheme). The schedules (ours: KL ramp and lr decay; the
others: lr decay) are set from the step rate measured by a method's *first* seed, so that
they fit the largest budget, and stored in the result file (``schedules``): every other seed
of that method, in this run or a later one merged into the same file, trains on the same
schedule. Drift evaluations are counted
by a wrapper around the drift; peak GPU memory is that of training alone.

Usage:
    python benchmarks/competitors.py --device cuda --system burgers --methods ours,em_graph \\
        --budgets 10,40,100 --seeds 0
    python benchmarks/competitors.py --device cpu --size small   # the CPU-sized run

Results are merged into ``benchmarks/results/competitors_<device>_<system>.json`` (runs of
the same method and seed are replaced; ``--fresh`` starts over), and the markdown table
and the error-vs-wall-clock plot are regenerated from the merged file.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import _classical
import _solvers
import numpy as np
import torch

# _harness first: it puts the repository on sys.path when srom is not installed
from _harness import (
    EVAL_DT,
    EVAL_METHOD,
    Clock,
    DeviceData,
    checkpoint_times,
    evaluate,
    fingerprint,
    install_counter,
    load_problem,
    log,
    model_params,
    prepare_model,
)

from engine import StochasticROM, StopFlag
from engine.progress import NullCallback

RESULTS = Path(__file__).resolve().parent / "results"
NEURAL = ["ours", *_solvers.METHODS]
CLASSICAL = list(_classical.CLASSICAL)
CALIBRATION = ("coverage_50", "coverage_90", "crps")
LABELS = {"ours": "ours: StochasticROM.fit (amortized, no solve)",
          **{k: v["label"] for k, v in _solvers.METHODS.items()},
          **{k: v["label"] for k, v in _classical.CLASSICAL.items()}}


# ---------------------------------------------------------------------- one run
class _Checkpoints:
    """Evaluates at the nominal times as training passes them (timer paused)."""

    def __init__(self, clock: Clock, times: list[float], evaluate_fn, validate_fn=None):
        self.clock, self.pending, self.evaluate_fn = clock, list(times), evaluate_fn
        self.validate_fn = validate_fn
        self.records: list[dict] = []
        self.top = max(times)

    def due(self, elapsed: float) -> bool:
        return bool(self.pending) and elapsed >= self.pending[0]

    def record(self, elapsed: float, step: int, loss: float | None, drift: tuple[int, int]) -> None:
        with self.clock.pause():
            result = self.evaluate_fn()
            if self.validate_fn is not None:  # for model selection on validation
                result["val_rel_l2"] = self.validate_fn()["rel_l2_mean"]
        while self.pending and elapsed >= self.pending[0]:
            self.records.append({"nominal_s": self.pending.pop(0), "time_s": elapsed, "step": step,
                                 "loss": loss, "drift_calls": drift[0], "drift_rows": drift[1],
                                 **result})

    def finish(self, elapsed: float, step: int, loss: float | None, drift: tuple[int, int]) -> None:
        """A training that completed its steps before the largest budget: its final model
        is what every budget still pending gets (evaluated once, at ``elapsed``)."""
        if not self.pending:
            return
        with self.clock.pause():
            result = self.evaluate_fn()
            if self.validate_fn is not None:
                result["val_rel_l2"] = self.validate_fn()["rel_l2_mean"]
        for nominal in self.pending:
            self.records.append({"nominal_s": nominal, "time_s": elapsed, "step": step,
                                 "loss": loss, "drift_calls": drift[0], "drift_rows": drift[1],
                                 "final": True, **result})
        self.pending = []


class _StepTimes(NullCallback):
    """(step, wall-clock) at every log: a step rate measured after the warm-up."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float]] = []

    def on_log(self, step: int, metrics: dict) -> None:
        self.marks.append((step, time.perf_counter()))

    def rate(self) -> float | None:
        if len(self.marks) < 2 or self.marks[-1][1] <= self.marks[0][1]:
            return None
        (s0, t0), (s1, t1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0)


class _OursCallback(NullCallback):
    def __init__(self, model: StochasticROM, clock: Clock, marks: _Checkpoints,
                 stop: StopFlag, rows_per_step: int):
        self.model, self.clock, self.marks, self.stop = model, clock, marks, stop
        self.rows_per_step = rows_per_step
        self.last_step = 0

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.counter = install_counter(self.model)  # the module exists once fit starts
        self.clock.start()
        self.marks.record(0.0, 0, None, (0, 0))  # the untrained model

    def on_log(self, step: int, metrics: dict) -> None:
        elapsed = self.clock.elapsed()
        self.last_step = step
        if self.marks.due(elapsed) or elapsed >= self.marks.top:
            self.marks.record(elapsed, step, metrics["loss"], (step, step * self.rows_per_step))
        if elapsed >= self.marks.top:
            self.stop.set()

    def on_end(self, step: int, status: str, message: str) -> None:
        if status == "completed":  # done before the largest budget: score the final model
            self.marks.finish(self.clock.elapsed(), step, None, (step, step * self.rows_per_step))


def ours_schedule(prob, train, args, seed: int, device: str) -> dict:
    """KL ramp and lr decay that fit the largest budget, from a timed pilot's step rate
    (measured between its first and last log, so that set-up, warm-up and the CUDA-graph
    capture do not count: they once made the rate 8× too low and the training end at half
    the budget)."""
    params = model_params(prob, device, seed)
    pilot_steps = 400 if device == "cuda" else 12
    times = _StepTimes()
    pilot = StochasticROM(**params, steps=pilot_steps, log_every=pilot_steps // 4).fit(
        train, callback=times)
    rate = times.rate() or pilot_steps / max(pilot.training_["seconds"], 1e-9)
    expected = max(int(rate * max(args.budgets)), 30)
    return {"steps_expected": expected, "kl_transition": max(expected // 3, 1),
            "lr_decay_steps": max(1000, expected // 10), "pilot_steps_per_s": rate,
            "pilot_seed": seed}


def run_ours(prob, train, val, test, args, seed: int, device: str,
             schedule: dict | None = None) -> dict:
    """``schedule``: that of an earlier seed (every seed of a method trains on the same
    schedule); ``None``: measured now (:func:`ours_schedule`) and returned in the record."""
    params = model_params(prob, device, seed)
    schedule = schedule or ours_schedule(prob, train, args, seed, device)
    expected = schedule["steps_expected"]
    log_every = 25 if device == "cuda" else 5
    model = StochasticROM(**params, steps=4 * expected, kl_transition=schedule["kl_transition"],
                          lr_decay_steps=schedule["lr_decay_steps"], log_every=log_every)
    rows_per_step = model.windows_per_step * model.n_samples * (
        model.n_quad if model.quadrature == "stratified" else model.window)
    clock = Clock(torch.device(device))
    marks = _Checkpoints(clock, checkpoint_times(args.budgets, args.n_checkpoints),
                         lambda: evaluate(model, test, args.eval_paths, True, seed),
                         lambda: evaluate(model, val, args.eval_paths, True, seed))
    stop = StopFlag()
    callback = _OursCallback(model, clock, marks, stop, rows_per_step)
    model.fit(train, callback=callback, stop_flag=stop)
    clock.finish()
    steps = model.training_["steps"]
    elapsed = marks.records[-1]["time_s"] if marks.records else float("nan")
    counted = callback.counter.calls if not model.training_["cuda_graph"] else None
    status = model.training_["status"]
    return {"status": "budget" if status == "stopped" else status, "steps": steps, "train_s": elapsed,
            "ms_per_step": 1e3 * elapsed / max(steps, 1), "drift_calls_per_step": 1,
            "drift_rows_per_step": rows_per_step, "drift_calls_counted": counted,
            "cuda_graph": model.training_["cuda_graph"], "peak_mb": clock.peak_mb,
            "schedule": schedule, "checkpoints": marks.records, "stochastic": True}


def run_solver(method: str, prob, train, val, test, args, seed: int, device: str,
               schedule: dict | None = None) -> dict:
    """``schedule``: the lr decay of an earlier seed (``None``: fitted to the budget from
    the step rate of this run's first steps, and returned in the record)."""
    model = prepare_model(model_params(prob, device, seed), train)
    trainer = _solvers.SolverTrainer(model, DeviceData.of(model, train), method,
                                     traj_per_step=args.traj_per_step, solver_dt=args.solver_dt)
    clock = Clock(torch.device(device))
    marks = _Checkpoints(clock, checkpoint_times(args.budgets, args.n_checkpoints),
                         lambda: evaluate(model, test, args.eval_paths, trainer.stochastic, seed),
                         lambda: evaluate(model, val, args.eval_paths, trainer.stochastic, seed))
    top = max(args.budgets)
    status, last_read, decay_set = "budget", 0, schedule is not None

    def set_decay(decay_steps: int) -> None:
        trainer.gamma = 0.9 ** (1.0 / decay_steps)
        if trainer.use_graph:
            trainer.gamma_t.fill_(trainer.gamma)

    if schedule is not None:
        set_decay(schedule["lr_decay_steps"])
    clock.start()
    marks.record(0.0, 0, None, (0, 0))  # the untrained model
    while True:
        trainer.step()
        elapsed = clock.elapsed()
        if not decay_set and trainer.steps >= 4:  # fit the lr decay to the budget
            expected = int(trainer.steps * top / max(elapsed, 1e-9))
            schedule = {"steps_expected": expected, "lr_decay_steps": max(1000, expected // 10),
                        "pilot_seed": seed}
            set_decay(schedule["lr_decay_steps"])
            decay_set = True
        if marks.due(elapsed) or elapsed >= top:
            loss, ok = trainer.read_loss(trainer.steps - last_read)
            last_read = trainer.steps
            marks.record(elapsed, trainer.steps, loss, trainer.drift_counts())
            if not ok:
                status = "diverged"
                break
        if elapsed >= top:
            break
    clock.finish()
    calls, rows = trainer.drift_counts()
    steps = trainer.steps
    return {"status": status, "steps": steps, "train_s": elapsed,
            "ms_per_step": 1e3 * elapsed / max(steps, 1),
            "drift_calls_per_step": calls / max(steps, 1), "drift_rows_per_step": rows / max(steps, 1),
            "cuda_graph": trainer.use_graph, "peak_mb": clock.peak_mb,
            "solver_dt": trainer.solver_dt, "traj_per_step": trainer.batch,
            "schedule": schedule, "checkpoints": marks.records, "stochastic": trainer.stochastic}


# ---------------------------------------------------------------------- report
def _clean(obj):
    """JSON-safe: non-finite floats become null (read back as inf errors / no value)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _err(checkpoint: dict) -> float:
    v = checkpoint.get("rel_l2_mean")
    return float("inf") if v is None else float(v)


def at_time(checkpoints: list[dict], budget: float) -> dict:
    """The last evaluation within ``budget`` s of training (2 % slack for the step or log
    interval that crosses it); a step that ends later does not count."""
    inside = [c for c in checkpoints if c["time_s"] <= 1.02 * budget]
    return inside[-1] if inside else checkpoints[0]


def selected_at_time(checkpoints: list[dict], budget: float) -> dict | None:
    """The evaluation within ``budget`` s (as :func:`at_time`) with the lowest *validation*
    error: the model a user who keeps the best checkpoint on validation would ship, as the
    papers do. ``None`` when no checkpoint was scored on validation (older records)."""
    inside = [c for c in checkpoints if c["time_s"] <= 1.02 * budget and "val_rel_l2" in c]
    if not inside:
        return None
    return min(inside, key=lambda c: math.inf if c["val_rel_l2"] is None else c["val_rel_l2"])


def selected_time_to_target(checkpoints: list[dict], target: float) -> float | None:
    """The first evaluation time at which the validation-selected checkpoint so far reaches
    ``target`` on the test split (``None``: never, or no validation scores)."""
    for c in checkpoints:
        chosen = selected_at_time(checkpoints, c["time_s"] / 1.02)
        if chosen is not None and _err(chosen) <= target:
            return c["time_s"]
    return None


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}"


def summarize(result: dict) -> list[dict]:
    """Per method: means over seeds of the run figures and the error at each budget."""
    rows = []
    budgets = result["settings"]["budgets"]
    target = result["target"]
    for method in [m for m in NEURAL if any(r["method"] == m for r in result["runs"])]:
        runs = [r for r in result["runs"] if r["method"] == method]
        at_budget = {}
        for b in budgets:
            vals = [_err(at_time(r["checkpoints"], b)) for r in runs if r["checkpoints"]]
            at_budget[b] = (float(np.mean(vals)), float(np.std(vals))) if vals else None
        selected = {}
        for b in budgets:
            chosen = [selected_at_time(r["checkpoints"], b) for r in runs if r["checkpoints"]]
            vals = [_err(c) for c in chosen if c is not None]
            selected[b] = ((float(np.mean(vals)), float(np.std(vals)))
                           if vals and len(vals) == len(chosen) else None)
        first = [next((c for c in r["checkpoints"] if _err(c) <= target), None) for r in runs]
        reach = [None if c is None else c["time_s"] for c in first]
        # drift calls (batched evaluations, the papers' NFE) to the target and to the end
        calls_to = [None if c is None else c["step"] * r["drift_calls_per_step"]
                    for c, r in zip(first, runs)]
        ends = [r["checkpoints"][-1] for r in runs if r["checkpoints"]]
        hits = [v for v in reach if v is not None]
        final = [at_time(r["checkpoints"], max(budgets)) for r in runs if r["checkpoints"]]
        calibration = {}
        for key in CALIBRATION:  # records made before calibration was measured lack them
            vals = [c[key] for c in final if c.get(key) is not None]
            calibration[key] = float(np.mean(vals)) if vals and len(vals) == len(final) else None
        calibration["predictive"] = next((c["predictive"] for c in final if c.get("predictive")), None)
        peaks = [r["peak_mb"] for r in runs if r.get("peak_mb") is not None
                 and math.isfinite(r["peak_mb"])]
        rows.append({"method": method, "seeds": len(runs),
                     "steps": float(np.mean([r["steps"] for r in runs])),
                     "ms_per_step": float(np.mean([r["ms_per_step"] for r in runs])),
                     "calls": float(np.mean([r["drift_calls_per_step"] for r in runs])),
                     "rows": float(np.mean([r["drift_rows_per_step"] for r in runs])),
                     "peak_mb": max(peaks) if peaks else None,
                     "at_budget": at_budget, "reached": len(hits),
                     "selected_at_budget": selected,
                     "selected_time_to_target": _median_time(
                         [selected_time_to_target(r["checkpoints"], target) for r in runs]),
                     # median over seeds, a seed that never reaches the target counting as
                     # never: one lucky seed out of three does not make a time to target
                     "time_to_target": _median_time(reach),
                     "calls_to_target": _median_time(calls_to),
                     "calls_at_end": float(np.median([c["step"] * r["drift_calls_per_step"]
                                                      for c, r in zip(ends, runs)])) if ends else None,
                     "errors_at_end": [_err(c) for c in ends],
                     "errors_at_last_budget": [_err(c) for c in final],
                     "calibration": calibration,
                     "status": ",".join(sorted({r["status"] for r in runs})),
                     "graph": any(r["cuda_graph"] for r in runs)})
    return rows


def write_report(result: dict, out: Path) -> None:
    stem = f"competitors_{result['device']}_{result['system']}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(_clean(result), indent=1, allow_nan=False))
    budgets = result["settings"]["budgets"]
    target = result["target"]
    forcing = ("the stored forcing f(t), interpolated linearly in time, is a drift input "
               "of every neural method and a control input of the classical ones"
               if result["problem"]["n_forcing"] else "this system has no forcing f(t)")
    lines = [f"# Competitors on {result['system']} ({result['size']}): {result['device_name']}, "
             f"torch {result['torch']}", "",
             f"Data: {result['problem']['description']}. Shared model: "
             f"{result['problem']['model']}. Test metric: relative L2 error of the predictive "
             f"mean (encode x(t0), predict the whole horizon, {EVAL_METHOD} step ≤ {EVAL_DT:g}, "
             f"{result['settings']['eval_paths']} paths; latent ODEs one noise-free path), "
             f"mean ± std over seeds, at the last evaluation within each budget (a step that "
             f"ends after it does not count). Training wall-clock excludes evaluation. "
             f"Forcing: {forcing}.",
             "", "| method | steps | ms/step | drift calls/step | drift rows/step | peak train MB | "
             + " | ".join(f"rel. L2 @ {b:g} s" for b in budgets)
             + f" | time to ≤ {target:g} (s) | status |",
             "|---" * (8 + len(budgets)) + "|"]
    for row in summarize(result):
        cells = []
        for b in budgets:
            v = row["at_budget"][b]
            cells.append("—" if v is None else f"{_fmt(v[0])} ± {_fmt(v[1], 2)}")
        if row["time_to_target"] is not None:
            ttt = f"{_fmt(row['time_to_target'])} ({row['reached']}/{row['seeds']})"
        elif row["reached"]:
            ttt = f"not in most seeds ({row['reached']}/{row['seeds']})"
        else:
            ttt = f"not reached (0/{row['seeds']})"
        name = f"`{row['method']}`" + (" (graph)" if row["graph"] else "")
        lines.append(f"| {name} | {row['steps']:.0f} | {_fmt(row['ms_per_step'])} | "
                     f"{_fmt(row['calls'])} | {_fmt(row['rows'])} | {_fmt(row['peak_mb'])} | "
                     + " | ".join(cells) + f" | {ttt} | {row['status']} |")
    lines += _selection_lines(result)
    if result["classical"]:
        lines += ["", "Classical ROMs (CPU, POD rank = latent size, chosen on the val split; "
                  "time = all fits of the selection grid):", "",
                  "| method | config | test rel. L2 | CPU seconds |", "|---|---|---|---|"]
        for c in sorted(result["classical"], key=lambda c: CLASSICAL.index(c["method"])):
            if "skipped" in c:
                lines.append(f"| `{c['method']}` | skipped: {c['skipped']} | — | — |")
            else:
                t = c["test"]
                lines.append(f"| `{c['method']}` | {c['config']} | {_fmt(_err(t))} ± "
                             f"{_fmt(t['rel_l2_std'], 2)} | {c['seconds']:.1f} |")
    lines += _calibration_lines(result)
    lines += _target_lines(summarize(result), target)
    for note in result.get("notes", []):
        lines.append(f"\nNote: {note}")
    for e in result.get("errors", []):
        lines.append(f"\nFailed: `{e['method']}` seed {e['seed']}: {e['error']}")
    lines += ["", "Methods:", ""] + [f"- `{k}`: {LABELS[k]}" for k in NEURAL + CLASSICAL
                                      if any(r["method"] == k for r in result["runs"] + result["classical"])]
    lines += ["", "Drift calls count batched evaluations (one solver stage on all paths is one "
              "call); rows count single (z, t) evaluations. Graph-captured steps report the "
              "captured step's counts × steps.",
              f"Settings: {json.dumps(result['settings'])}"]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _plot(result, out / f"{stem}.png")


def _selection_lines(result: dict) -> list[str]:
    """The same runs when the checkpoint kept is the best on the validation split so far."""
    rows = [r for r in summarize(result) if any(v is not None for v in r["selected_at_budget"].values())]
    if not rows:
        return []
    budgets = result["settings"]["budgets"]
    target = result["target"]
    lines = ["", "Model selection on validation, as the papers do: at each budget the checkpoint "
             "kept is the one with the lowest validation rel. L2 among the evaluations so far "
             "(its test error is shown); time to target is the first evaluation at which the "
             "kept checkpoint reaches the target on test (median over seeds).", "",
             "| method | " + " | ".join(f"selected @ {b:g} s" for b in budgets)
             + f" | time to ≤ {target:g} (s), selected |", "|---" * (2 + len(budgets)) + "|"]
    for row in rows:
        cells = []
        for b in budgets:
            v = row["selected_at_budget"][b]
            cells.append("—" if v is None else f"{_fmt(v[0])} ± {_fmt(v[1], 2)}")
        ttt = row["selected_time_to_target"]
        lines.append(f"| `{row['method']}` | " + " | ".join(cells) + " | "
                     + ("not in most seeds" if ttt is None else _fmt(ttt)) + " |")
    return lines


def _calibration_lines(result: dict) -> list[str]:
    """The calibration table at the final budget (— where a record lacks the fields)."""
    top = max(result["settings"]["budgets"])
    lines = ["", f"Calibration at the final budget ({top:g} s) on the test split: coverage of "
             f"the central 50 % and 90 % intervals (ideal 0.5 and 0.9) and CRPS (state units, "
             f"lower is better) of {result['settings']['eval_paths']} samples of the predictive "
             "distribution per trajectory, time step and grid point, mean over seeds. Every "
             "neural method's samples add its learned decoder noise to its decoded paths; the "
             "latent ODEs have one deterministic latent path, so their spread is the decoder "
             "noise only.", "",
             "| method | predictive distribution | coverage 50 % | coverage 90 % | CRPS |",
             "|---|---|---|---|---|"]
    for row in summarize(result):
        cal = row["calibration"]
        source = cal["predictive"] or "— (recorded before calibration was measured)"
        lines.append(f"| `{row['method']}` | {source} | {_fmt(cal['coverage_50'])} | "
                     f"{_fmt(cal['coverage_90'])} | {_fmt(cal['crps'])} |")
    for c in sorted(result["classical"], key=lambda c: CLASSICAL.index(c["method"])):
        if "skipped" not in c:
            lines.append(f"| `{c['method']}` | not stochastic (a point prediction, no noise "
                         "model) | — | — | — |")
    return lines


def _median_time(reach: list[float | None]) -> float | None:
    """Median over seeds of a time (or count) to the target (``None`` = never reached);
    ``None`` if most seeds never reach it."""
    if not reach:
        return None
    value = float(np.median([math.inf if v is None else v for v in reach]))
    return value if math.isfinite(value) else None


def _target_lines(rows: list[dict], target: float) -> list[str]:
    """The issue's target, read from the rows: ours needs ≥ 10× less wall-clock than the
    fastest solver-based method to reach ``target``."""
    ours = next((r for r in rows if r["method"] == "ours"), None)
    solvers = [r for r in rows if r["method"] != "ours" and r["time_to_target"] is not None]
    lines = ["", f"Target: ≥ 10× less wall-clock than the fastest solver-based method to reach "
                 f"rel. L2 ≤ {target:g} (median over seeds)."]
    if ours is None or ours["time_to_target"] is None:
        reached = f"{ours['reached']}/{ours['seeds']}" if ours else "0"
        return lines + [f"Missed: ours reached the target within the budgets in only {reached} "
                        "seeds" + (f", while `{min(solvers, key=lambda r: r['time_to_target'])['method']}` "
                                   "reached it in most" if solvers else "") + "."]
    if not solvers:
        return lines + [f"Ours reached it in {_fmt(ours['time_to_target'])} s; no solver-based "
                        "method reached it within the budgets, so the ratio is only bounded below "
                        "by largest budget / ours."]
    best = min(solvers, key=lambda r: r["time_to_target"])
    ratio = best["time_to_target"] / ours["time_to_target"]
    verdict = "met" if ratio >= 10 else f"missed: {ratio:.1f}× instead of 10×"
    return lines + [f"Ours {_fmt(ours['time_to_target'])} s, fastest solver-based "
                    f"`{best['method']}` {_fmt(best['time_to_target'])} s: {verdict}. Times to "
                    "target are first evaluation checkpoints reaching it, so they are resolved "
                    "only to the log-spaced checkpoint grid."]


def _plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no plot")
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for method in NEURAL:
        runs = [r for r in result["runs"] if r["method"] == method]
        if not runs:
            continue
        nominal = sorted({c["nominal_s"] for r in runs for c in r["checkpoints"]})
        xs, ys = [], []
        for n in nominal:
            pts = [c for r in runs for c in r["checkpoints"]
                   if c["nominal_s"] == n and math.isfinite(_err(c))]
            if pts and n > 0:  # the untrained model (t = 0) has no place on a log axis
                xs.append(np.mean([c["time_s"] for c in pts]))
                ys.append(np.mean([c["rel_l2_mean"] for c in pts]))
        style = "-o" if method == "ours" else "--."
        ax.plot(xs, ys, style, label=method, lw=2.2 if method == "ours" else 1.2, ms=4)
    for c in result["classical"]:
        if "test" in c and math.isfinite(_err(c["test"])):
            ax.plot([c["seconds"]], [c["test"]["rel_l2_mean"]], "s", ms=7,
                    label=f"{c['method']} (CPU fit)")
    ax.axhline(result["target"], color="k", lw=0.8, ls=":", label=f"target {result['target']:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training wall-clock (s, evaluation excluded)")
    ax.set_ylabel("test relative L2 error of the predictive mean")
    ax.set_title(f"{result['system']} ({result['size']}), {result['device_name']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--system", default="burgers", choices=["burgers", "lotka_volterra"])
    p.add_argument("--size", default=None, choices=["small", "paper"],
                   help="problem size (default: paper on cuda, small on cpu)")
    p.add_argument("--methods", default="all",
                   help="comma list of " + ", ".join(NEURAL + CLASSICAL) + "; or all / neural / classical")
    p.add_argument("--budgets", default=None, help="training wall-clock budgets in s "
                   "(default 10,40 on cuda, 2,6 on cpu)")
    p.add_argument("--deadline", type=float, default=450.0,
                   help="skip runs that would end the invocation after this many s")
    p.add_argument("--seeds", default="0")
    p.add_argument("--n-checkpoints", type=int, default=8, help="log-spaced evaluations")
    p.add_argument("--eval-paths", type=int, default=32, help="paths of the predictive mean")
    p.add_argument("--traj-per-step", type=int, default=1, help="solver methods: trajectories per step")
    p.add_argument("--solver-dt", type=float, default=0.01, help="Euler(-Maruyama) step in training")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (1 is robust on a shared 2-core machine)")
    p.add_argument("--fresh", action="store_true", help="do not merge with an existing result file")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the markdown table and plot from the existing result file")
    args = p.parse_args(argv)
    args.size = args.size or ("paper" if args.device == "cuda" else "small")
    args.budgets = [float(b) for b in (args.budgets or ("10,40" if args.device == "cuda" else "2,6")).split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    groups = {"all": NEURAL + CLASSICAL, "neural": NEURAL, "classical": CLASSICAL}
    names = []
    for item in args.methods.split(","):
        names += groups.get(item, [item])
    unknown = [n for n in names if n not in NEURAL + CLASSICAL]
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {NEURAL + CLASSICAL}")
    args.methods = list(dict.fromkeys(names))
    return args


def main(argv=None) -> dict:
    started = time.perf_counter()
    args = parse_args(argv)
    device = args.device
    if args.report_only:
        result = json.loads((Path(args.out) / f"competitors_{device}_{args.system}.json").read_text())
        write_report(result, Path(args.out))
        return result
    if device == "cpu":
        torch.set_num_threads(args.threads)
    prob, train, val, test = load_problem(args.system, args.size)
    params = model_params(prob, device, 0)
    problem = {"description": f"{args.system} preset '{prob.preset}', {train.n_trajectories}/"
                              f"{val.n_trajectories}/{test.n_trajectories} train/val/test "
                              f"trajectories × {train.n_times} snapshots × state {train.state_shape}",
               "n_forcing": train.n_forcing, "n_params": train.n_params,
               "model": ", ".join(f"{k}={v}" for k, v in prob.params.items())}
    settings = {"budgets": args.budgets, "eval_paths": args.eval_paths,
                "traj_per_step": args.traj_per_step, "solver_dt": args.solver_dt,
                "n_checkpoints": args.n_checkpoints}
    key = fingerprint([problem, settings, params])
    out = Path(args.out)
    path = out / f"competitors_{device}_{args.system}.json"
    result = None
    if path.is_file() and not args.fresh:
        old = json.loads(path.read_text())
        if old.get("key") == key:
            result = old
        else:
            log(f"{path.name} holds another configuration: starting a fresh file")
    if result is None:
        result = {"key": key, "system": args.system, "size": args.size, "device": device,
                  "device_name": torch.cuda.get_device_name(0) if device == "cuda"
                  else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
                  "torch": torch.__version__, "target": prob.target, "problem": problem,
                  "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                  "settings": settings, "runs": [], "classical": [], "invocations": []}
    result["invocations"].append({"argv": sys.argv[1:] if argv is None else list(argv),
                                  "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    for method in args.methods:
        if method in CLASSICAL:
            log(f"{method}: fitting on the CPU")
            rec = _classical.run_classical(method, train, val, test, prob.params["latent_dim"])
            if "skipped" in rec:
                log(f"{method}: skipped ({rec['skipped']})")
            result["classical"] = [c for c in result["classical"] if c["method"] != method] + [rec]
            continue
        if method != "ours" and _solvers.available(method):
            log(f"{method}: skipped ({_solvers.available(method)})")
            continue
        for seed in args.seeds:
            start = time.perf_counter()
            needed = max(args.budgets) * 1.1 + 15  # budget, evaluations, set-up
            if start - started + needed > args.deadline:
                log(f"{method} seed {seed}: not started, it would end after the "
                    f"{args.deadline:g} s deadline; run it in another invocation")
                continue
            # one schedule per method, made by its first seed (here or in an earlier run
            # merged into this file) and kept for every other seed
            schedule = result.setdefault("schedules", {}).get(method)
            try:
                if method == "ours":
                    rec = run_ours(prob, train, val, test, args, seed, device, schedule)
                else:
                    rec = run_solver(method, prob, train, val, test, args, seed, device, schedule)
            except Exception as exc:  # one failing method must not lose the others' results
                log(f"{method} seed {seed}: failed: {type(exc).__name__}: {exc}")
                result.setdefault("errors", []).append(
                    {"method": method, "seed": seed, "error": f"{type(exc).__name__}: {exc}"[:500]})
                if device == "cuda":
                    torch.cuda.empty_cache()
                continue
            rec.update(method=method, seed=seed, label=LABELS[method],
                       forcing="drift input, stored f(t) interpolated linearly in time"
                       if train.n_forcing else "none in this system",
                       wall_s=time.perf_counter() - start)
            last = rec["checkpoints"][-1] if rec["checkpoints"] else {}
            log(f"{method} seed {seed}: {rec['steps']} steps in {rec['train_s']:.1f} s "
                f"({rec['ms_per_step']:.1f} ms/step), rel L2 {last.get('rel_l2_mean', float('nan')):.4f}, "
                f"wall {rec['wall_s']:.0f} s")
            if rec.get("schedule") is not None:
                result["schedules"].setdefault(method, rec["schedule"])
            result["runs"] = [r for r in result["runs"]
                              if not (r["method"] == method and r["seed"] == seed)] + [rec]
            write_report(result, out)  # partial results survive a later crash or timeout
    write_report(result, out)
    print((out / f"competitors_{device}_{args.system}.md").read_text())
    return result


if __name__ == "__main__":
    main()
