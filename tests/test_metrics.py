import numpy as np
import pytest
from scipy.stats import norm

from engine.metrics import crps, interval_coverage, relative_l2, rmse, summarize


def test_relative_l2_per_step():
    truth = np.ones((2, 3, 4))
    mean = truth * 1.1
    assert np.allclose(relative_l2(mean, truth), 0.1)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l2(mean[:, :2], truth)


def test_rmse():
    assert rmse(np.zeros(4), np.full(4, 2.0)) == pytest.approx(2.0)


def test_crps_matches_gaussian_closed_form():
    rng = np.random.default_rng(0)
    y = np.array([[[0.3]], [[-1.2]]])  # (B=2, T=1, S=1)
    samples = rng.normal(size=(2, 20000, 1, 1))
    closed = np.mean([yy * (2 * norm.cdf(yy) - 1) + 2 * norm.pdf(yy) - 1 / np.sqrt(np.pi)
                      for yy in y.ravel()])
    assert crps(samples, y) == pytest.approx(closed, abs=5e-3)


def test_crps_of_a_point_mass_is_the_absolute_error():
    samples = np.full((1, 10, 2, 1), 3.0)
    assert crps(samples, np.zeros((1, 2, 1))) == pytest.approx(3.0)


def test_interval_coverage_of_calibrated_samples():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(1, 4000, 500))
    truth = rng.normal(size=(1, 500))
    assert interval_coverage(samples, truth, 0.9) == pytest.approx(0.9, abs=0.04)
    assert interval_coverage(samples, truth, 0.5) == pytest.approx(0.5, abs=0.06)
    with pytest.raises(ValueError):
        interval_coverage(samples, truth, 1.5)


def test_summarize_keys():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(2, 5, 3))
    samples = truth[:, None] + 0.1 * rng.normal(size=(2, 50, 5, 3))
    out = summarize(samples.mean(1), samples, truth)
    assert set(out) == {"rel_l2_mean", "rel_l2_std", "scaled_l2_mean", "rmse", "crps", "coverage_50",
                        "coverage_90"}


def test_accumulator_over_batches_equals_summarize():
    from engine.metrics import MetricAccumulator, summarize

    rng = np.random.default_rng(3)
    truth = rng.normal(size=(5, 7, 3, 2))
    samples = truth[:, None] + rng.normal(scale=0.8, size=(5, 33, 7, 3, 2))
    mean = samples.mean(1)
    acc = MetricAccumulator()
    for sl in (slice(0, 2), slice(2, 5)):
        acc.update(mean[sl], samples[sl].astype(np.float32), truth[sl])
    expected, got = summarize(mean, samples, truth), acc.result()
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
