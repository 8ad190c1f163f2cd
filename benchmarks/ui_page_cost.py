"""What one new dashboard session costs the server, in-process (issue 15, load).

Each new page is built on the server's event loop, which every open session shares: while
it is built, no other session's slider move is answered. This script builds ``--sessions``
pages the way the server does (:func:`app.main.build_page` into a fresh Bokeh document,
the default URL: the default model and its first prediction) after ``--warmup`` pages not
counted (imports, model load, caches), and reports per page:

* ``create_s``: :func:`app.main.create_app` (the session's state, its first prediction and
  the Panel objects of the page);
* ``attach_s``: turning them into Bokeh models in the document (the rest of
  :func:`~app.main.build_page`);
* ``serialize_s`` and ``doc_kb``: the server's reply to the new page's request for its
  document (``PULL-DOC-REPLY``: the document's JSON and its binary buffers) and its size;
* ``models``: the number of Bokeh models in the document (each is created, indexed,
  serialized and rendered by the browser).

No server and no browser: the document has no session context, so the URL binding of a
served session is left out (a few models). Times are wall-clock on a shared machine: the
load average is recorded beside them; compare figures of one run, or runs at similar load.

Usage:
    python benchmarks/ui_page_cost.py --tag before   # then, after a change:
    python benchmarks/ui_page_cost.py --tag after

Writes (merging the tags) ``benchmarks/results/ui_page_cost_cpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

os.environ.setdefault("SROM_DEVICE", "cpu")

from bokeh.core.types import ID  # noqa: E402
from bokeh.document import Document  # noqa: E402
from bokeh.protocol import Protocol  # noqa: E402
from panel.io.state import set_curdoc  # noqa: E402

import app.main as main  # noqa: E402

FIELDS = ("create_s", "attach_s", "page_s", "serialize_s", "doc_kb", "models", "move_events",
          "move_kb")


def page_cost() -> dict[str, float]:
    """Build one page into a fresh document and measure it (see the module docstring)."""
    created: list[float] = []
    create_app = main.create_app

    def timed_create_app(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return create_app(*args, **kwargs)
        finally:
            created.append(time.perf_counter() - start)

    doc = Document()
    main.create_app = timed_create_app  # build_page looks it up in the module
    try:
        with set_curdoc(doc):
            start = time.perf_counter()
            page: Any = main.build_page(doc)
            page_s = time.perf_counter() - start
    finally:
        main.create_app = create_app
    start = time.perf_counter()  # the server's reply to a new page's document request
    reply = Protocol().create("PULL-DOC-REPLY", ID("0"), doc)
    serialize_s = time.perf_counter() - start
    events, move_kb = move_payload(doc, page.explore_view)
    return {"create_s": created[0], "attach_s": page_s - created[0], "page_s": page_s,
            "serialize_s": serialize_s, "doc_kb": _size(reply) / 1024,
            "models": float(len(doc.models)), "move_events": float(events), "move_kb": move_kb}


def _size(message: Any) -> int:
    """Bytes of a Bokeh protocol message's content and binary buffers."""
    return len(message.content_json.encode()) + sum(len(b.data) for b in message.buffers)


