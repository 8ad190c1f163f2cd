"""How long a dashboard prediction runs between two cancel checks (CPU).

Issue 17: a running prediction stops at its next ``cancel`` check
(:mod:`engine.cancellation`) once a newer request came or its page was closed. This script
runs one full dashboard prediction of a model (the cylinder's by default: the slowest on a
CPU) with a check that never fires and records when each check came: the longest gap is
how long a cancel may wait. It also times the same prediction without a check.

Usage:
    python benchmarks/cancel_latency.py [--model cylinder_paper_d7] [--paths 48]

Writes ``benchmarks/results/cancel_latency_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cylinder_paper_d7")
    parser.add_argument("--paths", type=int, default=48)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("SROM_TORCH_THREADS", "1")))  # as served
    from app.state import catalog
    from app.state.explore import ExploreState, predict_request

    entries = catalog.discover_models()
    entry = next(e for e in entries if Path(e.path).name == args.model)
    state = ExploreState(models=entries, model_path=entry.path, n_paths=args.paths,
                         preview_paths=0)
    req = state.request()
    stamps: list[float] = []

    def check() -> bool:
        stamps.append(time.perf_counter())
        return False

    start = time.perf_counter()
    result, _ = predict_request(req, cancel=check)
    checked_s = time.perf_counter() - start
    gaps = np.diff([start, *stamps, time.perf_counter()])
    start = time.perf_counter()
    predict_request(req)
    plain_s = time.perf_counter() - start
    out = {"command": " ".join(["python", *sys.argv]), "model": args.model,
           "n_paths": result.n_paths, "n_times": int(result.t.size),
           "prediction_s_with_checks": checked_s, "prediction_s_without": plain_s,
           "checks": len(stamps), "longest_gap_s": float(gaps.max()),
           "p95_gap_s": float(np.percentile(gaps, 95)),
           "torch_threads": torch.get_num_threads(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
           "load_average": os.getloadavg(),
           "date": datetime.now(UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cancel_latency_cpu.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
