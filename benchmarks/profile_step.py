"""Profile one training run segment and one prediction at Burgers size (torch.profiler).

Usage: python benchmarks/profile_step.py [--device cuda|cpu]
Prints the operators that take the most device time and host time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_perf import burgers_size_dataset, make_model  # noqa: E402


def table(prof, key: str, rows: int = 18) -> str:
    return prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--graph", action="store_true", help="profile CUDA-graph training")
    args = parser.parse_args()
    device = args.device
    data = burgers_size_dataset(n_traj=20)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    make_model(device, args.graph, 10).fit(data)  # warm-up (cuDNN, kernels)
    with profile(activities=activities) as prof:
        model = make_model(device, args.graph, 40).fit(data)
    print("=== training, 40 steps, by device time ===")
    print(table(prof, sort))
    print("=== training, by host time ===")
    print(table(prof, "self_cpu_time_total"))
    t = data.t[:301:3]
    f = data.f[0, :301:3]
    for _ in range(2):
        model.predict(data.x[0, 0], data.mu[0], t, f, n_samples=64, seed=0, return_samples=False,
                      quantiles=(0.05, 0.5, 0.95), substeps=3)
    with profile(activities=activities) as prof:
        model.predict(data.x[0, 0], data.mu[0], t, f, n_samples=64, seed=0, return_samples=False,
                      quantiles=(0.05, 0.5, 0.95), substeps=3)
    print("=== predict 64 paths x 300 steps, 101 frames, by device time ===")
    print(table(prof, sort))
    print("=== predict, by host time ===")
    print(table(prof, "self_cpu_time_total"))


if __name__ == "__main__":
    main()