def move_payload(doc: Document, view: Any) -> tuple[int, float]:
    """What the page is sent when the first μ moves (to 60 % of its trained range): the Explore figures refreshed with the new full prediction (made in this
    thread; a preview, when the server makes one, comes before it). Returns the number of
    document change events and their size as one ``PATCH-DOC`` message (kB)."""
    state = view.state
    spec = state.mu_specs[0]
    low, high = spec.trained
    value = low + 0.6 * (high - low)
    # every change event, also those a hold collects (outside a session Panel's hold drops
    # them: a new page gets the whole document); the last one per model and property is
    # sent, as a served session's hold ("combine") does
    events: dict[tuple, Any] = {}
    callbacks = doc.callbacks
    trigger = callbacks.trigger_on_change

    def record(event: Any) -> None:
        model = getattr(event, "model", None)
        key = (type(event).__name__, getattr(model, "id", None), getattr(event, "attr", None))
        events.pop(key, None)
        events[key] = event
        trigger(event)

    state.background = False
    callbacks.trigger_on_change = record  # type: ignore[method-assign]
    try:
        with set_curdoc(doc):
            state.set_mu(spec.name, value)
    finally:
        del callbacks.trigger_on_change
    if not events or state.error:
        raise RuntimeError(f"the μ move changed nothing on the page: {state.error!r}")
    return len(events), _size(Protocol().create("PATCH-DOC", list(events.values()))) / 1024


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(sessions: int, warmup: int) -> dict:
    """``sessions`` pages after ``warmup`` uncounted ones: every page's figures, their
    medians, and the load average (1 min) before and after."""
    load_before = os.getloadavg()[0]
    for _ in range(warmup):
        page_cost()
    pages = [page_cost() for _ in range(sessions)]
    return {"pages": pages,
            "median": {k: float(np.median([p[k] for p in pages])) for k in FIELDS},
            "min": {k: float(np.min([p[k] for p in pages])) for k in FIELDS},
            "load_1min": [load_before, os.getloadavg()[0]],
            "commit": _commit(), "when": time.strftime("%Y-%m-%d %H:%M"),
            "sessions": sessions, "warmup": warmup}


def markdown(runs: dict[str, dict]) -> str:
    """The report of every tagged run."""
    lines = ["# What one new session costs the server (in-process)", "",
             f"Generated by `python benchmarks/ui_page_cost.py --tag TAG` ({platform.machine()}, "
             f"{os.cpu_count()} CPUs); do not edit. Each run builds pages as the server does "
             "(`app.main.build_page` into a fresh Bokeh document, default URL) after uncounted "
             "warm-up pages; median (min) per page. `create`: `create_app` (state, first "
             "prediction, Panel objects); `attach`: the Bokeh models in the document; "
             "`serialize`: the reply to the page's document request (`PULL-DOC-REPLY`) and its size; `μ move`: what the page is sent when the first μ moves (the figures refreshed with the new full prediction: change events and their `PATCH-DOC` size). Wall-clock on a "
             "shared 2-core machine (other users' work included): see the load column.", "",
             "| tag | commit | pages | create (s) | attach (s) | page total (s) | serialize (s) "
             "| document (kB) | Bokeh models | μ move: events / kB | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, run in runs.items():
        med, low = run["median"], run["min"]

        def cell(key: str, med: dict = med, low: dict = low) -> str:
            return f"{med[key]:.2f} ({low[key]:.2f})"

        load = "–".join(f"{v:.1f}" for v in run["load_1min"])
        lines.append(f"| {tag} | {run['commit']} | {run['sessions']} | {cell('create_s')} | "
                     f"{cell('attach_s')} | {cell('page_s')} | {cell('serialize_s')} | "
                     f"{med['doc_kb']:.0f} | {med['models']:.0f} | "
                     f"{med['move_events']:.0f} / {med['move_kb']:.1f} | {load} |")
    return "\n".join(lines) + "\n"


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default="current", help="name of this run in the report")
    parser.add_argument("--sessions", type=int, default=8, help="pages measured")
    parser.add_argument("--warmup", type=int, default=2, help="pages built first, not counted")
    args = parser.parse_args()
    if not (1 <= args.sessions <= 100 and 0 <= args.warmup <= 20):
        parser.error("--sessions must be 1-100 and --warmup 0-20")
    path = RESULTS / "ui_page_cost_cpu.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[args.tag] = measure(args.sessions, args.warmup)
    path.write_text(json.dumps(runs, indent=1) + "\n")
    (RESULTS / "ui_page_cost_cpu.md").write_text(markdown(runs))
    print(markdown(runs))


if __name__ == "__main__":
    main_cli()
