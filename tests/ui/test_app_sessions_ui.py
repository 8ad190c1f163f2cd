"""Browser test: two sessions side by side (two browser contexts) switch models and move
sliders without seeing each other's state; no console error, no traceback in the server log.

Skipped unless Panel, Playwright and a Chromium binary are installed (see ``browser.py``).
"""

from __future__ import annotations

import time

import pytest

from browser import (CHROMIUM, CHROMIUM_ARGS, playwright_sync_api, serve_dashboard,  # noqa: E402
                     watch_page)

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

# the QoI source that the page's roots use now: after a model switch the old figures stay in
# Bokeh's model index (``get_model_by_name`` then fails) until it is recomputed, 30 s later
READ_QOI = """() => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  if (!doc) return null;
  for (const root of doc.roots()) {
    for (const model of root.references()) {
      if (model.name === 'qoi-bands') return Array.from(model.data.mean);
    }
  }
  return null;
}"""
# the model picker's choice, the first μ slider's value (an editable slider: its label is
# apart, its slider untitled) and whether the page shows the label ``name`` (sidebar)
READ_CONTROLS = """() => {
  const all = Array.from(window.Bokeh.documents[0].all_models);
  const picker = all.find((m) => m.title === 'Model');
  const slider = all.find((m) => m.type === 'Slider' && m.title === '');
  return {model: picker ? picker.value : null, mu: slider ? slider.value : null};
}"""
ERROR_SHOWN = """() => Array.from(document.querySelectorAll('*')).some((el) =>
  el.shadowRoot && el.shadowRoot.textContent.includes('Error:'))"""
OSCILLATOR = "oscillator — pretrained/oscillator"
NU = "nu [length"  # Burgers' μ, as its controls name it


def _wait_for_count(page, text: str, ok, timeout_s: float = 30.0) -> None:
    """Poll until ``ok(number of elements showing text)``."""
    deadline = time.monotonic() + timeout_s
    while not ok(page.get_by_text(text).count()):
        assert time.monotonic() < deadline, f"timed out waiting on the count of {text!r}"
        page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = str(train_tiny_model(tmp_path_factory.mktemp("ui-models")).parent)
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(models, log_path=log) as url:
        yield url, log


