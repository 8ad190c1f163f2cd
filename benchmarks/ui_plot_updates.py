"""Server cost of a result update in the Sensitivity and Train tabs' plots, in-process.

The Sensitivity tab's plots change once per run (a sweep, a grid or a ranking) and the Train
tab's validation plot once per validation; the training curves take new points at every
poll. This measures, for a pretrained model, what the session thread spends when such a
result arrives: the view's watcher (new data into a Bokeh source, or a new HoloViews
element into a ``pn.pane.HoloViews``, which HoloViews renders into Bokeh models) and the
serialization of the resulting document patch (Bokeh's ``PATCH-DOC`` message, as the
server sends it; its size is recorded too). No browser: its render time is not included
(``benchmarks/ui_speed.py`` measures that, for the Explore tab).

Each update alternates between two results (different μ, so the data changes), after
``--warmup`` updates that are not counted (first renders, imports).

Usage:
    python benchmarks/ui_plot_updates.py [--model lotka_volterra] [--updates 20]
        [--warmup 3] [--tag TAG] [--markdown-only]

Writes ``benchmarks/results/ui_plot_updates_{TAG}.json`` and ``.md`` (TAG: ``cpu``); the
results of earlier tags in the same folder are listed beside it (``--compare TAG``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from _stats import summarize  # noqa: E402

#: what a user would feel as a lag after a result arrives (the brief's threshold), in ms
FEEL_MS = 100.0
PARTS = {"sweep": "Sensitivity: a 1-D sweep arrives",
         "grid": "Sensitivity: a 2-D grid arrives (mean and std maps)",
         "tornado": "Sensitivity: a ranking arrives",
         "validation": "Train: a validation prediction arrives",
         "validation_hv": "Train: the same validation through engine.plotting.interval_bands "
                          "in a ResultPlot (not used; for comparison)",
         "curves": "Train: 10 progress reports arrive (the live curves)",
         "curves_hv": "Train: the same through hv.streams.Buffer → hv.DynamicMap (not used; "
                      "the HoloViews way to stream, for comparison)"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return f"{head}+uncommitted changes" if dirty.strip() else head
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class PatchClock:
    """Times an update of a view rendered into a Bokeh document, with the serialization of
    the ``PATCH-DOC`` message its changes make."""

    def __init__(self, viewable):
        from bokeh.document import Document

        self.doc = Document()
        self.doc.add_root(viewable.get_root(self.doc))
        self.events: list = []
        self.doc.on_change(self.events.append)

    def time(self, update: Callable[[], None]) -> tuple[float, int]:
        """``(ms, bytes)`` of ``update()`` and its patch message (0 bytes: no change)."""
        from bokeh.protocol import Protocol

        self.events.clear()
        start = time.perf_counter()
        update()
        size = 0
        if self.events:
            msg = Protocol().create("PATCH-DOC", list(self.events))
            size = len(msg.header_json) + len(msg.content_json) + sum(
                len(buf.data) for buf in msg.buffers)
        return 1e3 * (time.perf_counter() - start), size


def _measure(clock: PatchClock, updates: list[Callable[[], None]], n: int,
             warmup: int) -> dict:
    times, sizes = [], []
    for k in range(warmup + n):
        ms, size = clock.time(updates[k % len(updates)])
        if k >= warmup:
            times.append(ms)
            sizes.append(size)
    return {"ms": summarize(times), "bytes": summarize(sizes), "samples_ms": times}


def run(model_name: str, n: int, warmup: int) -> dict:
    import panel as pn
    import param

    from app.state import catalog
    from app.state.explore import ExploreState
    from app.state.specs import BANDS
    from app.state.training_job import ValidationCurve
    from app.views.sensitivity import SensitivityView
    from app.views.training import TrainingView

    entries = catalog.discover_models([("shipped", ROOT / "pretrained")])
    entry = next(e for e in entries if Path(e.path).name == model_name)
    explore = ExploreState(models=entries, n_paths=16)
    explore.load(entry.path)
    view = SensitivityView(explore)
    s = view.state
    s.param.update(background=False, n_paths=16, n_points=9, n_grid=5)
    clock = PatchClock(pn.panel(view))
    spec = explore.mu_specs[0]
    results: dict[str, list] = {"sweep": [], "grid": [], "tornado": []}
    keys = [i.key for i in s.inputs()]
    for value in spec.trained:  # two nominal μ: two different results of each kind
        explore.set_mu(spec.name, float(value))
        s.param.update(parameter=keys[0], parameter2=None)
        s.run("sweep")
        results["sweep"].append(s.sweep)
        if len(keys) > 1:
            s.param.update(parameter2=keys[1])
            s.run("sweep")
            results["grid"].append(s.grid)
        s.run("tornado")
        results["tornado"].append(s.tornado)
        if s.error:
            raise RuntimeError(s.error)
    log(f"{model_name}: {len(keys)} inputs; results computed")
    out: dict = {}
    for kind, found in results.items():
        if not found:
            continue

        def show(result=None, kind=kind):
            with pn.io.hold():
                if kind == "tornado":
                    s.tornado = result
                else:  # the state shows one of sweep / grid at a time
                    s.param.update(sweep=result if kind == "sweep" else None,
                                   grid=result if kind == "grid" else None)

        out[kind] = _measure(clock, [lambda r=r, f=show: f(r) for r in found], n, warmup)
        log(f"{kind}: median {out[kind]['ms']['median']:.1f} ms")

    # the Train tab: a validation prediction of the model and its live curves
    train = TrainingView(explore, poll_ms=0)
    t_clock = PatchClock(pn.panel(train))
    curves = []
    for value in spec.trained:
        explore.set_mu(spec.name, float(value))
        explore.refresh()
        r = explore.result
        dims = r.mean.ndim - 1
        bands = [(_first(r.quantile(lo), dims), _first(r.quantile(hi), dims))
                 for lo, hi in BANDS]  # widest first, as the training job makes them
        curves.append(ValidationCurve(step=100, t=np.asarray(r.t), mean=_first(r.mean, dims),
                                      bands=bands, samples=_first(r.samples, dims),
                                      truth=_first(r.mean, dims),
                                      label="state component 1", rel_l2=0.1,
                                      source="held-out trajectory"))
    ts = train.state
    out["validation"] = _measure(
        t_clock, [lambda c=c: _hold(pn, lambda: setattr(ts, "validation", c)) for c in curves],
        n, warmup)
    log(f"validation: median {out['validation']['ms']['median']:.1f} ms")
    out["validation_hv"] = _holoviews_validation(curves, n, warmup)
    log(f"validation through HoloViews: median {out['validation_hv']['ms']['median']:.1f} ms")
    rng = np.random.default_rng(0)
    history: list[dict] = []

    def more_points() -> None:
        step = len(history)
        new = [{"step": step + i, "loss": float(rng.random()), "ell": float(rng.random()),
                "residual": float(rng.random()) + 0.1, "kl": float(rng.random()) + 0.1,
                "beta": 0.5} for i in range(10)]
        history.extend(new)
        with param.parameterized.batch_call_watchers(ts):
            _hold(pn, lambda: setattr(ts, "history", list(history)))

    out["curves"] = _measure(t_clock, [more_points], n, warmup)
    log(f"curves: median {out['curves']['ms']['median']:.1f} ms")
    out["curves_hv"] = _buffer_curves(n, warmup)
    log(f"curves through a HoloViews Buffer: median {out['curves_hv']['ms']['median']:.1f} ms")
    return out


def _holoviews_validation(curves: list, n: int, warmup: int) -> dict:
    """The validation plot drawn the HoloViews way: engine.plotting's ``interval_bands`` of
    each curve, sent through an :class:`app.views.result_plot.ResultPlot` (updated in place)."""
    from app.views.plots import decimate
    from app.views.result_plot import ResultPlot
    from engine import plotting

    def draw(c):
        sl = decimate(len(c.t))
        return plotting.interval_bands(
            c.t[sl], c.mean[sl], [(lo[sl], hi[sl]) for lo, hi in c.bands], ["95 %", "90 %", "50 %"],
            samples=c.samples[:, sl], truth=c.truth[sl], label=c.label).opts(
            title=f"Validation at step {c.step}: {c.label}")

    plot = ResultPlot(draw, {"Overlay": {"height": 300, "responsive": True},
                             "Area": {"color": "#1f77b4"},
                             "Curve.Curve.Mean": {"color": "#0b3d91", "line_width": 2.5}})
    plot.show(curves[0])
    clock = PatchClock(plot.pane)
    return _measure(clock, [lambda c=c: plot.show(c) for c in curves], n, warmup)


def _buffer_curves(n: int, warmup: int) -> dict:
    """The live curves' update drawn the HoloViews way: the five terms of 10 new reports
    sent to an ``hv.streams.Buffer`` that feeds the two figures' ``hv.DynamicMap``s (the
    loss, log-likelihood and β; the residual and KL on a log axis)."""
    import holoviews as hv
    import panel as pn

    from app.views.training_plots import TERMS

    buffer = hv.streams.Buffer({k: np.zeros(0) for k in TERMS}, length=100_000, index=False)

    def elbo(data):
        return hv.Overlay([hv.Curve(data, "step", k, label=k) for k in ("loss", "ell", "beta")])

    def kl(data):
        return hv.Overlay([hv.Curve(data, "step", k, label=k) for k in ("residual", "kl")]
                          ).opts(logy=True)

    pane = pn.Row(*(pn.pane.HoloViews(hv.DynamicMap(f, streams=[buffer]).opts(
        responsive=True, height=260)) for f in (elbo, kl)))
    clock = PatchClock(pane)
    rng = np.random.default_rng(0)
    sent = [0]

    def more_points() -> None:
        k = np.arange(sent[0], sent[0] + 10, dtype=np.float64)
        sent[0] += 10
        with pn.io.hold():
            buffer.send({"step": k, "loss": rng.random(10), "ell": rng.random(10),
                         "residual": rng.random(10) + 0.1, "kl": rng.random(10) + 0.1,
                         "beta": np.full(10, 0.5)})

    return _measure(clock, [more_points], n, warmup)


def _first(values: np.ndarray, state_dims: int) -> np.ndarray:
    """``values (..., *S)`` at the first state entry: ``(...)``."""
    a = np.asarray(values)
    return a.reshape(*a.shape[:a.ndim - state_dims], -1)[..., 0]


def _hold(pn, fn: Callable[[], None]) -> None:
    with pn.io.hold():
        fn()


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"# Plot updates of the Sensitivity and Train tabs, in-process ({result['tag']})", "",
             f"`python benchmarks/ui_plot_updates.py --model {cfg['model']} --updates "
             f"{cfg['updates']} --warmup {cfg['warmup']} --tag {result['tag']}` at commit "
             f"`{result['commit']}`, {result['machine']['cpus']} cores, Panel "
             f"{result['machine']['panel']}, HoloViews {result['machine']['holoviews']}, Bokeh "
             f"{result['machine']['bokeh']}; {result['date']}. Plots drawn with: "
             f"{result['drawn_with']}.", "",
             "Per update: the view's watcher and the serialization of the document patch it "
             "makes (no browser). Two results alternate.", "",
             "| update | median | p95 | max | patch size (median) | n |", "|---|---|---|---|---|---|"]
    for key, text in PARTS.items():
        if key in result["parts"]:
            p = result["parts"][key]
            lines.append(f"| {text} | {p['ms']['median']:.1f} ms | {p['ms']['p95']:.1f} ms | "
                         f"{p['ms']['max']:.1f} ms | {p['bytes']['median'] / 1e3:.1f} kB | "
                         f"{p['ms']['n']} |")
    others = sorted(RESULTS.glob("ui_plot_updates_*.json"))
    rows = []
    for path in others:
        other = json.loads(path.read_text())
        if other["tag"] == result["tag"]:
            continue
        for key, text in PARTS.items():
            if key in other["parts"] and key in result["parts"]:
                a, b = other["parts"][key]["ms"]["median"], result["parts"][key]["ms"]["median"]
                rows.append(f"| {text} | {other['tag']} ({other['drawn_with']}) | {a:.1f} ms | "
                            f"{b:.1f} ms | {b - a:+.1f} ms |")
    if rows:
        lines += ["", f"Against the other runs in `benchmarks/results` (median; this run: "
                      f"{result['tag']}):", "",
                  "| update | other run | other | this | difference |", "|---|---|---|---|---|",
                  *rows]
    slow = [PARTS[k] for k, p in result["parts"].items() if p["ms"]["median"] > FEEL_MS]
    lines += ["", f"Updates with a median above {FEEL_MS:.0f} ms (a lag a user would feel): "
              + (", ".join(slow) if slow else "none") + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lotka_volterra", help="a folder of pretrained/")
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tag", default="cpu")
    ap.add_argument("--drawn-with", default="", help="what the views draw with (for the notes)")
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args(argv)
    if not (ROOT / "pretrained" / args.model).is_dir() or "/" in args.model:
        ap.error(f"--model must name a folder of pretrained/, got {args.model!r}")
    if args.updates < 1 or args.warmup < 0:
        ap.error("--updates must be at least 1 and --warmup at least 0")
    path = RESULTS / f"ui_plot_updates_{args.tag}.json"
    if args.markdown_only:
        path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        return 0
    os.environ.setdefault("SROM_TORCH_THREADS", "1")
    import bokeh
    import holoviews
    import panel

    parts = run(args.model, args.updates, args.warmup)
    result = {"tag": args.tag, "commit": _commit(), "drawn_with": args.drawn_with or "see commit",
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "config": {"model": args.model, "updates": args.updates, "warmup": args.warmup},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "panel": panel.__version__, "holoviews": holoviews.__version__,
                          "bokeh": bokeh.__version__, "loadavg": list(os.getloadavg())},
              "parts": parts}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
