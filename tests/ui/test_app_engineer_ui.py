"""Browser test of the engineer's tools (issue 17): a URL with query parameters opens the
Explore view on that model with its sliders restored (bad values bounded and named in a
note, unknown ones ignored), the URL follows the sliders, and a pinned reference stays in the
probe plot while μ moves until it is cleared; no console error, no traceback in the log.

Skipped unless Panel, Playwright and a Chromium binary are installed (see ``browser.py``).
"""

from __future__ import annotations

import urllib.parse

import pytest
from browser import (  # noqa: E402
    assert_clean,
    drag_first_slider,
    local_page,
    playwright_sync_api,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
    wait_until_settled,
)

sync_api = playwright_sync_api()

# the Explore sidebar's values as the page's live Bokeh models hold them: an editable slider
# is an untitled Slider (its label is a separate text), in page order the μ sliders first and
# then the horizon
CONTROLS = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const value = (text) => { const m = live.find((m) => m.title === text && 'value' in m);
                            return m ? m.value : null; };
  const editable = live.filter((m) => m.type === 'Slider' && m.title === '').map((m) => m.value);
  const model = live.find((m) => m.title === 'Model' && 'options' in m);
  // the Train tab has a 'Seed' too
  const seeds = live.filter((m) => m.title === 'Seed' && 'value' in m).map((m) => m.value);
  return {editable: editable, paths: value('Sample paths'), seeds: seeds,
          model: model ? model.value : null};
}"""
READ_PIN = """() => {
  for (const root of window.Bokeh.documents[0].roots()) {
    for (const model of root.references()) {
      if (model.name === 'qoi-pin') return Array.from(model.data.mean);
    }
  }
  return null;
}"""
PIN_LABEL = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const text = (label) => label == null ? '' : String(label.value !== undefined ? label.value
                                                                               : label);
  const items = live.filter((m) => m.type === 'LegendItem' && text(m.label).startsWith('pinned'));
  return items.length ? {label: text(items[0].label), visible: items[0].visible} : null;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(log_path=log) as url:
        yield url, log


def _query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def test_a_shared_url_restores_the_view_and_a_pin_stays_while_mu_moves(server, tmp_path):
    url, log = server
    query = ("?model=pretrained/lotka_volterra&mu=alpha:0.6;ghost:1&horizon=15&paths=32"
             "&seed=100000000000&forcing=sine")
    with sync_api.sync_playwright() as p, local_page(p, 1400) as (page, external, errors):
        page.goto(url + query)
        wait_for_plot(page)
        mean = wait_until_settled(page)
        controls = page.evaluate(CONTROLS)
        assert controls["editable"] == pytest.approx([0.6, 15]), controls  # α, horizon
        assert controls["model"].endswith("pretrained/lotka_volterra"), controls
        assert controls["paths"] == 32 and 2**31 - 1 in controls["seeds"], controls  # bounded
        for note in ("μ 'ghost' is not a parameter", "seed = 1e+11 is outside",
                     "gives a forcing but this model has none"):
            sync_api.expect(page.get_by_text(note).first).to_be_visible(timeout=10_000)
        # the page's own URL is the canonical one (the bad values replaced)
        page.wait_for_function("() => window.location.search.includes('seed=2147483647')",
                               timeout=10_000)
        q = _query(page)
        assert q["model"] == "pretrained/lotka_volterra" and q["mu"] == "alpha:0.6", q

        page.get_by_role("button", name="Pin as reference").click()
        page.wait_for_function(f"() => {{ const m = ({READ_PIN})(); return m && m.length > 1; }}",
                               timeout=10_000)
        pinned = page.evaluate(READ_PIN)
        legend = page.evaluate(PIN_LABEL)
        assert legend and legend["visible"] and legend["label"].startswith("pinned: alpha = 0.6")
        sync_api.expect(page.get_by_text("Pinned").first).to_be_visible()

        drag_first_slider(page, 60)  # α moves: a new prediction, the pin stays
        after = wait_for_new_plot(page, mean)
        wait_until_settled(page)
        assert after != mean and page.evaluate(READ_PIN) == pinned
        page.wait_for_function("() => !window.location.search.includes('mu=alpha%3A0.6&')",
                               timeout=10_000)
        assert _query(page)["mu"] != "alpha:0.6"
        page.screenshot(path=str(tmp_path / "pinned.png"))

        page.get_by_role("button", name="Clear pin").click()
        page.wait_for_function(f"() => ({READ_PIN})().length === 0", timeout=10_000)
    assert_clean(external, errors, log)


def test_an_unknown_model_in_the_url_falls_back_to_the_default(server):
    url, log = server
    with sync_api.sync_playwright() as p, local_page(p, 1000) as (page, external, errors):
        page.goto(url + "?model=pretrained/%3Cscript%3Ealert(1)%3C/script%3E&paths=abc")
        wait_for_plot(page)
        sync_api.expect(page.get_by_text("that is not here").first).to_be_visible(timeout=10_000)
        sync_api.expect(page.get_by_text("paths: 'abc' is not a number").first).to_be_visible()
        assert page.evaluate(CONTROLS)["model"].endswith("pretrained/burgers")
    assert_clean(external, errors, log)


# the comparison box, the probe control and the probe curve's truth on the live page
VIEW_FACTS = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const box = live.find((m) => m.label === 'Compare with the simulator');
  const probe = live.find((m) => m.title === 'Component' && 'value' in m);
  let truth = 0;
  for (const m of live) if (m.name === 'qoi-bands' && m.data.truth)
    truth = Math.max(truth, Array.from(m.data.truth).filter((v) => Number.isFinite(v)).length);
  return {truth_ticked: box ? box.active : null, probe: probe ? probe.value : null,
          truth_points: truth};
}"""


