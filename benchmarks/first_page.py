"""Time from a request for a shared URL to the served page and to its first plots (CPU).

Issue 17: a URL naming a cylinder model (``?model=cylinder_paper_d7``) held the page until
the model's first prediction had been computed (~50 s on a 2-core CPU). The dashboard is
served in this process (as ``tests/test_app_session_release.py`` does); one GET of the URL
is timed, and then the session's state is watched for its first result (the quick
preview) and its full prediction.

Usage:
    python benchmarks/first_page.py [--model cylinder_paper_d7] [--app app/main.py]

``--app`` serves another copy of the entry point (e.g. an older ``app/main.py`` from git,
to measure the "before"). Writes ``benchmarks/results/first_page_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
import weakref
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "ui"))
RESULTS = ROOT / "benchmarks" / "results"


def measure(app: Path, model: str, timeout: float) -> dict:
    """Seconds from the request to the served page, the first result and the full one."""
    import panel as pn
    from browser import free_port, wait_for_server

    from app.views.explore import ExploreView

    states: weakref.WeakSet = weakref.WeakSet()
    original = ExploreView.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        states.add(self.state)

    ExploreView.__init__ = init  # type: ignore[method-assign]
    port = free_port()
    # sessions kept open (no browser connects): the first prediction is not cancelled
    server = pn.serve({"main": str(app)}, port=port, address="127.0.0.1",
                      websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False,
                      unused_session_lifetime_milliseconds=int(1e9))
    try:
        if not wait_for_server(port, 60):
            raise RuntimeError("the server did not start")
        start = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/main?model={model}",
                                    timeout=600) as response:
            response.read()
        page = time.perf_counter() - start
        state = next(iter(states))
        first = full = None
        while time.perf_counter() - start < timeout:
            result = state.result
            if result is not None and first is None:
                first = time.perf_counter() - start
            if result is not None and not result.preview:
                full = time.perf_counter() - start
                break
            if state.error:
                raise RuntimeError(state.error)
            time.sleep(0.05)
        return {"page_s": page, "first_result_s": first, "full_result_s": full,
                "model": state.model.system_, "n_paths": state.result.n_paths
                if state.result is not None else None}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cylinder_paper_d7")
    parser.add_argument("--app", default=str(ROOT / "app" / "main.py"))
    parser.add_argument("--label", default="after")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    os.environ.setdefault("SROM_MODELS_DIR", tempfile.mkdtemp())  # the pretrained models only
    row = measure(Path(args.app), args.model, args.timeout)
    out = {"command": " ".join(["python", *sys.argv]), "label": args.label, **row,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
           "load_average": os.getloadavg(), "date": datetime.now(UTC).isoformat(
               timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"first_page_{args.label}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    os._exit(0)  # the server's threads


if __name__ == "__main__":
    main()
