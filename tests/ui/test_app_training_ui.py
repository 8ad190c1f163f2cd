"""Browser test of the Train tab: serve the dashboard with ``panel serve`` (a temporary, empty
``SROM_MODELS_DIR``), open it in headless Chromium, start a training, watch the progress bar
advance, stop it, upload a malformed file and see it refused, then save the model and find
it in the Explore tab's model picker.

Skipped unless Panel, Playwright and a Chromium binary (``/usr/bin/chromium`` or
``$SROM_CHROMIUM``) are installed — except with ``SROM_REQUIRE_UI=1``, where a missing piece
fails the test instead. Playwright's own browser download is never used.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
from browser import assert_clean, local_page, playwright_sync_api, serve_dashboard  # noqa: E402

sync_api = playwright_sync_api()

CURVE_POINTS = """() => { const m = window.Bokeh.documents[0].get_model_by_name('train-curves');
  return m ? m.data.step.length : -1; }"""

PICKER_HAS = """(name) => { const doc = window.Bokeh.documents[0];
  const models = doc.all_models ? [...doc.all_models] : [...doc._all_models.values()];
  return models.some((m) => Array.isArray(m.options)
                            && JSON.stringify(m.options).includes(name)); }"""


def _progress(page) -> tuple[float, float]:
    """The Train tab's progress bar as (value, max); Playwright's CSS pierces shadow roots."""
    return tuple(page.locator("progress.srom-train-progress").first.evaluate(
        "(e) => [e.value, e.max]"))


def _wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("train-ui-models")
    log = tmp_path_factory.mktemp("train-ui-log") / "serve.log"
    with serve_dashboard(models, log_path=log) as url:
        yield url, models, log


def test_train_stop_upload_and_save(server, tmp_path):
    url, models, log = server
    timings = {}
    with sync_api.sync_playwright() as p:
        with local_page(p, 1400) as (page, external, errors):
            page.goto(url)
            # FilePond's 60 Hz frame loop is parked while the page has no drop box
            # (app.views.idle_painter): its next frame request is held, not scheduled
            page.wait_for_function("() => window.__sromPainter && window.__sromPainter.parked()",
                                   timeout=60_000)
            assert not page.evaluate("() => window.__sromPainter.live()")
            page.locator(".bk-tab", has_text="Train").first.click(timeout=60_000)
            start = page.locator("button", has_text="Start").first
            start.wait_for(timeout=30_000)
            # the Train tab's drop box woke it (the "Upload complete" checks below need it);
            # with nobody at the page it ticks on a slow timer
            page.wait_for_function("() => window.__sromPainter.live() "
                                   "&& !window.__sromPainter.parked()", timeout=10_000)
            page.wait_for_function("() => window.__sromPainter.slowTicks() > 2", timeout=10_000)
            start.click()
            t0 = time.perf_counter()

            # the bar moves: a first value, then a larger one, and the curves fill
            first = _wait_until(lambda: _progress(page)[0], 30, "a first progress value")
            timings["start → progress"] = time.perf_counter() - t0
            _wait_until(lambda: _progress(page)[0] > first, 30, "the bar to advance")
            assert page.evaluate(CURVE_POINTS) > 0

            page.locator("button", has_text="Stop").first.click()
            page.get_by_text("stopped at step").first.wait_for(timeout=20_000)
            value, total = _progress(page)
            assert 0 < value < total
            timings["start → stopped"] = time.perf_counter() - t0
            page.screenshot(path=str(tmp_path / "train.png"))

            # a malformed upload is refused with its reason; the session keeps working
            page.locator("input[type=file]").first.set_input_files(files=[{
                "name": "broken.npz", "mimeType": "application/octet-stream",
                "buffer": b"this is not an npz archive"}])
            page.get_by_text("Upload refused").first.wait_for(timeout=20_000)
            assert page.get_by_text("not an .npz archive").count() > 0
            # the dropper no longer lists the refused file as a green "Upload complete"
            sync_api.expect(page.get_by_text("Upload complete")).to_have_count(0, timeout=10_000)
            # a valid one is accepted with its summary, and the refusal goes away
            from test_app_training import _dataset_bytes

            page.locator("input[type=file]").first.set_input_files(files=[{
                "name": "mine.npz", "mimeType": "application/octet-stream",
                "buffer": _dataset_bytes(3)}])
            page.get_by_text("mine.npz accepted").first.wait_for(timeout=20_000)
            page.get_by_text("Upload complete").first.wait_for(timeout=10_000)  # an accepted one
            assert page.get_by_text("3 trajectories").count() > 0
            page.get_by_text("Upload refused").first.wait_for(state="hidden", timeout=10_000)

            name = page.get_by_placeholder("e.g. my-oscillator").first
            name.fill("ui-model")  # no Enter: the click on Save commits the text first
            page.locator("button", has_text="Save model").first.click()
            page.get_by_text("saved as").first.wait_for(timeout=20_000)
            # the Explore tab's picker learns of the new model from the periodic callback
            page.wait_for_function(PICKER_HAS, arg="ui-model", polling=200, timeout=10_000)
            page.screenshot(path=str(tmp_path / "train-saved.png"))
    print(f"\n{timings}")
    assert (models / "ui-model" / "config.json").is_file()
    assert_clean(external, errors, log)


def test_knobs_a_short_training_and_the_model_zip(server, tmp_path):
    """Set the architecture and the learning rate, see a setting that does not fit the data
    refused with its reason, start a short training, stop it, resume it from its checkpoint
    to the end and download the model folder as a zip."""
    import json
    import zipfile

    url, models, log = server
    with sync_api.sync_playwright() as p:
        with local_page(p, 1400) as (page, external, errors):  # downloads are accepted
            page.goto(url)
            page.locator(".bk-tab", has_text="Train").first.click(timeout=60_000)
            page.locator("button", has_text="Start").first.wait_for(timeout=30_000)
            download_button = page.get_by_role("button", name="Download model (.zip)")
            assert download_button.is_disabled()  # nothing trained yet

            architecture = page.locator("select").filter(
                has=page.locator("option", has_text="conv2d")).first
            architecture.select_option("conv2d")  # the oscillator's states are vectors
            page.locator("button", has_text="Start").first.click()
            page.get_by_text("architecture 'conv2d' needs 2-D fields").first.wait_for(
                timeout=10_000)
            assert page.get_by_text("step 0 /").count() == 0  # nothing was queued

            architecture.select_option("mlp")
            for name, value in (("Learning rate", "0.005"), ("Training steps", "400")):
                box = page.get_by_label(name).first
                box.fill(value)
                box.press("Enter")
            resume = page.get_by_role("button", name="Resume")
            assert resume.is_disabled()
            page.locator("button", has_text="Start").first.click()
            _wait_until(lambda: _progress(page)[0] > 0, 60, "a first progress value")
            page.locator("button", has_text="Stop").first.click()
            page.get_by_text("stopped at step").first.wait_for(timeout=20_000)
            sync_api.expect(resume).to_be_enabled(timeout=10_000)
            page.get_by_text("Resume goes on from the checkpoint at step").first.wait_for(
                timeout=10_000)
            resume.click()
            page.get_by_text("(resumed from step").first.wait_for(timeout=60_000)
            page.get_by_text("completed:").first.wait_for(timeout=120_000)
            assert resume.is_disabled()
            sync_api.expect(download_button).to_be_enabled(timeout=10_000)

            with page.expect_download(timeout=30_000) as download:
                download_button.click()
            assert download.value.suggested_filename == "srom-oscillator-model.zip"
            target = tmp_path / "model.zip"
            download.value.save_as(target)
    archive = zipfile.ZipFile(target)
    assert archive.namelist() == ["srom-oscillator-model/config.json",
                                  "srom-oscillator-model/model.safetensors",
                                  "srom-oscillator-model/initial_states.safetensors"]
    text = archive.read("srom-oscillator-model/config.json").decode()
    config = json.loads(text)["config"]
    assert config["autoencoder"]["architecture"] == "mlp"
    assert config["training"]["lr"] == 0.005 and config["training"]["steps"] == 400
    assert str(models) not in text and "/tmp" not in text
    archive.extractall(tmp_path / "unzipped")
    from engine import load_model

    model = load_model(tmp_path / "unzipped" / "srom-oscillator-model")
    info = model.training_
    assert info["steps"] == 400 and info["status"] == "completed"
    assert 0 < info["resumed_from_step"] < 400
    assert_clean(external, errors, log)
