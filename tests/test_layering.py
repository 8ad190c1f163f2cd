"""The engine is GUI-free: importing every engine module loads no dashboard library and
nothing from ``app`` (``engine.plotting``, the notebook plots, is the one module allowed
HoloViews, and only when its functions are called)."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

GUI = ("panel", "bokeh", "holoviews", "app")


def test_engine_modules_import_no_gui_library():
    names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))
    assert "engine.model" in names and "engine.plotting" in names
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(engine.__file__).resolve().parents[1])
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
