"""The layers stay apart: importing every engine module loads no dashboard library and
nothing from ``app`` (``engine.plotting``, the notebook plots, is the one module allowed
HoloViews, and only when its functions are called); importing every module of the
dashboard's session state (``app.state``) loads no Panel, Bokeh or HoloViews and no view."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import app.state
import engine

GUI = ("panel", "bokeh", "holoviews", "app")


def _loaded_after_import(names: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules whose name starts with one of ``prefixes`` (a dotted prefix or a top-level
    package) that a fresh interpreter holds after importing every module in ``names``."""
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            f"prefixes = {prefixes!r}\n"
            "print(json.dumps(sorted(m for m in sys.modules\n"
            "                        if any(m == p or m.startswith(p + '.') for p in prefixes))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(engine.__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_engine_modules_import_no_gui_library():
    names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))
    assert "engine.model" in names and "engine.plotting" in names
    assert _loaded_after_import(names, GUI) == []


def test_session_state_imports_no_panel_bokeh_or_view():
    names = sorted(m.name for m in pkgutil.walk_packages(app.state.__path__, "app.state."))
    assert {"app.state.explore", "app.state.training", "app.state.url_state"} <= set(names)
    assert _loaded_after_import(names, ("panel", "bokeh", "holoviews", "app.views")) == []
