"""Choosing the prior scale of the initial-state fit by forecasts (engine.assimilation_tuning,
StochasticROM.tune_assimilation, srom tune-assimilation)."""

import json

import numpy as np
import pytest
import torch
from problems import duffing_dataset

from engine import Dataset, StochasticROM, load_model
from engine.assimilation_tuning import forecast_starts, one_standard_error_choice
from engine.cli import main


@pytest.fixture(scope="module")
def fitted():
    model = StochasticROM(latent_dim=2, n_win=6, steps=60, window=16, windows_per_step=2,
                          drift_hidden=(16,), log_every=20, seed=0, assimilate_iterations=30)
    return model.fit(duffing_dataset(4, n_times=41, seed=0))


@pytest.fixture(scope="module")
def flow_data(fitted):
    """Trajectories that are the model's own deterministic flow: a fit with a free prior
    recovers each window's state exactly, so its forecasts are near perfect."""
    data = duffing_dataset(2, n_times=41, seed=5)
    fitted.assimilate_iterations = 0
    try:
        flow = fitted.predict(data.x[:, :6], data.mu, data.t, data.f, n_samples=1,
                              deterministic=True)
    finally:
        fitted.assimilate_iterations = 30
    return Dataset(data.t, flow.mean, mu=data.mu, f=data.f)


class _Encoder:
    """Replaces the module's encoder with one that is off by ``shift`` and claims the
    variance ``exp(log_var)``."""

    def __init__(self, model, shift: float, log_var: float):
        self.module, self.shift, self.log_var = model.module_, shift, log_var

    def __enter__(self):
        true_encode = self.module.encode

        def encode(windows):
            mean, log_var = true_encode(windows)
            return mean + self.shift, torch.full_like(log_var, self.log_var)

        self.module.encode = encode

    def __exit__(self, *exc):
        del self.module.encode


def test_forecast_windows_are_spread_over_the_trajectories():
    starts = forecast_starts(2, 100, 6, 10, 8)
    assert len(starts) == 8 and {i for i, _ in starts} == {0, 1}
    assert min(s for _, s in starts) == 0 and max(s for _, s in starts) == 100 - 6 - 10
    many = forecast_starts(50, 30, 6, 10, 5)
    assert len(many) == 5 and all(s == 0 for _, s in many) and many[-1][0] == 49
    with pytest.raises(ValueError, match="too few"):
        forecast_starts(1, 15, 6, 10, 4)


def test_the_rule_keeps_the_first_candidate_not_measurably_worse():
    case = np.random.default_rng(0).uniform(1.0, 3.0, 40)  # the cases' shared difficulty
    wobble = 0.01 * np.tile([1.0, -1.0], 20)  # paired differences: mean 0, s.e. ~0.0016
    # the first candidate is worse on average by 0.001, less than one standard error
    close = np.stack([case + 0.001 + wobble, case, case + 0.002])
    chosen, excess, se = one_standard_error_choice(close)
    assert int(np.argmin(close.mean(1))) == 1 and chosen == 0
    assert excess[0] == pytest.approx(0.001) and excess[0] < se[0]
    # clearly better by many standard errors: it wins
    far = np.stack([case + 0.05 + wobble, case, case + 0.002])
    assert one_standard_error_choice(far)[0] == 1
    assert one_standard_error_choice(far, standard_errors=1e6)[0] == 0
    # a candidate whose forecasts fail is never chosen
    broken = far.copy()
    broken[1, 3] = np.nan
    assert one_standard_error_choice(broken)[0] == 2
    with pytest.raises(ValueError, match="non-finite"):
        one_standard_error_choice(np.full((2, 3), np.inf))


@pytest.mark.filterwarnings("ignore::engine.model.ExtrapolationWarning")
def test_an_overconfident_wrong_encoder_needs_a_wide_prior(fitted, flow_data):
    with _Encoder(fitted, shift=0.6, log_var=np.log(1e-4)):
        record = fitted.tune_assimilation(flow_data, scales=[1, 1e5], n_forecasts=6,
                                          n_samples=2, horizon=0.5)
    try:
        assert record["scale"] == 1e5 == fitted.assimilate_prior_scale
        held, freed = record["rmse"]
        assert freed < 0.5 * held
        assert record["excess"][0] > record["excess_se"][0] > 0 and record["excess"][1] == 0
        assert record["n_forecasts"] == 6 and record["lead_steps"] == 2
    finally:
        fitted.assimilate_prior_scale = 1.0


@pytest.mark.filterwarnings("ignore::engine.model.ExtrapolationWarning")
def test_the_tightest_prior_wins_when_a_wider_one_forecasts_no_better(fitted, flow_data):
    # a prior already so wide that scaling it changes nothing measurable
    with _Encoder(fitted, shift=0.0, log_var=np.log(1e4)):
        record = fitted.tune_assimilation(flow_data, scales=[1e3, 1, 30], n_forecasts=6,
                                          n_samples=2)
    try:
        assert record["scales"] == [1, 30, 1e3] and record["scale"] == 1
        assert record["lead_steps"] == 4 * fitted.n_win  # the default horizon
    finally:
        fitted.assimilate_prior_scale = 1.0


def test_it_needs_a_model_that_fits_its_start(fitted, flow_data):
    fitted.assimilate_iterations = 0
    try:
        with pytest.raises(ValueError, match="assimilate_iterations > 0"):
            fitted.tune_assimilation(flow_data)
    finally:
        fitted.assimilate_iterations = 30
    for bad in ({"scales": []}, {"scales": [0.0]}, {"scales": [float("nan")]},
                {"n_forecasts": 0}, {"n_samples": 0}, {"standard_errors": -1.0},
                {"horizon": -1.0}, {"horizon": 100.0}):
        with pytest.raises(ValueError):
            fitted.tune_assimilation(flow_data, **bad)
    assert fitted.assimilate_prior_scale == 1.0


@pytest.mark.filterwarnings("ignore::engine.model.ExtrapolationWarning")
def test_the_command_saves_the_choice_and_its_record(tmp_path, fitted, flow_data, capsys):
    fitted.save(tmp_path / "m")
    flow_data.save(tmp_path / "d.npz")
    assert main(["tune-assimilation", str(tmp_path / "m"), str(tmp_path / "d.npz"),
                 "--scales", "1,100", "--n-forecasts", "4", "--n-samples", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    loaded = load_model(tmp_path / "m")
    assert loaded.assimilate_prior_scale == record["scale"]
    assert loaded.assimilation_["scales"] == [1, 100]
    assert main(["tune-assimilation", str(tmp_path / "m"), str(tmp_path / "d.npz"),
                 "--scales", "1,wide"]) == 2
    assert "--scales expects" in capsys.readouterr().err
