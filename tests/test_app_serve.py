"""``panel serve app/main.py`` smoke test, without a browser: the page is served with the
dashboard's title, its Bokeh session is built, and the server log has no error."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("panel")
sys.path.insert(0, str(Path(__file__).resolve().parent / "ui"))

from browser import serve_dashboard  # noqa: E402
from test_app_state import tiny_model_dir  # noqa: E402,F401 - shared fixture


def test_panel_serve_serves_the_dashboard(tiny_model_dir, tmp_path):  # noqa: F811
    log = tmp_path / "serve.log"
    with serve_dashboard(tiny_model_dir, log_path=log) as url:
        with urllib.request.urlopen(url, timeout=120) as response:
            assert response.status == 200
            page = response.read().decode()
    from app.main import TITLE

    assert f"<title>{TITLE}</title>" in page
    assert "bokeh" in page.lower() and "docs_json" in page  # the session's document is in it
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text and "failed to start" not in text, \
        text[-3000:]
