"""Shared pieces of the competitor benchmarks: problems, model set-up, counting, evaluation.

Every neural competitor trains the *same* :class:`engine.StochasticROM` modules (encoder,
decoder + its noise variance, drift, dispersion), built from the same hyperparameters and
seed, on the same normalized data, with Adam at the same learning rate and in the same
precision (fp32, TF32 matmuls on CUDA). Only the training algorithm differs. All of them
are scored by one protocol (:func:`evaluate`): encode the first snapshot of each test
trajectory, integrate the latent equation over the whole horizon with the trajectory's μ
and forcing by the fixed-step scheme ``EVAL_METHOD`` (step ≤ ``EVAL_DT``), decode, and take the
relative L2 error of the predictive mean per time step (``engine.metrics.relative_l2``),
plus the calibration of the predictive distribution (CRPS, 50 % and 90 % interval
coverage, ``engine.metrics.MetricAccumulator``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

try:
    import engine  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Dataset, StochasticROM
from engine.metrics import MetricAccumulator, relative_l2
from engine.rollout import RolloutEngine
from engine.solvers import DEFAULT_METHOD, get_scheme

__all__ = [
    "EVAL_DT", "EVAL_METHOD", "Problem", "PROBLEMS", "load_problem", "model_params", "prepare_model",
    "DeviceData", "CountingDrift", "install_counter", "evaluate", "PREDICTIVE", "Clock", "log",
]

EVAL_DT = 0.01  # largest step of the common prediction protocol
# the scheme of the common protocol: the predictions' accurate default (issue 13), so that a
# checkpoint is scored as a user would predict with it
EVAL_METHOD = DEFAULT_METHOD
CACHE = Path(os.environ.get("SROM_BENCH_CACHE", Path.home() / ".cache" / "srom-bench"))


def log(message: str) -> None:
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class Problem:
    """A benchmark problem: a system preset, split sizes, the model's hyperparameters.

    Attributes:
        system, preset: arguments of ``engine.systems.generate``.
        n_train, n_val, n_test: trajectories per split.
        params: StochasticROM hyperparameters shared by every neural method.
        target: the relative L2 error whose time-to-reach is reported.
    """

    system: str
    preset: str
    n_train: int
    n_val: int
    n_test: int
    params: dict
    target: float


_BURGERS_PAPER = dict(latent_dim=4, window=64, windows_per_step=2, n_quad=32, lr=1e-3)
_BURGERS_SMALL = dict(latent_dim=4, window=16, windows_per_step=2, n_quad=16, lr=3e-3,
                      hidden=(64, 64), drift_hidden=(64, 64), conv_channels=4)
_LV = dict(latent_dim=2, window=32, windows_per_step=4, n_quad=32, lr=1e-3, drift_hidden=(64, 64))

PROBLEMS: dict[tuple[str, str], Problem] = {
    # the ROM paper's forced Burgers set-up (100/10/10 × 1001 snapshots × 500 points)
    ("burgers", "paper"): Problem("burgers", "paper", 100, 10, 10, _BURGERS_PAPER, 0.08),
    ("burgers", "small"): Problem("burgers", "small", 16, 4, 4, _BURGERS_SMALL, 0.08),
    # parametric stochastic Lotka–Volterra, μ = α, no forcing, identity autoencoder
    ("lotka_volterra", "paper"): Problem("lotka_volterra", "default", 100, 10, 10, _LV, 0.05),
    ("lotka_volterra", "small"): Problem("lotka_volterra", "small", 16, 4, 4, _LV, 0.05),
}


def load_problem(system: str, size: str, seed: int = 0) -> tuple[Problem, Dataset, Dataset, Dataset]:
    """The problem and its train / val / test datasets (cached as ``.npz`` under CACHE)."""
    if (system, size) not in PROBLEMS:
        raise ValueError(f"no problem for system={system!r} size={size!r}; "
                         f"known: {sorted(PROBLEMS)}")
    from engine.data import load_dataset
    from engine.systems import generate

    prob = PROBLEMS[(system, size)]
    out = []
    for split, n in (("train", prob.n_train), ("val", prob.n_val), ("test", prob.n_test)):
        path = CACHE / f"{system}_{prob.preset}_{split}_{n}_s{seed}.npz"
        if path.is_file():
            out.append(load_dataset(path))
            continue
        start = time.perf_counter()
        data = generate(system, n=n, split=split, seed=seed, preset=prob.preset)
        log(f"generated {system}/{prob.preset} {split} ({n}) in {time.perf_counter() - start:.1f} s")
        try:
            CACHE.mkdir(parents=True, exist_ok=True)
            data.save(path)
        except OSError:  # a read-only home: just regenerate next time
            pass
        out.append(data)
    return (prob, *out)


def model_params(prob: Problem, device: str, seed: int, **overrides) -> dict:
    """StochasticROM hyperparameters for ``prob`` (shared by every neural method)."""
    # substeps fixed: the common protocol (evaluate) sets its own step, and fit() then skips
    # the step check, which would add a rollout to every method's training
    params = dict(prob.params, device=device, seed=seed, substeps=1)
    params.update(overrides)
    return params


def prepare_model(params: dict, train: Dataset) -> StochasticROM:
    """A StochasticROM whose modules are built (and initialised) exactly as ``fit`` would,
    but not trained: the starting point of the solver-based competitors."""
    return StochasticROM(**params).initialize(train)


@dataclass
class DeviceData:
    """A dataset normalized with the model's statistics, resident on its device.

    Attributes: ``t (T,)``, ``x (N, T, *S)``, ``mu (N, P)``, ``f (N, T, F)``.
    """

    t: torch.Tensor
    x: torch.Tensor
    mu: torch.Tensor
    f: torch.Tensor

    @staticmethod
    def of(model: StochasticROM, data: Dataset) -> DeviceData:
        norm, dtype = model.normalization_, model.torch_dtype
        device = next(model.module_.parameters()).device

        def tensor(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        return DeviceData(tensor(data.t), tensor((data.x - norm.x_mean) / norm.x_std),
                          tensor((data.mu - norm.mu_mean) / norm.mu_std),
                          tensor((data.f - norm.f_mean) / norm.f_std))


# ------------------------------------------------------------------ drift counter
class CountingDrift(nn.Module):
    """Wraps a drift and counts its evaluations while ``enabled``.

    ``calls`` counts batched evaluations (one solver stage on all paths is one call);
    ``rows`` counts single (z, t) evaluations (the batch rows of every call). Calls made
    by a CUDA-graph replay bypass Python and are not seen: graph-captured methods report
    their per-step counts times the number of steps instead.
    """

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.rows = 0
        self.enabled = True

    def forward(self, z, t, mu, f):
        if self.enabled:
            self.calls += 1
            self.rows += int(z.shape[0])
        return self.inner(z, t, mu, f)

    def kl(self) -> torch.Tensor:
        return self.inner.kl()

    def reset(self) -> None:
        self.calls = self.rows = 0


def install_counter(model: StochasticROM) -> CountingDrift:
    """Replace ``model.module_.drift`` by a counting wrapper (idempotent)."""
    drift = model.module_.drift
    if not isinstance(drift, CountingDrift):
        drift = CountingDrift(drift)
        model.module_.drift = drift
    return drift


# ---------------------------------------------------------------------- evaluation
PREDICTIVE = {True: "latent SDE paths + decoder noise",
              False: "decoder noise only (one deterministic latent path)"}


@torch.no_grad()
def evaluate(model: StochasticROM, data: Dataset, n_paths: int = 32, stochastic: bool = True,
             seed: int = 0, batch_size: int = 16) -> dict:
    """Accuracy and calibration on ``data`` (the papers' protocol).

    Encodes the first snapshot(s) of each trajectory, integrates the latent equation on
    the data grid with ``ceil(dt / EVAL_DT)`` substeps of the scheme ``EVAL_METHOD`` per
    interval (the same for every method), decodes and averages the paths. Stochastic methods sample z0
    from the encoder and use ``n_paths`` Brownian paths with the learned Ψ; deterministic
    ones (latent ODEs) integrate one path from the encoder mean without noise.

    The predictive distribution adds the learned decoder noise N(0, σ²_dec) to every
    decoded path (as ``StochasticROM.predict`` does): ``n_paths`` samples, one per path for
    the stochastic methods, all on the one path for the deterministic ones — whose
    uncertainty is therefore the decoder noise only (``predictive`` says which).

    Returns:
        ``rel_l2_mean``, ``rel_l2_std`` (over trajectories × time steps, of the mean of the
        decoded paths without decoder noise), ``finite``, and ``crps`` (physical units),
        ``coverage_50``, ``coverage_90`` (shares of the truth inside the central intervals
        of the samples; ``None`` when the prediction is not finite) and ``predictive``.
    """
    module = model.module_
    was_training = module.training
    module.eval()
    counter = module.drift if isinstance(module.drift, CountingDrift) else None
    if counter is not None:
        counter.enabled = False
    try:
        device, dtype, norm = next(module.parameters()).device, model.torch_dtype, model.normalization_
        if getattr(model, "_bench_rollout", None) is None:
            model._bench_rollout = RolloutEngine(module.drift, use_graph=bool(model.cuda_graph))
        t = data.t
        substeps = max(1, int(math.ceil(float(np.max(np.diff(t))) / EVAL_DT - 1e-4)))
        scheme = get_scheme(EVAL_METHOD)
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        gen_obs = torch.Generator(device=device)  # its own stream: the paths stay as before
        gen_obs.manual_seed(seed + 1)
        n = n_paths if stochastic else 1
        d = model.latent_dim_
        t_t = torch.as_tensor(t, dtype=dtype, device=device)
        disp = module.dispersion.std()
        dec_std = module.decoder_variance.point().sqrt()  # normalized units, state-shaped
        scale = torch.as_tensor(norm.x_std, dtype=dtype, device=device)
        shift = torch.as_tensor(norm.x_mean, dtype=dtype, device=device)
        errors, scores, calibrated = [], MetricAccumulator(), True
        for start in range(0, data.n_trajectories, batch_size):
            sl = slice(start, start + batch_size)
            x0 = data.x[sl, : model.n_win] if model.n_win > 1 else data.x[sl, 0]
            windows = model._windows(np.asarray(x0, dtype=np.float64), "x0")
            cases = windows.shape[0]
            mean0, log_var0 = module.encode(windows)
            if stochastic:
                eps = torch.randn(cases, n, d, generator=gen, dtype=dtype, device=device)
                z0 = (mean0[:, None] + torch.exp(0.5 * log_var0)[:, None] * eps).reshape(-1, d)
                noise = torch.randn(scheme.noise_shape(t.size - 1, substeps, cases * n, d),
                                    generator=gen, dtype=dtype, device=device)
            else:
                z0 = mean0
                noise = torch.zeros(scheme.noise_shape(t.size - 1, substeps, cases, d),
                                    dtype=dtype, device=device)
            mu = torch.as_tensor((data.mu[sl] - norm.mu_mean) / norm.mu_std, dtype=dtype,
                                 device=device).repeat_interleave(n, 0)
            f = torch.as_tensor((data.f[sl] - norm.f_mean) / norm.f_std, dtype=dtype,
                                device=device).repeat_interleave(n, 0)
            latent = model._bench_rollout(z0, t_t, mu, f, disp, noise, EVAL_METHOD, substeps)
            decoded = model._decode_paths(latent.reshape(-1, d))
            decoded = decoded.view(cases, n, t.size, *model.state_shape_)
            mean = (decoded.mean(1) * scale + shift).cpu().numpy().astype(np.float64)
            finite = bool(np.all(np.isfinite(mean)))
            mean = np.where(np.isfinite(mean), mean, np.inf)
            errors.append(relative_l2(mean, data.x[sl]))
            calibrated = calibrated and finite
            if calibrated:
                paths = decoded.expand(cases, n_paths, *decoded.shape[2:])
                obs = torch.randn(paths.shape, generator=gen_obs, dtype=dtype, device=device)
                samples = (paths + dec_std * obs) * scale + shift
                calibrated = bool(torch.isfinite(samples).all())
                if calibrated:
                    scores.update(mean, samples, data.x[sl])
        err = np.concatenate(errors)
        finite = bool(np.all(np.isfinite(err)))
        calib = scores.result() if calibrated else {}
        return {"rel_l2_mean": float(err.mean()) if finite else float("inf"),
                "rel_l2_std": float(err.std()) if finite else float("nan"),
                "finite": finite,
                "crps": calib.get("crps"), "coverage_50": calib.get("coverage_50"),
                "coverage_90": calib.get("coverage_90"), "predictive": PREDICTIVE[bool(stochastic)]}
    finally:
        if counter is not None:
            counter.enabled = True
        module.train(was_training)


# --------------------------------------------------------------------------- clock
class Clock:
    """Training wall-clock with pauses for evaluation, and training-only peak memory.

    ``elapsed()`` synchronises the device and returns the seconds spent outside
    ``pause()`` blocks since ``start()``. ``peak_mb`` is the largest memory allocated
    while training, above what was allocated at ``start()`` (the resident data).
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.paused = 0.0
        self.t0 = None
        self.base = 0
        self.peak_mb = float("nan")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self.sync()
        if self.cuda:
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.peak_mb = 0.0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        self.sync()
        return time.perf_counter() - self.t0 - self.paused

    def _read_peak(self) -> None:
        if self.cuda:
            peak = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
            self.peak_mb = max(self.peak_mb, peak)

    def pause(self):
        clock = self

        class _Pause:
            def __enter__(self):
                clock.sync()
                clock._read_peak()
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                clock.sync()
                clock.paused += time.perf_counter() - self.t
                if clock.cuda:
                    torch.cuda.reset_peak_memory_stats(clock.device)

        return _Pause()

    def finish(self) -> None:
        self.sync()
        self._read_peak()


def checkpoint_times(budgets: list[float], n_log: int = 8) -> list[float]:
    """Evaluation times: 0, ``n_log`` log-spaced times up to the largest budget, the budgets."""
    top = max(budgets)
    times = set(float(b) for b in budgets)
    times.update(float(v) for v in np.geomspace(top / 100, top, n_log))
    return [0.0] + sorted(times)


def fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]
