"""Closed dashboard sessions leave nothing behind (issue 15: a served dashboard grew by
~3.4 MB per closed session, ``benchmarks/ui_load.py --soak``).

The dashboard is served in this process with short unused-session timeouts; a few plain
HTTP requests each build a whole session (page, widgets, figures, first prediction), which
the server discards once it has gone unused. Then every session state, view and Bokeh
document those sessions made must be garbage, and Panel's process-wide jscallback registry
must hold none of their widgets. No browser: the page is built on the server either way.
"""

from __future__ import annotations

import gc
import sys
import time
import urllib.request
import weakref
from pathlib import Path

import pytest

pn = pytest.importorskip("panel")
sys.path.insert(0, str(Path(__file__).resolve().parent / "ui"))

from browser import free_port, wait_for_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 3


@pytest.fixture
def tracked(monkeypatch):
    """A ``WeakSet`` that receives every Explore, Sensitivity and Train view built from now
    on in a served session (every tab opened at once), their states and the session's Bokeh
    document; and a list of the names of those views, to count them. An Explore view's
    first prediction runs in the background (the page is sent before it lands)."""
    from app.views.explore import ExploreView
    from app.views.sensitivity import SensitivityView
    from app.views.training import TrainingView

    made, names = weakref.WeakSet(), []
    for cls in (ExploreView, SensitivityView, TrainingView):
        def init(self, *args, _original=cls.__init__, **kwargs):
            _original(self, *args, **kwargs)
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:
                made.update([self, self.state, doc])
                names.append(type(self).__name__)
                if isinstance(self, ExploreView):  # predicting in the background
                    assert self.state.background and self.state.error == ""
        monkeypatch.setattr(cls, "__init__", init)
    # every tab opened, as by a user (the served script imports lazy_tabs for each session)
    import app.views.lazy_tabs as lazy

    def opened(*args, _original=lazy.lazy_tabs, **kwargs):
        tabs = _original(*args, **kwargs)
        for index in range(1, len(tabs)):
            tabs.open_tab(index)
        return tabs
    monkeypatch.setattr(lazy, "lazy_tabs", opened)
    return made, names


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The dashboard served in this process; yields its URL."""
    import torch

    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path))  # the pretrained models only
    threads = torch.get_num_threads()  # the app sets $SROM_TORCH_THREADS for the process
    port = free_port()
    server = pn.serve({"main": str(ROOT / "app" / "main.py")}, port=port, address="127.0.0.1",
                      websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False,
                      check_unused_sessions_milliseconds=100,
                      unused_session_lifetime_milliseconds=100)
    try:
        assert wait_for_server(port, 60), "the in-process server did not start"
        yield f"http://127.0.0.1:{port}/main"
    finally:
        server.stop()
        server.join(10)
        torch.set_num_threads(threads)


def test_closed_sessions_are_garbage_collected(served, tracked):
    from panel.links import Callback

    made, names = tracked
    before = set(map(id, Callback.registry.keys()))
    for _ in range(SESSIONS):
        with urllib.request.urlopen(served, timeout=120) as response:
            assert response.status == 200 and "docs_json" in response.read().decode()
    assert sorted(names) == sorted(["ExploreView", "SensitivityView", "TrainingView"] * SESSIONS)

    # the server discards an unused session within ~0.2 s; the objects must then be garbage
    left = _released(made, 15)
    assert left == [], f"closed sessions left {left} alive"
    kept = [type(k).__name__ for k in Callback.registry.keys() if id(k) not in before]
    assert kept == [], f"Panel's jscallback registry still holds {kept}"


def _released(made, deadline_s: float) -> list[str]:
    """The names of the objects in ``made`` still alive after up to ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        gc.collect()
        left = sorted(type(o).__name__ for o in made)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.3)


def test_a_slow_first_prediction_neither_holds_the_page_nor_a_closed_session(
        served, tracked, monkeypatch):
    """A URL naming a cylinder model: the page comes back while the first prediction runs
    (its preview alone takes ~6 s on a 2-core CPU, the full one ~30 s); once the session is
    closed, that prediction is cancelled, not finished, and the session's objects are
    released, with no entry left in the shared scheduler."""
    from app.state import explore
    from app.state.scheduler import get_scheduler
    from engine.cancellation import PredictionCancelled

    outcomes: list[str] = []

    def spy(*args, _original=explore.predict_request, **kwargs):
        try:
            out = _original(*args, **kwargs)
        except PredictionCancelled:
            outcomes.append("cancelled")
            raise
        outcomes.append("done")
        return out

    monkeypatch.setattr(explore, "predict_request", spy)
    made, names = tracked
    states = []
    with urllib.request.urlopen(served + "?model=cylinder_paper_d7&paths=48",
                                timeout=120) as response:
        assert response.status == 200 and "docs_json" in response.read().decode()
        states = [o for o in made if type(o).__name__ == "ExploreState"]
    assert len(states) == 1 and states[0].model.system_ == "cylinder"
    state = states[0]
    # the page was served before the full prediction (at most the quick preview is there)
    assert state.result is None or state.result.preview
    predicted = state.worker.busy
    del states, state
    left = _released(made, 15)  # the server drops the unused session within ~0.2 s
    assert left == [], f"a closed session left {left} alive (predicting when served: {predicted})"
    assert "done" not in outcomes, outcomes  # stopped (or dropped before it started)
    scheduler = get_scheduler()
    with scheduler.cond:
        assert not scheduler._ready and not scheduler._running_keys


def test_a_model_switch_releases_the_old_sliders(tmp_path, monkeypatch):
    from panel.links import Callback

    from app.state import catalog
    from app.state.explore import ExploreState
    from app.views.controls import release_js_callbacks
    from app.views.explore import ExploreView

    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path))  # the pretrained models only
    entries = catalog.discover_models()
    burgers, oscillator = (next(e.path for e in entries if e.system == name
                                and e.source == "pretrained") for name in ("burgers", "oscillator"))
    view = ExploreView(state=ExploreState(models=entries, model_path=burgers, n_paths=16),
                       background=False)
    old = [w for w in view.controls.select() if w in Callback.registry]
    assert len(old) >= 2  # the horizon and ν at least: editable sliders
    view.state.model_path = oscillator
    assert view.state.error == "" and view.state.result is not None
    horizon = set(map(id, view._horizon.select()))  # the one editable slider kept
    new = [w for w in view.controls.select() if w in Callback.registry]
    assert not any(w in Callback.registry for w in old if id(w) not in horizon)
    assert len(new) > sum(id(w) in horizon for w in new)  # the oscillator's own sliders
    assert release_js_callbacks(view.controls) == len(new)
    assert not any(w in Callback.registry for w in view.controls.select())
