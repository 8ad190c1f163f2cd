"""The disk cache of simulator initial states (engine/state_cache.py) and its use by the
cylinder's spin-up."""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine import state_cache as sc
from engine.forcing import make_forcing
from engine.state_cache import (
    SHIPPED_DIR,
    cache_dir,
    cache_limit,
    data_initial_state,
    load_state,
    simulator_initial_state,
    state_key,
    store_state,
)


class CountingSystem:
    """A stand-in simulator: ``x(t) = μ₀ + t + seed`` on 3 points; counts its calls."""

    system_name = "counting"
    initial_state_is_fixed = False

    def __init__(self, fixed: bool = False, scale: float = 1.0):
        self.calls = 0
        self.scale = scale
        self.initial_state_is_fixed = fixed

    def config(self) -> dict:
        return {"scale": self.scale}

    def simulate(self, mu, forcings, t, seed=0):
        self.calls += 1
        return (float(mu[0]) + np.asarray(t)[:, None] + seed) * self.scale * np.ones((1, 3))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(sc.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(sc.CACHE_BYTES_ENV, raising=False)
    return tmp_path / "cache" / SHIPPED_DIR


SINE = (make_forcing("sine", amplitude=1.0),)
STEP = (make_forcing("step", level=2.0),)


def test_the_key_changes_with_every_input_and_only_then():
    s = CountingSystem()
    base = state_key(s, np.array([1.0]), SINE, 0.0, 0.1, 1, 0)
    assert len(base) == 64 and base == state_key(s, np.array([1.0]), SINE, 0.0, 0.1, 1, 0)
    others = [state_key(s, np.array([1.5]), SINE, 0.0, 0.1, 1, 0),
              state_key(s, np.array([1.0]), STEP, 0.0, 0.1, 1, 0),
              state_key(s, np.array([1.0]), SINE, 0.5, 0.1, 1, 0),
              state_key(s, np.array([1.0]), SINE, 0.0, 0.2, 1, 0),
              state_key(s, np.array([1.0]), SINE, 0.0, 0.1, 2, 0),
              state_key(s, np.array([1.0]), SINE, 0.0, 0.1, 1, 7),
              state_key(CountingSystem(scale=2.0), np.array([1.0]), SINE, 0.0, 0.1, 1, 0)]
    assert len({base, *others}) == len(others) + 1


def test_a_fixed_start_ignores_forcing_and_seed_at_t0_zero_only():
    s = CountingSystem(fixed=True)
    mu = np.array([1.0])
    assert state_key(s, mu, SINE, 0.0, 0.1, 1, 0) == state_key(s, mu, STEP, 0.0, 0.1, 1, 5)
    assert state_key(s, mu, SINE, 0.5, 0.1, 1, 0) != state_key(s, mu, STEP, 0.5, 0.1, 1, 0)
    assert state_key(s, mu, SINE, 0.0, 0.1, 2, 0) != state_key(s, mu, STEP, 0.0, 0.1, 2, 0)


def test_an_object_without_settings_is_not_keyed():
    class Bare:
        def simulate(self, mu, forcings, t, seed=0):
            return np.zeros((len(t), 2))

    assert state_key(Bare(), np.zeros(0), (), 0.0, 0.1) is None
    x = simulator_initial_state(Bare(), np.zeros(0), (), 0.0, 0.1, min_seconds=0.0)
    assert x.shape == (2,)


def test_store_and_load_round_trip_atomically(cache):
    key = "a" * 64
    x = np.arange(6.0).reshape(2, 3)
    path = store_state(key, x)
    assert path == cache / f"{key}.npy"
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}.npy"]  # no temporary left
    y = load_state(key)
    np.testing.assert_array_equal(y, x)
    assert not y.flags.writeable
    assert load_state(key, shape=(3, 2)) is None
    assert load_state("b" * 64) is None


@pytest.mark.parametrize("key", ["../" + "a" * 61, "A" * 64, "a" * 63, "g" * 64])
def test_keys_that_are_not_hex_digests_are_refused(cache, key):
    with pytest.raises(ValueError, match="64 lowercase hex"):
        store_state(key, np.zeros(2))


