"""docs/api_tour.ipynb runs top to bottom without errors, in a fresh kernel of this Python.

The notebook is executed with nbclient in a temporary working directory (it writes only
there), with a time limit per cell; the kernel is ``python3``, which jupyter_client starts
with the interpreter running the tests (ipykernel installed beside it). The notebook
asserts its own results (a dataset round trip, a config round trip, a reloaded model that
predicts the same mean), so a wrong answer fails here as an error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "api_tour.ipynb"
#: seconds one cell may take (training is the longest: well under a minute on 2 cores)
CELL_TIMEOUT = 300


def _notebook_tools():
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as exc:
        pytest.skip(f"executing notebooks needs nbclient, nbformat and ipykernel "
                    f"(pip install -e '.[test]'): {exc}")
    return nbclient, nbformat


def test_notebook_is_committed_without_outputs():
    _, nbformat = _notebook_tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for k, cell in enumerate(code):
        assert not cell.outputs and cell.execution_count is None, (
            f"code cell {k} of {NOTEBOOK.name} was committed with outputs; clear them")


def test_api_tour_notebook_executes_without_errors(tmp_path, monkeypatch):
    nbclient, nbformat = _notebook_tools()
    pytest.importorskip("xarray")
    pytest.importorskip("holoviews")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel is a new process: make the checkout importable there whether or not the
    # package is installed, and keep its caches out of the user's home
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + path if path else ""))
    monkeypatch.setenv("SROM_CACHE_DIR", str(tmp_path / "cache"))
    # one extra cell reports the kernel's interpreter: it must be the one running pytest
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{NOTEBOOK.name} failed:\n{exc}")
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell {k} raised {errors[0].ename}: {errors[0].evalue}"
        assert cell.execution_count is not None, f"cell {k} did not run"
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                      if o.output_type == "stream")
    assert Path(printed.strip()).resolve() == Path(sys.prefix).resolve()
