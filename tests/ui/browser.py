"""Shared set-up of the browser tests: Debian's Chromium driven by Playwright.

Without Chromium, Panel or Playwright the browser tests skip with the reason, unless
``SROM_REQUIRE_UI=1`` (set by ``.ci/run`` once Chromium is installed), where a missing piece
is a failure. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SROM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REQUIRED = os.environ.get("SROM_REQUIRE_UI") == "1"


def playwright_sync_api():
    """Playwright's sync API, or a module-level skip (a failure when ``REQUIRED``)."""
    if REQUIRED:
        import panel  # noqa: F401
        from playwright import sync_api

        assert Path(CHROMIUM).exists(), f"SROM_REQUIRE_UI=1 but there is no Chromium at {CHROMIUM}"
        return sync_api
    pytest.importorskip("panel", reason="the dashboard needs Panel")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="browser tests need Playwright (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    return sync_api


def free_port() -> int:
    """A TCP port free on localhost now (for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
