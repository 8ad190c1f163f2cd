"""A prediction can be cancelled between chunks of its work (engine.cancellation), and a
cancel check that never fires changes nothing."""

import numpy as np
import pytest
import torch

from engine import PredictionCancelled, StochasticROM
from engine.likelihoods import observations, predictive_moments
from engine.prediction import over_path_chunks, over_time_chunks, sample_quantiles
from engine.systems import get_system

LEVELS = np.array([0.05, 0.5, 0.95])


@pytest.fixture(scope="module")
def fitted():
    data = get_system("burgers", n_x=64, n_t=41).generate(2, "train", seed=0)
    model = StochasticROM(latent_dim=2, steps=5, window=8, device="cpu", substeps=2).fit(data)
    return model, data


def _predict(model, data, cancel=None):
    return model.predict(data.x[0, 0], mu=data.mu[0], t=data.t, f=data.f[0], n_samples=24,
                         seed=3, quantiles=LEVELS, cancel=cancel)


class Counter:
    """A cancel check that fires at its ``fire_at``-th call (never when ``None``)."""

    def __init__(self, fire_at: int | None = None):
        self.calls, self.fire_at = 0, fire_at

    def __call__(self) -> bool:
        self.calls += 1
        return self.fire_at is not None and self.calls >= self.fire_at


def test_a_check_that_never_fires_leaves_the_prediction_bit_identical(fitted):
    model, data = fitted
    plain = _predict(model, data)
    check = Counter()
    checked = _predict(model, data, cancel=check)
    # every integration step (40 intervals x 2 substeps) and each later chunk is checked
    assert check.calls > 80
    for name in ("mean", "std", "samples", "latent", "quantile_values"):
        assert np.array_equal(getattr(plain, name), getattr(checked, name)), name


def test_a_cancel_stops_the_prediction_at_the_check_that_fires(fitted):
    model, data = fitted
    total = Counter()
    _predict(model, data, cancel=total)
    # in the integration, at its last step, in the decoder/reductions, at the very last check
    for fire_at in (1, 80, total.calls - 1, total.calls):
        check = Counter(fire_at)
        with pytest.raises(PredictionCancelled, match="cancelled at"):
            _predict(model, data, cancel=check)
        assert check.calls == fire_at  # no work (and no further check) after it fired


@pytest.mark.parametrize("chunk_values", [1, 7 * 5, 10**9])
def test_reductions_over_chunks_of_times_equal_the_whole_one(chunk_values):
    gen = torch.Generator().manual_seed(0)
    paths = torch.randn(2, 7, 13, 5, generator=gen)  # (B, n, T, S)
    var = torch.full((5,), 0.1)
    mean, v = over_time_chunks(lambda p: predictive_moments("gaussian", p, var), paths,
                               out_dims=(1, 1), chunk_values=chunk_values)
    whole_mean, whole_var = predictive_moments("gaussian", paths, var)
    # a sum's order may follow the shape: the same up to rounding
    torch.testing.assert_close(mean, whole_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(v, whole_var, rtol=1e-6, atol=1e-7)
    (q,) = over_time_chunks(lambda p: (sample_quantiles(p, LEVELS, dim=1),), paths,
                            out_dims=(2,), chunk_values=chunk_values)
    assert torch.equal(q, sample_quantiles(paths, LEVELS, dim=1))


def test_a_cancelled_reduction_raises_before_its_next_chunk():
    paths = torch.zeros(1, 2, 6, 3)
    seen = []

    def fn(part):
        seen.append(part.shape[2])
        return (part.mean(1),)

    with pytest.raises(PredictionCancelled, match="time 2 of 6"):
        over_time_chunks(fn, paths, out_dims=(1,), cancel=lambda: len(seen) == 2,
                         chunk_values=2 * 2 * 3 // 2)  # one time per chunk: 6 values
    assert seen == [1, 1]


def _noisy(part, generator):
    return observations("gaussian", part, torch.tensor(0.25), generator)


@pytest.mark.parametrize("chunk_values", [4 * 4, 3 * 4 * 4, 10**9])
def test_observation_noise_over_chunks_of_paths_is_the_same_draw_on_a_cpu(chunk_values):
    """Chunks of whole paths holding a multiple of 16 values draw the same numbers as one
    piece (torch fills normals 16 at a time on a CPU)."""
    paths = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(1))  # 16 a path
    whole = _noisy(paths, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    chunked = over_path_chunks(lambda part: _noisy(part, gen), paths, chunk_values=chunk_values)
    assert chunked.shape == paths.shape
    assert torch.equal(chunked, whole)


def test_observation_noise_over_chunks_of_paths_keeps_its_law():
    paths = torch.zeros(1, 400, 3, 5)  # 15 values a path: chunks draw other numbers
    gen = torch.Generator().manual_seed(0)
    noisy = over_path_chunks(lambda part: _noisy(part, gen), paths, chunk_values=15 * 7)
    assert abs(float(noisy.mean())) < 0.02 and abs(float(noisy.std()) - 0.5) < 0.02


def test_a_cancelled_noise_draw_raises_before_its_next_chunk():
    seen = []

    def fn(part):
        seen.append(part.shape[0])
        return part + 1

    with pytest.raises(PredictionCancelled, match="path 4 of 6"):
        over_path_chunks(fn, torch.zeros(2, 3, 2, 2), cancel=lambda: len(seen) == 2,
                         chunk_values=2 * 4)  # two paths a chunk
    assert seen == [2, 2]
