"""Time to the first picture of a cylinder model in the dashboard's session state (CPU).

Issue 17, item 2: selecting a cylinder model used to spin the lattice-Boltzmann solver up
for its initial state (minutes on a 2-core CPU) before any picture. The state now ships
with the model (``pretrained/<model>/simulator_states/``) or comes from the disk cache.
This script selects the model in a fresh :class:`app.state.explore.ExploreState` with background
predictions, as a served session does (``SROM_TORCH_THREADS`` threads, default 1), and
records when the first result (the quick preview) and the full prediction land.

Usage:
    python benchmarks/cylinder_first_picture.py [--model cylinder_paper_d7] [--repeats 3]

Writes ``benchmarks/results/cylinder_first_picture_cpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TARGET_S = 10.0


def one_selection(model: str, timeout: float) -> dict:
    """Select ``model`` in a fresh session state; seconds to the first and the full result."""
    from app.state import catalog
    from app.state.explore import ExploreState

    catalog.clear_cache()
    entries = catalog.discover_models()
    entry = next(e for e in entries if Path(e.path).name == model)
    state = ExploreState(models=entries, background=True)
    start = time.perf_counter()
    state.model_path = entry.path
    first = full = None
    first_paths = full_paths = None
    while time.perf_counter() - start < timeout:
        result = state.result
        if result is not None and first is None:
            first, first_paths = time.perf_counter() - start, result.n_paths
        if result is not None and not result.preview:
            full, full_paths = time.perf_counter() - start, result.n_paths
            break
        if state.error:
            raise RuntimeError(state.error)
        time.sleep(0.02)
    return {"first_s": first, "first_paths": first_paths, "full_s": full,
            "full_paths": full_paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cylinder_paper_d7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    threads = int(os.environ.setdefault("SROM_TORCH_THREADS", "1"))
    import torch

    torch.set_num_threads(threads)
    runs = []
    for i in range(max(1, args.repeats)):
        runs.append(one_selection(args.model, args.timeout))
        print(f"run {i + 1}: {runs[-1]}", flush=True)
    firsts = [r["first_s"] for r in runs if r["first_s"] is not None]
    record = {
        "model": args.model, "runs": runs, "torch_threads": threads,
        "first_picture_median_s": statistics.median(firsts) if firsts else None,
        "target_s": TARGET_S,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cylinder_first_picture_cpu.json").write_text(json.dumps(record, indent=2))
    median = record["first_picture_median_s"]
    verdict = ("no result" if median is None else
               f"{'met' if median <= TARGET_S else '**missed**'} ({median:.1f} s ≤ {TARGET_S:g} s)")
    rows = "\n".join(
        f"| {i + 1} | {r['first_s']:.1f} s ({r['first_paths']} paths) | "
        + (f"{r['full_s']:.1f} s ({r['full_paths']} paths)" if r["full_s"] else "—") + " |"
        for i, r in enumerate(runs) if r["first_s"] is not None)
    (RESULTS / "cylinder_first_picture_cpu.md").write_text(
        f"# First picture of a cylinder model (CPU)\n\n"
        f"`python benchmarks/cylinder_first_picture.py --model {args.model}` on {record['machine']}, "
        f"{threads} torch thread(s), {record['date']}; load average at the end "
        f"{', '.join(f'{v:.2f}' for v in record['load_average'])}. The model is selected in a "
        f"fresh session state that predicts in the background, as a served page does; the "
        f"initial state ships with the model.\n\n"
        f"| run | first picture (preview) | full prediction |\n|---|---|---|\n{rows}\n\n"
        f"Target (issue 17, item 2): first picture ≤ {TARGET_S:g} s: {verdict}.\n")
    print(verdict)


if __name__ == "__main__":
    main()
