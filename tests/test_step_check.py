"""The accurate default: substeps chosen by halving at fit time, stored with the model, used
by every prediction; old model directories get the new default; the papers' protocol."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from problems import duffing_dataset

from engine import StochasticROM, load_model
from engine.cli import main as srom
from engine.data import Dataset
from engine.io import hyperparameters
from engine.solvers import DEFAULT_METHOD
from engine.solvers.step_check import INFORMATIVE, choose_substeps


@pytest.fixture(scope="module")
def fitted():
    """A small forced-oscillator model; ``substeps`` is left to the check (the default)."""
    model = StochasticROM(latent_dim=2, steps=300, lr=3e-3, windows_per_step=4, window=32,
                          drift_hidden=(32, 32), log_every=100, seed=0)
    return model.fit(duffing_dataset(8, seed=0), validation=None)


def test_fit_chooses_the_fewest_substeps_whose_halving_changes_little(fitted):
    record = fitted.integration_
    assert fitted.substeps is None and fitted.integrator == DEFAULT_METHOD == "heun"
    assert record["integrator"] == "heun" and record["converged"]
    assert record["change"] < record["tolerance"] * record["error"]
    rows = record["tried"]
    assert [r[0] for r in rows] == [2**k for k in range(len(rows))]
    assert rows[-1][0] == record["substeps"]
    for _substeps, change, error in rows[:-1]:  # every smaller count failed the criterion
        assert change >= record["tolerance"] * error, rows
    assert fitted.integration_settings() == ("heun", record["substeps"])
    assert fitted.integration_settings("euler", 3) == ("euler", 3)
    # a preview's step: the fewest tried substeps whose halving moved ≤ 10 % of the error
    coarse = fitted.coarse_substeps()
    assert coarse <= record["substeps"]
    assert any(n == coarse and change <= 0.1 * error for n, change, error in rows) \
        or coarse == record["substeps"]


def test_predictions_use_the_chosen_substeps(fitted):
    data = duffing_dataset(2, seed=3)
    args = (data.x[:, 0], data.mu, data.t, data.f)
    default = fitted.predict(*args, n_samples=4, seed=1)
    explicit = fitted.predict(*args, n_samples=4, seed=1, integrator="heun",
                              substeps=fitted.integration_["substeps"])
    np.testing.assert_array_equal(default.samples, explicit.samples)


def test_deterministic_prediction_is_the_mean_field_path(fitted):
    data = duffing_dataset(1, seed=4)
    args = (data.x[0, 0], data.mu[0], data.t, data.f[0])
    a = fitted.predict(*args, n_samples=3, seed=1, deterministic=True)
    b = fitted.predict(*args, n_samples=3, seed=2, deterministic=True)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert np.all(a.std == 0) and np.allclose(a.samples, a.mean[:, None])


def test_evaluate_reports_headline_and_papers_protocol(fitted):
    metrics = fitted.evaluate(duffing_dataset(3, seed=5), n_samples=16)
    assert metrics["integrator"] == "heun" and metrics["substeps"] == fitted.integration_["substeps"]
    paper = metrics["paper_protocol"]
    assert paper["n_paths"] == 32 and paper["decoder_samples"] == 64
    assert paper["integrator"] == "sra1" and paper["substeps"] == 2 * metrics["substeps"]
    assert 0 < paper["rel_l2_mean"] < 2 * metrics["rel_l2_mean"] + 0.05
    assert "paper_protocol" not in fitted.evaluate(duffing_dataset(2, seed=5), n_samples=4,
                                                   paper_protocol=False)


def test_choice_is_saved_and_loaded(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["integration"]["substeps"] == fitted.integration_["substeps"]
    assert config["config"]["integrator"] == {"integrator": "heun", "substeps": None,
                                              "assimilate_iterations": 0,
                                              "assimilate_prior_scale": 1.0}
    loaded = load_model(tmp_path / "m")
    assert loaded.integration_settings() == fitted.integration_settings()


def test_old_model_directory_gets_the_new_default(fitted, tmp_path):
    fitted.save(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    config = json.loads(path.read_text())
    # as written before the integrator check existed (format 1: flat hyperparameters)
    del config["integration"]
    config["params"] = hyperparameters(config).to_params()
    config["format_version"] = 1
    del config["config"]
    config["params"].update(integrator="euler", substeps=1)
    path.write_text(json.dumps(config))
    old = load_model(tmp_path / "old")
    assert old.integration_settings() == ("heun", 1)
    config["params"].update(integrator="euler", substeps=3)  # a choice someone made: kept
    path.write_text(json.dumps(config))
    assert load_model(tmp_path / "old").integration_settings() == ("euler", 3)
    config["params"].update(integrator="rk4")
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="integrator must be one of"):
        load_model(tmp_path / "old")


def test_explicit_substeps_skip_the_check():
    model = StochasticROM(latent_dim=2, steps=20, window=16, windows_per_step=2,
                          drift_hidden=(8,), log_every=10, substeps=3, integrator="sra1")
    model.fit(duffing_dataset(2, seed=0))
    assert not getattr(model, "integration_", None)
    assert model.integration_settings() == ("sra1", 3)
    assert model.coarse_substeps() == 3  # the user's choice: no check to go coarser by


def test_cli_tune_step_updates_the_model(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "m")
    data = tmp_path / "val.npz"
    duffing_dataset(3, seed=9).save(data)
    assert srom(["tune-step", str(tmp_path / "m"), str(data), "--integrator", "sra1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["integrator"] == "sra1" and result["n_trajectories"] == 3
    assert load_model(tmp_path / "m").integration_settings() == ("sra1", result["substeps"])
    assert srom(["evaluate", str(tmp_path / "m"), str(data), "--integrator", "euler",
                 "--substeps", "2", "--n-samples", "4", "--no-paper-protocol", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["integrator"], metrics["substeps"]) == ("euler", 2)
    assert srom(["evaluate", str(tmp_path / "m"), str(data), "--substeps", "0"]) == 2


class ChaoticStub:
    """A stand-in model whose deterministic rollout with n substeps errs by a model error of
    5 % plus an integration error ``1e-6 · 2^k / n²`` at output step k, which doubles every
    step (chaos)."""

    n_win = 1

    def __init__(self, truth: Dataset):
        self.truth = truth
        self.calls: list[tuple[int, int]] = []

    def predict_dataset(self, dataset, n_samples, seed, batch_size, return_samples,
                        integrator, substeps, deterministic):
        assert deterministic and n_samples == 1
        n = dataset.n_times
        self.calls.append((substeps, n))
        error = 0.05 + 1e-6 * 2.0 ** np.arange(n) / substeps**2  # (T,)
        mean = self.truth.x[:, :n] * (1 + error[None, :, None])
        yield slice(None), types.SimpleNamespace(mean=mean)


def test_the_check_scores_only_the_informative_horizon():
    truth = Dataset(np.linspace(0, 1, 40), np.ones((2, 40, 3)))
    stub = ChaoticStub(truth)
    result = choose_substeps(stub, truth, "heun")
    # the rollout at 2 substeps first errs by INFORMATIVE of the (unit) data at
    # 0.05 + 1e-6·2^k/4 ≥ 0.5
    first_lost = int(np.ceil(np.log2((INFORMATIVE - 0.05) * 4 / 1e-6)))
    assert result["n_times"] == first_lost and result["of_times"] == 40
    assert stub.calls[:2] == [(1, 40), (2, 40)]  # the whole horizon once, then the cut
    assert stub.calls[2:] and all(size == first_lost for _, size in stub.calls[2:])
    # inside the cut the change from halving falls as 1/n² against a 5 % error floor
    assert result["converged"] and result["substeps"] == 16
    for _substeps, change, error in result["tried"][:-1]:
        assert change >= 0.01 * error
