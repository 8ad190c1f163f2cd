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
    on in a served session (every tab opened at once), their states and the session's Bokeh document; and a list of
    the names of those views, to count them. An Explore view has its first prediction by
    the end of its constructor."""
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
                if isinstance(self, ExploreView):  # its first prediction is drawn
                    assert self.state.result is not None and self.state.error == ""
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
    deadline = time.monotonic() + 15
    while True:
        gc.collect()
        left = sorted(type(o).__name__ for o in made)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert left == [], f"closed sessions left {left} alive"
    kept = [type(k).__name__ for k in Callback.registry.keys() if id(k) not in before]
    assert kept == [], f"Panel's jscallback registry still holds {kept}"


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
