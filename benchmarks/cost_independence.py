"""Cost of one training step as the data grow: ours against the solver-in-the-loop methods.

Three sweeps (``--sweep``), each at ×1 / ×10 / ×100:

- ``length``: the same trajectories continued 10× and 100× longer in time (tiled). Ours
  keeps its window of B snapshots; the solver methods integrate and decode whole
  trajectories (as rom-visde's PNODE / PNSDE do).
- ``trajectories``: 10× and 100× more trajectories (copies; the step cost does not depend
  on the values). Every method's step is independent of N; what grows is the number of
  steps in one pass over the data, reported as seconds per epoch (ours: N·T / (W·B)
  steps; solver methods: N / trajectories-per-step steps).
- ``stiffness``: a 2-D linear system dz/dt = A z with eigenvalues −1 and −λ, λ = 1, 100,
  10 000 (identity autoencoder, the engine's ``physics="linear"`` drift initialised at
  the true A). Adaptive solvers take ∝ λ steps; the fixed-step solvers need h ≤ 1/λ to
  stay stable (``solver_dt = min(0.01, 1/λ)``); ours evaluates the drift at the same
  number of points whatever λ.

Per method and scale: median seconds per step after warm-up (graph capture included in
warm-up), training-only peak GPU memory (resident data excluded), drift calls per step. A
measurement that would exceed ``--cap`` seconds per step (estimated from the previous
scale) is skipped and marked with the estimate.

Usage:
    python benchmarks/cost_independence.py --device cuda --sweep length
    python benchmarks/cost_independence.py --device cpu          # all sweeps, CPU-sized

Writes ``benchmarks/results/cost_independence_<device>.{json,md,png}`` (sweeps merged).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import _solvers
import numpy as np
import torch
from _harness import Clock, DeviceData, load_problem, log, prepare_model

from engine import Dataset, StochasticROM

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["ours", "em_graph", "torchsde_euler", "torchsde_adjoint", "odeint_dopri5_1e-3",
           "odeint_adjoint"]
SCALES = (1, 10, 100)


# ------------------------------------------------------------------------ data
def tile_time(data: Dataset, factor: int) -> Dataset:
    n = data.n_times
    dt = data.t[1] - data.t[0]
    t = data.t[0] + dt * np.arange(n * factor)
    return Dataset(t, np.concatenate([data.x] * factor, 1), data.mu,
                   np.concatenate([data.f] * factor, 1))


def copies(data: Dataset, factor: int) -> Dataset:
    return Dataset(data.t, np.concatenate([data.x] * factor), np.concatenate([data.mu] * factor),
                   np.concatenate([data.f] * factor))


def linear_system(lam: float, n_traj: int = 8, n_times: int = 201, t_end: float = 2.0,
                  seed: int = 0) -> Dataset:
    """z' = diag(−1, −λ) z from random starts (exact), with small observation noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, t_end, n_times)
    z0 = rng.uniform(0.5, 1.5, (n_traj, 2))
    rates = np.array([1.0, lam])
    x = z0[:, None] * np.exp(-rates[None, None] * t[None, :, None])
    return Dataset(t, x + 1e-3 * rng.normal(size=x.shape))


def sweep_cases(sweep: str, size: str):
    """(label, scale, dataset, model params, solver_dt) per scale."""
    if sweep == "stiffness":
        for lam in (1.0, 100.0, 10000.0):
            params = dict(latent_dim=2, drift="physics", physics="linear",
                          physics_params={"A": [[-1.0, 0.0], [0.0, -lam]], "b": [0.0, 0.0]},
                          window=32, windows_per_step=2, n_quad=32)
            yield f"λ = {lam:g}", lam, linear_system(lam), params, min(0.01, 1.0 / lam)
        return
    prob, train, _, _ = load_problem("burgers", size)
    base = Dataset(train.t, train.x[:4], train.mu[:4], train.f[:4])
    for k in SCALES:
        data = tile_time(base, k) if sweep == "length" else copies(base, k)
        yield (f"{'T' if sweep == 'length' else 'N'} ×{k}", k, data, dict(prob.params), 0.01)


FLAT_WITHIN = 0.15


def flatness(rows: list[dict]) -> list[dict]:
    """Our step time and peak memory across a sweep's scales: per quantity (``key`` of
    ``s_per_step`` / ``peak_mb``, ``name``) the ``values``, their largest relative
    deviation from the mean (``spread``) and whether it is within ±15 % (``met``)."""
    ours = [r for r in rows if r["method"] == "ours" and "s_per_step" in r]
    checks = []
    for key, name in (("s_per_step", "time per step"), ("peak_mb", "peak memory")):
        values = [r[key] for r in ours if r.get(key) is not None]
        if len(values) < 2:
            continue
        mean = sum(values) / len(values)
        spread = max(abs(v - mean) for v in values) / mean
        checks.append({"key": key, "name": name, "values": values, "spread": spread,
                       "met": spread <= FLAT_WITHIN})
    return checks


