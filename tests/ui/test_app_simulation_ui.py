"""Browser test of a long simulator run (issue 17, item 2): with a paper-sized cylinder model,
"Compare with the simulator" starts a truth run of tens of seconds on a CPU; the page shows
how far it is (a progress bar and the share simulated) and a Cancel button; Cancel stops it:
the prediction is shown without the truth with a note saying where it stopped, the
comparison is unticked and the progress row goes away; no console error, no traceback.

The simulation's real stop (not only its result hidden) is tested without a browser in
tests/test_app_simulation_progress.py and tests/test_simulation_progress.py. Skipped like
the other browser tests without Panel, Playwright or Chromium.
"""

from __future__ import annotations

import re

import pytest
from browser import (  # noqa: E402
    assert_clean,
    local_page,
    playwright_sync_api,
    select_model,
    serve_dashboard,
    wait_for_plot,
    wait_until_settled,
)

sync_api = playwright_sync_api()

# the comparison box as the page's live Bokeh model holds it
TRUTH_BOX = """() => {
  if (!window.Bokeh || !window.Bokeh.documents || !window.Bokeh.documents[0]) return null;
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const box = live.find((m) => m.label === 'Compare with the simulator');
  return box ? {active: box.active, disabled: box.disabled} : null;
}"""


# the cylinder's view is built: its maps have a channel picker offering u, v and p
CYLINDER_SHOWN = """() => {
  if (!window.Bokeh || !window.Bokeh.documents || !window.Bokeh.documents[0]) return false;
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  return live.some((m) => m.title === 'Channel' && 'options' in m
                   && JSON.stringify(m.options).includes('"p"'));
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(log_path=log) as url:
        yield url, log


# the horizon (the last untitled Slider of the sidebar: an editable slider's label is a
# separate text) set to its end, three trained spans, as a drag released there would
LONGEST_HORIZON = """() => {
  const live = window.Bokeh.documents[0].roots().flatMap((r) => Array.from(r.references()));
  const sliders = live.filter((m) => m.type === 'Slider' && m.title === '');
  const horizon = sliders[sliders.length - 1];
  horizon.value = horizon.end;
  horizon.value_throttled = horizon.end;
  return horizon.end;
}"""

def test_a_long_truth_run_shows_progress_and_cancel_stops_it(server, tmp_path):
    url, log = server
    with sync_api.sync_playwright() as p, local_page(p, 1200) as (page, external, errors):
        page.goto(url)
        wait_for_plot(page)  # the default model; the cylinder is picked as a user does (a
        # URL naming it: test_app_sessions_ui.py)
        select_model(page.locator("select").first, "cylinder — pretrained/cylinder_paper_d7")
        page.wait_for_function(CYLINDER_SHOWN, timeout=60_000)  # its maps' channel picker
        page.wait_for_function(f"() => {{ const b = ({TRUTH_BOX})(); return b && !b.disabled; }}",
                               timeout=60_000)
        # the longest horizon, so that the truth run lasts (on a quiet 2-core CPU the trained
        # span's run is ~2 s, gone before a check could see it)
        page.evaluate(LONGEST_HORIZON)
        wait_until_settled(page, 120_000)
        page.locator("input[type=checkbox]").first.click()  # "Compare with the simulator"
        cancel = page.get_by_role("button", name="Cancel simulation")
        sync_api.expect(cancel).to_be_visible(timeout=120_000)
        # the cylinder reports its steps: a share of the spin-up or of the horizon (read, not
        # waited on to be visible: the run may end any moment now)
        shown = page.get_by_text(re.compile(r"\d+ % of the (horizon|spin-up)")).first.inner_text(
            timeout=20_000)
        cancel.click()
        page.screenshot(path=str(tmp_path / "cancelled.png"))
        assert re.search(r"Simulating the (truth|initial state)", shown), shown
        note = page.get_by_text(re.compile(r"simulator run was cancelled by the user")).first
        sync_api.expect(note).to_be_visible(timeout=60_000)
        sync_api.expect(cancel).to_be_hidden(timeout=10_000)
        box = page.evaluate(TRUTH_BOX)
        assert box is not None and box["active"] is False and not box["disabled"], box
        text = note.inner_text()
        match = re.search(r"at (\d+) %", text)
        assert match is None or int(match.group(1)) < 100, text
    assert_clean(external, errors, log)
