"""Sessions' predictions of one shared CPU model run side by side (app.state.catalog)."""

from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from app.state import catalog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shared_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return catalog.load_cached(ROOT / "pretrained" / "burgers")


def test_a_cpu_model_is_not_serialized(shared_model):
    assert shared_model._device().type == "cpu"
    assert catalog.predicts_in_parallel(shared_model)
    assert isinstance(catalog.model_lock(shared_model), contextlib.nullcontext)
    assert catalog.serial_key(shared_model) is None


def test_a_model_that_is_not_on_the_cpu_keeps_its_lock(shared_model, monkeypatch):
    import torch

    monkeypatch.setattr(type(shared_model), "_device", lambda self: torch.device("cuda"))
    assert not catalog.predicts_in_parallel(shared_model)
    lock = catalog.model_lock(shared_model)
    assert lock is catalog.model_lock(shared_model) and hasattr(lock, "acquire")
    assert catalog.serial_key(shared_model) == id(shared_model)


def test_predictions_at_once_equal_the_same_ones_in_turn(shared_model):
    """Two threads predicting the shared model at the same time get, seed for seed, what one
    thread gets alone: nothing of one call leaks into the other."""
    m = shared_model
    x0 = np.zeros(m.state_shape_)
    t = np.linspace(0.0, 1.0, 51)
    mu = np.array([lo + 0.3 * (hi - lo) for lo, hi in m.param_ranges_])
    f = np.full((t.size, len(m.forcing_names_)), 0.1)
    jobs = [dict(seed=seed, n_samples=24) for seed in (1, 2, 3, 4)]

    def run(job):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return m.predict(x0, mu, t, f, **job).mean

    alone = [run(job) for job in jobs]
    together: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def worker(i):
        start.wait()
        together[i] = run(jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])  # the seeds differ, so would any mix-up
