"""Prediction latency: ``StochasticROM.predict`` against ``torchsde.sdeint`` on the same SDE.

The model is the pretrained forced-Burgers model ``pretrained/burgers_paper`` (500-point
field, conv autoencoder, latent d = 4, neural drift on [z, μ, f(t)], diagonal Ψ), so no
training is needed. One initial field (the first test trajectory of the paper preset, μ
and forcing of that trajectory) is predicted for N sample paths × 300 steps of the data
step (dt = 0.003) of the scheme ``--integrator`` (default: the predictions' default, stochastic
Heun; ``euler`` gives the measurements before issue 13), N = 1 … 65536. Four variants are
timed:

- ``ours_latent``: ``model.predict_latent``: encode x0, draw z0 and the Brownian
  increments, integrate (a CUDA graph on a GPU), copy the (N, 301, d) latent paths to the
  host; no decoding.
- ``ours_decode``: ``model.predict(..., return_samples=False, quantiles=5 levels)``: the
  same, then decode every one of the 301 frames of every path, and the predictive mean,
  std and 5 quantiles over the paths, computed on the device and copied to the host.
- ``torchsde``: ``torchsde.sdeint(sde, z0, ts, method=M, dt=0.003)`` with torchsde's scheme
  of the same name and order (``euler``; ``heun`` as a Stratonovich SDE, the same SDE for
  additive noise; ``srk`` for ``sra1``) on the SAME
  initial latents (z0 from ``ours_latent``), where ``sde`` wraps the model's own drift
  network (μ and f(t) inputs, f interpolated linearly at the solver time) and its
  diagonal dispersion Ψ (times the model's calibration scale, as ``predict`` uses it):
  the same SDE, scheme and step; torchsde's default Brownian
  motion; the (N, 301, d) result copied to the host.

Timing: wall clock of whole calls after warm-up (graph capture, allocator), with
``torch.cuda.synchronize`` around each call on a GPU; p50 / p95 over the repeats. Peak
memory: ``torch.cuda.max_memory_allocated`` above the resident model on a GPU; on the CPU
the growth of the process's peak resident set (``VmHWM`` after resetting it). Work is
capped: each variant walks up the N list, extrapolates the next call's time and memory
affinely in N from the last two measured points, and reports a point as skipped (with the
reason) when one call would exceed ``--max-call-s``, the variant would exceed its
``--budget-s``, or the memory would exceed what the device has free. The latent path
statistics of ours and torchsde are compared (mean and std of the final latent, z-scores
of the difference of the means) so the comparison is of equal work.

Usage:
    python benchmarks/inference.py --device cuda           # the whole N list, ~1.5–2.5 min on an H100
    python benchmarks/inference.py --device cpu            # capped by the time budget, < 2 min
    python benchmarks/inference.py --replot benchmarks/results/inference_cuda.json

Writes ``benchmarks/results/inference_<device>.json`` first, then the ``.md`` table and a
``.png`` plot (latency vs N, log-log); without matplotlib the plot is left out and
``--replot`` regenerates the table and plot from the JSON on another machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
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

from engine import load_model  # noqa: E402
from engine.model import ExtrapolationWarning  # noqa: E402
from engine.module import interpolate_forcing  # noqa: E402
from engine.rollout import RolloutEngine  # noqa: E402
from engine.solvers import DEFAULT_METHOD, get_scheme  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = ROOT / "pretrained" / "burgers_paper"
PATHS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536]
STEPS = 300
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
VARIANTS = ("ours_latent", "ours_latent_fused", "ours_latent_forward", "ours_decode", "torchsde")
LABELS = {"ours_latent": "ours, latent paths only (predict_latent)",
          "ours_latent_fused": "the same as one fused Triton kernel per rollout "
                               "(engine.solvers.fused, use_fused=True; on a CPU the same code "
                               "as ours_latent)",
          "ours_latent_forward": "the same through the drift's forward at every step (the "
                                 "NeuralDrift stepper off: what it saves or costs)",
          "ours_decode": "ours, decode all 301 frames + mean/std/5 quantiles (predict)",
          "torchsde": "torchsde.sdeint, the same scheme, SDE and z0 (latent only)"}
#: our scheme -> torchsde's (method, sde_type) of the same name and order
TORCHSDE_METHOD = {"euler": ("euler", "ito"), "heun": ("heun", "stratonovich"),
                   "sra1": ("srk", "ito")}
TARGET = {"paths": 1024, "ms": 10.0}
DECODE_TARGET = {"paths": 256, "ms": 25.0}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the problem
def load_case(model, steps: int = STEPS):
    """x0 ``(S,)``, μ ``(P,)``, t ``(steps + 1,)``, f ``(steps + 1, F)``: the start of the
    first test trajectory of the model's data preset (a data time step per solver step)."""
    from engine.systems import generate

    info = getattr(model, "dataset_info_", {}) or {}
    data = generate(model.system_, n=1, split="test", seed=0, preset=info.get("preset", "default"))
    if data.n_times < steps + 1:
        raise ValueError(f"the test trajectory has {data.n_times} times, need {steps + 1}")
    return data.x[0, 0], data.mu[0], data.t[: steps + 1], data.f[0, : steps + 1]


