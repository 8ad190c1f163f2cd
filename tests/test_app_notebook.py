"""The dashboard in a notebook (issue 17): docs/dashboard_in_jupyter.ipynb runs top to bottom
in a fresh Jupyter kernel, with no ``panel serve``. Its Train-tab cell completes a training
whose status only changes through the tab's periodic poll (so the poll runs on the kernel's
event loop), and its Explore cell gets a background prediction back. Two more cells, added
here, check that the poll is a running periodic callback and that predictions are applied on
the kernel's main thread (where the comm to the page lives), not on a worker thread.

Skipped without nbclient, nbformat and ipykernel (like tests/test_notebook.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "dashboard_in_jupyter.ipynb"
CELL_TIMEOUT = 300

CHECKS = """import threading
periodic = dashboard.train._periodic
assert periodic is not None and periodic.running, periodic
applied = []
state.param.watch(lambda event: applied.append(threading.get_ident()), "result")
state.seed = state.seed + 1
while state.busy or not applied:
    await asyncio.sleep(0.05)
assert set(applied) == {threading.main_thread().ident}, (applied, threading.main_thread().ident)
print("checked", len(applied))"""


def _tools():
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as exc:
        pytest.skip(f"executing notebooks needs nbclient, nbformat and ipykernel: {exc}")
    pytest.importorskip("panel")
    return nbclient, nbformat


def test_the_notebook_is_committed_without_outputs():
    _, nbformat = _tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        assert not cell.outputs and cell.execution_count is None, f"code cell {k} has outputs"


def test_the_dashboard_runs_and_updates_in_a_kernel(tmp_path, monkeypatch):
    nbclient, nbformat = _tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + path if path else ""))
    for name, folder in (("SROM_CACHE_DIR", "cache"), ("SROM_MODELS_DIR", "models"),
                         ("SROM_JOBS_DIR", "jobs")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("SROM_TORCH_THREADS", "1")
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{NOTEBOOK.name} failed:\n{exc}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    for k, cell in enumerate(code):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell {k} raised {errors[0].ename}: {errors[0].evalue}"
    printed = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
               for c in code]
    assert printed[1].startswith("completed 40 steps"), printed[1]
    assert printed[-1].startswith("checked"), printed[-1]
    # the dashboard itself was rendered for the page (a Panel/Bokeh view, not only text)
    shown = [o for o in code[0].outputs if o.output_type in ("display_data", "execute_result")]
    assert shown and any("application/vnd.holoviews_exec.v0+json" in o.get("data", {})
                         or "text/html" in o.get("data", {}) for o in shown), shown
