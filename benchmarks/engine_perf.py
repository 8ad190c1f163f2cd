"""Engine speed and memory at Burgers size: training step, memory vs series length, predict.

Problem: 100 trajectories × 1001 snapshots of a 500-point 1-D field (synthetic travelling
bumps whose speed is μ, plus a forcing channel), conv autoencoder, latent d = 5, one
window of 64 snapshots per step, neural drift on [z, μ, f]. The data are synthetic because
the step cost does not depend on the values, only on the shapes.

Usage:
    python benchmarks/engine_perf.py [--device cuda|cpu] [--quick]

Writes ``benchmarks/results/engine_perf_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from engine import Dataset, StochasticROM

RESULTS = Path(__file__).resolve().parent / "results"


def burgers_size_dataset(n_traj: int = 100, n_times: int = 1001, n_x: int = 500, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, n_times)
    x = np.linspace(0.0, 1.0, n_x)
    speed = rng.uniform(0.05, 0.1, n_traj)
    freq = rng.uniform(0.8, 1.0, n_traj)
    centre = 0.1 + speed[:, None] * t[None]  # (N, T)
    u = 2.5 * np.exp(-((x[None, None] - centre[..., None]) ** 2) / 0.005)
    u = u.astype(np.float32)
    f = (2.5 * (1 + np.cos(2 * np.pi * freq[:, None] * t[None])))[..., None]
    return Dataset(t, u, mu=speed[:, None], f=f, param_names=["speed"], forcing_names=["u_left"])


def make_model(device: str, graph: bool, steps: int) -> StochasticROM:
    return StochasticROM(latent_dim=5, window=64, windows_per_step=1, n_quad=64, steps=steps,
                         device=device, cuda_graph=graph, log_every=max(steps, 1), seed=0,
                         substeps=1)  # substeps fixed: fit() skips the step check


def log(message: str) -> None:
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_time(data: Dataset, device: str, graph: bool, n_short: int, n_long: int) -> dict:
    """Seconds per step from the difference of two runs' training-loop times (the loop timer
    excludes data upload and model building; the difference cancels warm-up and capture)."""
    times = {}
    make_model(device, graph, 3).fit(data)  # one-time costs: allocator, cuDNN, kernels
    for n in (n_short, n_long):
        model = make_model(device, graph, n).fit(data)
        times[n] = model.training_["seconds"]
        log(f"fit {n} steps (graph={graph}) on {device}: loop {times[n]:.2f} s")
    per_step = (times[n_long] - times[n_short]) / (n_long - n_short)
    return {"ms_per_step": 1e3 * per_step, "steps_per_s": 1.0 / per_step,
            "cuda_graph_used": model.training_["cuda_graph"],
            "final_loss": model.training_["history"][-1]["loss"]}


def peak_memory(data: Dataset, device: str, graph: bool) -> float:
    """Peak memory of the training step (the resident dataset excluded), MB."""
    if device != "cuda":
        return float("nan")
    model = make_model(device, graph, 20).fit(data)
    log(f"peak step memory measured for T={data.n_times}")
    return float(model.training_["peak_step_memory_mb"])


def longer(data: Dataset, factor: int) -> Dataset:
    """The same trajectories continued ``factor`` times longer (tiled in time)."""
    n = data.n_times
    dt = data.t[1] - data.t[0]
    t = data.t[0] + dt * np.arange(n * factor)
    return Dataset(t, np.concatenate([data.x] * factor, axis=1), data.mu,
                   np.concatenate([data.f] * factor, axis=1))


def predict_latency(model: StochasticROM, data: Dataset, n_paths: int, n_steps: int, repeats: int,
                    n_frames: int | None = None) -> dict:
    """``n_steps`` Euler–Maruyama steps, decoded at ``n_frames`` output times (default all)."""
    n_frames = n_frames or n_steps + 1
    substeps = n_steps // (n_frames - 1)
    t = np.linspace(data.t[0], data.t[n_steps], n_frames)
    f = np.interp(t, data.t, data.f[0, :, 0])[:, None]
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    device = str(model._device().type)
    for _ in range(3):  # warm-up (graph capture on CUDA)
        model.predict(data.x[0, 0], data.mu[0], t, f, n_samples=n_paths, seed=0,
                      return_samples=False, quantiles=levels, substeps=substeps)
    samples = []
    for i in range(repeats):
        sync(device)
        start = time.perf_counter()
        pred = model.predict(data.x[0, 0], data.mu[0], t, f, n_samples=n_paths, seed=i,
                             return_samples=False, quantiles=levels, substeps=substeps)
        sync(device)
        samples.append(1e3 * (time.perf_counter() - start))
    assert pred.quantile_values.shape == (len(levels), 1, n_frames, 500)
    samples.sort()
    log(f"predict {n_paths} paths, {n_frames} frames: p50 {statistics.median(samples):.1f} ms")
    return {"paths": n_paths, "steps": n_steps, "frames": n_frames, "p50_ms": statistics.median(samples),
            "p95_ms": samples[min(len(samples) - 1, int(0.95 * len(samples)))]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps (CPU smoke run)")
    args = parser.parse_args()
    device = args.device
    if device == "cpu":
        torch.set_num_threads(2)
    data = burgers_size_dataset()
    out: dict = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "problem": "100 traj x 1001 snapshots x 500-point field, conv1d AE, d=5, window 64, 1 window/step",
    }
    quick = args.quick or device == "cpu"
    out["train_eager"] = step_time(data, device, False, 10, 110)
    if device == "cuda":
        out["train_graph"] = step_time(data, device, True, 50, 1050)
        mem1 = peak_memory(data, device, True)
        mem2 = peak_memory(longer(data, 2), device, True)
        mem10 = peak_memory(longer(data, 10), device, True)
        out["peak_memory_mb"] = {"T": mem1, "2T": mem2, "10T": mem10,
                                 "change_2T_percent": 100 * (mem2 - mem1) / mem1,
                                 "note": "memory of the training step; the resident dataset is excluded"}
    model = make_model(device, True, 10 if quick else 200).fit(data)
    reps = 5 if quick else 30
    out["predict"] = [predict_latency(model, data, n, 300, reps, 101) for n in (64, 256)]
    if not quick:
        out["predict"] += [predict_latency(model, data, n, 300, reps) for n in (64, 256, 1024)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if device == "cuda" else "cpu"
    (RESULTS / f"engine_perf_{tag}.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Engine performance ({out['device']}, torch {out['torch']})", "",
             f"Problem: {out['problem']}.", "", "| measurement | value |", "|---|---|"]
    lines.append(f"| training step, eager | {out['train_eager']['ms_per_step']:.2f} ms |")
    if "train_graph" in out:
        lines.append(f"| training step, CUDA graph | {out['train_graph']['ms_per_step']:.2f} ms "
                     f"({out['train_graph']['steps_per_s']:.0f} steps/s) |")
        pm = out["peak_memory_mb"]
        lines.append(f"| peak step memory T / 2T / 10T | {pm['T']:.0f} / {pm['2T']:.0f} / {pm['10T']:.0f} MB "
                     f"({pm['change_2T_percent']:+.1f} % at 2T) |")
    for p in out["predict"]:
        lines.append(f"| predict {p['paths']} paths × {p['steps']} steps, decode {p['frames']} frames, mean + 5 quantiles | "
                     f"p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f} ms |")
    (RESULTS / f"engine_perf_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
