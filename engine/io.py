"""Model directories: ``config.json`` + ``model.safetensors``; loading never unpickles.

``config.json`` holds the format version, the hyperparameters (``get_params()``), the
state shape, the normalization, parameter/forcing names and trained ranges, training
metadata, the integrator's chosen substeps (``integration``) and metrics. A config written
before ``integration`` existed, with the then-fixed Euler default, gets today's default.
The weights are a flat safetensors file of the module state.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_write
from engine.calibration import validate_scale
from engine.data import Normalization
from engine.solvers import DEFAULT_METHOD

__all__ = ["FORMAT_VERSION", "ModelFileError", "save_model", "load_model"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: the most state values (the product of ``state_shape``) a model file may declare
MAX_STATE_VALUES = 2**27


def _stored_parameter_count(weights_path: Path) -> int:
    """The number of values in a safetensors file, from its header (nothing is loaded)."""
    from safetensors import safe_open

    with safe_open(str(weights_path), "pt") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape(), dtype=np.int64)) for k in f.keys())


def _hidden_layer_size(params: dict) -> int:
    """Values of the layers between consecutive hidden widths, over every width list (some
    lists go unused by some architectures): read before anything is built, so that a config
    of 10⁵-wide layers is refused instead of building for minutes and tens of GB."""
    total = 0
    for name in ("hidden", "drift_hidden", "kernel_hidden"):
        widths = [int(w) for w in params.get(name) or [] if isinstance(w, (int, float))]
        total += sum(a * b for a, b in zip(widths, widths[1:]))
    return total


def _check_trained_fields(config: dict, config_path: Path) -> None:
    """The counts, names and ranges of a config agree with each other (a hand-edited
    config can break that; ``int(-7.3)`` would quietly give -7 inputs)."""
    counts = {}
    for key, names in (("n_params", "param_names"), ("n_forcing", "forcing_names")):
        count = config[key]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ModelFileError(f"{config_path}: {key} must be a whole number >= 0, got {count!r}")
        if not isinstance(config[names], list) or len(config[names]) != count:
            raise ModelFileError(f"{config_path}: {names} must list {key} = {count} names")
        counts[key] = count
    ranges = config["param_ranges"]
    if not isinstance(ranges, list) or len(ranges) != counts["n_params"] or any(
            not isinstance(r, list) or len(r) != 2 for r in ranges):
        raise ModelFileError(f"{config_path}: param_ranges must hold n_params [low, high] pairs")
    t_range, dt = [float(v) for v in config["t_range"]], float(config["dt"])
    if len(t_range) != 2 or not (np.all(np.isfinite(t_range)) and t_range[0] < t_range[1]):
        raise ModelFileError(f"{config_path}: t_range must be two finite increasing times, "
                             f"got {config['t_range']!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise ModelFileError(f"{config_path}: dt must be a positive finite time step, got {dt!r}")


def _built_weight_count(model, norm: Normalization) -> int:
    """Values in the state of the networks the config describes, built on the meta device:
    shapes only, nothing allocated, so that a config of huge layers (a latent of 10¹²
    dimensions, a 10⁶-snapshot encoder window) costs nothing to refuse."""
    import torch

    with torch.device("meta"):
        probe = model._build(model.state_shape_, model.n_params_, model.n_forcing_, norm,
                             model.t_range_[1] - model.t_range_[0])
    return sum(int(v.numel()) for v in probe.state_dict().values())


class ModelFileError(ValueError):
    """A model directory is missing, corrupt or from an incompatible version."""


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def save_model(model, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
    """Write a fitted model to ``directory`` (created; files replaced atomically)."""
    model._check_fitted()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "kind": "srom.StochasticROM",
        "params": model.get_params(),
        "state_shape": list(model.state_shape_),
        "latent_dim": model.latent_dim_,
        "architecture": model.architecture_,
        "n_params": model.n_params_,
        "n_forcing": model.n_forcing_,
        "param_names": model.param_names_,
        "forcing_names": model.forcing_names_,
        "param_ranges": model.param_ranges_,
        "t_range": model.t_range_,
        "dt": model.dt_,
        "system": model.system_,
        "dataset": getattr(model, "dataset_info_", {}),
        "normalization": model.normalization_.to_dict(),
        "training": {k: v for k, v in getattr(model, "training_", {}).items()},
        "calibration": getattr(model, "calibration_", {}),
        "integration": getattr(model, "integration_", {}),
        "metrics": metrics if metrics is not None else getattr(model, "metrics_", {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.module_.state_dict().items()}
    text = json.dumps(_jsonable(config), indent=2)
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text))
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(
        state, tmp, metadata={"format_version": str(FORMAT_VERSION)}))
    return directory


def load_model(directory: str | os.PathLike, device: str = "cpu"):
    """Load a model saved by :func:`save_model`.

    Args:
        directory: the model directory.
        device: where to put it (``cpu``, ``cuda`` or ``auto``).

    Raises:
        ModelFileError: the directory or a file is missing, corrupt, from another format
            version, or its weights do not match its config.
    """
    from engine.model import StochasticROM, resolve_device

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such model directory")
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelFileError(f"{directory}: missing {path.name}")
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 10⁵-deep nesting,
        # an integer of over 4300 digits
        raise ModelFileError(f"{config_path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("kind") != "srom.StochasticROM":
        raise ModelFileError(f"{config_path}: not an srom model config")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{config_path}: format version {version!r} is not supported (expected {FORMAT_VERSION})")
    try:
        params = dict(config["params"])
        legacy = "integration" not in config
        if legacy and (params.get("integrator"), params.get("substeps")) == ("euler", 1):
            # saved before issue 13, when Euler at the data step was the fixed default:
            # such a model gets today's accurate default (a chosen integrator is kept)
            params["integrator"], params["substeps"] = DEFAULT_METHOD, None
        unknown = set(params) - set(StochasticROM.param_names())
        if unknown:
            raise ModelFileError(f"{config_path}: unknown hyperparameters {sorted(unknown)}")
        model = StochasticROM(**params)
        model._check_params()  # the types and signs of every hyperparameter
        shape = [int(v) for v in config["state_shape"]]
        if not shape or min(shape) < 1 or int(np.prod(shape, dtype=np.float64)) > MAX_STATE_VALUES:
            raise ModelFileError(f"{config_path}: state_shape {config['state_shape']} is not a "
                                 f"shape of at most {MAX_STATE_VALUES} positive values")
        try:
            stored = _stored_parameter_count(weights_path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
        needed = _hidden_layer_size(params)
        if needed > max(50 * stored, 10**7):
            raise ModelFileError(f"{config_path}: the layer widths ask for about {needed} "
                                 f"weights, {weights_path.name} holds {stored}: config and "
                                 "weights do not belong together")
        norm = Normalization.from_dict(config["normalization"])
        model.normalization_ = norm
        model.state_shape_ = tuple(int(s) for s in config["state_shape"])
        model.n_params_, model.n_forcing_ = int(config["n_params"]), int(config["n_forcing"])
        model.param_names_ = list(config["param_names"])
        model.forcing_names_ = list(config["forcing_names"])
        model.param_ranges_ = [list(map(float, r)) for r in config["param_ranges"]]
        model.t_range_ = [float(v) for v in config["t_range"]]
        model.dt_ = float(config["dt"])
        model.system_ = config.get("system")
        model.dataset_info_ = config.get("dataset", {})
        model.training_ = config.get("training", {})
        model.metrics_ = config.get("metrics", {})
        model.calibration_ = dict(config.get("calibration") or {})
        model.integration_ = dict(config.get("integration") or {})
        model.integration_settings()  # a malformed integrator or substeps fails here
        model.uncertainty_scale_ = validate_scale(model.calibration_.get("scale", 1.0))
        _check_trained_fields(config, config_path)
        norm.check_shapes(model.state_shape_, model.n_params_, model.n_forcing_)
        built = _built_weight_count(model, norm)
        if built != stored:
            raise ModelFileError(f"{weights_path}: weights do not match the config (its "
                                 f"networks hold {built} values, the file {stored})")
        module = model._build(model.state_shape_, model.n_params_, model.n_forcing_, norm,
                              model.t_range_[1] - model.t_range_[0])
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
        # OverflowError: int(inf); RuntimeError: torch refusing a size (negative, say)
        raise ModelFileError(f"{config_path}: malformed or incompatible config ({exc})") from exc
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    try:
        module.load_state_dict({k: v.to(model.torch_dtype) if v.is_floating_point() else v
                                for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{weights_path}: weights do not match the config ({exc})") from exc
    model.module_ = module.to(resolve_device(device)).eval()
    model._rollout = None
    return model


def load_config(directory: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a model directory (for listings and cards)."""
    try:
        return json.loads((Path(directory) / CONFIG_NAME).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{directory}: cannot read {CONFIG_NAME} ({exc})") from exc

