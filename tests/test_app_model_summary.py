"""The model picker's descriptions and accuracies (app/state/model_summary.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from app.state.model_summary import (
    MAX_DESCRIPTION,
    WEAK_COVERAGE_90,
    WEAK_ERROR,
    accuracy_of,
    clean_text,
    picker_label,
    read_summary,
)

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize("key", ["scaled_l2_mean", "rel_l2_mean"])
def test_the_weak_warning_switches_at_the_threshold(key):
    good = accuracy_of({key: 0.9 * WEAK_ERROR, "coverage_90": 0.9})
    bad = accuracy_of({key: 1.1 * WEAK_ERROR, "coverage_90": 0.9})
    assert good.score == pytest.approx(0.9 * WEAK_ERROR) and not good.weak and good.reason == ""
    assert bad.score == pytest.approx(1.1 * WEAK_ERROR) and bad.weak
    assert "above" in bad.reason and f"{WEAK_ERROR:g}" in bad.reason
    assert good.short == f"error {100 * 0.9 * WEAK_ERROR:.0f} %"


def test_the_scaled_error_is_preferred_to_the_relative_one():
    acc = accuracy_of({"rel_l2_mean": 0.5, "scaled_l2_mean": 0.05})
    assert acc.score == pytest.approx(0.05) and not acc.weak and "RMS size" in acc.text


def test_a_random_truth_is_scored_against_its_ensemble_mean():
    # heat's case: the relative error blew up where the truth is ~0, the ensemble score did not
    acc = accuracy_of({"rel_l2_mean": 5.2e7, "ensemble": {"rel_l2_vs_ensemble_mean": 0.2,
                                                           "coverage_90": 0.87}})
    assert acc.score == pytest.approx(0.2) and not acc.weak
    assert "realisations" in acc.text and "87 %" in acc.text


def test_a_chaotic_truth_is_weak_only_when_worse_than_holding_the_first_snapshot():
    ens = {"valid_lyapunov_times": 0.33, "persistence_valid_lyapunov_times": 0.04,
           "rel_l2_vs_ensemble_mean": 0.9, "coverage_90": 0.93}
    better = accuracy_of({"ensemble": ens})
    worse = accuracy_of({"ensemble": {**ens, "persistence_valid_lyapunov_times": 0.5}})
    assert better.score is None and not better.weak and "Lyapunov" in better.short
    assert worse.weak and "first snapshot" in worse.reason


def test_a_meaningless_relative_error_falls_back_to_rmse_without_a_verdict():
    acc = accuracy_of({"rel_l2_mean": 5e7, "rmse": 0.07})
    assert acc.score is None and not acc.weak and acc.short == "RMSE 0.07"


def test_a_band_that_misses_the_truth_too_often_is_weak():
    acc = accuracy_of({"scaled_l2_mean": 0.05, "coverage_90": WEAK_COVERAGE_90 - 0.05})
    assert acc.weak and "90 % band" in acc.reason
    assert not accuracy_of({"scaled_l2_mean": 0.05, "coverage_90": WEAK_COVERAGE_90}).weak


@pytest.mark.parametrize("metrics", [None, {}, "text", {"rel_l2_mean": "0.1"},
                                     {"rel_l2_mean": math.nan}, {"rel_l2_mean": True},
                                     {"ensemble": ["x"], "rmse": math.inf}])
def test_missing_or_malformed_scores_say_not_scored(metrics):
    acc = accuracy_of(metrics)
    assert acc.score is None and acc.short == "not scored" and not acc.weak


# ------------------------------------------------------------------ files
def test_the_shipped_models_get_their_card_heading_and_verdict():
    burgers, heat = read_summary(PRETRAINED / "burgers"), read_summary(PRETRAINED / "heat")
    card = (PRETRAINED / "burgers" / "card.md").read_text().splitlines()[0]
    assert burgers.description == card.lstrip("# ").strip()
    assert not burgers.accuracy.weak and burgers.accuracy.score < WEAK_ERROR
    # heat: 0.365 against the truth's exact mean, more than twice a perfect model's 0.168
    metrics = json.loads((PRETRAINED / "heat" / "config.json").read_text())["metrics"]
    assert heat.accuracy.score == pytest.approx(metrics["ensemble"]["rel_l2_vs_ensemble_mean"])
    assert heat.accuracy.weak


def _model_dir(tmp_path: Path, config: dict, card: str | None = None,
               scores: dict | str | None = None) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    if card is not None:
        (directory / "card.md").write_text(card)
    if scores is not None:
        (directory / "eval.json").write_text(scores if isinstance(scores, str)
                                             else json.dumps(scores))
    return directory


def test_a_card_heading_is_cleaned_and_shortened(tmp_path):
    heading = "<img src=x onerror=alert(1)>\u202e\x07 " + "long " * 60
    summary = read_summary(_model_dir(tmp_path, {"system": "burgers"}, f"intro\n# {heading}\n"))
    assert summary.description.startswith("<img src=x onerror=alert(1)>")  # escaped when shown
    assert "\u202e" not in summary.description and "\x07" not in summary.description
    assert len(summary.description) <= MAX_DESCRIPTION and summary.description.endswith("…")


def test_scores_come_from_eval_json_when_the_config_has_none(tmp_path):
    directory = _model_dir(tmp_path, {"system": "x", "latent_dim": 3},
                           scores={"test": {"rel_l2_mean": 0.8, "coverage_90": 0.9}})
    summary = read_summary(directory)
    assert summary.accuracy.score == pytest.approx(0.8) and summary.accuracy.weak
    assert summary.description == "a model of x, latent dimension 3"


def test_broken_files_give_a_summary_not_an_error(tmp_path):
    directory = _model_dir(tmp_path, {"system": None}, card="no heading", scores="{not json")
    summary = read_summary(directory)
    assert summary.description == "a model of your own data"
    assert summary.accuracy.short == "not scored"
    shutil.rmtree(directory)
    assert read_summary(directory).accuracy.short == "not scored"


def test_picker_label_keeps_the_catalog_label_first_and_marks_weak_models(tmp_path):
    good = read_summary(PRETRAINED / "burgers")
    weak = read_summary(PRETRAINED / "heat")
    assert picker_label("burgers — pretrained/burgers", good) == \
        f"burgers — pretrained/burgers · {good.accuracy.short}"
    assert picker_label("heat", weak).endswith("· ⚠ weak")


def test_clean_text_folds_lines():
    assert clean_text("a\n\tb\r\nc") == "a b c"
