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

from browser import local_page, playwright_sync_api, serve_dashboard  # noqa: E402

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

READ_MEAN = """() => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  const model = doc && doc.get_model_by_name('qoi-bands');
  return model ? Array.from(model.data.mean) : null;
}"""
TRUTH_SHOWN = """() => {
  const model = window.Bokeh.documents[0].get_model_by_name('qoi-bands');
  return Array.from(model.data.truth).some((v) => Number.isFinite(v));
}"""


SWEEP_DRAWN = """() => {
  const doc = window.Bokeh.documents[0];
  const source = doc.get_model_by_name('sweep-bands');
  const fig = doc.get_model_by_name('sweep-figure');
  if (!source || source.data.x.length === 0 || !fig) return null;
  const view = window.Bokeh.index.find_one(fig);
  const box = view && view.el.getBoundingClientRect();
  return {points: source.data.x.length, width: box ? box.width : 0,
          height: box ? box.height : 0};
}"""


TORNADO_BARS = """() => {
  const source = window.Bokeh.documents[0].get_model_by_name('tornado-bars');
  return source && source.data.name.length > 0 ? Array.from(source.data.name) : null;
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
            page.wait_for_function(f"({READ_MEAN})() !== null && ({READ_MEAN})().length > 1",
                                   timeout=60_000)
            page.wait_for_selector("canvas", timeout=30_000)
            first_render = time.perf_counter() - start
            before = page.evaluate(READ_MEAN)

            handle = page.locator(".noUi-handle").first  # the first μ slider (sidebar)
            box = handle.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 60, y, steps=5)
            page.mouse.up()
            moved = time.perf_counter()
            page.wait_for_function(
                f"(before) => {{ const now = ({READ_MEAN})(); return now !== null && "
                "now.some((v, i) => Math.abs(v - before[i]) > 1e-9); }",
                arg=before, polling="raf", timeout=30_000)
            update = time.perf_counter() - moved

            page.locator("input[type=checkbox]").first.click()  # "Compare with the simulator"
            page.wait_for_function(TRUTH_SHOWN, polling="raf", timeout=30_000)
            page.wait_for_timeout(800)  # let the other figures repaint before the picture
            page.screenshot(path=str(tmp_path / "explore.png"))
            page.locator(".bk-tab", has_text="About").first.click()
            page.locator(".katex").first.wait_for(state="attached", timeout=10_000)  # KaTeX ran
            page.screenshot(path=str(tmp_path / "about.png"))
    print(f"\nfirst render {first_render:.2f} s, slider release → new plot data {update:.3f} s")
    assert external == [], f"the page fetched outside resources: {external}"
    assert errors == [], f"errors in the page: {errors}"
    assert (tmp_path / "explore.png").stat().st_size > 10_000
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_sensitivity_sweep_draws_and_the_npz_downloads(server, tmp_path):
    import numpy as np

    server, log = server
    with sync_api.sync_playwright() as p:
        with local_page(p, 1400) as (page, external, errors):  # downloads are accepted by default
            page.goto(server)
            page.wait_for_function(f"({READ_MEAN})() !== null && ({READ_MEAN})().length > 1",
                                   timeout=60_000)
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
    assert external == [], f"the page fetched outside resources: {external}"
    assert errors == [], f"errors in the page: {errors}"
    assert target.name.endswith(".npz") and drawn["points"] == 9
    assert len(bars) >= 2 and "nu" in " ".join(bars)  # ν and the forcing's parameters, ranked
    assert drawn["width"] > 300 and drawn["height"] > 200
