"""Browser test: two sessions side by side (two browser contexts) switch models and move
sliders without seeing each other's state; no console error, no traceback in the server log.

Skipped unless Panel, Playwright and a Chromium binary are installed (see ``browser.py``).
"""

from __future__ import annotations

import pytest
from browser import (  # noqa: E402
    READ_QOI_MEAN,
    TEXT_SHOWN,
    assert_clean,
    drag_first_slider,
    local_browser,
    open_page,
    playwright_sync_api,
    select_model,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
    wait_until_settled,
)

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

# the model picker's choice and the first μ slider's value (an editable slider: its label is
# apart, its slider untitled), from the models the page's roots use now (see READ_QOI_MEAN)
READ_CONTROLS = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const picker = live.find((m) => m.title === 'Model');
  const slider = live.find((m) => m.type === 'Slider' && m.title === '');
  return {model: picker ? picker.value : null, mu: slider ? slider.value : null};
}"""
ERROR_SHOWN = """() => Array.from(document.querySelectorAll('*')).some((el) =>
  el.shadowRoot && el.shadowRoot.textContent.includes('Error:'))"""
OSCILLATOR = "oscillator — pretrained/oscillator"
NU = "nu [length"  # Burgers' μ, as its controls name it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = str(train_tiny_model(tmp_path_factory.mktemp("ui-models")).parent)
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(models, log_path=log) as url:
        yield url, log


def _open(browser, url: str, external: list[str], errors: list[str]):
    """A page in a new browser context (its own dashboard session), loaded and drawn."""
    page = open_page(browser, external, errors)
    page.goto(url)
    wait_for_plot(page)
    return page


def test_two_sessions_switch_models_and_move_sliders_independently(server):
    url, log = server
    with sync_api.sync_playwright() as p, local_browser(p) as (browser, external, errors):
        a, b = _open(browser, url, external, errors), _open(browser, url, external, errors)
        a_qoi, b_qoi = a.evaluate(READ_QOI_MEAN), b.evaluate(READ_QOI_MEAN)
        a_ctl, b_ctl = a.evaluate(READ_CONTROLS), b.evaluate(READ_CONTROLS)
        assert a_ctl == b_ctl and a_ctl["model"].endswith("burgers")  # both on Burgers
        assert a.get_by_text(NU).count() > 0

        # A switches to the oscillator: new μ sliders, new plot data
        select_model(a.locator("select").first, OSCILLATOR)
        wait_for_new_plot(a, a_qoi)
        sync_api.expect(a.get_by_text(NU)).to_have_count(0, timeout=30_000)
        switched = a.evaluate(READ_CONTROLS)
        assert switched["model"].endswith("oscillator") and not a.evaluate(ERROR_SHOWN)
        assert b.get_by_text(NU).count() > 0  # B still has Burgers' ν

        # B moves its μ slider: its plot changes, A's does not (each compared once its full
        # prediction has replaced the quick preview, which may come first)
        a_after_switch = wait_until_settled(a)
        drag_first_slider(b, 60)
        wait_for_new_plot(b, b_qoi)
        wait_until_settled(b)
        b_moved = b.evaluate(READ_CONTROLS)
        assert b_moved["model"] == b_ctl["model"]  # B still shows Burgers ...
        assert b_moved["mu"] != b_ctl["mu"]  # ... at its new ν
        a.wait_for_timeout(500)
        assert a.evaluate(READ_QOI_MEAN) == a_after_switch
        assert a.evaluate(READ_CONTROLS) == switched  # A's own state is untouched

        # A moves its (oscillator) slider; B stays where it was
        b_now = b.evaluate(READ_QOI_MEAN)
        drag_first_slider(a, -60)
        wait_for_new_plot(a, a_after_switch)
        b.wait_for_timeout(500)
        assert b.evaluate(READ_QOI_MEAN) == b_now and b.evaluate(READ_CONTROLS) == b_moved

        # and back to Burgers in A: the model switch works both ways
        select_model(a.locator("select").first, "burgers — pretrained/burgers")
        sync_api.expect(a.get_by_text(NU).first).to_be_visible(timeout=30_000)
        assert not a.evaluate(ERROR_SHOWN) and not b.evaluate(ERROR_SHOWN)
    assert_clean(external, errors, log)


# the live model named ``name`` (see READ_QOI_MEAN), as a few facts the test checks
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
    with sync_api.sync_playwright() as p, local_browser(p) as (browser, external, errors):
        page = _open(browser, url, external, errors)
        # another forcing family: f(t) in its preview plot changes, and so does the QoI
        forcing = page.evaluate(LIVE_FACTS, "forcing-line")["f"]
        qoi = page.evaluate(READ_QOI_MEAN)
        family = page.locator("select", has=page.locator("option[value='step']")).first
        family.select_option("step")
        page.wait_for_function(f"(b) => JSON.stringify(({LIVE_FACTS})('forcing-line').f) "
                               "!== JSON.stringify(b)", arg=forcing, timeout=30_000)
        wait_for_new_plot(page, qoi)

        # μ dragged far beyond the trained range: a visible warning, and still a prediction
        qoi = page.evaluate(READ_QOI_MEAN)
        drag_first_slider(page, 400)
        wait_for_new_plot(page, qoi)
        page.locator(".alert-warning", has_text="extrapolating").first.wait_for(
            timeout=30_000)
        assert not page.evaluate(ERROR_SHOWN)

        # a 2-D field: mean and std maps of one frame, and a frame player
        select_model(page.locator("select").first,
                     "reaction_diffusion — pretrained/reaction_diffusion")
        page.wait_for_function(f"() => {{ const f = ({LIVE_FACTS})('mean-image'); "
                               "return f !== null && f.shape[0] === 48 && f.shape[1] === 48; }",
                               timeout=90_000)
        assert page.evaluate(PLAYER) and not page.evaluate(ERROR_SHOWN)
    assert_clean(external, errors, log)





def test_a_url_naming_a_slow_model_shows_the_page_before_its_first_prediction(server):
    """A shared URL naming a cylinder model (its full first prediction: ~30 s on a 2-core
    CPU, its preview ~6 s): the page comes while that prediction is pending ("Predicting…"
    or, once the preview is there, the busy mark), its plot fills in later; closing the
    page then stops the prediction still running."""
    url, log = server
    with sync_api.sync_playwright() as p, local_browser(p) as (browser, external, errors):
        page = open_page(browser, external, errors)
        page.goto(url + "?model=cylinder_paper_d7")
        page.wait_for_function(TEXT_SHOWN, arg=["Predicting…", "computing…"], timeout=30_000)
        assert page.evaluate(READ_CONTROLS)["model"] is not None  # the controls are there
        # the first result's status line (the preview's, or the full one's)
        page.wait_for_function(TEXT_SHOWN, arg=["predicted in"], timeout=120_000)
        wait_for_plot(page)
        page.context.close()
    assert_clean(external, errors, log)