def _open(browser, url: str, external: list[str], errors: list[str]):
    """A page in a new browser context (its own cookies and session), loaded and drawn."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    watch_page(page, external, errors)
    page.goto(url)
    page.wait_for_function(f"({READ_QOI})() !== null && ({READ_QOI})().length > 1",
                           timeout=60_000)
    return page


def _changed(page, before) -> None:
    page.wait_for_function(
        f"(b) => {{ const now = ({READ_QOI})(); return now !== null && (now.length !== "
        "b.length || now.some((v, i) => Math.abs(v - b[i]) > 1e-9)); }",
        arg=before, polling="raf", timeout=60_000)


def _drag_first_slider(page, dx: int = 60) -> None:
    box = page.locator(".noUi-handle").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def test_two_sessions_switch_models_and_move_sliders_independently(server):
    url, log = server
    external: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            a, b = _open(browser, url, external, errors), _open(browser, url, external, errors)
            a_qoi, b_qoi = a.evaluate(READ_QOI), b.evaluate(READ_QOI)
            a_ctl, b_ctl = a.evaluate(READ_CONTROLS), b.evaluate(READ_CONTROLS)
            assert a_ctl == b_ctl and a_ctl["model"].endswith("burgers")  # both on Burgers
            assert a.get_by_text(NU).count() > 0

            # A switches to the oscillator: new μ sliders, new plot data
            a.locator("select").first.select_option(label=OSCILLATOR)
            _changed(a, a_qoi)
            _wait_for_count(a, NU, lambda n: n == 0)
            switched = a.evaluate(READ_CONTROLS)
            assert switched["model"].endswith("oscillator") and not a.evaluate(ERROR_SHOWN)
            assert b.get_by_text(NU).count() > 0  # B still has Burgers' ν

            # B moves its μ slider: its plot changes, A's does not
            a_after_switch = a.evaluate(READ_QOI)
            _drag_first_slider(b)
            _changed(b, b_qoi)
            b_moved = b.evaluate(READ_CONTROLS)
            assert b_moved["model"] == b_ctl["model"]  # B still shows Burgers ...
            assert b_moved["mu"] != b_ctl["mu"]  # ... at its new ν
            a.wait_for_timeout(500)
            assert a.evaluate(READ_QOI) == a_after_switch
            assert a.evaluate(READ_CONTROLS) == switched  # A's own state is untouched

            # A moves its (oscillator) slider; B stays where it was
            b_now = b.evaluate(READ_QOI)
            _drag_first_slider(a, -60)
            _changed(a, a_after_switch)
            b.wait_for_timeout(500)
            assert b.evaluate(READ_QOI) == b_now and b.evaluate(READ_CONTROLS) == b_moved

            # and back to Burgers in A: the model switch works both ways
            a.locator("select").first.select_option(label="burgers — pretrained/burgers")
            _wait_for_count(a, NU, lambda n: n > 0)
            assert not a.evaluate(ERROR_SHOWN) and not b.evaluate(ERROR_SHOWN)
        finally:
            browser.close()
    assert external == [], f"the pages fetched outside resources: {external}"
    assert errors == [], f"errors in the pages: {errors}"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


# the live model named ``name`` (see READ_QOI), as a few facts the test checks
LIVE_FACTS = """(name) => {
  const doc = window.Bokeh.documents[0];
  for (const root of doc.roots()) {
    for (const m of root.references()) {
      if (m.name !== name) continue;
      if (name === 'mean-image') { const im = m.data.image[0];
        return {shape: im.shape ? Array.from(im.shape) : [im.length, (im[0] || []).length]}; }
      return {f: Array.from(m.data.f || [])};
    }
  }
  return null;
}"""
PLAYER = """() => window.Bokeh.documents[0].roots().some((root) => Array.from(root.references())
  .some((m) => m.type.endsWith('Player') && m.visible !== false))"""


def test_forcing_family_extrapolation_warning_and_a_two_dimensional_field(server):
    url, log = server
    external: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _open(browser, url, external, errors)
            # another forcing family: f(t) in its preview plot changes, and so does the QoI
            forcing = page.evaluate(LIVE_FACTS, "forcing-line")["f"]
            qoi = page.evaluate(READ_QOI)
            family = page.locator("select", has=page.locator("option[value='step']")).first
            family.select_option("step")
            page.wait_for_function(f"(b) => JSON.stringify(({LIVE_FACTS})('forcing-line').f) "
                                   "!== JSON.stringify(b)", arg=forcing, timeout=30_000)
            _changed(page, qoi)

            # μ dragged far beyond the trained range: a visible warning, and still a prediction
            qoi = page.evaluate(READ_QOI)
            _drag_first_slider(page, 400)
            _changed(page, qoi)
            page.locator(".alert-warning", has_text="extrapolating").first.wait_for(
                timeout=30_000)
            assert not page.evaluate(ERROR_SHOWN)

            # a 2-D field: mean and std maps of one frame, and a frame player
            page.locator("select").first.select_option(
                label="reaction_diffusion — pretrained/reaction_diffusion")
            page.wait_for_function(f"() => {{ const f = ({LIVE_FACTS})('mean-image'); "
                                   "return f !== null && f.shape[0] === 48 && f.shape[1] === 48; }",
                                   timeout=90_000)
            assert page.evaluate(PLAYER) and not page.evaluate(ERROR_SHOWN)
        finally:
            browser.close()
    assert external == [], f"the page fetched outside resources: {external}"
    assert errors == [], f"errors in the page: {errors}"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
