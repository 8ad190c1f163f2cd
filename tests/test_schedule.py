"""The training defaults that follow from the data's size (engine.schedule) and the
calibration that ``srom train`` runs without a validation set."""

import json

import numpy as np
import pytest
from problems import duffing_dataset, ou_dataset

import engine.schedule as schedule
from engine import StochasticROM
from engine.cli import main
from engine.config import ModelConfig
from engine.data import Dataset
from engine.schedule import calibration_split, default_steps


def test_cheap_steps_get_more_steps_than_large_states():
    # a predator-prey pair: 4 windows x 64 snapshots x 2 values = 512 decoded values a step
    assert default_steps((2,), 500, 64, 4) == schedule.CHEAP_STEPS
    # a 1-D field of 128 points: 32 768 values a step
    assert default_steps((128,), 1001, 64, 4) == schedule.DEFAULT_STEPS
    assert default_steps((3, 80, 440), 200, 64, 4) == schedule.DEFAULT_STEPS
    assert schedule.CHEAP_STEPS > schedule.DEFAULT_STEPS


def test_the_rule_counts_the_snapshots_a_step_really_decodes():
    # 4 x 64 x 32 = 8192 values: over the limit; with 10-snapshot trajectories the window
    # is cut to 10 and a step decodes 4 x 10 x 32 = 1280
    assert default_steps((32,), 500, 64, 4) == schedule.DEFAULT_STEPS
    assert default_steps((32,), 10, 64, 4) == schedule.CHEAP_STEPS
    assert default_steps((2,), 500, 64, 64) == schedule.DEFAULT_STEPS  # 8192 values
    assert default_steps((16,), 500, 64, 4) == schedule.CHEAP_STEPS  # exactly 4096


@pytest.mark.parametrize("bad", [dict(n_times=0), dict(window=0), dict(windows_per_step=-1)])
def test_bad_sizes_are_refused(bad):
    args = dict(state_shape=(2,), n_times=100, window=64, windows_per_step=4) | bad
    with pytest.raises(ValueError, match="must be a positive integer"):
        default_steps(**args)


def test_steps_default_to_the_rule_and_an_explicit_count_wins(monkeypatch):
    assert StochasticROM().steps is None and ModelConfig().training.steps is None
    ModelConfig().validate()  # None is a valid setting
    monkeypatch.setattr(schedule, "CHEAP_STEPS", 12)
    monkeypatch.setattr(schedule, "DEFAULT_STEPS", 7)
    small = dict(window=8, windows_per_step=2, drift_hidden=[8], log_every=5, substeps=1)
    model = StochasticROM(latent_dim=2, **small).fit(duffing_dataset(2, n_times=30, seed=0))
    assert model.training_["steps"] == 12 == model.training_["planned_steps"]
    assert model.training_["steps_from_data_size"] is True and model.get_params()["steps"] is None
    wide = ou_dataset(2, n_times=30)
    wide = Dataset(wide.t, np.repeat(wide.x, 300, axis=-1))  # 2 x 8 x 600 > 4096
    model = StochasticROM(latent_dim=2, hidden=[8], **small).fit(wide)
    assert model.training_["steps"] == 7
    model = StochasticROM(latent_dim=2, steps=3, **small).fit(duffing_dataset(2, n_times=30))
    assert model.training_["steps"] == 3 and model.training_["steps_from_data_size"] is False


def test_calibration_split_is_the_end_of_a_few_trajectories():
    data = duffing_dataset(6, n_times=100, seed=0)
    tail = calibration_split(data)
    assert tail is not None and tail.n_trajectories == 4 and tail.n_times == 30
    np.testing.assert_array_equal(tail.x, data.x[:4, 70:])
    np.testing.assert_array_equal(tail.t, data.t[70:])
    np.testing.assert_array_equal(tail.mu, data.mu[:4])
    assert calibration_split(data, share=0.5, max_trajectories=9).n_trajectories == 6
    assert calibration_split(duffing_dataset(1, n_times=10)).n_times == 8  # the fewest kept
    assert calibration_split(duffing_dataset(1, n_times=8)) is None  # nothing before them


def test_calibration_split_keeps_a_trial_under_its_value_limit(monkeypatch):
    data = duffing_dataset(6, n_times=100, seed=0)  # a trajectory's trial: 64 x 30 x 2
    monkeypatch.setattr(schedule, "MAX_CALIBRATION_VALUES", 2 * 64 * 30 * 2)
    assert calibration_split(data).n_trajectories == 2
    monkeypatch.setattr(schedule, "MAX_CALIBRATION_VALUES", 64 * 30 * 2 - 1)
    assert calibration_split(data) is None
    with pytest.raises(ValueError, match="share"):
        calibration_split(data, share=1.0)


def test_srom_train_without_val_calibrates_on_the_end_of_the_training_series(tmp_path, capsys):
    duffing_dataset(5, n_times=60, seed=0).save(tmp_path / "train.npz")
    common = ["--steps", "20", "--window", "16", "--latent-dim", "2",
              "--set", "drift_hidden=[16]", "--set", "log_every=10"]
    assert main(["train", str(tmp_path / "train.npz"), "--out", str(tmp_path / "m"), *common]) == 0
    assert "fitted on the end of the training series" in capsys.readouterr().err
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["calibration"]
    assert saved["n_trajectories"] == 4 and saved["level"] == 0.9
    assert 0.05 <= saved["scale"] <= 20 and 0 <= saved["coverage_after"] <= 1
    assert main(["train", str(tmp_path / "train.npz"), "--out", str(tmp_path / "n"), *common,
                 "--no-calibrate"]) == 0
    assert not json.loads((tmp_path / "n" / "config.json").read_text()).get("calibration")