def _flatness(rows: list[dict]) -> str:
    """The target line of a sweep (see :func:`flatness`)."""
    checks = flatness(rows)
    if not checks:
        return "Target (ours flat within ±15 %): not measured."
    return "Target (ours flat within ±15 %): " + "; ".join(
        f"{c['name']} within ±{100 * c['spread']:.0f} % of its mean: "
        f"{'met' if c['met'] else 'missed'}" for c in checks) + "."


# ---------------------------------------------------------------------- measuring
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


_LIBRARIES_WARM: dict[str, bool] = {}


def measure_ours(data: Dataset, params: dict, device: str, n_steps: int) -> dict:
    """Seconds per step between the first and the last metric log of one fit: the first
    log window holds the warm-up and the CUDA-graph capture, and every log reads the
    metrics back from the device, so the interval is synchronised. (Differencing the loop
    times of two fits, as before, could come out negative on a GPU: the first fit of a
    process also pays the library warm-up.)"""
    warm, n = 10, max(n_steps, 200)  # our steps are cheap: time many of them
    if not _LIBRARIES_WARM.get(device):
        # the first fit of a process also allocates library workspaces (cuBLAS, cuDNN)
        # inside its step-memory window: a throwaway fit keeps them out of the figure
        StochasticROM(**params, device=device, steps=warm, log_every=warm, substeps=1).fit(data)
        _LIBRARIES_WARM[device] = True
    model = StochasticROM(**params, device=device, steps=warm + n, log_every=warm,
                          substeps=1).fit(data)  # no step check: only the steps are timed
    history = model.training_["history"]
    first, last = history[0], history[-1]
    per_step = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
    rows = model.windows_per_step * model.n_samples * model.n_quad
    return {"s_per_step": per_step, "peak_mb": model.training_["peak_step_memory_mb"],
            "drift_calls_per_step": 1, "drift_rows_per_step": rows,
            "steps_timed": last["step"] - first["step"],
            "steps_per_epoch": data.n_trajectories * data.n_times / (model.window * model.windows_per_step)}


def measure_solver(method: str, data: Dataset, params: dict, device: str, n_steps: int,
                   cap: float, solver_dt: float) -> dict:
    model = prepare_model(dict(params, device=device, seed=0), data)
    trainer = _solvers.SolverTrainer(model, DeviceData.of(model, data), method, solver_dt=solver_dt)
    clock = Clock(torch.device(device))
    clock.start()
    trainer.step()  # warm-up (a graph is captured here and replayed from the next step)
    if trainer.use_graph:
        trainer.step()
    calls0, rows0 = trainer.drift_counts()
    steps0 = trainer.steps
    samples, spent = [], 0.0
    while len(samples) < n_steps and spent < cap:
        _sync(device)
        start = time.perf_counter()
        trainer.step()
        _sync(device)
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    clock.finish()
    calls, rows = trainer.drift_counts()
    steps = trainer.steps - steps0
    return {"s_per_step": statistics.median(samples), "peak_mb": clock.peak_mb,
            "drift_calls_per_step": (calls - calls0) / steps, "drift_rows_per_step": (rows - rows0) / steps,
            "steps_timed": len(samples), "steps_per_epoch": data.n_trajectories / trainer.batch,
            "solver_dt": trainer.solver_dt, "cuda_graph": trainer.use_graph}


def run_sweep(sweep: str, methods: list[str], device: str, size: str, n_steps: int, cap: float,
              on_record=None) -> list[dict]:
    """Every method at every scale of ``sweep``; ``on_record(rows)`` after each measurement
    (the caller writes the report then, so that a run cut short keeps what it measured)."""
    rows, last = [], {}
    for label, scale, data, params, solver_dt in sweep_cases(sweep, size):
        for method in methods:
            record = {"sweep": sweep, "scale": scale, "label": label, "method": method,
                      "n_trajectories": data.n_trajectories, "n_times": data.n_times}
            prev = last.get(method)
            if not prev:
                growth = 1.0
            elif sweep == "stiffness":  # fixed steps h = min(0.01, 1/λ); adaptive ones ~ alike
                growth = max(100.0, scale) / max(100.0, prev[0])
            elif sweep == "trajectories":  # more (copied) trajectories: the same step, more of them
                growth = 1.0
            else:
                growth = scale / prev[0]
            estimate = prev[1] * growth if prev else 0.0
            if method != "ours" and _solvers.available(method):
                record["skipped"] = _solvers.available(method)
            elif prev and method != "ours" and estimate > cap:
                # trajectories: the step itself does not grow with N (growth 1), only the epoch
                record["skipped"] = f"estimated {estimate:.3g} s per step > cap {cap:g} s"
                record["estimated_s_per_step"] = estimate
                if sweep == "trajectories":
                    n_per_step = prev[2]
                    record["estimated_s_per_epoch"] = estimate * data.n_trajectories / n_per_step
            else:
                start = time.perf_counter()
                try:
                    if method == "ours":
                        record.update(measure_ours(data, params, device, n_steps))
                    else:
                        record.update(measure_solver(method, data, params, device, n_steps, cap, solver_dt))
                except torch.cuda.OutOfMemoryError as exc:  # a result, not a crash
                    record["skipped"] = f"out of memory ({str(exc).splitlines()[0][:80]})"
                    torch.cuda.empty_cache()
                except Exception as exc:  # keep the other measurements
                    record["skipped"] = f"failed: {type(exc).__name__}: {exc}"[:200]
                if "s_per_step" in record:
                    record["s_per_epoch"] = record["s_per_step"] * record["steps_per_epoch"]
                    last[method] = (scale, record["s_per_step"],
                                    data.n_trajectories / record["steps_per_epoch"])
                log(f"{sweep} {label} {method}: "
                    + (f"{1e3 * record['s_per_step']:.1f} ms/step" if "s_per_step" in record
                       else record["skipped"]) + f" ({time.perf_counter() - start:.0f} s)")
            rows.append(record)
            if on_record is not None:
                on_record(rows)
    return rows