def test_a_shared_url_restores_the_comparison_and_the_probe(server):
    url, log = server
    with sync_api.sync_playwright() as p, local_page(p, 1400) as (page, external, errors):
        page.goto(url + "?model=pretrained/lotka_volterra&truth=1&probe=1")
        wait_for_plot(page)
        page.wait_for_function(f"() => ({VIEW_FACTS})().truth_points > 1", timeout=60_000)
        facts = page.evaluate(VIEW_FACTS)
        assert facts["truth_ticked"] is True and facts["probe"] == 1, facts
        page.wait_for_function("() => window.location.search.includes('probe=1')"
                               " && window.location.search.includes('truth=1')", timeout=10_000)
        # the URL follows the controls: untick the comparison
        page.locator("input[type=checkbox]").first.click()
        page.wait_for_function("() => window.location.search.includes('truth=0')",
                               timeout=10_000)
        wait_until_settled(page)  # no message in flight when the page is left
        page.wait_for_timeout(500)
        # an out-of-range probe is bounded, and a malformed comparison flag is named
        page.goto(url + "?model=pretrained/lotka_volterra&probe=99&truth=maybe")
        wait_for_plot(page)
        sync_api.expect(page.get_by_text("probe = 99 is outside").first).to_be_visible(
            timeout=10_000)
        sync_api.expect(page.get_by_text("'maybe' is not one of 0, 1").first).to_be_visible()
        assert page.evaluate(VIEW_FACTS)["probe"] == 1
    assert_clean(external, errors, log)


# the pinned latent mean and the difference map on the live page
PIN_PLOTS = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const find = (name) => { let f = null; for (const m of live) if (m.name === name) f = m;
                           return f; };
  const latent = find('latent-pin'), image = find('pindiff-image'), fig = find('pindiff-figure');
  const pixels = image ? Array.from(image.data.image[0]) : [];
  const view = fig ? window.Bokeh.index.find_one(fig) : null;
  return {latent: latent ? latent.data.x.length : -1,
          diff_max: pixels.length ? Math.max(...pixels.map(Math.abs)) : -1,
          diff_shown: !!(view && view.el.isConnected && view.el.offsetParent !== null),
          title: fig ? fig.title.text : ''};
}"""


def test_the_pin_shows_on_the_latent_plot_and_as_a_difference_map(server, tmp_path):
    url, log = server
    with sync_api.sync_playwright() as p, local_page(p, 2200) as (page, external, errors):
        page.goto(url + "?model=pretrained/burgers")
        wait_for_plot(page)
        mean = wait_until_settled(page)
        assert page.evaluate(PIN_PLOTS)["latent"] == 0
        page.get_by_role("button", name="Pin as reference").click()
        page.wait_for_function(f"() => ({PIN_PLOTS})().latent > 1 && ({PIN_PLOTS})().diff_shown",
                               timeout=30_000)
        assert page.evaluate(PIN_PLOTS)["diff_max"] < 1e-6  # the pin minus itself
        assert page.evaluate(PIN_PLOTS)["title"].startswith("Mean − pinned mean (pinned: nu = ")
        drag_first_slider(page, 80)  # μ moves: the difference grows, the pinned latent stays
        wait_for_new_plot(page, mean)
        wait_until_settled(page)
        page.wait_for_function(f"() => ({PIN_PLOTS})().diff_max > 1e-4", timeout=20_000)
        page.screenshot(path=str(tmp_path / "pin-maps.png"), full_page=True)
        page.get_by_role("button", name="Clear pin").click()
        page.wait_for_function(f"() => ({PIN_PLOTS})().latent === 0 && !({PIN_PLOTS})().diff_shown",
                               timeout=30_000)
        wait_until_settled(page)
    assert_clean(external, errors, log)
