"""Dashboard server compute per slider move, on the serving device (GPU when present).

What the Explore tab's worker computes after a μ slider is released, for the default
pretrained model (Burgers) and the tab's defaults (48 paths): ``ExploreState.predictions``,
i.e. a 12-path preview decoded at ≤ 51 output times when the last full prediction took
longer than ``preview_above_ms`` (60 ms), then the full prediction, each a
:func:`app.state.explore.predict_request` (the simulator's initial state, the latent SDE rollout,
the decoding and the reduction to mean, std, quantiles and kept paths). Moves alternate
between two μ inside the trained range, as a user dragging a slider back and forth; the
first ``--warmup`` moves are not counted (model load, CUDA graph capture per shape).

When Panel is installed, the session-thread part is measured too: pushing each result into
the Explore view's Bokeh figures (``ExploreView._apply_result``; no browser, so the
websocket serialization is not included). The GPU machines have no Panel: that row is then
absent, and the report says so (it is CPU work, measured by the CPU run).

The issue's target: on a GPU machine the server compute per move stays under 30 ms.

Usage:
    python benchmarks/ui_server_compute.py [--device auto|cpu|cuda] [--moves 30]
        [--warmup 3] [--tag TAG] [--markdown-only]

Writes ``benchmarks/results/ui_server_compute_{TAG}.json`` and ``.md`` (TAG defaults to the
device type).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from param.parameterized import discard_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from _stats import summarize  # noqa: E402

from app.state import catalog  # noqa: E402
from app.state.explore import ExploreState  # noqa: E402

#: the issue's target for the server compute per move on a GPU machine, in ms
TARGET_MS = 30.0
PARTS = {"preview_ms": "preview prediction", "full_ms": "full prediction",
         "predict_ms": "both predictions (the worker's job)",
         "apply_preview_ms": "pushing the preview into the figures (session thread)",
         "apply_full_ms": "pushing the full result into the figures (session thread)",
         "move_ms": "server compute per move (predictions + pushes)"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _view(state: ExploreState):
    """An Explore view over ``state`` when Panel is installed, else ``None``."""
    try:
        from app.views.explore import ExploreView
    except ImportError:
        return None
    return ExploreView(state=state, background=False)


def measure(moves: int, warmup: int, device: str) -> tuple[list[dict], dict]:
    """Time ``warmup + moves`` slider moves; the measured ones and the configuration."""
    previous = os.environ.get(catalog.ENV_DEVICE)
    os.environ[catalog.ENV_DEVICE] = device
    catalog.clear_cache()
    try:
        return _measure(moves, warmup)
    finally:
        if previous is None:
            os.environ.pop(catalog.ENV_DEVICE, None)
        else:
            os.environ[catalog.ENV_DEVICE] = previous
        catalog.clear_cache()


def _measure(moves: int, warmup: int) -> tuple[list[dict], dict]:
    state = ExploreState(background=False)
    if state.model is None:
        raise SystemExit(f"no model to measure: {state.error or 'none found'}")
    view = _view(state)
    spec = state.mu_specs[0]
    lo, hi = spec.trained
    values = (lo + 0.3 * (hi - lo), lo + 0.7 * (hi - lo))
    samples = []
    preview_plan = None
    for i in range(warmup + moves):
        with discard_events(state):  # inputs only: the timed calls below predict
            state.mu = {**state.mu, spec.name: values[i % 2]}
        req = state.request()
        preview_plan = preview_plan or state.preview_settings(req)
        row: dict = {}
        start = time.perf_counter()
        for result, _ in state.predictions(req):  # the worker's job: [preview,] full
            key = "preview" if result.preview else "full"
            row[f"{key}_ms"] = 1e3 * (time.perf_counter() - start)
            if view is not None:
                state.result = result  # the view's watcher pushes it into the figures
                row[f"apply_{key}_ms"] = 1e3 * view.render_seconds
            start = time.perf_counter()
        row["predict_ms"] = row.get("preview_ms", 0.0) + row["full_ms"]
        row["move_ms"] = row["predict_ms"] + row.get("apply_preview_ms", 0.0) + row.get(
            "apply_full_ms", 0.0)
        row["previewed"] = "preview_ms" in row
        if i >= warmup:
            samples.append(row)
            log(f"move {i - warmup + 1}/{moves}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in row.items() if k.endswith("_ms")))
    entry = next((e for e in state.models if e.path == state.model_path), None)
    config = {"model": os.path.relpath(entry.path, ROOT) if entry else state.model_path,
              "device": catalog.serving_device(), "mu": spec.name, "mu_values": list(values),
              "n_paths": int(state.n_paths), "preview": preview_plan,
              "preview_above_ms": float(state.preview_above_ms), "output_times": int(req.t.size),
              "substeps": int(req.substeps), "moves": moves, "warmup": warmup,
              "view_measured": view is not None, "torch_threads": torch.get_num_threads()}
    return samples, config


def machine_info(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def markdown(result: dict) -> str:
    """The Markdown report of a result dict (as written to the JSON)."""
    cfg, s, m = result["config"], result["summary"], result["machine"]
    where = m.get("gpu") or f"{m['cpu_count']} CPU cores"
    preview = cfg["preview"]
    lines = [
        f"# Dashboard server compute per slider move ({cfg['device']})", "",
        f"`python benchmarks/ui_server_compute.py --device {cfg['device']}` on {where}, "
        f"torch {m['torch']} ({cfg['torch_threads']} CPU thread(s)). Model `{cfg['model']}`, "
        f"{cfg['n_paths']} sample paths over {cfg['output_times']} output times "
        f"({cfg['substeps']} SDE steps each)"
        + (f"; a preview of {preview['n_paths']} paths decoded at every k-th output time "
           f"(k = {preview['decode_stride']}) first when the last full prediction took more "
           f"than {cfg['preview_above_ms']:.0f} ms: {s['previews']} of {cfg['moves']} moves"
           if preview else "")
        + f"; {cfg['moves']} moves of `{cfg['mu']}` between "
        f"{cfg['mu_values'][0]:.4g} and {cfg['mu_values'][1]:.4g} after {cfg['warmup']} "
        f"warm-up moves. {result['date']}.", "",
        "| part | median | p95 | max |", "|---|---|---|---|"]
    for key, label in PARTS.items():
        if key in s:
            v = s[key]
            lines.append(f"| {label} | {v['median']:.1f} ms | {v['p95']:.1f} ms | "
                         f"{v['max']:.1f} ms |")
    verdict = result["target"]
    value, measure = verdict["value"], verdict["measure"]
    if not cfg["view_measured"]:
        lines += ["", "Panel is not installed here, so pushing the results into the figures "
                  "(session-thread CPU work) is not measured here; see the CPU report "
                  "(`ui_server_compute_cpu.md`) for it."]
        cpu = RESULTS / "ui_server_compute_cpu.json"
        pushes = json.loads(cpu.read_text())["summary"] if cpu.is_file() else {}
        if "apply_full_ms" in pushes:  # add the CPU's push of each result this run made
            push = pushes["apply_full_ms"]["median"] + (
                pushes.get("apply_preview_ms", {}).get("median", 0.0)
                * s.get("previews", 0) / max(cfg["moves"], 1))
            value, measure = value + push, (
                f"{measure}, plus {push:.1f} ms of pushes into the figures as measured on the "
                "2-core CPU")
    judged = ("**met**." if value <= TARGET_MS else "**missed**.") if cfg["device"] == "cuda" \
        else "not judged here: the target is for a GPU machine (`ui_server_compute_cuda.md`)."
    lines += ["", f"Target (on a GPU machine): server compute per move ≤ {TARGET_MS:.0f} ms. "
              f"Measured median {value:.1f} ms ({measure}): {judged}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tag", default=None, help="results suffix (default: the device)")
    parser.add_argument("--markdown-only", action="store_true",
                        help="regenerate the .md from the existing .json (needs --tag)")
    args = parser.parse_args(argv)
    if args.markdown_only:
        tag = args.tag or "cuda"
        result = json.loads((RESULTS / f"ui_server_compute_{tag}.json").read_text())
        (RESULTS / f"ui_server_compute_{tag}.md").write_text(markdown(result))
        return result
    torch.set_num_threads(int(os.environ.get("SROM_TORCH_THREADS", "1")))  # as the server
    samples, config = measure(args.moves, args.warmup, args.device)
    summary = {k: summarize([x[k] for x in samples if k in x])
               for k in PARTS if any(k in x for x in samples)}
    summary["previews"] = sum(x["previewed"] for x in samples)
    measure_key = "move_ms" if config["view_measured"] else "predict_ms"
    value = summary[measure_key]["median"]
    result = {
        "benchmark": "dashboard server compute per slider move",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(config["device"]), "config": config, "moves": samples,
        "summary": summary,
        "target": {"limit_ms": TARGET_MS, "measure": PARTS[measure_key], "value": value,
                   "met": bool(value <= TARGET_MS), "judged": config["device"] == "cuda"}}
    tag = args.tag or config["device"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ui_server_compute_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"ui_server_compute_{tag}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
