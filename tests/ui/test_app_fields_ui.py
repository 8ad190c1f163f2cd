"""Browser test of the 2-D field maps (issue 17, items 5 and 7): a three-channel cylinder
model (u, v, p) is opened, the maps keep the flow's true 5.4 : 1 shape, the channel is
switched, a click on a map moves the probe, the colour scale holds while the player steps,
and the player's loop options are not cut off.

A tiny model of the cylinder's small preset (16 × 88 pixels, trained in seconds) stands in
for the pretrained one: the paper-sized cylinder models take minutes on a CPU before their
first picture, and the reaction–diffusion ones have one channel only. Skipped like the other
browser tests without Panel, Playwright or Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import (  # noqa: E402
    assert_clean,
    local_page,
    playwright_sync_api,
    serve_dashboard,
    wait_for_new_plot,
    wait_for_plot,
    wait_until_settled,
)

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# The last model of that name among the page's roots (see READ_QOI_MEAN in browser.py).
FIND = """(name) => {
  let found = null;
  for (const root of window.Bokeh.documents[0].roots())
    for (const m of root.references()) if (m.name === name) found = m;
  return found;
}"""

# The mean map: its colour scale, first image row, probe mark, frame and ranges (data units
# per pixel along x and y must agree: the map keeps the field's true shape).
MAP_FACTS = f"""() => {{
  const find = {FIND};
  const fig = find('mean-figure'), image = find('mean-image'), marker = find('probe-marker');
  const view = window.Bokeh.index.find_one(fig);
  const mapper = fig.renderers.find((r) => r.glyph && r.glyph.color_mapper).glyph.color_mapper;
  const frame = view.frame.bbox, xr = fig.x_range, yr = fig.y_range;
  return {{low: mapper.low, high: mapper.high, row: Array.from(image.data.image[0]).slice(0, 88),
          mark: [marker.data.x[0], marker.data.y[0]],
          x_per_px: (xr.end - xr.start) / frame.width, y_per_px: (yr.end - yr.start) / frame.height,
          frame_w: frame.width, frame_h: frame.height}};
}}"""

# Where the probe plot's frame starts and its y tick labels: a y axis that kept its width
# (labels of one width) leaves the frame where it was, with no layout pass of the page.
QOI_FRAME = """() => {
  for (const root of window.Bokeh.documents[0].roots())
    for (const m of root.references())
      if (m.renderers && m.renderers.some((r) => r.data_source && r.data_source.name === 'qoi-bands')) {
        const view = window.Bokeh.index.find_one(m);
        if (view) return {left: view.frame.bbox.left, start: m.y_range.start, end: m.y_range.end};
      }
  return null;
}"""

# Page coordinates of the data point (x, y) on the mean map.
MAP_POINT = f"""([x, y]) => {{
  const view = window.Bokeh.index.find_one(({FIND})('mean-figure'));
  const box = view.canvas_view.el.getBoundingClientRect();
  return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
}}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = train_tiny_model(tmp_path_factory.mktemp("ui-models"), "cylinder").parent
    log = tmp_path_factory.mktemp("ui-log") / "serve.log"
    with serve_dashboard(models, log_path=log) as url:
        yield url, log


def test_field_maps_channel_probe_click_and_fixed_colours(server, tmp_path):
    from engine.systems import get_system

    grid = get_system("cylinder", "small").grid()
    xs, ys = grid["x"], grid["y"]
    server, log = server
    with sync_api.sync_playwright() as p:
        with local_page(p, 1400) as (page, external, errors):
            page.goto(server)
            first = wait_for_plot(page)  # the first model offered, not ours
            models = page.locator("select:has(option:text-matches('cylinder-tiny'))")
            tiny = [o for o in models.locator("option").all_inner_texts() if "cylinder-tiny" in o]
            models.select_option(label=tiny[0])
            wait_for_new_plot(page, first, timeout_ms=60_000)
            page.wait_for_function(f"() => ({FIND})('probe-marker') !== null", timeout=60_000)
            before = wait_until_settled(page)
            frame_u = page.evaluate(QOI_FRAME)
            page.wait_for_function(f"() => ({FIND})('mean-image').data.image[0].length > 1")
            facts = page.evaluate(MAP_FACTS)
            # true shape: one data unit is as long on screen along x as along y
            assert facts["x_per_px"] == pytest.approx(facts["y_per_px"], rel=0.03), facts
            assert facts["frame_w"] > 3 * facts["frame_h"], facts

            # the channel selector offers the system's channels; switching shows v
            select = page.locator("select:has(option:text-is('v'))")
            assert select.locator("option").all_inner_texts() == ["u", "v", "p"]
            select.select_option(label="v")
            page.get_by_text("probe v at (x, y)").wait_for(timeout=30_000)
            page.wait_for_function(
                f"(old) => {{ const f = ({MAP_FACTS})(); return f.low !== old; }}",
                arg=facts["low"], timeout=30_000)
            v_facts = page.evaluate(MAP_FACTS)
            assert v_facts["low"] == pytest.approx(-v_facts["high"])  # a signed field
            after_switch = wait_for_new_plot(page, before, timeout_ms=30_000)
            page.wait_for_timeout(300)
            frame_v = page.evaluate(QOI_FRAME)
            # u is ~1.3, v ~0 ± 0.04: other tick labels, the same axis width
            assert frame_v["end"] < frame_u["start"] and frame_v["left"] == frame_u["left"]

            # a click on the map moves the probe there (row 3, column 70)
            row, col = 3, 70
            x, y = page.evaluate(MAP_POINT, [float(xs[col]), float(ys[row])])
            page.mouse.click(x, y)
            page.get_by_text(f"(row, col) = ({row}, {col})").wait_for(timeout=30_000)
            wait_for_new_plot(page, after_switch, timeout_ms=30_000)
            clicked = page.evaluate(MAP_FACTS)
            assert clicked["mark"] == pytest.approx([xs[col], ys[row]])

            # the player steps the frames; the colour scale stays that of the whole horizon
            page.wait_for_timeout(300)
            player = page.locator(".bk-panel-models-widgets-Player").first
            # buttons: slower, first, previous, reverse, pause, play, next, last, faster
            player.locator("button").nth(6).click()  # one frame forward
            page.wait_for_function(
                f"(old) => ({MAP_FACTS})().row.some((v, i) => v !== old[i])",
                arg=clicked["row"], timeout=30_000)
            stepped = page.evaluate(MAP_FACTS)
            assert (stepped["low"], stepped["high"]) == (clicked["low"], clicked["high"])

            # the loop options are inside the player's box (they were cut off)
            box = player.bounding_box()
            loop = page.get_by_text("Loop", exact=True).first.bounding_box()
            assert loop["x"] + loop["width"] <= box["x"] + box["width"] + 1
            assert loop["y"] + loop["height"] <= box["y"] + box["height"] + 1
            wait_until_settled(page)
            page.wait_for_timeout(500)  # no message in flight when the page closes
            page.screenshot(path=str(tmp_path / "fields.png"), full_page=True)
    assert_clean(external, errors, log)
