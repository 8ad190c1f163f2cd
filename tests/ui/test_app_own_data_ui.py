"""Browser test (issue 17, item 1): a model trained on the user's own data, with no built-in
simulator, is explored like any other: a prediction from one of its training states, no
error, 'Compare with the simulator' off with a note saying why, another training state on
request; no console error, no traceback in the server log.

Skipped unless Panel, Playwright and a Chromium binary are installed (see ``browser.py``).
"""

from __future__ import annotations

import math

import pytest
from browser import (  # noqa: E402
    assert_clean,
    local_page,
    playwright_sync_api,
    select_model,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
    wait_until_settled,
)

sync_api = playwright_sync_api()

from own_data import train_own_data_model  # noqa: E402

ERROR_SHOWN = """() => Array.from(document.querySelectorAll('*')).some((el) =>
  el.shadowRoot && el.shadowRoot.textContent.includes('Error:'))"""
# the sidebar's controls as the page's live Bokeh models hold them
CONTROLS = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const truth = live.find((m) => m.label === 'Compare with the simulator');
  const cases = live.find((m) => m.title === 'Initial state from the training data');
  return {truth_disabled: truth ? truth.disabled : null,
          cases: cases && cases.visible ? cases.options.map((o) => Array.isArray(o) ? o[1] : o)
                                        : null,
          case_value: cases ? cases.value : null};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-models")
    train_own_data_model(root)
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(root, log_path=log) as url:
        yield url, log, f"custom data — {root.name}/own-oscillator"


def test_a_model_of_own_data_shows_a_prediction_without_a_simulator(server, tmp_path):
    url, log, label = server
    with sync_api.sync_playwright() as p, local_page(p, 1400) as (page, external, errors):
        page.goto(url)
        before = wait_for_plot(page)  # the default (pretrained) model
        select_model(page.locator("select").first, label)
        mean = wait_for_new_plot(page, before)
        mean = wait_until_settled(page)
        assert len(mean) > 1 and all(math.isfinite(v) for v in mean)
        assert not page.evaluate(ERROR_SHOWN)
        sync_api.expect(page.get_by_text("No simulator for this model").first).to_be_visible(
            timeout=10_000)
        sync_api.expect(page.get_by_text("predictions start from 6 states of its training "
                                         "data").first).to_be_visible()
        controls = page.evaluate(CONTROLS)
        assert controls["truth_disabled"] is True, controls
        assert controls["cases"] and len(controls["cases"]) == 6, controls
        assert controls["cases"][0].startswith("trajectory 0 (stiffness = "), controls

        # another training trajectory: its state and its μ, a new prediction, still no error
        page.locator("select", has_text="trajectory 0").first.select_option(index=3)
        after = wait_for_new_plot(page, mean)
        wait_until_settled(page)
        assert all(math.isfinite(v) for v in after) and not page.evaluate(ERROR_SHOWN)
        page.screenshot(path=str(tmp_path / "own-data.png"))
    assert_clean(external, errors, log)
    assert "not a built-in simulator" not in log.read_text()


def test_a_shared_url_restores_the_training_trajectory(server):
    url, log, label = server
    with sync_api.sync_playwright() as p, local_page(p, 1200) as (page, external, errors):
        page.goto(url + "?model=user/own-oscillator&case=3")
        wait_for_plot(page)
        wait_until_settled(page)
        controls = page.evaluate(CONTROLS)
        assert controls["cases"] and len(controls["cases"]) == 6, controls
        assert str(controls["case_value"]) == "3", controls  # the 4th kept: trajectory 3
        assert not page.evaluate(ERROR_SHOWN)
        page.wait_for_function("() => window.location.search.includes('case=3')",
                               timeout=10_000)
        assert "truth=1" not in page.url  # no simulator: no comparison flag
        # another trajectory is written into the URL
        page.locator("select", has_text="trajectory 0").first.select_option(index=1)
        page.wait_for_function("() => window.location.search.includes('case=1')",
                               timeout=20_000)
        wait_until_settled(page)
    assert_clean(external, errors, log)