class LatentSDE(torch.nn.Module):
    """The model's latent SDE as a torchsde SDE: ``f`` = the drift network on
    ``[z, μ, f(t)]`` with f interpolated linearly at the solver time, ``g`` = diagonal Ψ."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, model, mu: np.ndarray, t: np.ndarray, f: np.ndarray, n_paths: int):
        super().__init__()
        module, norm = model.module_, model.normalization_
        device, dtype = next(module.parameters()).device, model.torch_dtype
        self.drift = module.drift
        scale = float(getattr(model, "uncertainty_scale_", 1.0))
        self.psi = (scale * module.dispersion.std()).detach()
        self.t_grid = torch.as_tensor(t, dtype=dtype, device=device)
        self.f_traj = torch.as_tensor((f - norm.f_mean) / norm.f_std, dtype=dtype, device=device)[None]
        self.mu = torch.as_tensor((mu - norm.mu_mean) / norm.mu_std, dtype=dtype,
                                  device=device)[None].expand(n_paths, -1)
        self.calls = 0

    def f(self, t, y):
        self.calls += 1
        m = y.shape[0]
        t_q = t.reshape(1, 1).to(y.dtype)
        f_t = interpolate_forcing(self.t_grid, self.f_traj, t_q)[:, 0].expand(m, -1)
        return self.drift(y, t.reshape(1).to(y.dtype).expand(m), self.mu, f_t)

    def g(self, t, y):
        return self.psi.expand_as(y)


# ------------------------------------------------------------------ measurement
class Meter:
    """Synchronised wall clock and peak memory of one call."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def free_bytes(self) -> float:
        if self.cuda:  # blocks cached by the allocator are free for the next call too
            free, _ = torch.cuda.mem_get_info(self.device)
            cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            return float(free + cached)
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
        except OSError:
            pass
        return float("inf")

    def _rss(self, key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return float(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def start_peak(self) -> None:
        if self.cuda:
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # resets VmHWM to the current RSS (Linux ≥ 4.0)
            Path("/proc/self/clear_refs").write_text("5")
            self.base = self._rss("VmRSS")
        except OSError:
            self.base = None

    def peak_mb(self) -> float | None:
        if self.cuda:
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        hwm = self._rss("VmHWM")
        return None if (hwm is None or self.base is None) else max(hwm - self.base, 0.0) / 2**20

    def time_call(self, fn) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start


def make_calls(model, case, n: int, forward_model=None, integrator: str = DEFAULT_METHOD,
               fused_model=None):
    """``{variant: call(seed)}`` for N paths with ``integrator`` at the data step;
    ``forward_model``: a second copy of the model whose drift has its stepper off (for
    ``ours_latent_forward``); ``fused_model``: a copy with the fused kernel on (for
    ``ours_latent_fused``)."""
    x0, mu, t, f = case
    dt = float(t[1] - t[0])
    scheme = {"integrator": integrator, "substeps": 1}

    def ours_latent(seed):
        return model.predict_latent(x0, mu, t, f, n_samples=n, seed=seed, **scheme)

    def ours_latent_forward(seed):
        return forward_model.predict_latent(x0, mu, t, f, n_samples=n, seed=seed, **scheme)

    def ours_latent_fused(seed):
        return fused_model.predict_latent(x0, mu, t, f, n_samples=n, seed=seed, **scheme)

    def ours_decode(seed):
        return model.predict(x0, mu, t, f, n_samples=n, seed=seed, return_samples=False,
                             quantiles=LEVELS, **scheme)

    sde, z0 = None, None

    def torchsde_call(seed):
        nonlocal sde, z0
        import torchsde

        if sde is None:  # the same initial latents as ours (untimed set-up, first call only)
            z0 = torch.as_tensor(ours_latent(0)[0, :, 0], device=model._device())
            sde = LatentSDE(model, mu, t, f, n)
            sde.sde_type = TORCHSDE_METHOD[integrator][1]
        ts = sde.t_grid
        with torch.no_grad():
            path = torchsde.sdeint(sde, z0, ts, method=TORCHSDE_METHOD[integrator][0], dt=dt)
        return path.transpose(0, 1).cpu().numpy()[None]

    return {"ours_latent": ours_latent, "ours_latent_fused": ours_latent_fused,
            "ours_latent_forward": ours_latent_forward,
            "ours_decode": ours_decode, "torchsde": torchsde_call}


def measure_point(meter: Meter, call, n_warmup: int, args) -> dict:
    """Warm up (graph capture, allocator), then time as many repeats as fit ``args.point_s``
    at the speed of the last warm-up call (between ``min_repeats`` and ``max_repeats``)."""
    for i in range(n_warmup):
        warm_s = meter.time_call(lambda i=i: call(1000 + i))
    repeats = int(np.clip(args.point_s / max(warm_s, 1e-4), args.min_repeats, args.max_repeats))
    samples, peaks = [], []
    for i in range(repeats):
        meter.sync()
        meter.start_peak()
        samples.append(1e3 * meter.time_call(lambda i=i: call(i)))
        peaks.append(meter.peak_mb())
    samples.sort()
    peaks = [p for p in peaks if p is not None]
    p95_index = min(len(samples) - 1, int(math.ceil(0.95 * len(samples))) - 1)
    return {"status": "ok", "repeats": repeats, "warmup": n_warmup,
            "p50_ms": statistics.median(samples), "p95_ms": samples[p95_index],
            "min_ms": samples[0], "all_ms": samples, "peak_mb": max(peaks) if peaks else None}


def _extrapolate(points: list[tuple[int, float]], n: int) -> float:
    """A value at ``n`` from the last two measured ``(N, value)`` points, affine in N
    (latency and memory are a fixed part plus a part per path), never below the last."""
    n2, v2 = points[-1]
    if len(points) == 1:
        return v2
    n1, v1 = points[-2]
    slope = max((v2 - v1) / (n2 - n1), 0.0)
    return v2 + slope * (n - n2)


def run_variant(variant: str, model, case, paths: list[int], meter: Meter, args,
                forward_model=None, fused_model=None) -> list[dict]:
    """Walk up ``paths``; skip (with the reason) the points that would not fit the caps."""
    rows, spent, times, peaks = [], 0.0, [], []
    reason = None
    for n in paths:
        row = {"variant": variant, "paths": n, "steps": STEPS}
        est_s = _extrapolate(times, n) if times else 0.05
        if reason is None and times:
            est_mb = _extrapolate(peaks, n) if peaks else 0.0
            if variant == "ours_decode":  # the decoded paths alone: N × T × |S| fp32
                est_mb = max(est_mb, n * (STEPS + 1) * args.state_size * 4 / 2**20)
            free_mb = meter.free_bytes() / 2**20
            if est_mb > 0.8 * free_mb:
                reason = (f"would need ~{est_mb / 1024:.1f} GB (extrapolated from the measured "
                          f"points), {free_mb / 1024:.1f} GB free")
            elif est_s > args.max_call_s:
                reason = (f"one call would take ~{est_s:.1f} s (extrapolated from N ≤ "
                          f"{times[-1][0]}), over the {args.max_call_s:g} s cap per call")
            elif spent + est_s * (1 + args.min_repeats) > args.budget_s:
                reason = (f"the variant's {args.budget_s:g} s budget is spent "
                          f"({spent:.1f} s used, ~{est_s * (1 + args.min_repeats):.1f} s more needed)")
        if reason is not None:
            rows.append({**row, "status": "skipped", "reason": reason})
            log(f"{variant} N={n}: skipped: {reason}")
            continue
        n_warmup = 1 if est_s > 0.5 else 2
        start = time.perf_counter()
        try:
            call = make_calls(model, case, n, forward_model, args.integrator,
                              fused_model)[variant]
            result = measure_point(meter, call, n_warmup, args)
        except torch.cuda.OutOfMemoryError as exc:  # a real OOM despite the estimate
            torch.cuda.empty_cache()
            reason = f"out of memory: {str(exc).splitlines()[0][:200]}"
            rows.append({**row, "status": "skipped", "reason": reason})
            log(f"{variant} N={n}: {reason}")
            continue
        spent += time.perf_counter() - start
        row.update(result)
        row["path_steps_per_s"] = n * STEPS / (result["p50_ms"] / 1e3)
        rows.append(row)
        times.append((n, result["p50_ms"] / 1e3))
        if result["peak_mb"] is not None:
            peaks.append((n, result["peak_mb"]))
        log(f"{variant} N={n}: p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms "
            f"({result['repeats']} repeats), peak {_fmt(result['peak_mb'])} MB")
    if meter.cuda:
        torch.cuda.empty_cache()
    return rows


def agreement(model, case, n: int, integrator: str = DEFAULT_METHOD) -> dict:
    """Final-latent statistics of ours and torchsde for ``n`` paths from the same z0."""
    calls = make_calls(model, case, n, integrator=integrator)
    ours = calls["ours_latent"](0)[0]  # (n, T, d); the same z0 as torchsde's
    torch.manual_seed(0)  # torchsde's Brownian motion draws from the global generator
    theirs = calls["torchsde"](0)[0]
    a, b = ours[:, -1].astype(np.float64), theirs[:, -1].astype(np.float64)
    se = np.sqrt(a.var(0, ddof=1) / n + b.var(0, ddof=1) / n)
    z = (a.mean(0) - b.mean(0)) / se
    return {"paths": n, "same_z0": bool(np.array_equal(ours[:, 0], theirs[:, 0])),
            "ours_mean": a.mean(0).tolist(), "torchsde_mean": b.mean(0).tolist(),
            "ours_std": a.std(0, ddof=1).tolist(), "torchsde_std": b.std(0, ddof=1).tolist(),
            "z_scores": z.tolist(), "max_abs_z": float(np.max(np.abs(z))),
            "std_ratio": (a.std(0, ddof=1) / b.std(0, ddof=1)).tolist(),
            "agree": bool(np.max(np.abs(z)) < 4.0)}


# ------------------------------------------------------------------ report
def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}"


def _row(result: dict, variant: str, n: int) -> dict | None:
    return next((r for r in result["rows"] if r["variant"] == variant and r["paths"] == n), None)


def write_markdown(result: dict, path: Path) -> None:
    paths = sorted({r["paths"] for r in result["rows"]})
    lines = [f"# Prediction latency: {result['device_name']}, torch {result['torch']}, "
             f"torchsde {result['torchsde']}", "",
             f"Generated by `python benchmarks/inference.py --device {result['device']}`; do not "
             f"edit. Model `{result['model']}`: {result['problem']}. N sample paths × "
             f"{result['steps']} steps of `{result.get('integrator', 'euler')}` with dt = "
             f"{_fmt(result['dt'])}. "
             "Wall clock of whole calls after warm-up (synchronised on a GPU), p50 / p95 over "
             "the repeats; peak memory above the resident model "
             + ("(`torch.cuda.max_memory_allocated`)." if result["device"] == "cuda"
                else "(growth of the process's peak resident set)."), "",
             "Variants:", ""]
    lines += [f"- `{v}`: {LABELS[v]}" for v in VARIANTS]
    if result.get("note"):  # what a reader must know about this run (set by hand, dated)
        lines += ["", f"**Note:** {result['note']}"]
    lines += ["", "| N paths | " + " | ".join(f"`{v}` p50 / p95 ms" for v in VARIANTS)
              + " | `ours_latent` path-steps/s | torchsde / ours_latent (p50) | peak MB ("
              + " / ".join(VARIANTS) + ") |",
              "|---" * (4 + len(VARIANTS)) + "|"]
    notes = []
    for n in paths:
        cells, peaks = [], []
        for v in VARIANTS:
            r = _row(result, v, n)
            if r is None:
                cells.append("—")
                peaks.append("—")
            elif r["status"] != "ok":
                cells.append("skipped*")
                peaks.append("—")
                notes.append(f"`{v}` N={n}: skipped: {r['reason']}")
            else:
                cells.append(f"{_fmt(r['p50_ms'])} / {_fmt(r['p95_ms'])} ({r['repeats']}×)")
                peaks.append(_fmt(r.get("peak_mb")))
        lat, sde = _row(result, "ours_latent", n), _row(result, "torchsde", n)
        rate = f"{lat['path_steps_per_s']:.3g}" if lat and lat["status"] == "ok" else "—"
        ratio = (f"{sde['p50_ms'] / lat['p50_ms']:.3g}×" if lat and sde and lat["status"] == "ok"
                 and sde["status"] == "ok" else "—")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {rate} | {ratio} | {' / '.join(peaks)} |")
    if notes:
        lines += ["", "\\* " + notes[0]] + [f"  {s}" for s in notes[1:]]
        lines = lines[:-len(notes)] + ["\\* Skipped points (work capped by "
                                       f"`--budget-s {result['settings']['budget_s']:g}`, "
                                       f"`--max-call-s {result['settings']['max_call_s']:g}` and the "
                                       "free memory, extrapolated affinely in N from the last "
                                       "two measured points):", ""] + [f"- {s}" for s in notes]
    scheme = result.get("integrator", "euler")
    per_step = get_scheme(scheme).drift_evaluations
    ag = result.get("agreement")
    if ag:
        lines += ["", f"Equal work: from the same {ag['paths']} initial latents (identical: "
                  f"{ag['same_z0']}), the final latent's mean per dimension, ours "
                  f"{[round(v, 3) for v in ag['ours_mean']]} vs torchsde "
                  f"{[round(v, 3) for v in ag['torchsde_mean']]}; z-scores of the difference "
                  f"{[round(v, 2) for v in ag['z_scores']]} (max |z| {ag['max_abs_z']:.2f}, "
                  f"{'within' if ag['agree'] else 'NOT within'} 4 standard errors); std ratio ours/"
                  f"torchsde {[round(v, 3) for v in ag['std_ratio']]}. torchsde evaluated the "
                  f"drift {result.get('torchsde_drift_calls', '—')} times per solve ({per_step} "
                  f"per step × {result['steps']} steps, plus one call of sdeint's shape check); "
                  f"ours {per_step * result['steps']} times."]
    if result.get("rollout_paths"):
        lines += ["", "How each variant's rollouts ran (`RolloutEngine.last_path`): "
                  + ", ".join(f"`{k}` {v}" for k, v in result["rollout_paths"].items()) + "."]
    lines += ["", f"Targets (issues 6 and 13) on an H100, {scheme} at the data step: latent paths "
              f"only, {TARGET['paths']} paths × {result['steps']} steps ≤ {TARGET['ms']:g} ms; "
              f"decoding every frame, {DECODE_TARGET['paths']} paths ≤ {DECODE_TARGET['ms']:g} ms."]
    if result["device"] != "cuda":
        lines.append("Not assessed here: this run is on the CPU.")
    else:
        for name, variant, target in (("latent paths only", "ours_latent", TARGET),
                                      ("decoding every frame", "ours_decode", DECODE_TARGET)):
            r = _row(result, variant, target["paths"])
            if r and r["status"] == "ok":
                verdict = ("met" if r["p50_ms"] <= target["ms"] else
                           f"missed ({r['p50_ms'] / target['ms']:.1f}× the target)")
                lines.append(f"- {name}, {target['paths']} paths: p50 {r['p50_ms']:.1f} ms, p95 "
                             f"{r['p95_ms']:.1f} ms: {verdict}.")
            else:
                lines.append(f"- {name}, {target['paths']} paths: not measured.")
    start, end = result.get("load_average_start"), result.get("load_average_end")
    if start and end:
        lines += ["", f"Host load (1-minute load average) at the start / end: "
                  f"{start['one_minute']:.2f} / {end['one_minute']:.2f} on {start['cpus']} CPUs"
                  + (" — other processes shared the CPU, so the CPU timings are pessimistic."
                     if result["device"] == "cpu" and max(start["one_minute"], end["one_minute"])
                     > 1.5 else ".")]
    lines += ["", f"Settings: {json.dumps(result['settings'])}"]
    path.write_text("\n".join(lines) + "\n")


def write_plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no plot (run --replot on a machine that has it)")
        return False
    fig, ax = plt.subplots(figsize=(7, 4.6))
    styles = {"ours_latent": ("-o", "C0"), "ours_latent_fused": ("-.o", "C4"),
              "ours_latent_forward": (":o", "C1"),
              "ours_decode": ("-s", "C2"), "torchsde": ("--^", "C3")}
    for v in VARIANTS:
        rows = [r for r in result["rows"] if r["variant"] == v and r["status"] == "ok"]
        if not rows:
            continue
        xs = [r["paths"] for r in rows]
        p50 = np.array([r["p50_ms"] for r in rows])
        p95 = np.array([r["p95_ms"] for r in rows])
        style, color = styles[v]
        ax.errorbar(xs, p50, yerr=[np.zeros_like(p50), p95 - p50], fmt=style, color=color,
                    capsize=2, ms=4, label=LABELS[v])
    if result["device"] == "cuda":
        ax.plot([TARGET["paths"]], [TARGET["ms"]], "k*", ms=10,
                label=f"target: {TARGET['paths']} paths ≤ {TARGET['ms']:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sample paths N (300 steps each)")
    ax.set_ylabel("latency per call, ms (p50, bar to p95)")
    ax.set_title(f"predict vs torchsde.sdeint, {result['device_name']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(result: dict, json_path: Path) -> None:
    stem = json_path.with_suffix("")
    write_markdown(result, stem.with_suffix(".md"))
    write_plot(result, stem.with_suffix(".png"))


# ------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--integrator", default=DEFAULT_METHOD, choices=sorted(TORCHSDE_METHOD),
                   help="the SDE scheme of every variant (one step per data step)")
    p.add_argument("--paths", default=None,
                   help="comma list of N (default: 1,4,…,65536 on cuda; up to 4096 on cpu)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--budget-s", type=float, default=None,
                   help="timed seconds per variant, warm-up included (default 45 on cuda, 40 on cpu)")
    p.add_argument("--max-call-s", type=float, default=None,
                   help="skip N whose one call would exceed this (default 5)")
    p.add_argument("--point-s", type=float, default=None,
                   help="aim for this many timed seconds per point (default 1.5 on cuda, 1 on cpu)")
    p.add_argument("--min-repeats", type=int, default=3)
    p.add_argument("--max-repeats", type=int, default=30)
    p.add_argument("--agreement-paths", type=int, default=None,
                   help="paths of the ours-vs-torchsde statistics check (default 16384 cuda, 1024 cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (1 is robust on a shared 2-core machine: two threads "
                        "stall each other whenever another process holds a core)")
    p.add_argument("--model", default=str(MODEL))
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--replot", metavar="JSON", default=None,
                   help="only rewrite the .md and .png from this result file")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    args.paths = ([int(v) for v in args.paths.split(",")] if args.paths
                  else PATHS if cuda else [n for n in PATHS if n <= 4096])
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    args.budget_s = args.budget_s if args.budget_s is not None else (45.0 if cuda else 40.0)
    args.max_call_s = args.max_call_s if args.max_call_s is not None else 5.0
    args.point_s = args.point_s if args.point_s is not None else (1.5 if cuda else 1.0)
    args.agreement_paths = args.agreement_paths or (16384 if cuda else 1024)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.replot:
        json_path = Path(args.replot)
        result = json.loads(json_path.read_text())
        write_reports(result, json_path)
        log(f"rewrote {json_path.with_suffix('.md').name} and the plot from {json_path.name}")
        return result
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    import torchsde

    warnings.simplefilter("ignore", ExtrapolationWarning)
    model = load_model(args.model, device=str(device))
    case = load_case(model)
    args.state_size = int(np.prod(model.state_shape_))
    meter = Meter(device)
    result = {
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"),
        "torch": torch.__version__, "torchsde": torchsde.__version__,
        "model": str(Path(args.model).relative_to(ROOT)) if Path(args.model).resolve().is_relative_to(ROOT)
        else str(args.model),
        "problem": (f"{model.system_} ({(model.dataset_info_ or {}).get('preset', '?')} preset), state "
                    f"{tuple(model.state_shape_)}, {model.architecture_} autoencoder, latent d = "
                    f"{model.latent_dim_}, {model.drift} drift {tuple(model.drift_hidden)} on "
                    f"[z, μ, f(t)], diagonal Ψ (× calibration scale "
                    f"{getattr(model, 'uncertainty_scale_', 1.0):.3g}); x0, μ and f(t) of the "
                    "first test trajectory"),
        "steps": STEPS, "dt": float(case[2][1] - case[2][0]), "levels": list(LEVELS),
        "integrator": args.integrator,
        "settings": {k: getattr(args, k) for k in ("paths", "variants", "budget_s", "max_call_s",
                                                  "point_s", "min_repeats", "max_repeats",
                                                  "agreement_paths", "threads")},
        "rows": [],
        "load_average_start": _load_average(),
    }
    forward_model = fused_model = None
    if "ours_latent_forward" in args.variants:
        forward_model = load_model(args.model, device=str(device))
        forward_model.module_.drift.use_stepper = False  # a NeuralDrift (the problem's drift)
    if "ours_latent_fused" in args.variants:
        fused_model = load_model(args.model, device=str(device))
        fused_model._rollout = RolloutEngine(fused_model.module_.drift,
                                             use_graph=bool(fused_model.cuda_graph), use_fused=True)
    for variant in args.variants:
        result["rows"] += run_variant(variant, model, case, args.paths, meter, args,
                                      forward_model, fused_model)
    # how each variant's rollouts ran ("fused", "graph" or "eager": RolloutEngine.last_path)
    result["rollout_paths"] = {name: getattr(getattr(m, "_rollout", None), "last_path", None)
                               for name, m in (("ours_latent", model),
                                               ("ours_latent_fused", fused_model),
                                               ("ours_latent_forward", forward_model)) if m}
    if "torchsde" in args.variants:
        result["torchsde_drift_calls"] = _count_torchsde_calls(model, case, args.integrator)
        measured = [r["paths"] for r in result["rows"]
                    if r["variant"] == "torchsde" and r["status"] == "ok"]
        n_check = min(args.agreement_paths, max(measured)) if measured else min(args.agreement_paths, 1024)
        result["agreement"] = agreement(model, case, max(n_check, 256), args.integrator)
        log(f"agreement at N={result['agreement']['paths']}: max |z| {result['agreement']['max_abs_z']:.2f}")
    result["wall_s"] = time.perf_counter() - started
    result["load_average_end"] = _load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"inference_{device.type}.json"
    json_path.write_text(json.dumps(result, indent=1))  # the raw numbers first
    write_reports(result, json_path)
    print(json_path.with_suffix(".md").read_text())
    log(f"done in {result['wall_s']:.0f} s")
    return result


def _load_average() -> dict | None:
    """The host's 1-minute load average and its CPU count (other processes share a CPU)."""
    try:
        import os

        return {"one_minute": os.getloadavg()[0], "cpus": os.cpu_count()}
    except (AttributeError, OSError):
        return None


def _count_torchsde_calls(model, case, integrator: str = DEFAULT_METHOD) -> int:
    import torchsde

    x0, mu, t, f = case
    sde = LatentSDE(model, mu, t, f, 2)
    method, sde.sde_type = TORCHSDE_METHOD[integrator]
    z0 = torch.zeros(2, model.latent_dim_, device=model._device(), dtype=model.torch_dtype)
    with torch.no_grad():
        torchsde.sdeint(sde, z0, sde.t_grid, method=method, dt=float(t[1] - t[0]))
    return sde.calls


if __name__ == "__main__":
    main()
