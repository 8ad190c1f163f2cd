"""Shared set-up of the browser tests (and of ``benchmarks/ui_speed.py``): the dashboard
served by ``panel serve`` on a free port, and Debian's Chromium driven by Playwright.

Without Chromium, Panel or Playwright the browser tests skip with the reason, unless
``SROM_REQUIRE_UI=1`` (set by ``.ci/run`` once Chromium is installed), where a missing piece
is a failure. Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


LOCAL_URLS = ("http://127.0.0.1", "data:", "blob:")


def watch_page(page, external: list[str], errors: list[str]) -> None:
    """Record on ``page`` every URL it requests outside the local server (``external``) and
    every console error and uncaught exception (``errors``)."""
    page.on("request", lambda r: None if r.url.startswith(LOCAL_URLS) else external.append(r.url))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))


@contextlib.contextmanager
def local_browser(playwright) -> Iterator[tuple[object, list[str], list[str]]]:
    """Headless Chromium, with the lists that :func:`open_page` fills for each page it opens:
    URLs requested outside the local server (the dashboard must work with no internet), and
    console errors and uncaught exceptions."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser, [], []
    finally:
        browser.close()


def open_page(browser, external: list[str], errors: list[str], height: int = 1000,
              width: int = 1400):
    """A page of ``width`` × ``height`` in a new browser context (its own cookies, so its own
    dashboard session), watched by :func:`watch_page`."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    watch_page(page, external, errors)
    return page


@contextlib.contextmanager
def local_page(playwright, height: int, width: int = 1400
               ) -> Iterator[tuple[object, list[str], list[str]]]:
    """One watched page in a fresh headless Chromium (see :func:`local_browser`)."""
    with local_browser(playwright) as (browser, external, errors):
        yield open_page(browser, external, errors, height, width), external, errors


def assert_clean(external: list[str], errors: list[str], log: Path | None = None) -> None:
    """No outside request, no error in the pages and, with the server's ``log``, no
    traceback in it."""
    assert external == [], f"the page fetched outside resources: {external}"
    assert errors == [], f"errors in the page: {errors}"
    if log is not None:
        text = log.read_text()
        faults = [error for error in traceback_errors(text) if not closed_socket(error)]
        assert faults == [], text[-3000:]


#: exceptions that only say a page went away while the server was writing to it (Tornado
#: logs them as "Task exception was never retrieved" when a browser closes mid-update)
CLOSED_SOCKET = ("WebSocketClosedError", "StreamClosedError")


def closed_socket(error: str) -> bool:
    return any(name in error for name in CLOSED_SOCKET)


def traceback_errors(text: str) -> list[str]:
    """The final line (``Type: message``) of every Python traceback in a log."""
    errors, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" not in line:
            continue
        j = i + 1
        while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
            j += 1
        errors.append(lines[j] if j < len(lines) else "(truncated traceback)")
    return errors


# The probe curve's mean as the page shows it now (null before the first plot), looked up
# through the page's roots: after a model switch the old figures stay in Bokeh's model index
# (where ``get_model_by_name`` then finds two) until it is recomputed, 30 s later.
READ_QOI_MEAN = """() => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  if (!doc) return null;
  for (const root of doc.roots()) {
    for (const model of root.references()) {
      if (model.name === 'qoi-bands') return Array.from(model.data.mean);
    }
  }
  return null;
}"""


#: the page's visible words (its shadow roots included), for a failure's message
PAGE_TEXT = """() => {
  const words = [];
  const visit = (root) => {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const tag = n.parentElement ? n.parentElement.tagName : '';
      if (tag !== 'STYLE' && tag !== 'SCRIPT' && n.textContent.trim()) words.push(n.textContent.trim());
    }
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
  };
  visit(document.body);
  return words.join(' ').slice(0, 1500);
}"""


def wait_for_plot(page, timeout_ms: int = 60_000) -> list[float]:
    """Wait until the probe curve holds data; its mean. On a timeout the failure says what
    the page showed (its status line, an error, "predicting…")."""
    try:
        page.wait_for_function(f"({READ_QOI_MEAN})() !== null && ({READ_QOI_MEAN})().length > 1",
                               timeout=timeout_ms)
    except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError, with the page's words
        try:
            shown = page.evaluate(PAGE_TEXT)
        except Exception as inner:  # noqa: BLE001
            shown = f"(unreadable: {inner})"
        raise AssertionError(f"no plot after {timeout_ms / 1e3:.0f} s; the page showed: "
                             f"{shown}") from exc
    return page.evaluate(READ_QOI_MEAN)


def wait_for_new_plot(page, before: list[float], timeout_ms: int = 60_000) -> list[float]:
    """Wait until the probe curve's mean differs from ``before`` (checked every frame); the
    new mean."""
    page.wait_for_function(
        f"(b) => {{ const now = ({READ_QOI_MEAN})(); return now !== null && (now.length !== "
        "b.length || now.some((v, i) => Math.abs(v - b[i]) > 1e-9)); }",
        arg=before, polling="raf", timeout=timeout_ms)
    return page.evaluate(READ_QOI_MEAN)


# whether one of the words shows anywhere on the page, nested shadow roots included (Bokeh
# nests a shadow root per component: the status line and the busy mark sit a few deep)
TEXT_SHOWN = """(words) => {
  const texts = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      if (el.children.length === 0 && el.tagName !== 'STYLE') texts.push(el.textContent);
    }
  };
  walk(document);
  return words.some((w) => texts.some((t) => t.includes(w)));
}"""

# the Explore tab's busy mark ("⏳ computing…", app.views.controls.BusyLabel) is showing: a
# prediction is pending, or its preview is shown and the full result is still to come.
# (A search of the first shadow level only never saw it, so waits on it returned at once.)
BUSY_SHOWN = f"""() => ({TEXT_SHOWN})(['computing…'])"""


def wait_until_settled(page, timeout_ms: int = 60_000) -> list[float]:
    """Wait until no prediction is pending (a preview has been replaced by its full
    result); the probe curve's mean then."""
    page.wait_for_function(f"() => !({BUSY_SHOWN})()", timeout=timeout_ms)
    return page.evaluate(READ_QOI_MEAN)