def test_unsafe_or_broken_files_are_ignored(cache):
    cache.mkdir(parents=True)
    np.save(cache / ("c" * 64 + ".npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (cache / ("d" * 64 + ".npy")).write_bytes(b"not a numpy file")
    np.save(cache / ("e" * 64 + ".npy"), np.array([1.0, np.nan]))
    np.save(cache / ("f" * 64 + ".npy"), np.array([1, 2]))
    for k in "cdef":
        assert load_state(k * 64) is None


def test_the_cache_stays_under_its_bound_dropping_the_least_recently_used(cache):
    x = np.zeros(100)  # 800 bytes of data, 928 with the header
    keys = [c * 64 for c in "0123"]
    for i, key in enumerate(keys[:3]):
        store_state(key, x, max_bytes=3000)
        os.utime(cache / f"{key}.npy", (1000 + i, 1000 + i))
    load_state(keys[0])  # used now: the oldest unused is keys[1]
    store_state(keys[3], x, max_bytes=3000)
    names = {p.stem for p in cache.glob("*.npy")}
    assert names == {keys[0], keys[2], keys[3]}
    assert sum(p.stat().st_size for p in cache.glob("*.npy")) <= 3000
    assert store_state("9" * 64, np.zeros(1000), max_bytes=3000) is None  # larger than the bound


def test_cache_location_and_bound_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(sc.CACHE_DIR_ENV, str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / SHIPPED_DIR
    monkeypatch.delenv(sc.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "srom" / SHIPPED_DIR
    monkeypatch.setenv(sc.CACHE_BYTES_ENV, "1234")
    assert cache_limit() == 1234
    for bad in ("-1", "lots", "1e9"):
        monkeypatch.setenv(sc.CACHE_BYTES_ENV, bad)
        with pytest.raises(ValueError, match=sc.CACHE_BYTES_ENV):
            cache_limit()
    monkeypatch.setenv(sc.CACHE_BYTES_ENV, "0")
    assert store_state("a" * 64, np.zeros(3)) is None  # 0 turns the cache off


def test_a_computed_state_is_cached_and_reused(cache):
    s = CountingSystem()
    mu = np.array([2.0])
    x = simulator_initial_state(s, mu, SINE, 0.5, 0.1, 1, seed=1, min_seconds=0.0)
    np.testing.assert_allclose(x, [3.5, 3.5, 3.5])
    y = simulator_initial_state(s, mu, SINE, 0.5, 0.1, 1, seed=1, min_seconds=0.0)
    assert s.calls == 1
    np.testing.assert_array_equal(x, y)
    w = simulator_initial_state(s, mu, SINE, 0.5, 0.1, 2, seed=1, min_seconds=0.0)
    assert w.shape == (2, 3) and s.calls == 2
    np.testing.assert_allclose(w[1], [3.6] * 3)


def test_cheap_states_and_use_cache_false_write_nothing(cache):
    s = CountingSystem()
    simulator_initial_state(s, np.array([1.0]), SINE, 0.0, 0.1, min_seconds=60.0)
    simulator_initial_state(s, np.array([1.0]), SINE, 0.0, 0.1, use_cache=False,
                            min_seconds=0.0)
    assert not cache.exists() or not list(cache.glob("*.npy"))
    assert s.calls == 2


def test_a_state_shipped_with_the_model_comes_first(cache, tmp_path):
    s = CountingSystem()
    mu = np.array([1.0])
    key = state_key(s, mu, SINE, 0.0, 0.1, 1, 0)
    shipped = np.full(3, 42.0)
    store_state(key, shipped, directory=tmp_path / "model" / SHIPPED_DIR)
    x = simulator_initial_state(s, mu, SINE, 0.0, 0.1, model_dir=tmp_path / "model")
    np.testing.assert_array_equal(x, shipped)
    assert s.calls == 0
    with pytest.raises(ValueError, match="n_win"):
        simulator_initial_state(s, mu, SINE, 0.0, 0.1, n_win=0)


class _Kept:
    def __init__(self, x0):
        self.x0 = x0


class _Model:
    state_shape_ = (2, 3)
    n_win = 1

    def __init__(self, kept=None):
        from types import SimpleNamespace

        self.initial_states_ = kept
        self.normalization_ = SimpleNamespace(x_mean=np.array([[1.0], [2.0]]))


def test_data_initial_states_use_a_kept_case_else_the_data_mean():
    x0 = np.arange(24.0).reshape(4, 1, 2, 3)  # (K, W, *S)
    np.testing.assert_array_equal(data_initial_state(_Model(_Kept(x0)), 2), x0[2, 0])
    with pytest.raises(ValueError, match="0..3"):
        data_initial_state(_Model(_Kept(x0)), 4)
    np.testing.assert_array_equal(data_initial_state(_Model()), [[1.0] * 3, [2.0] * 3])
    m = _Model()
    m.n_win = 2
    assert data_initial_state(m).shape == (2, 2, 3)
    m.state_shape_ = ()
    with pytest.raises(ValueError, match="not fitted"):
        data_initial_state(m)


def test_the_cylinder_start_is_the_same_for_every_forcing():
    from engine.systems import get_system

    s = get_system("cylinder", "small", device="cpu")
    assert s.initial_state_is_fixed
    t = np.array([0.0, 0.02])
    a = s.simulate(s.default_mu(), make_forcing("sine", amplitude=0.01, frequency=20.0), t)
    b = s.simulate(s.default_mu(), make_forcing("step", level=-0.01, time=0.0), t, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])  # the forcing acts after t = 0


def test_the_cylinder_spin_up_is_read_back_from_the_disk_cache(cache, monkeypatch):
    from engine.systems import cylinder, get_system

    s = get_system("cylinder", "small", device="cpu", spinup=0.02)
    monkeypatch.setattr(cylinder, "SPINUP_DISK_MIN_SECONDS", 0.0)
    cylinder._SPINUP_CACHE.clear()
    t = np.array([0.0, 0.01])
    first = s.simulate(s.default_mu(), None, t)
    assert len(list(cache.glob("*.npy"))) == 1
    cylinder._SPINUP_CACHE.clear()

    def no_spin_up(self, n):
        raise AssertionError("the spin-up ran again")

    monkeypatch.setattr(cylinder._Lattice, "initial", no_spin_up)
    np.testing.assert_array_equal(s.simulate(s.default_mu(), None, t), first)
    cylinder._SPINUP_CACHE.clear()


def test_a_stored_state_of_another_shape_than_the_systems_is_ignored(cache, tmp_path):
    s = CountingSystem()
    s.state_shape = (3,)
    mu = np.array([1.0])
    key = state_key(s, mu, SINE, 0.0, 0.1, 1, 0)
    store_state(key, np.zeros(4), directory=tmp_path / "model" / SHIPPED_DIR)
    store_state(key, np.zeros(5))
    x = simulator_initial_state(s, mu, SINE, 0.0, 0.1, model_dir=tmp_path / "model")
    assert s.calls == 1 and x.shape == (3,)
