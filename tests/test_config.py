"""Configuration objects (engine/config.py), the fitted-state record (engine/fitted_state.py)
and config.json's format 2 with the migration of format 1."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from problems import duffing_dataset

from engine import ModelConfig, StochasticROM, load_model
from engine.config import SECTIONS, DriftConfig, TrainingConfig
from engine.fitted_state import FittedState, FittedStateError
from engine.io import hyperparameters

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_agree_with_the_estimator():
    assert StochasticROM().config == ModelConfig()
    assert ModelConfig().to_params() == {
        k: tuple(v) if isinstance(v, list) else v for k, v in StochasticROM().get_params().items()}


def test_every_parameter_sits_in_exactly_one_section():
    names = ModelConfig.param_names()
    assert sorted(names) == sorted(StochasticROM.param_names())
    assert len(names) == len(set(names))
    assert list(ModelConfig().to_dict()) == ["version", *SECTIONS]


def test_flat_and_sectioned_views_map_one_to_one():
    model = StochasticROM(latent_dim=3, hidden=[16, 8], drift="library", steps=7, substeps=2)
    config = model.config
    assert config.autoencoder.hidden == (16, 8) and config.drift.drift == "library"
    assert config.training.steps == 7 and config.integrator.substeps == 2
    back = StochasticROM.from_config(config)
    assert back.config == config
    assert StochasticROM.from_config(config, steps=9).config.training.steps == 9
    text = json.dumps(config.to_dict())
    assert ModelConfig.from_dict(json.loads(text)) == config


def test_format_1_flat_params_migrate():
    flat = StochasticROM(latent_dim=2, lr=3e-3).get_params()
    assert ModelConfig.from_dict(flat) == ModelConfig.from_params(flat)
    assert ModelConfig.from_dict(flat).training.lr == 3e-3


@pytest.mark.parametrize("data, match", [
    ({"version": 2, "training": {"stepz": 3}}, "did you mean 'steps'"),
    ({"version": 2, "drift": {"steps": 3}}, "belong to \\['training'\\]"),
    ({"version": 2, "optimizer": {}}, "unknown config section"),
    ({"version": 7}, "version 7 is not supported"),
    ({"version": 2, "drift": [1, 2]}, "must be a JSON object"),
    ([1, 2], "must be a JSON object"),
])
def test_malformed_configs_are_refused_clearly(data, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize("change, match", [
    ({"hidden": 5}, "hidden must be a list of layer widths"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"dispersion_prior": (0.0, -1.0)}, "dispersion_prior must be a"),
    ({"integrator": "rk4"}, "integrator must be one of"),
    ({"seed": True}, "seed must be an integer"),
    ({"contraction_weight": -1.0}, "contraction_weight must be a number in"),
    ({"contraction_weight": True}, "contraction_weight must be a number in"),
    ({"contraction_weight": 1e9}, "contraction_weight must be a number in"),
    ({"contraction_margin": float("inf")}, "contraction_margin must be a number in"),
])
def test_validate_names_the_bad_value(change, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig().replace(**change).validate()
    with pytest.raises(ValueError, match=match):
        StochasticROM(**change)._check_params()


def test_sections_are_frozen_values():
    with pytest.raises(AttributeError):
        TrainingConfig().steps = 3  # type: ignore[misc]
    assert DriftConfig(drift_hidden=(8,)) == DriftConfig(drift_hidden=(8,))


@pytest.fixture(scope="module")
def fitted():
    model = StochasticROM(latent_dim=2, drift_hidden=(16,), hidden=(16,), kernel_hidden=(8,),
                          steps=30, window=12, windows_per_step=2, log_every=10, substeps=1,
                          device="cpu", cuda_graph=False)
    return model.fit(duffing_dataset(3, n_times=41))


def test_fitted_state_round_trips_through_json(fitted):
    state = fitted.fitted_state()
    again = FittedState.from_json(json.loads(json.dumps(state.to_json())))
    assert again.state_shape == fitted.state_shape_ and again.param_names == ["damping"]
    assert again.normalization.to_dict() == fitted.normalization_.to_dict()
    assert again.training["status"] == fitted.training_["status"]
    blank = StochasticROM()
    again.apply_to(blank)
    assert blank.param_ranges_ == fitted.param_ranges_ and blank.dt_ == fitted.dt_


@pytest.mark.parametrize("edit, match", [
    ({"param_names": ["a", "b"]}, "param_names must list n_params = 1"),
    ({"n_forcing": -1}, "n_forcing must be a whole number"),
    ({"t_range": [1.0, 0.0]}, "t_range must be two finite increasing"),
    ({"state_shape": [0]}, "state_shape"),
    ({"dt": None}, "malformed fitted fields"),
])
def test_fitted_state_refuses_inconsistent_fields(fitted, edit, match):
    with pytest.raises(FittedStateError, match=match):
        FittedState.from_json({**fitted.fitted_state().to_json(), **edit})


def test_a_format_1_directory_loads_and_predicts_identically(fitted, tmp_path):
    fitted.save(tmp_path / "new")
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert config["format_version"] == 2 and config["config"]["version"] == 2
    old = dict(config, format_version=1, params=hyperparameters(config).to_params())
    del old["config"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in old.items()}, default=list))
    (tmp_path / "old" / "model.safetensors").write_bytes(
        (tmp_path / "new" / "model.safetensors").read_bytes())
    data = duffing_dataset(2, n_times=41, seed=3)
    args = (data.x[:, 0], data.mu, data.t, data.f)
    a = load_model(tmp_path / "new").predict(*args, n_samples=4, seed=1)
    b = load_model(tmp_path / "old").predict(*args, n_samples=4, seed=1)
    assert np.array_equal(a.samples, b.samples)
    assert load_model(tmp_path / "old").config == fitted.config


def _runtime_imports(path: Path) -> set[str]:
    """Modules a source file imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and ast.unparse(node.test).endswith("TYPE_CHECKING") for b in node.body
               for n in ast.walk(b)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


@pytest.mark.parametrize("name", ["io", "config", "fitted_state", "calibration", "selection"])
def test_the_file_layer_and_helpers_import_no_estimator(name):
    """The import circle model ↔ io ↔ calibration ↔ selection is gone: the estimator
    imports them, none of them imports the estimator (not even inside a function)."""
    assert "engine.model" not in _runtime_imports(ROOT / "engine" / f"{name}.py")
