"""User-given text reaches the page as text: a dataset's system string, parameter and
forcing names and file names cannot inject HTML or Markdown (issue 15's stored XSS)."""

from __future__ import annotations

import html as html_module
import io

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from app.state.safe_text import md  # noqa: E402
from app.state.upload import read_upload  # noqa: E402
from engine.data import Dataset  # noqa: E402

PAYLOAD = '<img src=x onerror="alert(1)">'


def _rendered(markdown: str) -> str:
    """The HTML Panel's Markdown pane makes of ``markdown`` (the pane escapes it once more
    for transport; the page undoes that)."""
    return html_module.unescape(pn.pane.Markdown(markdown)._transform_object(markdown)["object"])


def test_markup_unescaped_would_reach_the_page():
    assert "<img" in _rendered(PAYLOAD)  # what the escaping below prevents


def test_md_leaves_no_tag_link_or_emphasis():
    html = _rendered(md(PAYLOAD) + " " + md("[click](javascript:alert(1)) **bold** 0.5"))
    assert "<img" not in html and "<a" not in html and "<strong" not in html
    assert "&lt;img src=x onerror=" in html and "0.5" in html


def test_an_upload_shows_its_names_and_system_as_text():
    d = Dataset(np.linspace(0, 1, 4), np.zeros((2, 4, 3)), mu=np.ones((2, 1)),
                param_names=[PAYLOAD], system=PAYLOAD)
    buffer = io.BytesIO()
    np.savez(buffer, t=d.t, x=d.x, mu=d.mu, param_names=np.array(d.param_names),
             system=np.array(PAYLOAD))
    upload = read_upload(PAYLOAD + ".npz", buffer.getvalue())
    html = _rendered(upload.summary_markdown())
    assert "<img" not in html and html.count("&lt;img") >= 2


def test_a_model_whose_system_is_markup_shows_it_as_text(tmp_path):
    from problems import duffing_dataset

    from app.views.explore import _model_card
    from engine import StochasticROM

    model = StochasticROM(latent_dim=2, steps=5, window=8, windows_per_step=1,
                          drift_hidden=(8,), log_every=5, substeps=1)
    data = duffing_dataset(2, n_times=21)
    data.system = PAYLOAD
    model.fit(data)

    class State:  # what _model_card reads
        system = None
        model_path = None  # not in the catalog: no card or summary files

    state = State()
    state.model = model
    html = _rendered(_model_card(state))
    assert "<img" not in html and "&lt;img" in html


def test_pages_never_show_the_servers_folders(tmp_path, monkeypatch):
    from pathlib import Path

    from app.state import catalog
    from app.state.safe_text import hide_server_paths, md

    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path / "models"))
    models = catalog.user_models_dir()
    text = f"{models}/lesson-1/config.json: not valid JSON; see {Path(__file__).resolve()}"
    hidden = hide_server_paths(text)
    assert str(models) not in hidden and str(Path(__file__).resolve().parent) not in hidden
    assert hidden.startswith("<your models>/lesson-1/config.json") and "<srom>/tests/" in hidden
    assert str(tmp_path) not in md(text)
