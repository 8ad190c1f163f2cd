"""Data-parallel scaling and streaming throughput of the training (issue 18).

Measures, for 1, 2, 4, 8 ranks (as many as the device allows; ``torchrun`` on one node):

* **weak scaling**: each rank keeps its share of windows per step (the global batch grows
  with the ranks): throughput in windows/s, time per step, efficiency
  ``throughput_k / (k · throughput_1)``;
* **strong scaling**: the global batch is fixed (each rank takes ``W/k``): time per step,
  efficiency ``t_1 / (k · t_k)``;
* **I/O**: one rank training from the in-memory dataset and from the same data streamed
  from a chunked HDF5 file (:mod:`engine.streaming`), with the share of the time the step
  waited for the disk; and the reader alone for 1, 2, 4, 8 reader threads (``--readers``),
  from a cold page cache (the file's pages are dropped with ``posix_fadvise``) and a warm
  one, in windows/s and MB/s, with the CPU time it took (cores busy) and the host's load.

The data are synthetic travelling bumps on a 1-D field (the step cost depends on the
shapes, not on the values): Burgers size on CUDA (100 trajectories × 1001 snapshots × 500
points), smaller on the CPU (16 × 401 × 128). Timings exclude the first ``--warmup`` steps
(graph capture, allocator warm-up). On the CPU every rank runs one thread, so 2 ranks use
2 cores against 1 core for 1 rank.

Usage:
    python benchmarks/scaling.py [--device cpu|cuda] [--ranks 1,2,4,8] [--steps N] [--quick]
        [--readers 1,2,4,8] [--reader-only]

Writes ``benchmarks/results/scaling_<device>.json`` and ``.md`` (``--reader-only``: the
reader alone, with the sizes of ``--device``, into ``scaling_reader_<N>cores.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

SIZES = {"cuda": dict(n_traj=100, n_times=1001, n_x=500, per_rank=16),
         "cpu": dict(n_traj=16, n_times=401, n_x=128, per_rank=4)}


def bumps_dataset(n_traj: int, n_times: int, n_x: int, seed: int = 0):
    """Travelling bumps whose speed is μ, with a forcing channel (float32 states)."""
    from engine import Dataset

    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, n_times)
    x = np.linspace(0.0, 1.0, n_x)
    speed = rng.uniform(0.05, 0.1, n_traj)
    f = np.cos(2 * np.pi * rng.uniform(0.8, 1.0, n_traj)[:, None] * t[None])[..., None]
    centre = 0.1 + speed[:, None] * t[None]
    u = np.empty((n_traj, n_times, n_x), np.float32)
    for i in range(n_traj):  # one trajectory at a time: no (N, T, X) float64 temporary
        u[i] = 2.5 * np.exp(-((x[None] - centre[i, :, None]) ** 2) / 0.005)
    return Dataset(t, u, mu=speed[:, None], f=f, param_names=["speed"], forcing_names=["f"])


def model_params(device: str, windows: int, steps: int, log_every: int) -> dict:
    return dict(latent_dim=5, architecture="conv1d", window=64, windows_per_step=windows,
                steps=steps, log_every=log_every, device=device, seed=0, substeps=1,
                n_quad=32, lr=1e-3)


# ------------------------------------------------------------------ one run (a rank)
def worker(args) -> None:
    """Train once (under torchrun: as one rank) and write the timing (rank 0)."""
    import torch

    from engine import StochasticROM, distributed, load_dataset
    from engine.streaming import StreamingDataset

    if args.device == "cpu":
        torch.set_num_threads(1)
    ctx = distributed.init_from_environment(args.device)
    try:
        data = StreamingDataset(args.data) if args.stream else load_dataset(args.data)
        steps = args.warmup + args.steps
        model = StochasticROM(**model_params(args.device, args.windows, steps, args.warmup))
        model.fit(data)
        history = model.training_["history"]
        first = next(h for h in history if h["step"] >= args.warmup)
        last = history[-1]
        per_step = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
        if ctx.is_main:
            record = {"ranks": ctx.world_size, "windows_per_step": args.windows,
                      "seconds_per_step": per_step, "windows_per_second": args.windows / per_step,
                      "cuda_graph": model.training_["cuda_graph"],
                      "device_name": model.training_["device_name"],
                      "stream": bool(args.stream)}
            if args.stream:
                info = model.training_["streaming"]
                record.update(wait_seconds=info["wait_seconds"], read_seconds=info["read_seconds"],
                              train_seconds=model.training_["seconds"],
                              prefetch=info["prefetch"], readers=info.get("readers", 1),
                              host_mb=info["host_bytes"] / 2**20)
            Path(args.result).write_text(json.dumps(record))
        if hasattr(data, "close"):
            data.close()
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    distributed.shutdown()


def run_ranks(ranks: int, data: Path, windows: int, args, stream: bool = False) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    worker_args = [str(Path(__file__).resolve()), "--worker", "--data", str(data), "--windows",
                   str(windows), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--device", args.device, "--result", str(out)] + (["--stream"] if stream else [])
    if ranks == 1:
        cmd = [sys.executable] + worker_args
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(ranks)] + worker_args
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    tic = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    record = json.loads(out.read_text())
    out.unlink()
    record["wall_seconds"] = time.perf_counter() - tic
    print(f"  {ranks} rank(s), W={windows}{' streaming' if stream else ''}: "
          f"{record['seconds_per_step'] * 1e3:.2f} ms/step, "
          f"{record['windows_per_second']:.0f} windows/s", file=sys.stderr, flush=True)
    return record


# ------------------------------------------------------------------ the reader alone
def reader_throughput(path: Path, windows: int, steps: int, cold: bool,
                      readers: int | None = None) -> dict:
    """Windows/s and MB/s of the streaming reader without training (one rank, CPU tensors),
    with ``readers`` reader threads (default: the sampler's default), and the CPU time the
    process took meanwhile (in cores: CPU seconds per second)."""
    import resource

    import torch

    from engine.data import Normalization
    from engine.streaming import StreamingDataset, StreamingWindowSampler

    if cold and hasattr(os, "posix_fadvise"):  # drop this file's pages from the page cache
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    # one intra-op thread: the copies of stage() stand in for a GPU's host-to-device copies
    # (no OpenMP team, whose spinning workers would compete with the readers for the cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with StreamingDataset(path, prefetch=8, readers=readers) as source:
        norm = Normalization.fit(source, enabled=False)
        n, t = source.n_trajectories, source.n_times
        fields = (torch.as_tensor(source.t, dtype=torch.float32), torch.zeros(n, 0),
                  torch.zeros(n, t, 0))
        sampler = StreamingWindowSampler(source, norm, *fields, 64, windows, 1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before = usage.ru_utime + usage.ru_stime
        sampler.start(0)
        tic = time.perf_counter()
        for _ in range(steps):
            sampler.stage()
        seconds = time.perf_counter() - tic
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sampler.close()
        snapshot_bytes = int(np.prod(source.state_shape)) * source.x_dtype.itemsize
        direct = source._direct is not None
    torch.set_num_threads(threads)
    read = steps * windows * 64 * snapshot_bytes
    return {"cold_cache": cold, "readers": sampler.readers, "direct_reads": direct,
            "windows_per_second": steps * windows / seconds,
            "mb_per_second": read / seconds / 2**20, "steps": steps, "windows_per_step": windows,
            "cpu_cores_busy": (usage.ru_utime + usage.ru_stime - cpu_before) / seconds,
            "load_average_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def reader_file(tmp: Path, size: dict) -> Path:
    """A file far larger than the caches for the reader alone: 256 MiB of states."""
    from engine.streaming import save_sharded

    big = tmp / "reader.h5"
    n_big = max(1, (256 * 2**20) // (size["n_times"] * size["n_x"] * 4 * 8))
    save_sharded(big, (bumps_dataset(8, size["n_times"], size["n_x"], seed=k)
                       for k in range(n_big)))
    with open(big, "rb+") as handle:  # written pages must be clean to be dropped
        os.fsync(handle.fileno())
    return big


def reader_runs(big: Path, windows: int, steps: int, reader_counts: list[int]) -> list[dict]:
    """The reader alone for each reader count, from a cold then a warm page cache."""
    runs = []
    for readers in reader_counts:
        for cold in (True, False):
            r = reader_throughput(big, windows, steps, cold=cold, readers=readers)
            print(f"  reader alone, {readers} reader(s), {'cold' if cold else 'warm'}: "
                  f"{r['windows_per_second']:.0f} windows/s, {r['cpu_cores_busy']:.2f} cores "
                  "busy", file=sys.stderr, flush=True)
            runs.append(r)
    return runs


# ------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    lines = [f"# Training scaling and streaming on {report['device_name']} ({report['device']})",
             "", f"Measured {report['date']} with `{report['command']}`; torch "
             f"{report['torch']}, {report['cpu_count']} CPU cores visible"
             f"{'' if report['device'] == 'cuda' else ' (shared with other work)'}, load "
             f"average {report['load_average_before']:.1f} at the start.",
             "", f"Problem: {report['problem']}.", ""]
    for mode, text in (("weak", "Weak scaling: each rank keeps its share of windows per step."),
                       ("strong", "Strong scaling: the global batch is fixed.")):
        rows = [r for r in report["runs"] if r["mode"] == mode]
        if not rows:
            continue
        lines += [f"## {text}", "", "| ranks | windows/step (global) | ms/step | windows/s "
                  "| efficiency | CUDA graph |", "|---:|---:|---:|---:|---:|:---:|"]
        for r in rows:
            lines.append(f"| {r['ranks']} | {r['windows_per_step']} | "
                         f"{r['seconds_per_step'] * 1e3:.2f} | {r['windows_per_second']:.0f} | "
                         f"{r['efficiency']:.2f} | {'yes' if r['cuda_graph'] else 'no'} |")
        lines.append("")
    io = report["io"]
    lines += ["## Streaming from disk (1 rank)", "",
              "| data | ms/step | windows/s | step time over in memory | the training thread "
              "waited for the reader | host memory of the reader |",
              "|---|---:|---:|---:|---:|---:|"]
    mem, st = io["in_memory"], io["streaming"]
    lines.append(f"| in memory (on the device) | {mem['seconds_per_step'] * 1e3:.2f} | "
                 f"{mem['windows_per_second']:.0f} | – | – | – |")
    lines.append(f"| streamed, prefetch {st['prefetch']}, {st.get('readers', 1)} reader(s) | "
                 f"{st['seconds_per_step'] * 1e3:.2f} | "
                 f"{st['windows_per_second']:.0f} | "
                 f"{100 * (st['seconds_per_step'] / mem['seconds_per_step'] - 1):+.1f} % | "
                 f"{100 * st['wait_seconds'] / st['train_seconds']:.1f} % of the training | "
                 f"{st['host_mb']:.1f} MiB |")
    lines += ["", "The step time over in memory is what streaming costs the training. The "
              "training thread's wait is host time: on a GPU it launches a step's work and "
              "returns before the device has run it, so it can wait for the reader while the "
              "device still computes (a wait that costs nothing); on a CPU the step itself "
              "waits.", ""]
    if io.get("reader"):
        lines += reader_table(io)
    if "file_mb" in io:
        lines += [f"File: {io['file_mb']:.0f} MiB of states. " + report["notes"], ""]
    return "\n".join(lines)


def reader_table(io: dict) -> list[str]:
    """The reader-alone table of the report (one row per reader count and page cache)."""
    first = io["reader"][0]
    how = ("read directly (os.preadv at the chunk index's offsets)" if first.get("direct_reads")
           else "read through h5py") if "direct_reads" in first else "read through h5py"
    lines = ["", f"The reader alone (no training, {io['reader_file_mb']:.0f} MiB file, HDF5 "
             f"chunks of up to 1 MiB, {how}, {first['windows_per_step']} random windows of "
             "64 snapshots per step; CPU time of the process in cores, and the host's load "
             "average after the run):", "",
             "| readers | page cache | windows/s | MB/s | cores busy | load average |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in io["reader"]:
        load = r.get("load_average_after")
        lines.append(f"| {r.get('readers', 1)} | {'cold' if r['cold_cache'] else 'warm'} | "
                     f"{r['windows_per_second']:.0f} | {r['mb_per_second']:.0f} | "
                     f"{r.get('cpu_cores_busy', float('nan')):.2f} | "
                     f"{'–' if load is None else f'{load:.1f}'} |")
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--ranks", default=None, help="comma-separated rank counts (default: "
                        "1,2 on the CPU; 1,2,4,8 up to the GPUs present on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--out", default=None, help="results stem (default "
                        "benchmarks/results/scaling_<device>)")
    parser.add_argument("--readers", default=None, help="comma-separated reader-thread counts "
                        "for the reader alone (default 1,2,4,8 up to the CPU count)")
    parser.add_argument("--reader-only", action="store_true", help="measure only the reader "
                        "alone (no training runs) with the sizes of --device; writes "
                        "<out>.json/.md (default benchmarks/results/scaling_reader_<N>cores)")
    # a rank's own arguments
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpu = args.device == "cpu"
    if args.steps is None:
        args.steps = (20 if args.quick else 100) if cpu else (50 if args.quick else 400)
    if args.warmup is None:
        args.warmup = 10 if cpu else 20
    if args.worker:
        worker(args)
        return

    import torch

    from engine.streaming import MAX_READERS, save_sharded

    cores = os.cpu_count() or 1
    reader_counts = ([int(k) for k in args.readers.split(",")] if args.readers else
                     [k for k in (1, 2, 4, 8) if k <= max(1, cores)])
    if not reader_counts or any(not 1 <= k <= MAX_READERS for k in reader_counts):
        raise SystemExit(f"--readers: counts from 1 to {MAX_READERS}, got {args.readers!r}")
    size = SIZES[args.device]
    reader_steps = 50 if args.quick else 200
    if args.reader_only:
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with tempfile.TemporaryDirectory(prefix="srom-reader-") as tmp:
            big = reader_file(Path(tmp), size)
            io = {"reader": reader_runs(big, size["per_rank"] * 4, reader_steps, reader_counts),
                  "reader_file_mb": big.stat().st_size / 2**20}
        report = {"device": args.device, "cpu_count": cores, "platform": platform.platform(),
                  "load_average_before": load_before, "io": io,
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:])}
        text = "\n".join([f"# The streaming reader alone ({args.device} sizes, {cores} cores)", "",
                          f"Measured {report['date']} with `{report['command']}`; {cores} CPU "
                          f"cores visible, load average {load_before:.1f} at the start.",
                          *reader_table(io)])
        stem = Path(args.out) if args.out else RESULTS / f"scaling_reader_{cores}cores"
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
        stem.with_suffix(".md").write_text(text)
        print(text)
        return

    available = (os.cpu_count() or 1) if cpu else torch.cuda.device_count()
    if not cpu and available == 0:
        raise SystemExit("--device cuda: no GPU visible")
    wanted = [int(k) for k in args.ranks.split(",")] if args.ranks else (
        [1, 2] if cpu else [1, 2, 4, 8])
    ranks = [k for k in wanted if k <= available] if not cpu else wanted
    per_rank = size["per_rank"]
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="srom-scaling-") as tmp:
        data = bumps_dataset(size["n_traj"], size["n_times"], size["n_x"])
        npz, h5 = Path(tmp) / "data.npz", Path(tmp) / "data.h5"
        data.save(npz)
        save_sharded(h5, (data.subset(slice(i, i + 8)) for i in range(0, data.n_trajectories, 8)))
        file_mb = data.x.nbytes / 2**20
        del data
        runs = []
        print("weak scaling", file=sys.stderr)
        for k in ranks:
            r = run_ranks(k, npz, per_rank * k, args)
            runs.append({"mode": "weak", **r})
        base = runs[0]["windows_per_second"]
        for r in runs:
            r["efficiency"] = r["windows_per_second"] / (r["ranks"] * base)
        print("strong scaling", file=sys.stderr)
        global_w = per_rank * max(ranks)
        strong = [{"mode": "strong", **run_ranks(k, npz, global_w, args)} for k in ranks]
        for r in strong:
            r["efficiency"] = strong[0]["seconds_per_step"] / (r["ranks"] * r["seconds_per_step"])
        runs += strong
        print("streaming", file=sys.stderr)
        in_memory = next(r for r in runs if r["mode"] == "weak" and r["ranks"] == 1)
        streaming = run_ranks(1, h5, per_rank, args, stream=True)
        # the reader alone, on a file far larger than the caches, per reader count
        big = reader_file(Path(tmp), size)
        reader_mb = big.stat().st_size / 2**20
        reader = reader_runs(big, per_rank * 4, reader_steps, reader_counts)
    report = {
        "device": args.device, "device_name": runs[0]["device_name"],
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "load_average_before": load_before,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "problem": (f"{size['n_traj']} trajectories × {size['n_times']} snapshots of a "
                    f"{size['n_x']}-point 1-D field (float32), conv1d autoencoder, latent 5, "
                    f"windows of 64 snapshots, {per_rank} windows per rank and step (weak) or "
                    f"{global_w} in all (strong); {args.steps} timed steps after {args.warmup}"),
        "runs": runs,
        "io": {"in_memory": in_memory, "streaming": streaming, "reader": reader,
               "file_mb": file_mb, "reader_file_mb": reader_mb},
        "notes": ("Gradients are averaged by DistributedDataParallel (gloo on the CPU); on "
                  "CUDA with graphs, by one NCCL all_reduce recorded in the step's graph. "
                  "On the CPU the reader threads share the cores with the training, which "
                  "is why a streamed step can be slower although it hardly waited for the "
                  "disk; on a GPU they run beside the step. CPU figures from "
                  "2 cores shared with other jobs show that the machinery works, not what a "
                  "cluster gives."),
    }
    stem = Path(args.out) if args.out else RESULTS / f"scaling_{args.device}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
