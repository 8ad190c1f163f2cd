"""Dashboard speed in a real browser: first render and slider-to-pixels on the Explore tab.

Serves the dashboard with ``panel serve app/main.py`` (``SROM_TORCH_THREADS=1``, the default
pretrained Burgers model), opens it in headless Chromium (Debian's, through Playwright, as
the browser tests do; see ``tests/ui/browser.py``) and measures, in the page, with
``performance.now()``:

* **first render**: navigation start → the QoI figure (the Bokeh source ``qoi-bands``) holds
  finite data and its view has painted. The first load of a fresh server is reported apart
  (it imports torch and the app in the server's first session).
* **slider moves**: the first μ slider is dragged with the mouse (``drag_first_slider`` of
  ``tests/ui/browser.py``, as the browser tests do), alternately right and left so that
  every move changes the prediction. The clock starts at the ``pointerup`` that releases
  the handle (the slider reports ``value_throttled`` then) and stops at
  - the **first visible update**: the first animation frame after the QoI figure painted the
    first new data of this move (a quick preview when the Explore tab makes one), and
  - the **full view**: the first animation frame after every watched figure (QoI bands and
    paths, the mean map, the latent plot) painted its last data of this move, when the
    status line no longer says "preview". The move is over when nothing changed for
    ``--quiet`` ms.
  Both therefore include the websocket round trip, the server's prediction and the render.
  The server's own prediction time is read from the status line ("predicted in N ms"), and
  the page's time applying each server message (the layout pass it triggers included) is
  recorded with the message that blocked the page longest.

The targets (``TARGETS``) are the issue's: first visible update median ≤ 200 ms and
p95 ≤ 400 ms, full view p95 ≤ 1 s, first render ≤ 5 s on every load (the cold one included).

Usage:
    python benchmarks/ui_speed.py [--runs 3] [--moves 30] [--loads 5] [--paths N]
    python benchmarks/ui_speed.py --during-training --runs 1 --loads 1 --tag cpu_training

Writes ``benchmarks/results/ui_speed_cpu.json`` (raw samples, summary, targets, machine and
load average) and ``ui_speed_cpu.md`` (generated from the JSON; ``--markdown-only``
regenerates it). Needs Panel, Playwright and Chromium (``/usr/bin/chromium`` or
``$SROM_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import html
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "ui"))
sys.path.insert(0, str(ROOT))

from _stats import summarize  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, drag_first_slider, serve_dashboard  # noqa: E402

__all__ = ["serve_dashboard", "TARGETS", "main"]

#: the issue's targets: (measure, statistic, limit); times in ms except the first render
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("first_update_ms", "median", 200.0),
    ("first_update_ms", "p95", 400.0),
    ("full_view_ms", "p95", 1000.0),
    ("first_render_s", "max", 5.0),
)
VIEWPORT = {"width": 1400, "height": 900}
DRAG_PX = 60  # one move: the handle dragged this far, alternately right and left

# Runs before the page's own scripts: polls every animation frame until the QoI figure has
# finite data and its view has finished painting (performance.now() counts from navigation).
FIRST_RENDER_JS = """(() => {
  const rec = window.__sromFirstRender = {t: null};
  const tick = () => {
    const doc = window.Bokeh && window.Bokeh.documents && window.Bokeh.documents[0];
    const source = doc && doc.get_model_by_name('qoi-bands');
    if (source && source.data.mean && Array.from(source.data.mean).some(Number.isFinite)) {
      const fig = Array.from(doc.all_models).find((m) => Array.isArray(m.renderers)
        && m.renderers.some((r) => r.data_source === source));
      const view = fig && window.Bokeh.index.find_one(fig);
      if (view && view.has_finished()) { rec.t = performance.now(); return; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();"""

# Installed once the page is up: records, while armed, the release of the mouse, every change
# of the watched sources and of the status line, every paint of their figures and every
# animation frame.
RECORDER_JS = """() => {
  const doc = window.Bokeh.documents[0];
  const all = Array.from(doc.all_models);
  const R = window.__srom = {armed: false, t0: null, changes: [], paints: [], frames: [],
                             patches: [], watched: []};
  // the first animation frame after a change or a paint (a frame is asked for only then: a
  // loop asking for every frame kept each page's renderer producing 60 frames a second,
  // which with ten pages on two cores took CPU from the server being measured)
  const nextFrame = () => requestAnimationFrame(() => {
    if (R.armed) R.frames.push(performance.now());
  });
  const status = all.find((m) => typeof m.text === 'string'
    && m.text.includes('output times predicted in'));
  R.text = () => (status ? status.text : '');
  for (const name of ['qoi-bands', 'qoi-paths', 'mean-image', 'latent-bands']) {
    const source = doc.get_model_by_name(name);
    if (!source) continue;
    R.watched.push(name);
    source.properties.data.change.connect(() => {
      if (R.armed) { R.changes.push({name, t: performance.now()}); nextFrame(); }
    });
    const fig = all.find((m) => Array.isArray(m.renderers)
      && m.renderers.some((r) => r.data_source === source));
    const view = fig && window.Bokeh.index.find_one(fig);
    if (view && !view.__sromWrapped) {  // one wrapper per figure, named after each source
      view.__sromWrapped = [];
      const paint = view._actual_paint.bind(view);
      view._actual_paint = function () {
        const out = paint();
        const t = performance.now();
        if (R.armed) {
          for (const n of view.__sromWrapped) R.paints.push({name: n, t});
          nextFrame();
        }
        return out;
      };
    }
    if (view) view.__sromWrapped.push(name);
  }
  if (status) status.properties.text.change.connect(() => {
    if (R.armed) R.changes.push({name: 'status', t: performance.now(), text: R.text()});
  });
  // every server message: when it came, how long applying it (and the layout it caused)
  // blocked the page, and what it changed
  const apply = doc.apply_json_patch.bind(doc);
  doc.apply_json_patch = function (patch, buffers) {
    const t = performance.now();
    const out = apply(patch, buffers);
    if (R.armed) {
      const what = new Set((patch.events || []).map((e) => {
        const m = e.model && doc.get_model_by_id(e.model.id);
        const loader = m && (m.css_classes || []).includes('loader');  // a LoadingSpinner
        return `${m ? (loader ? 'LoadingSpinner' : m.type) : '?'}.${e.attr || ''}`;
      }));
      R.patches.push({t, ms: performance.now() - t, what: Array.from(what)});
    }
    return out;
  };
  window.addEventListener('pointerup', () => {
    if (R.armed) R.t0 = performance.now();
  }, true);
  R.arm = () => Object.assign(R, {armed: true, t0: null, changes: [], paints: [], frames: [],
                                   patches: []});
  return {watched: R.watched, status: R.text()};
}"""

SETTLED_JS = """(quiet) => {
  const R = window.__srom;
  if (R.t0 === null) return false;
  if (!R.changes.some((c) => c.name === 'qoi-bands' && c.t > R.t0)) return false;
  if (R.text().includes('preview:')) return false;
  const last = Math.max(R.t0, ...R.changes.map((c) => c.t), ...R.paints.map((p) => p.t));
  return performance.now() - last > quiet;
}"""

RECORD_JS = """() => { const R = window.__srom; R.armed = false;
  return {t0: R.t0, changes: R.changes, paints: R.paints, frames: R.frames, text: R.text(),
          patches: R.patches, watched: R.watched}; }"""

SET_PATHS_JS = """(n) => {
  const doc = window.Bokeh.documents[0];
  const slider = Array.from(doc.all_models).find((m) => m.title === 'Sample paths');
  slider.value = n; slider.value_throttled = n;
}"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- measuring
def first_render(browser, url: str) -> tuple[float, float]:
    """Seconds from navigation start to the painted QoI figure, in a fresh page, and to the
    first byte of the page (the server builds the session's document before it answers)."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.add_init_script(FIRST_RENDER_JS)
        page.goto(url)
        page.wait_for_function("() => window.__sromFirstRender && window.__sromFirstRender.t "
                               "!== null", timeout=120_000)
        return page.evaluate("() => [window.__sromFirstRender.t / 1e3, "
                             "performance.getEntriesByType('navigation')[0].responseStart / 1e3]")
    finally:
        page.close()


def _first_after(times: list[float], t: float) -> float | None:
    return next((u for u in sorted(times) if u > t), None)


def analyse_move(rec: dict) -> dict:
    """Latencies (ms after the release) of one move from the page's record."""
    t0 = rec["t0"]
    frames = rec["frames"]

    def ms(t: float) -> float:  # performance.now() has a 0.1 ms resolution
        return round(t - t0, 1)

    changes = [c for c in rec["changes"] if c["t"] > t0]
    qoi = [c["t"] for c in changes if c["name"] == "qoi-bands"]
    out: dict = {"updates": len(qoi), "data_arrival_ms": ms(qoi[0]), "final_data_ms": ms(qoi[-1])}
    qoi_paints = [p["t"] for p in rec["paints"] if p["name"] == "qoi-bands"]
    painted = _first_after(qoi_paints, qoi[0]) or qoi[0]
    out["first_update_ms"] = ms(_first_after(frames, painted) or painted)
    done = t0
    for name in rec["watched"]:
        mine = [c["t"] for c in changes if c["name"] == name]
        if not mine:
            continue  # this source did not change in this move (e.g. a vector state)
        paints = [p["t"] for p in rec["paints"] if p["name"] == name]
        done = max(done, _first_after(paints, mine[-1]) or mine[-1])
    out["full_view_ms"] = ms(_first_after(frames, done) or done)
    texts = [c["text"] for c in changes if c["name"] == "status"] or [rec["text"]]
    out["previews"] = sum("preview:" in t for t in texts)
    status = _plain(rec["text"])
    found = re.search(r"predicted in (\d+) ms", status)
    out["server_predict_ms"] = float(found.group(1)) if found else None
    out["status"] = status
    # the page's main thread: server messages applied after the release, the longest one
    patches = [x for x in rec["patches"] if x["t"] > t0]
    out["browser_apply_ms"] = round(sum(x["ms"] for x in patches), 1)
    longest = max(patches, key=lambda x: x["ms"], default=None)
    out["longest_apply"] = ({"ms": round(longest["ms"], 1), "at_ms": ms(longest["t"]),
                             "changes": longest["what"]} if longest else None)
    return out


def _plain(text: str) -> str:
    """The words of an (escaped) HTML snippet."""
    return re.sub(r"<[^>]+>", "", html.unescape(html.unescape(text))).strip()


TRAIN_STEPS_JS = """(n) => { const m = Array.from(window.Bokeh.documents[0].all_models)
  .find((x) => x.title === 'Training steps'); m.value = n; }"""
TRAIN_PROGRESS_JS = "(e) => e.value"


def allow_long_trainings(steps: int = 10**6) -> None:
    """Let the servers started from here accept the long training of
    :func:`training_elsewhere` (the dashboard's default cap is lower)."""
    os.environ["SROM_MAX_TRAINING_STEPS"] = str(max(steps, int(os.environ.get(
        "SROM_MAX_TRAINING_STEPS", "0") or 0)))


@contextlib.contextmanager
def training_elsewhere(browser, url: str, steps: int = 10**6):
    """A training running in another session (another page) meanwhile: the Train tab's
    defaults with ``steps`` steps, started with its Start button and stopped on exit. The
    server must allow that many (``SROM_MAX_TRAINING_STEPS``, set by :func:`allow_long_trainings`)."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.locator(".bk-tab", has_text="Train").first.click(timeout=120_000)
        page.locator("button", has_text="Start").first.wait_for(timeout=60_000)
        page.evaluate(TRAIN_STEPS_JS, steps)
        page.wait_for_timeout(300)  # the new step count reaches the server
        page.locator("button", has_text="Start").first.click()
        bar = page.locator("progress.srom-train-progress").first
        deadline = time.monotonic() + 120
        while not (bar.evaluate(TRAIN_PROGRESS_JS) or 0) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the training in the other session did not start")
            page.wait_for_timeout(200)
        log("a training runs in another session")
        yield
        page.locator("button", has_text="Stop").first.click()
        page.get_by_text("stopped at step").first.wait_for(timeout=60_000)
        log(f"the other session's training stopped at step {bar.evaluate(TRAIN_PROGRESS_JS)}")
    finally:
        page.close()


def slider_moves(browser, url: str, moves: int, warmup: int, quiet_ms: float,
                 paths: int | None, think_s: float = 0.0,
                 seed: int = 0) -> tuple[list[dict], dict]:
    """Drag the first μ slider ``warmup + moves`` times; the measured moves' latencies.
    ``think_s``: after each move has settled, wait a random 0.5-1.5 × this long (a user
    looking at the result) before the next one."""
    import random

    pace = random.Random(seed)
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_navigation_timeout(120_000)  # many pages opening at once on 2 cores
    try:
        page.goto(url)
        page.wait_for_function("() => { const d = window.Bokeh && window.Bokeh.documents[0]; "
                               "const m = d && d.get_model_by_name('qoi-bands'); "
                               "return m && m.data.mean.length > 1; }", timeout=120_000)
        info = page.evaluate(RECORDER_JS)
        if paths is not None:
            page.evaluate(SET_PATHS_JS, paths)
            page.wait_for_function(f"() => window.__srom.text().includes('{paths} paths ×') "
                                   "&& !window.__srom.text().includes('preview')",
                                   timeout=60_000)
        page.wait_for_timeout(500)
        samples = []
        for i in range(warmup + moves):
            page.evaluate("() => window.__srom.arm()")
            drag_first_slider(page, DRAG_PX if i % 2 == 0 else -DRAG_PX)
            page.wait_for_function(SETTLED_JS, arg=quiet_ms, polling=50, timeout=60_000)
            sample = analyse_move(page.evaluate(RECORD_JS))
            sample["load_1min"] = os.getloadavg()[0]
            if think_s > 0:
                page.wait_for_timeout(1e3 * think_s * pace.uniform(0.5, 1.5))
            if i >= warmup:
                samples.append(sample)
                log(f"move {i - warmup + 1}/{moves}: first update "
                    f"{sample['first_update_ms']:.0f} ms, full view "
                    f"{sample['full_view_ms']:.0f} ms ({sample['status']})")
        return samples, info
    finally:
        page.close()


# ---------------------------------------------------------------------- reporting
def judge(summary: dict) -> list[dict]:
    """Each target with the measured value, whether it is met and by how much."""
    out = []
    for measure, stat, limit in TARGETS:
        value = summary[measure][stat]
        out.append({"measure": measure, "statistic": stat, "target": limit, "value": value,
                     "met": bool(value <= limit), "margin": limit - value,
                     "ratio": value / limit})
    return out


def machine_info(browser_version: str) -> dict:
    from importlib import metadata

    import bokeh
    import panel
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "panel": panel.__version__, "bokeh": bokeh.__version__,
            "playwright": metadata.version("playwright"), "chromium": browser_version}


ROWS = {"first_update_ms": "slider release → first visible update",
        "full_view_ms": "slider release → full view (all paths, bands, maps)",
        "data_arrival_ms": "slider release → new data applied in the page",
        "server_predict_ms": "server: the prediction (status line)",
        "browser_apply_ms": "page: applying the server's messages of a move (with layout)",
        "first_render_s": "first render (navigation → painted QoI), all loads",
        "first_render_warm_s": "first render, the loads after the first",
        "first_byte_s": "first byte of the page (the server builds the session), all loads"}
TARGET_NAMES = {"first_update_ms": "first visible update", "full_view_ms": "full view",
                "first_render_s": "first render"}


def _fmt(value: float, unit: str) -> str:
    return f"{value:.2f} s" if unit == "s" else f"{value:.0f} ms"


def markdown(result: dict) -> str:
    """The Markdown report of a result dict (as written to the JSON)."""
    m, cfg, s = result["machine"], result["config"], result["summary"]
    load = result["load_average"]
    preview_frames = (f" decoded at ≤ {cfg['preview_frames']} output times"
                      if cfg.get("preview_frames") else "")
    lines = [
        "# Dashboard speed in the browser (CPU)"
        + (", while another session trains" if cfg.get("during_training") else ""), "",
        f"`python benchmarks/ui_speed.py` on {m['cpu_count']} cores ({m['cpu']}), server and "
        f"headless Chromium {m['chromium']} on the same machine; Panel {m['panel']}, Bokeh "
        f"{m['bokeh']}, torch {m['torch']}, `SROM_TORCH_THREADS=1`. Model "
        f"`{cfg['model']}`, {cfg['n_paths']} sample paths (preview with "
        f"{cfg['preview_paths']} paths{preview_frames} when there are at least 3× as many"
        + (f" and the last full prediction took more than {cfg['preview_above_ms']:.0f} ms; "
           "the preview refreshes the probe curve, the full prediction every figure"
           if "preview_above_ms" in cfg else "") + "), viewport "
        f"{cfg['viewport']['width']}×{cfg['viewport']['height']}, "
        + (f"{cfg['runs']} runs (a fresh server each) of " if cfg.get("runs", 1) > 1 else "")
        + f"{cfg['moves']} slider moves after {cfg['warmup']} warm-up moves, {cfg['loads']} "
        f"page loads. {result['date']}."
        + (" During the moves another session trained a model (the Train tab's defaults, "
           "10⁶ steps; one training at a time, on the server's worker thread); the page "
           "loads were measured before it started."
           if cfg.get("during_training") else ""), "",
        f"Load average (1/5/15 min) at the start {'/'.join(f'{v:.2f}' for v in load['start'])}, "
        f"at the end {'/'.join(f'{v:.2f}' for v in load['end'])}; 1-min load during the moves "
        f"median {load['moves_1min_median']:.2f}.", "",
        "| measure | median | p95 | max | n |", "|---|---|---|---|---|"]
    for key, label in ROWS.items():
        if key not in s:
            continue
        unit = "s" if key.endswith("_s") else "ms"
        v = s[key]
        lines.append(f"| {label} | {_fmt(v['median'], unit)} | {_fmt(v['p95'], unit)} | "
                     f"{_fmt(v['max'], unit)} | {v['n']} |")
    if len(result.get("runs", [])) > 1:
        lines += ["", "The medians of each run (the summary above pools all moves; this machine's "
                  "timing drifts from run to run more than from move to move):", "",
                  "| run | first visible update | full view | data applied | 1-min load |",
                  "|---|---|---|---|---|"]
        for i, run in enumerate(result["runs"]):
            lines.append(f"| {i + 1} | {run['first_update_ms']:.0f} ms | "
                         f"{run['full_view_ms']:.0f} ms | {run['data_arrival_ms']:.0f} ms | "
                         f"{run['load_1min']:.2f} |")
    cold = result["first_render_s"]["cold"]
    lines += ["", f"The first load of the fresh server (its first session imports torch and the "
              f"app) rendered in {cold:.2f} s.", "",
              "| target | measured | verdict |", "|---|---|---|"]
    for t in result["targets"]:
        unit = "s" if t["measure"].endswith("_s") else "ms"
        verdict = (f"met, {_fmt(t['margin'], unit)} to spare" if t["met"]
                   else f"**missed** by {_fmt(-t['margin'], unit)} ({t['ratio']:.2f}× the target)")
        lines.append(f"| {TARGET_NAMES[t['measure']]}: {t['statistic']} ≤ "
                     f"{_fmt(t['target'], unit)} | {_fmt(t['value'], unit)} | {verdict} |")
    moves = result["moves"]
    previews = sum(x["previews"] > 0 for x in moves)
    lines += ["", f"{previews} of {len(moves)} moves showed a preview before the full view. "
              "Times are measured in the page with `performance.now()`, from the `pointerup` "
              "that releases the slider to the first animation frame after the figure painted "
              "the new data, so they include the websocket round trips, the server's prediction "
              "and the render."]
    # which server message blocked the page longest in each move (a layout pass, usually)
    groups: dict[tuple, list[float]] = {}
    for x in moves:
        if x.get("longest_apply"):
            groups.setdefault(tuple(x["longest_apply"]["changes"]), []).append(
                x["longest_apply"]["ms"])
    if groups:
        lines += ["", "The server message that blocked the page longest in a move (applying it "
                  "and the layout it triggered):", "", "| message changes | moves | median |",
                  "|---|---|---|"]
        for what, ms in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"| {', '.join(f'`{w}`' for w in what)} | {len(ms)} | "
                         f"{float(np.median(ms)):.0f} ms |")
    return "\n".join(lines) + "\n"


def write(result: dict, tag: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ui_speed_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"ui_speed_{tag}.md").write_text(markdown(result))


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=30, help="measured slider moves (30)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured first moves (2)")
    parser.add_argument("--loads", type=int, default=5, help="page loads for the first render (5)")
    parser.add_argument("--runs", type=int, default=3,
                        help="fresh servers, each with --moves moves (3); pooled in the summary")
    parser.add_argument("--quiet", type=float, default=300.0,
                        help="ms without any change that end a move (300)")
    parser.add_argument("--paths", type=int, default=None,
                        help="set the Sample paths slider first (default: the app's default)")
    parser.add_argument("--during-training", action="store_true",
                        help="measure the moves while another session trains a model (the "
                             "Train tab's defaults); use with --tag cpu_training")
    parser.add_argument("--tag", default="cpu", help="results file suffix (cpu)")
    parser.add_argument("--markdown-only", action="store_true",
                        help="regenerate the .md from the existing .json")
    args = parser.parse_args()
    if args.markdown_only:
        result = json.loads((RESULTS / f"ui_speed_{args.tag}.json").read_text())
        (RESULTS / f"ui_speed_{args.tag}.md").write_text(markdown(result))
        return

    from playwright.sync_api import sync_playwright

    from app.state import catalog
    from app.state.explore import ExploreState

    if args.during_training:
        allow_long_trainings()
    entry = catalog.default_model(catalog.discover_models())
    load_start = os.getloadavg()
    log(f"load average {load_start}")
    renders, ttfb, samples, runs = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for run in range(args.runs):  # a fresh server each run: runs vary more than moves
                with serve_dashboard() as url:
                    for i in range(args.loads if run == 0 else 0):
                        render, first_byte = first_render(browser, url)
                        renders.append(render)
                        ttfb.append(first_byte)
                        log(f"first render {i + 1}/{args.loads}: {render:.2f} s "
                            f"(first byte {first_byte:.2f} s)")
                    meanwhile = (training_elsewhere(browser, url) if args.during_training
                                 else contextlib.nullcontext())
                    with meanwhile:
                        mine, info = slider_moves(browser, url, args.moves, args.warmup,
                                                  args.quiet, args.paths)
                for x in mine:
                    x["run"] = run
                samples += mine
                runs.append({k: summarize([x[k] for x in mine])["median"]
                             for k in ("first_update_ms", "full_view_ms", "data_arrival_ms")}
                            | {"load_1min": float(np.median([x["load_1min"] for x in mine]))})
                log(f"run {run + 1}/{args.runs}: median first update "
                    f"{runs[-1]['first_update_ms']:.0f} ms")
            machine = machine_info(browser.version)
        finally:
            browser.close()
    load_end = os.getloadavg()
    defaults = ExploreState.param
    summary = {k: summarize([x[k] for x in samples])
               for k in ("first_update_ms", "full_view_ms", "data_arrival_ms", "browser_apply_ms")}
    predict = [x["server_predict_ms"] for x in samples if x["server_predict_ms"] is not None]
    if predict:
        summary["server_predict_ms"] = summarize(predict)
    summary["first_render_s"] = summarize(renders)
    if len(renders) > 1:
        summary["first_render_warm_s"] = summarize(renders[1:])
    summary["first_byte_s"] = summarize(ttfb)
    result = {
        "benchmark": "dashboard: first render and slider-to-pixels in headless Chromium",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine,
        "load_average": {"start": list(load_start), "end": list(load_end),
                         "moves_1min_median": float(np.median([x["load_1min"] for x in samples]))},
        "config": {"model": os.path.relpath(entry.path, ROOT) if entry else None,
                   "n_paths": args.paths or defaults.n_paths.default,
                   "preview_paths": defaults.preview_paths.default,
                   "preview_frames": defaults.preview_frames.default,
                   "preview_above_ms": defaults.preview_above_ms.default, "runs": args.runs,
                   "during_training": bool(args.during_training),
                   "moves": args.moves,
                   "warmup": args.warmup, "loads": args.loads, "quiet_ms": args.quiet,
                   "drag_px": DRAG_PX, "viewport": VIEWPORT, "watched_sources": info["watched"],
                   "torch_threads": 1},
        "first_render_s": {"samples": renders, "cold": renders[0], "first_byte": ttfb},
        "moves": samples,
        "runs": runs,
        "summary": summary,
        "targets": judge(summary),
    }
    write(result, args.tag)
    print(markdown(result))


if __name__ == "__main__":
    main()