def drag_first_slider(page, dx: int) -> None:
    """Drag the first slider handle on the page (the sidebar's first μ) by ``dx`` pixels
    with the mouse and release it, as a user does."""
    box = page.locator(".noUi-handle").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def select_model(select, catalog_label: str) -> str:
    """Pick the model whose picker entry starts with ``catalog_label`` (``"burgers —
    pretrained/burgers"``; the picker appends its accuracy, e.g. ``" · error 1.8 %"``);
    returns the full entry. ``select`` is a Playwright locator of the picker."""
    entries = select.locator("option").all_inner_texts()
    matches = [e for e in entries if e == catalog_label or e.startswith(catalog_label + " ·")]
    assert matches, f"no picker entry starts with {catalog_label!r}: {entries}"
    select.select_option(label=matches[0])
    return matches[0]


def wait_for_server(port: int, timeout: float, alive=lambda: True) -> bool:
    """Wait until a server on ``port`` answers (a static file: asking for the app would open
    a session per try); ``False`` when ``timeout`` passes or ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/static/js/bokeh.min.js", timeout=5)
            return True
        except OSError:
            if not alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def free_port() -> int:
    """A TCP port free on localhost now (for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(models_dir: str | Path | None = None, log_path: Path | None = None,
                    timeout: float = 90.0, processes: list | None = None,
                    extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Serve ``app/main.py`` with ``panel serve`` on a free local port; yields the page URL.

    Args:
        models_dir: the user's models directory (``SROM_MODELS_DIR``); default: an empty
            temporary one, so only ``pretrained/`` models are offered.
        log_path: where the server's output goes (default: a temporary file).
        timeout: seconds to wait for the server to answer.
        processes: if given, the server's ``subprocess.Popen`` is appended (benchmarks read
            its memory and threads).
        extra_args: more ``panel serve`` options.
    """
    with tempfile.TemporaryDirectory(prefix="srom-ui-") as tmp:
        port = free_port()
        env = {**os.environ, "SROM_MODELS_DIR": str(models_dir or tmp), "SROM_TORCH_THREADS": "1",
               "SROM_JOBS_DIR": str(Path(tmp) / "jobs")}
        log_path = Path(log_path or Path(tmp) / "serve.log")
        with open(log_path, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "panel", "serve", str(ROOT / "app" / "main.py"),
                 "--warm",  # as `srom serve` runs it
                 "--port", str(port), "--address", "127.0.0.1",
                 "--allow-websocket-origin", f"127.0.0.1:{port}", *extra_args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        if processes is not None:
            processes.append(proc)
        try:
            if not wait_for_server(port, timeout, alive=lambda: proc.poll() is None):
                raise RuntimeError(f"panel serve did not start:\n{log_path.read_text()}")
            yield f"http://127.0.0.1:{port}/main"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