# ---------------------------------------------------------------------- report
def _f(v, unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.3g}{unit}"


def write_report(result: dict, out: Path) -> None:
    stem = out / f"cost_independence_{result['device']}"
    out.mkdir(parents=True, exist_ok=True)

    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        if isinstance(o, float) and not math.isfinite(o):
            return None
        return o

    stem.with_suffix(".json").write_text(json.dumps(clean(result), indent=1, allow_nan=False))
    lines = [f"# Training-step cost as the data grow ({result['device_name']}, torch {result['torch']})",
             "", "Seconds per optimizer step (median after warm-up), training-only peak GPU memory "
             "(resident data excluded), drift calls per step. Ours samples W windows of B snapshots; "
             "the solver methods integrate and decode one whole trajectory per step.", ""]
    for sweep, rows in result["sweeps"].items():
        labels = list(dict.fromkeys(r["label"] for r in rows))
        extra = " (s per epoch)" if sweep == "trajectories" else ""
        lines += [f"## {sweep}", "", "| method | " + " | ".join(labels) + " |",
                  "|---" * (len(labels) + 1) + "|"]
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = []
            for label in labels:
                r = next((r for r in rows if r["method"] == method and r["label"] == label), None)
                if r is None:
                    cells.append("—")
                elif "s_per_step" not in r:
                    est = r.get("estimated_s_per_step")
                    epoch = r.get("estimated_s_per_epoch")
                    cells.append((f"skipped (≈{_f(est)} s/step" + (f", ≈{_f(epoch)} s/epoch" if epoch else "")
                                  + ")") if est else "skipped")
                else:
                    cell = f"{_f(1e3 * r['s_per_step'])} ms, {_f(r['peak_mb'])} MB, {_f(r['drift_calls_per_step'])} calls"
                    if sweep == "trajectories":
                        cell += f", {_f(r['s_per_epoch'])} s/epoch"
                    cells.append(cell)
            lines.append(f"| `{method}`{extra} | " + " | ".join(cells) + " |")
        lines += ["", _flatness(rows), ""]
    lines.append(f"Settings: {json.dumps(result['settings'])}")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    sweeps = list(result["sweeps"])
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.6), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        rows = result["sweeps"][sweep]
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["scale"], r["s_per_step"]) for r in rows
                   if r["method"] == method and r.get("s_per_step")]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, "-o" if method == "ours" else "--.", label=method, ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel({"length": "series length ×", "trajectories": "trajectories ×",
                       "stiffness": "stiffness λ"}[sweep])
        ax.set_ylabel("s per training step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sweep", default="all", choices=["all", "length", "trajectories", "stiffness"])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--size", default=None, choices=["small", "paper"])
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    p.add_argument("--cap", type=float, default=None, help="max seconds per step measured")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    device = args.device
    cuda = device == "cuda"
    if not cuda:
        torch.set_num_threads(args.threads)
    size = args.size or ("paper" if cuda else "small")
    n_steps = args.steps or (20 if cuda else 3)
    cap = args.cap or (10.0 if cuda else 1.0)
    methods = args.methods.split(",")
    out = Path(args.out)
    path = out / f"cost_independence_{device}.json"
    settings = {"size": size, "steps": n_steps, "cap_s": cap}
    result = json.loads(path.read_text()) if path.is_file() else {}
    if result.get("settings") != settings:
        result = {}
    result.update({"device": device, "torch": torch.__version__, "settings": settings,
                   "device_name": torch.cuda.get_device_name(0) if cuda
                   else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"})
    result.setdefault("sweeps", {})
    for sweep in (["length", "trajectories", "stiffness"] if args.sweep == "all" else [args.sweep]):
        def partial(rows, sweep=sweep):
            result["sweeps"][sweep] = rows
            write_report(result, out)

        result["sweeps"][sweep] = run_sweep(sweep, methods, device, size, n_steps, cap, partial)
        write_report(result, out)
    print(path.with_suffix(".md").read_text())
    return result


if __name__ == "__main__":
    main()
