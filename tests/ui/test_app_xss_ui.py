"""Browser regression test (issue 15): a model whose config carries markup in its ``system``
string — as a trained upload would — shows it as text; no script in it ever runs."""

from __future__ import annotations

import json
import shutil

import pytest
from browser import assert_clean, local_page, playwright_sync_api, serve_dashboard  # noqa: E402

sync_api = playwright_sync_api()

from test_app_state import train_tiny_model  # noqa: E402

PAYLOAD = '<img src=x onerror="window.__srom_xss = 1">'


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory):
    tiny = train_tiny_model(tmp_path_factory.mktemp("ui-models"))
    models = tmp_path_factory.mktemp("hostile")
    target = models / "hostile"
    shutil.copytree(tiny, target)
    config = json.loads((target / "config.json").read_text())
    config["system"] = PAYLOAD
    (target / "config.json").write_text(json.dumps(config))
    return models


def test_markup_in_a_model_config_is_shown_as_text(hostile_models, tmp_path):
    log = tmp_path / "serve.log"
    with serve_dashboard(hostile_models, log_path=log) as url:
        with sync_api.sync_playwright() as p:
            with local_page(p, 1000) as (page, external, errors):
                page.goto(url)
                picker = page.locator("select").first
                picker.wait_for(timeout=60_000)
                labels = picker.evaluate("s => Array.from(s.options).map(o => o.label)")
                hostile = next(label for label in labels if "hostile" in label)
                assert hostile.startswith(PAYLOAD)  # the picker shows it as text
                picker.select_option(label=hostile)
                # the model's description names the system: the payload, literally
                page.locator("p", has_text="latent d =").filter(
                    has_text='onerror="window.__srom_xss = 1"').first.wait_for(
                    state="attached", timeout=60_000)
                page.wait_for_timeout(1500)  # an injected <img src=x> would have errored by now
                assert page.evaluate("() => window.__srom_xss") is None
    assert_clean(external, [e for e in errors if "simulator" not in e])
