"""Screenshots of the dashboard's main views for the README.

Serves the dashboard with ``panel serve`` (the default pretrained Burgers model; the user's
models directory is an empty temporary one, so a training here never touches
``~/.srom/models``), drives it in headless Chromium as the browser tests do, and writes

* ``explore.png``: the Explore tab after comparing with the simulator,
* ``sensitivity.png``: the Sensitivity tab after a sweep of the first input and a tornado
  ranking of all inputs,
* ``train.png``: the Train tab during a training of the default small system, with the loss
  curves and a validation prediction drawn (the training is stopped afterwards),
* ``about.png``: the About tab with its formulas typeset.

Usage:
    python scripts/screenshots.py [--out assets/screenshots] [--width 1400] [--height 900]
        [--explore-height 1300]

Needs Panel, Playwright and Chromium (``/usr/bin/chromium`` or ``$SROM_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from ui_speed import CHROMIUM, CHROMIUM_ARGS, serve_dashboard  # noqa: E402

# a named Bokeh source holds at least `n` rows (in its column `column`)
SOURCE_ROWS = """([name, column, n]) => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  const source = doc && doc.get_model_by_name(name);
  // column null: the first one (HoloViews names the sweep's columns after its dimensions)
  const values = source && (column === null ? Object.values(source.data)[0] : source.data[column]);
  return !!values && values.length >= n;
}"""
TRUTH_SHOWN = """() => Array.from(window.Bokeh.documents[0].get_model_by_name('qoi-bands')
  .data.truth).some(Number.isFinite)"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).first.click()


def _shoot(page, path: Path) -> None:
    """Scroll everything back to the top (a click may have scrolled the sidebar or the main
    area), let the figures repaint, and save a picture of the viewport."""
    page.evaluate("""() => { window.scrollTo(0, 0);
      for (const el of document.querySelectorAll('*')) if (el.scrollTop) el.scrollTop = 0; }""")
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    log(path.name)


def take(url: str, out: Path, width: int, height: int, explore_height: int,
         train_points: int) -> list[Path]:
    """Drive the served dashboard at ``url`` and write the screenshots into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # the Explore picture is taller: its space–time maps sit below the probe plots
            page = browser.new_page(viewport={"width": width, "height": explore_height})
            page.goto(url)
            page.wait_for_function(SOURCE_ROWS, arg=["qoi-bands", "mean", 2], timeout=120_000)

            page.locator("input[type=checkbox]").first.click()  # "Compare with the simulator"
            page.wait_for_function(TRUTH_SHOWN, timeout=60_000)
            written.append(out / "explore.png")
            _shoot(page, written[-1])
            page.set_viewport_size({"width": width, "height": height})

            _tab(page, "Sensitivity")
            page.get_by_role("button", name="Run sweep").click()
            page.wait_for_function(SOURCE_ROWS, arg=["sweep-mean", None, 3], timeout=120_000)
            page.get_by_role("button", name="Rank inputs").click()
            page.wait_for_function(SOURCE_ROWS, arg=["tornado-bars", "input", 2], timeout=120_000)
            written.append(out / "sensitivity.png")
            _shoot(page, written[-1])

            _tab(page, "Train")
            page.get_by_role("button", name="Start").click()
            page.wait_for_function(SOURCE_ROWS, arg=["train-curves", "loss", train_points],
                                   timeout=300_000)
            page.wait_for_function(SOURCE_ROWS, arg=["val-bands", "mean", 2], timeout=300_000)
            written.append(out / "train.png")
            _shoot(page, written[-1])
            page.get_by_role("button", name="Stop").click()

            _tab(page, "About")
            page.locator(".katex").first.wait_for(state="attached", timeout=30_000)
            written.append(out / "about.png")
            _shoot(page, written[-1])
        finally:
            browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots",
                        help="the folder to write into (assets/screenshots)")
    parser.add_argument("--width", type=int, default=1400, help="viewport width (1400)")
    parser.add_argument("--height", type=int, default=900, help="viewport height (900)")
    parser.add_argument("--explore-height", type=int, default=1300,
                        help="viewport height of the Explore picture (1300)")
    parser.add_argument("--train-points", type=int, default=30,
                        help="progress reports drawn before the Train picture (30)")
    args = parser.parse_args()
    with serve_dashboard() as url:
        for path in take(url, args.out, args.width, args.height, args.explore_height,
                         args.train_points):
            print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
