"""Browser test of a teacher's tools (issue 17): picking a scenario moves the μ slider (and
the plot), the About tab describes the picked model's system and follows a model switch,
the picker shows each model's accuracy, and presentation mode hides the side controls.

Served with the shipped models only (``pretrained/``): the page opens on the pretrained
Burgers model; the switch goes to the pretrained Duffing oscillator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import (  # noqa: E402
    assert_clean,
    local_page,
    playwright_sync_api,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
)

sync_api = playwright_sync_api()

from app.state.scenarios import SCENARIOS  # noqa: E402
from app.views.about import SYSTEM_ABOUT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# the value of the slider whose start is `start` (the μ slider: its range is the model's)
READ_SLIDER = """(start) => {
  for (const m of window.Bokeh.documents[0].all_models) {
    const name = m.type || (m.constructor && m.constructor.name);
    if (name === 'Slider' && Math.abs(m.start - start) < 1e-9 * Math.max(1, Math.abs(start)))
      return m.value;
  }
  return null;
}"""


def _nu_slider(model: str) -> tuple[float, float, float]:
    """(trained lo, trained hi, slider start) of ν for a pretrained Burgers model, as
    ``app.state.specs.mu_specs`` makes them (range widened by half its span, ν > 0)."""
    config = json.loads((ROOT / "pretrained" / model / "config.json").read_text())
    lo, hi = config["param_ranges"][config["param_names"].index("nu")]
    span = hi - lo
    return lo, hi, max(lo - 0.5 * span, 1e-6 * span)


@pytest.mark.skipif(not (ROOT / "pretrained" / "burgers").is_dir()
                    or not (ROOT / "pretrained" / "oscillator").is_dir(),
                    reason="needs the shipped burgers and oscillator models")
def test_scenarios_move_the_sliders_and_about_follows_the_system(tmp_path):
    lo, hi, start = _nu_slider("burgers")
    low, high = (sc for sc in SCENARIOS["burgers"] if sc.name.startswith(("Steep", "Smooth")))
    log = tmp_path / "serve.log"
    with serve_dashboard(log_path=log) as url:
        with sync_api.sync_playwright() as p:
            with local_page(p, 1200) as (page, external, errors):
                page.goto(url)
                before = wait_for_plot(page)
                picker = page.locator("select").first
                labels = picker.evaluate("s => Array.from(s.options).map(o => o.label)")
                burgers = next(x for x in labels if x.startswith("burgers — pretrained/burgers "))
                assert " · error " in burgers and "weak" not in burgers  # its accuracy
                assert any(x.startswith("heat — ") and x.endswith("⚠ weak") for x in labels)

                scenario = page.locator("select", has=page.locator(
                    "option", has_text="(your own settings)")).first
                for sc, at in ((low, low.mu["nu"].at), (high, high.mu["nu"].at)):
                    scenario.select_option(label=sc.name)
                    want = lo + at * (hi - lo)
                    page.wait_for_function(
                        f"(w) => Math.abs(({READ_SLIDER})({start!r}) - w) < {1e-3 * (hi - lo)!r}",
                        arg=want, timeout=30_000)  # the slider moved to the scenario's ν
                    before = wait_for_new_plot(page, before, timeout_ms=60_000)
                    page.get_by_text(sc.description).first.wait_for(timeout=10_000)

                page.locator(".bk-tab", has_text="About").first.click()
                page.locator("h2", has_text=SYSTEM_ABOUT["burgers"][0]).first.wait_for(
                    state="visible", timeout=10_000)
                oscillator = next(x for x in labels
                                  if x.startswith("oscillator — pretrained/oscillator "))
                picker.select_option(label=oscillator)
                page.locator("h2", has_text=SYSTEM_ABOUT["oscillator"][0]).first.wait_for(
                    state="visible", timeout=60_000)
                assert page.locator("h2", has_text=SYSTEM_ABOUT["burgers"][0]).count() == 0

                toggle = page.get_by_role("button", name="Presentation mode")
                sidebar = page.locator("#sidebar")
                assert sidebar.is_visible()
                toggle.click()
                page.wait_for_function("() => document.body.classList.contains("
                                       "'srom-presenting')", timeout=10_000)
                assert not sidebar.is_visible()
                toggle.click()
                sidebar.wait_for(state="visible", timeout=10_000)
    # fullscreen may be refused in a headless browser: that is caught in the page
    assert_clean(external, errors, log)
