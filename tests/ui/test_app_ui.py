"""Browser test: serve the dashboard with ``panel serve``, open it in headless Chromium, move
the μ slider and check that the plot's data change.

Skipped unless Panel, Playwright and a Chromium binary (``/usr/bin/chromium`` or
``$SROM_CHROMIUM``) are installed; Playwright's own browser download is never used.

Environment:
    SROM_UI_MODELS_DIR: serve the models in this directory instead of the tiny test model.

The screenshots taken here go to the test's temporary directory; the README's pictures are
made by ``scripts/screenshots.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from browser import (  # noqa: E402
    assert_clean,
    drag_first_slider,
    local_page,
    playwright_sync_api,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
)

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TRUTH_SHOWN = """() => {
  const model = window.Bokeh.documents[0].get_model_by_name('qoi-bands');
  return Array.from(model.data.truth).some((v) => Number.isFinite(v));
}"""


DISPLAY_FACTS = """() => {
  const doc = window.Bokeh.documents[0];
  const labels = [];
  for (const m of doc.all_models) {
    if (m.type === 'LegendItem' || (m.constructor && m.constructor.name === 'LegendItem')) {
      const label = m.label;
      labels.push(typeof label === 'string' ? label : (label && label.value) || JSON.stringify(label));
    }
  }
  const err = Array.from(doc.get_model_by_name('error-lines').data.err).filter(Number.isFinite);
  return {labels: labels, err_max: err.length ? Math.max(...err) : null, n_err: err.length};
}"""


SWEEP_DRAWN = """() => {
  const doc = window.Bokeh.documents[0];
  const source = doc.get_model_by_name('sweep-mean');  // the mean's dots (HoloViews)
  const fig = doc.get_model_by_name('sweep-figure');
  const column = source && Object.values(source.data)[0];
  if (!column || column.length === 0 || !fig) return null;
  const view = window.Bokeh.index.find_one(fig);
  const box = view && view.el.getBoundingClientRect();
  return {points: column.length, width: box ? box.width : 0,
          height: box ? box.height : 0};
}"""


TORNADO_BARS = """() => {
  const source = window.Bokeh.documents[0].get_model_by_name('tornado-bars');
  return source && source.data.input && source.data.input.length > 0
    ? Array.from(source.data.input) : null;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = os.environ.get("SROM_UI_MODELS_DIR")
    if not models:
        models = str(train_tiny_model(tmp_path_factory.mktemp("ui-models")).parent)
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(models, log_path=log) as url:
        yield url, log


def test_slider_move_updates_the_plot(server, tmp_path):
    server, log = server
    with sync_api.sync_playwright() as p:
        with local_page(p, 1750) as (page, external, errors):
            start = time.perf_counter()
            page.goto(server)
            before = wait_for_plot(page)
            page.wait_for_selector("canvas", timeout=30_000)
            first_render = time.perf_counter() - start

            drag_first_slider(page, 60)  # the first μ (sidebar)
            moved = time.perf_counter()
            wait_for_new_plot(page, before, timeout_ms=30_000)
            update = time.perf_counter() - moved

            page.locator("input[type=checkbox]").first.click()  # "Compare with the simulator"
            page.wait_for_function(TRUTH_SHOWN, polling="raf", timeout=30_000)
            page.wait_for_timeout(800)  # let the other figures repaint before the picture
            facts = page.evaluate(DISPLAY_FACTS)
            page.screenshot(path=str(tmp_path / "explore.png"))
            page.locator(".bk-tab", has_text="About").first.click()
            page.locator(".katex").first.wait_for(state="attached", timeout=10_000)  # KaTeX ran
            page.screenshot(path=str(tmp_path / "about.png"))
    print(f"\nfirst render {first_render:.2f} s, slider release → new plot data {update:.3f} s")
    assert_clean(external, errors, log)
    assert (tmp_path / "explore.png").stat().st_size > 10_000
    # issue 17: the bands drawn include the 90 % one whose coverage is quoted, and the error
    # against the simulator is scaled by the truth's size (finite where the truth is ~0)
    assert {"95 %", "90 %", "50 %"} <= set(facts["labels"]) and "80 %" not in facts["labels"]
    assert any("RMS size" in label for label in facts["labels"]), facts["labels"]
    assert facts["n_err"] > 0 and facts["err_max"] < 100, facts


def test_sensitivity_sweep_draws_and_the_npz_downloads(server, tmp_path):
    import numpy as np

    server, log = server
    with sync_api.sync_playwright() as p:
        with local_page(p, 1400) as (page, external, errors):  # downloads are accepted by default
            page.goto(server)
            wait_for_plot(page)
            with page.expect_download(timeout=30_000) as download:
                page.get_by_role("button", name=".npz").click()
            target = tmp_path / download.value.suggested_filename
            download.value.save_as(target)
            data = np.load(target, allow_pickle=False)
            assert {"t", "mean", "quantiles", "samples", "latent_mean", "mu",
                    "description"} <= set(data.files)
            assert data["quantiles"].shape == (7, *data["mean"].shape)
            saved = {}
            for kind in ("csv", "png"):  # the probe curve as a table, the plots as a picture
                with page.expect_download(timeout=30_000) as download:
                    page.get_by_role("button", name=f".{kind}").click()
                saved[kind] = tmp_path / download.value.suggested_filename
                download.value.save_as(saved[kind])
            header = saved["csv"].read_text().splitlines()[0]
            assert header.startswith("t,") and "mean" in header
            assert saved["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            page.locator(".bk-tab", has_text="Sensitivity").first.click()
            start = time.perf_counter()
            page.get_by_role("button", name="Run sweep").click()
            page.wait_for_function(f"({SWEEP_DRAWN})() !== null", timeout=60_000)
            seconds = time.perf_counter() - start
            drawn = page.evaluate(SWEEP_DRAWN)
            page.get_by_role("button", name="Rank inputs").click()  # the tornado chart
            page.wait_for_function(TORNADO_BARS, timeout=60_000)
            bars = page.evaluate(TORNADO_BARS)
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "sensitivity.png"))
    print(f"\nsweep of 9 points: click → drawn {seconds:.2f} s")
    assert_clean(external, errors, log)
    assert target.name.endswith(".npz") and drawn["points"] == 9
    assert len(bars) >= 2 and "nu" in " ".join(bars)  # ν and the forcing's parameters, ranked
    assert drawn["width"] > 300 and drawn["height"] > 200
