import json

import numpy as np
import pytest
from problems import duffing_dataset

from engine import ModelFileError, StochasticROM, load_model
from engine.config import SECTIONS

_SECTION_OF = {f: s for s, cls in SECTIONS.items() for f in cls.__dataclass_fields__}


@pytest.fixture(scope="module")
def small_model():
    return StochasticROM(latent_dim=2, steps=40, window=16, windows_per_step=2,
                         drift_hidden=(16,), log_every=20).fit(duffing_dataset(4, n_times=41))


def test_round_trip_gives_identical_predictions(tmp_path, small_model):
    small_model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    data = duffing_dataset(2, n_times=41, seed=5)
    a = small_model.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=8, seed=11)
    b = loaded.predict(data.x[:, 0], data.mu, data.t, data.f, n_samples=8, seed=11)
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.latent, b.latent)
    assert loaded.get_params() == small_model.get_params()
    assert loaded.param_names_ == ["damping"] and loaded.forcing_names_ == ["force"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format_version"] == 2 and config["training"]["status"] == "completed"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "initial_states.safetensors", "model.safetensors"]


def test_structural_drifts_round_trip(tmp_path):
    from problems import ou_dataset

    data = ou_dataset(2, n_times=30)
    for kwargs in (dict(drift="physics", physics="linear"), dict(drift="library", library_degree=2),
                   dict(drift="second_order", drift_hidden=[8]),
                   dict(drift="physics", physics="linear", drift_correction=True,
                        dispersion_prior=[-2.0, 1.0])):
        model = StochasticROM(latent_dim=2, steps=5, window=8, log_every=5, **kwargs).fit(data)
        model.save(tmp_path / "p")
        loaded = load_model(tmp_path / "p")
        a = model.predict(data.x[0, 0], n_samples=3, seed=0)
        b = loaded.predict(data.x[0, 0], n_samples=3, seed=0)
        assert np.array_equal(a.mean, b.mean), kwargs


def corrupt(tmp_path, small_model, edit):
    small_model.save(tmp_path / "m")
    edit(tmp_path / "m")
    return tmp_path / "m"


@pytest.mark.parametrize("edit, match", [
    (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "config.json").unlink(), "missing config.json"),
    (lambda d: (d / "model.safetensors").unlink(), "missing model.safetensors"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "not a readable safetensors"),
    (lambda d: (d / "config.json").write_text(json.dumps({"kind": "other"})), "not an srom model"),
    (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"format_version": 2', '"format_version": 99')),
     "format version 99"),
    (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"latent_dim": 2,', '"latent_dim": 3,', 1)),
     "do not match"),
    (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"normalization"', '"normalisation"')),
     "malformed"),
    # found by tests/test_properties.py: RecursionError, ValueError, IndexError, TypeError
    (lambda d: (d / "config.json").write_text("[" * 100_000), "not valid JSON"),
    (lambda d: (d / "config.json").write_text("1" * 5000), "not valid JSON"),
    (lambda d: _edit_config(d, t_range=[0.0]), "t_range must be two finite increasing"),
    (lambda d: _edit_config(d, n_forcing=-7.3), "n_forcing must be a whole number"),
    (lambda d: _edit_config(d, decoder_log_var_prior=5), "decoder_log_var_prior must be a"),
    (lambda d: _edit_config(d, param_names=[]), "param_names must list"),
    (lambda d: (d / "config.json").write_text((d / "config.json").read_text().replace(
        '"latent_dim": 2,', '"latent_dim": 1000000000000,', 1)), "latent_dim must be None or"),
])
def test_corrupt_directories_are_rejected(tmp_path, small_model, edit, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(corrupt(tmp_path, small_model, edit))


def _edit_config(d, **changes):
    config = json.loads((d / "config.json").read_text())
    for key, value in changes.items():
        if key in config:
            config[key] = value
        else:
            config["config"][_SECTION_OF[key]][key] = value
    (d / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("changes, match", [
    ({"drift_hidden": [60000, 60000, 60000]}, "ask for about 72000[0-9]+ weights"),
    ({"state_shape": [1_000_000_000]}, "state_shape"),
    ({"state_shape": [0]}, "state_shape"),
    # found by tests/test_properties.py (a RuntimeError from torch building -2⁶³ inputs)
    ({"n_forcing": -(2**63)}, "n_forcing must be a whole number"),
    ({"kernel_nugget": 0.0}, "kernel_nugget must be a finite number > 0"),
])
def test_configs_asking_for_huge_networks_are_refused_before_building(tmp_path, small_model,
                                                                      changes, match):
    import time

    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=match):
        load_model(corrupt(tmp_path, small_model, lambda d: _edit_config(d, **changes)))
    assert time.perf_counter() - start < 5  # nothing of that size was allocated


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such model directory"):
        load_model(tmp_path / "nothing")


def test_loading_never_unpickles(tmp_path, small_model):
    import pickle

    d = corrupt(tmp_path, small_model, lambda d: None)
    (d / "model.safetensors").write_bytes(pickle.dumps({"evil": 1}))
    with pytest.raises(ModelFileError):
        load_model(d)


def test_simulator_settings_are_saved(tmp_path):
    from engine import systems

    data = systems.generate("oscillator", n=2, seed=0)
    model = StochasticROM(steps=3, window=8, log_every=3).fit(data)
    model.save(tmp_path / "o")
    info = load_model(tmp_path / "o").dataset_info_
    assert info["preset"] == data.attrs["preset"] and info["config"] == data.attrs["config"]


def test_temporary_files_of_killed_writes_are_cleaned_up(tmp_path, small_model):
    import os
    import time

    from engine.atomic import STALE_AFTER_S

    target = tmp_path / "m"
    target.mkdir()
    killed = target / ".tmp-killed-mid-write"
    killed.write_bytes(b"")
    old = time.time() - STALE_AFTER_S - 10
    os.utime(killed, (old, old))
    live = target / ".tmp-someone-writing-now"
    live.write_bytes(b"x")
    small_model.save(target)
    assert not killed.exists() and live.exists()  # a fresh one may be another writer's
    assert sorted(p.name for p in target.iterdir()) == [".tmp-someone-writing-now", "config.json",
                                                       "initial_states.safetensors",
                                                       "model.safetensors"]


def _without_window_correction_field(d):
    """The config as written before ``window_correction`` existed."""
    config = json.loads((d / "config.json").read_text())
    del config["config"]["autoencoder"]["window_correction"]
    (d / "config.json").write_text(json.dumps(config))


def test_a_loaded_encoder_window_of_10_to_the_12_is_refused(tmp_path, small_model):
    """Found by tests/test_properties.py: a config's n_win of 10¹² loaded (the identity
    encoder had no weights to disagree) and predict padded the window to terabytes. With the
    window correction in the config, its network does not match the weights: refused at
    load; a config without the field (read as a model from before the correction) loads
    and is refused at predict."""
    with pytest.raises(ModelFileError, match="weights do not match the config"):
        load_model(corrupt(tmp_path / "a", small_model, lambda d: _edit_config(d, n_win=10**12)))

    def old_and_huge(d):
        _edit_config(d, n_win=10**12)
        _without_window_correction_field(d)

    model = load_model(corrupt(tmp_path / "b", small_model, old_and_huge))
    assert model.window_correction is False
    with pytest.raises(ValueError, match="the encoder windows .* over the limit"):
        model.predict(np.zeros(2), [0.2], np.linspace(0, 1, 3), np.zeros((3, 1)), n_samples=2)


def test_an_identity_model_of_a_window_saved_before_the_window_correction_still_loads(tmp_path):
    """Models saved when the identity encoder ignored all but the first snapshot of its
    window (no correction weights) load, and keep ignoring the rest of the window."""
    from problems import ou_dataset
    from safetensors.torch import load_file, save_file

    model = StochasticROM(n_win=3, steps=2, window=8).fit(ou_dataset(2, n_times=20))
    assert model.module_.encoder.mean_head is None  # the identity architecture
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    old = {k: v for k, v in load_file(weights).items() if not k.startswith("encoder.body.")}
    assert len(old) < len(load_file(weights))
    save_file(old, weights)  # what such a model held
    # a config that says it has the correction must have its weights
    with pytest.raises(ModelFileError, match="weights do not match"):
        load_model(tmp_path / "m")
    _without_window_correction_field(tmp_path / "m")  # and such a config did not say
    loaded = load_model(tmp_path / "m")
    assert loaded.window_correction is False
    loaded.save(tmp_path / "again")  # saved again, it says so
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["config"]["autoencoder"]["window_correction"] is False
    assert load_model(tmp_path / "again").window_correction is False
    x = np.random.default_rng(0).normal(size=(4, 3, 2))
    mean, _ = loaded.encode(x)
    np.testing.assert_allclose(mean, loaded._normalize_x(x[:, 0]), rtol=1e-5, atol=1e-6)
