"""Where the catalog finds the pretrained models (app/state/catalog.py: ``pretrained_dir``).

``$SROM_PRETRAINED_DIR`` overrides; else the source checkout's ``pretrained/``; else
``~/.srom/pretrained``, the place for an installed wheel, which ships no models.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from app.state import catalog

ROOT = Path(__file__).resolve().parents[1]
OSCILLATOR = ROOT / "pretrained" / "oscillator"


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv(catalog.ENV_PRETRAINED_DIR, raising=False)


def test_a_checkout_finds_its_own_pretrained_folder(no_override):
    assert catalog.pretrained_dir() == ROOT / "pretrained"
    entries = catalog.discover_models([("pretrained", catalog.pretrained_dir())])
    assert any(e.path == str(OSCILLATOR.resolve()) and e.system == "oscillator" for e in entries)


def test_the_environment_variable_overrides_and_its_models_are_discovered(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(OSCILLATOR, models / "my_oscillator")
    monkeypatch.setenv(catalog.ENV_PRETRAINED_DIR, str(models))
    monkeypatch.setenv(catalog.ENV_MODELS_DIR, str(tmp_path / "user"))
    assert catalog.pretrained_dir() == models
    entries = catalog.discover_models()
    assert [(e.source, e.system, Path(e.path)) for e in entries] == [
        ("pretrained", "oscillator", (models / "my_oscillator").resolve())]
    assert catalog.default_model(entries, prefer="oscillator") == entries[0]


def test_a_tilde_in_the_variable_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "srom-models").mkdir()
    monkeypatch.setenv(catalog.ENV_PRETRAINED_DIR, "~/srom-models")
    assert catalog.pretrained_dir() == tmp_path / "srom-models"


def test_a_missing_override_warns_and_lists_no_pretrained_models(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(catalog.ENV_PRETRAINED_DIR, str(missing))
    monkeypatch.setenv(catalog.ENV_MODELS_DIR, str(tmp_path / "user"))
    with caplog.at_level(logging.WARNING, logger="app.state.catalog"):
        assert catalog.pretrained_dir() == missing
    assert catalog.ENV_PRETRAINED_DIR in caplog.text and str(missing) in caplog.text
    assert catalog.discover_models() == []


def test_an_installed_package_without_a_checkout_looks_in_the_home_folder(
        tmp_path, monkeypatch, no_override):
    # an installed wheel: app/ and engine/ in site-packages, no pyproject.toml beside them,
    # even if some other distribution put a folder named "pretrained" there
    site = tmp_path / "site-packages"
    (site / "pretrained").mkdir(parents=True)
    monkeypatch.setattr(catalog, "REPO_ROOT", site)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert catalog.pretrained_dir() == tmp_path / "home" / ".srom" / "pretrained"
    # a checkout without pretrained/ (a sparse clone) falls back the same way
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'srom'\n")
    monkeypatch.setattr(catalog, "REPO_ROOT", checkout)
    assert catalog.pretrained_dir() == tmp_path / "home" / ".srom" / "pretrained"
    (checkout / "pretrained").mkdir()
    assert catalog.pretrained_dir() == checkout / "pretrained"


def test_the_roots_put_the_pretrained_folder_first(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.ENV_PRETRAINED_DIR, str(tmp_path / "p"))
    monkeypatch.setenv(catalog.ENV_MODELS_DIR, str(tmp_path / "u"))
    assert catalog.model_roots() == [("pretrained", tmp_path / "p"), ("user", tmp_path / "u")]
