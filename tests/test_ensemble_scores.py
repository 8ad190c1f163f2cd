"""Scores against stochastic and chaotic truth: the metrics, the Lyapunov exponents, the
truth ensembles and `srom evaluate --ensemble` (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.metrics import (
    crps,
    energy_score,
    ensemble_scores,
    oracle_ensemble_scores,
    valid_prediction_time,
)
from engine.systems import generate
from engine.systems.lyapunov import largest_lyapunov_exponent, lorenz63_lyapunov
from engine.truth_ensembles import make_truth_ensemble


def duffing_like():
    """Data made elsewhere: no simulator configuration recorded."""
    from problems import duffing_dataset

    return duffing_dataset(2, n_times=21, seed=0)


# ---------------------------------------------------------------------------- metrics
def test_energy_score_of_a_scalar_state_is_the_crps():
    rng = np.random.default_rng(0)
    samples, truth = rng.normal(size=(3, 20, 7, 1)), rng.normal(size=(3, 7, 1))
    assert energy_score(samples, truth) == pytest.approx(crps(samples, truth), rel=1e-10)


def test_energy_score_rewards_the_right_spread():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(200, 1, 3))
    right = rng.normal(size=(200, 64, 1, 3))
    narrow, wide = 0.2 * right, 5.0 * right
    assert energy_score(right, truth) < min(energy_score(narrow, truth), energy_score(wide, truth))


def test_ensemble_scores_tell_a_perfect_model_from_biased_and_overconfident_ones():
    rng = np.random.default_rng(2)
    centre = np.sin(np.linspace(0, 6, 50))[None, :, None] + 3.0  # (1, T, 1)
    real = centre[:, None] + 0.3 * rng.normal(size=(4, 64, 50, 1))
    perfect = centre[:, None] + 0.3 * rng.normal(size=(4, 256, 50, 1))
    good = ensemble_scores(perfect.mean(1), perfect, real)
    assert good["rel_l2_vs_ensemble_mean"] < 0.02
    assert 0.87 <= good["coverage_90"] <= 0.93 and 0.45 <= good["coverage_50"] <= 0.55
    # the old score, against one realisation, blames even the perfect model for the noise
    assert good["rel_l2_vs_one_realisation"] > 4 * good["rel_l2_vs_ensemble_mean"]
    biased = perfect + 0.5
    assert ensemble_scores(biased.mean(1), biased, real)["rel_l2_vs_ensemble_mean"] > 0.1
    tight = centre[:, None] + 0.03 * rng.normal(size=(4, 256, 50, 1))
    assert ensemble_scores(tight.mean(1), tight, real)["coverage_90"] < 0.2
    oracle = oracle_ensemble_scores(real)
    assert oracle["n_realisations"] == 32 and 0.8 <= oracle["coverage_90"] <= 0.95
    with pytest.raises(ValueError, match="realisations"):
        ensemble_scores(perfect.mean(1), perfect, real[:, :, :10])


def test_valid_prediction_time_is_when_the_normalised_error_first_passes_the_threshold():
    t = np.linspace(0.0, 10.0, 1001)
    truth = np.stack([np.sin(t), np.cos(t)], axis=-1)[None]
    scale = truth[0].var(axis=0).mean()  # mean variance of the components (≈ 0.5)
    growth = 1e-3 * np.exp(t)  # normalised error = growth / √scale
    pred = truth + growth[None, :, None]
    expected = np.log(0.3 * np.sqrt(scale) / 1e-3)
    assert valid_prediction_time(pred, truth, t)[0] == pytest.approx(expected, abs=0.011)
    assert valid_prediction_time(truth, truth, t)[0] == pytest.approx(10.0)  # never fails
    nan = pred.copy()
    nan[:, 3:] = np.nan
    assert valid_prediction_time(nan, truth, t)[0] == pytest.approx(t[3])


# -------------------------------------------------------------------------- Lyapunov
def test_lyapunov_exponent_of_a_linear_flow_is_its_rate():
    rates = np.array([0.5, -0.2])
    exponents = largest_lyapunov_exponent(lambda x, tau: x * np.exp(rates[:, None] * tau),
                                          np.ones((2, 3)), tau=0.7, n_renormalisations=20)
    assert exponents == pytest.approx(rates, abs=1e-3)  # rounding: the state grows e^14-fold


def test_lorenz63_exponent_matches_the_literature():
    assert lorenz63_lyapunov(n_renormalisations=400)[0] == pytest.approx(0.906, abs=0.05)


# --------------------------------------------------------------------- truth ensembles
def test_process_noise_realisations_share_the_initial_state_and_spread_later():
    cases = generate("van_der_pol", n=2, split="test", seed=3, preset="small")
    ens = make_truth_ensemble(cases, 32)
    assert ens.kind == "process_noise" and ens.realisations.shape == (2, 32) + cases.x.shape[1:]
    np.testing.assert_allclose(ens.realisations[:, :, 0], cases.x[:, None, 0].repeat(32, 1))
    spread = ens.realisations.std(axis=1).mean(axis=-1)  # (B, T)
    assert spread[:, 0].max() == 0 and spread[:, -1].min() > 1e-3
    # the realisations are new draws: the test set's own path is not among them
    assert not np.any(np.all(np.isclose(ens.realisations, cases.x[:, None]), axis=(2, 3)))
    assert ens.lyapunov_exponents is None


def test_observation_noise_realisations_scatter_around_the_clean_chaotic_path():
    cases = generate("lorenz63", n=2, split="test", seed=0, preset="small")
    ens = make_truth_ensemble(cases, 64)
    assert ens.kind == "observation_noise"
    noise = ens.realisations - ens.clean[:, None]
    assert noise.std() == pytest.approx(1.0, rel=0.05)  # the preset's observation noise
    assert np.sqrt(np.mean((cases.x - ens.clean) ** 2)) == pytest.approx(1.0, rel=0.1)
    assert ens.lyapunov_exponents == pytest.approx([0.906] * 2, abs=0.08)
    # the exact dynamics from the observed (noisy) first snapshot: starts there, stays near
    # the clean path at first (the deviation is the observation noise) and departs later
    start = ens.observed_start
    assert start.shape == cases.x.shape
    np.testing.assert_allclose(start[:, 0], cases.x[:, 0], rtol=1e-12)
    early = np.sqrt(np.mean((start[:, :5] - ens.clean[:, :5]) ** 2))
    assert 0.3 < early < 3.0
    late = np.sqrt(np.mean((start[:, -5:] - ens.clean[:, -5:]) ** 2))
    assert late > early


def test_truth_ensembles_refuse_what_they_cannot_regenerate():
    cases = generate("van_der_pol", n=2, split="test", seed=3, preset="small")
    altered = cases.subset(range(2))
    altered.x = altered.x + 0.5  # not what the simulator makes
    with pytest.raises(ValueError, match="not the simulator"):
        make_truth_ensemble(altered, 8)
    with pytest.raises(ValueError, match="known simulator"):
        make_truth_ensemble(duffing_like(), 8)
    with pytest.raises(ValueError, match="n_realisations"):
        make_truth_ensemble(cases, 1)


# -------------------------------------------------------------------------------- CLI
def test_srom_evaluate_scores_against_the_ensemble(tmp_path, capsys):
    from engine.cli import main

    for split, n in (("train", 4), ("test", 2)):
        assert main(["generate", "oscillator", "--preset", "small", "--n", str(n), "--split",
                     split, "--seed", "0", "--out", str(tmp_path / f"{split}.npz")]) == 0
    assert main(["train", str(tmp_path / "train.npz"), "--out", str(tmp_path / "m"), "--steps",
                 "20", "--window", "8", "--latent-dim", "2", "--set", "drift_hidden=[16]"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "test.npz"), "--n-samples", "8",
                 "--no-paper-protocol", "--ensemble", "8", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["ensemble"]
    assert scores["kind"] == "process_noise" and scores["n_realisations"] == 8
    assert 0 <= scores["coverage_90"] <= 1 and scores["rel_l2_vs_ensemble_mean"] > 0
    assert "Stochastic truth" in scores["description"]
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "test.npz"), "--ensemble", "1"]) == 2
    assert "--ensemble must be between 2" in capsys.readouterr().err


def test_heat_realisations_follow_its_exact_law_given_the_first_snapshot():
    from engine.systems import get_system

    cases = generate("heat", n=2, split="test", seed=0, preset="small")
    ens = make_truth_ensemble(cases, 4000)
    assert ens.kind == "exact_moments"
    sample_mean = ens.realisations.mean(axis=1)
    spread = ens.realisations.std(axis=1)
    assert np.abs(sample_mean - ens.exact_mean).max() < 5 * spread.max() / np.sqrt(4000)
    # the preset starts at zero, so the first snapshot teaches nothing: the unconditional law
    heat = get_system("heat", "small")
    forcing = [heat.check_forcing(f) for f in cases.attrs["forcings"]][1]
    mean, _ = heat.exact_moments(cases.mu[1], forcing, cases.t)
    np.testing.assert_allclose(ens.exact_mean[1], mean, atol=1e-12)
    # from a stationary start without observation noise the first snapshot fixes the modes
    heat = get_system("heat", "small", initial="stationary")
    x0 = heat.simulate(seed=5)[0]
    mean, cov = heat.conditional_moments(x0)
    np.testing.assert_allclose(mean[0], x0, atol=1e-9)
    assert np.abs(cov[0]).max() < 1e-12 and np.abs(cov[-1]).max() > 1e-6
    # with observation noise it is between the prior (zero mean) and the observation
    noisy = get_system("heat", "small", initial="stationary", obs_noise=0.05)
    mean, _ = noisy.conditional_moments(x0)
    assert 0 < np.linalg.norm(mean[0]) < np.linalg.norm(x0)


def test_relative_error_leaves_out_steps_where_the_truth_is_zero():
    truth = np.ones((2, 5, 3))
    truth[:, 0] = 0.0  # a state that starts at exactly zero
    pred = 1.1 * truth + 1e-3
    scores = ensemble_scores(pred, pred[:, None], truth[:, None].repeat(4, 1))
    assert scores["rel_l2_vs_ensemble_mean"] == pytest.approx(0.1 + 1e-3, rel=1e-6)
    assert scores["rel_l2_steps_left_out"] == pytest.approx(0.2)


def test_the_reproduction_table_reads_verdicts_from_the_scores(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import reproduction

    base = {"kind": "process_noise", "n_cases": 4, "n_realisations": 64, "rel_l2_vs_ensemble_mean": 0.08,
            "rel_l2_vs_ensemble_mean_case_std": 0.01, "coverage_90": 0.9,
            "oracle": {"coverage_90": 0.85}}
    records = {"oscillator": base, "van_der_pol": {**base, "coverage_90": 0.97},
               "lorenz63": {**base, "kind": "observation_noise", "valid_lyapunov_times": 1.2,
                            "persistence_valid_lyapunov_times": 0.1}}
    for name, ens in records.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps({"ensemble": ens}))
    lines, raw = reproduction.ensemble_rows(tmp_path)
    verdicts = {r["model"]: r["verdict"] for r in raw}
    assert verdicts == {"oscillator": "met", "van_der_pol": "missed: coverage 0.970", "lorenz63": "met"}
    assert len(lines) == 2 + 3


def test_the_valid_time_of_a_chaotic_forecast_is_averaged_over_predictions(tmp_path):
    from engine import StochasticROM
    from engine.ensemble_evaluation import describe_scores, evaluate_against_ensemble

    train = generate("lorenz63", n=2, split="train", seed=0, preset="small")
    cases = generate("lorenz63", n=2, split="test", seed=0, preset="small")
    model = StochasticROM(latent_dim=3, steps=20, window=8, drift_hidden=(16,), seed=0).fit(train)
    ens = make_truth_ensemble(cases, 8)
    scores = evaluate_against_ensemble(model, ens, n_samples=4, seed=3, vpt_seeds=3)
    runs = scores["valid_lyapunov_times_over_seeds"]
    assert scores["vpt_seeds"] == 3 and len(runs) == 3
    assert scores["valid_lyapunov_times"] == pytest.approx(np.mean(runs))
    # the first prediction is the one the other scores use; the others are new draws
    one = evaluate_against_ensemble(model, ens, n_samples=4, seed=3, vpt_seeds=1)
    assert one["valid_lyapunov_times_over_seeds"] == [pytest.approx(runs[0])]
    assert one["rel_l2_vs_ensemble_mean"] == pytest.approx(scores["rel_l2_vs_ensemble_mean"])
    assert "over 3 predictions" in describe_scores(scores)
    # the figure benchmarks/valid_time_seeds.py computes for the same prediction
    from engine.ensemble_evaluation import valid_lyapunov_times
    first = np.concatenate([p.mean for _, p in model.predict_dataset(cases, 4, 3)])
    assert runs[0] == pytest.approx(float(np.mean(valid_lyapunov_times(first, ens))))
    with pytest.raises(ValueError, match="vpt_seeds"):
        evaluate_against_ensemble(model, ens, n_samples=4, vpt_seeds=0)


def test_valid_times_are_counted_in_each_cases_own_lyapunov_times():
    from dataclasses import replace

    from engine.ensemble_evaluation import valid_lyapunov_times

    cases = generate("lorenz63", n=2, split="test", seed=0, preset="small")
    clean = np.asarray(cases.x, dtype=np.float64)
    t = np.asarray(cases.t) - cases.t[0]
    ens = make_truth_ensemble(cases, 2)
    ens = replace(ens, clean=clean, lyapunov_exponents=np.array([1.0, 3.0]))
    # a forecast right until t1 (case 0) and t2 = t1 / 2 (case 1), then far off
    t1 = t[len(t) // 2]
    t2 = t[len(t) // 4]
    forecast = clean.copy()
    forecast[0, t > t1] += 100.0
    forecast[1, t > t2] += 100.0
    valid = valid_lyapunov_times(forecast, ens)
    first_bad = [t[np.argmax(t > t1)], t[np.argmax(t > t2)]]  # valid until the first bad step
    np.testing.assert_allclose(valid, [first_bad[0] * 1.0, first_bad[1] * 3.0])
    # the mean of each case's own count, not the mean time times the mean exponent
    assert np.mean(valid) != pytest.approx(np.mean(first_bad) * 2.0)
    with pytest.raises(ValueError, match="not a chaotic"):
        valid_lyapunov_times(forecast, replace(ens, lyapunov_exponents=None))
