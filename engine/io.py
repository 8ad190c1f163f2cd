"""Model directories: ``config.json`` + ``model.safetensors``; loading never unpickles.

``config.json`` (format 2) holds the format version, the hyperparameters as sections
(``"config"``: :meth:`engine.config.ModelConfig.to_dict`) and the fitted fields
(:meth:`engine.fitted_state.FittedState.to_json`: state shape, normalization, names and
trained ranges, training metadata, calibration, the integrator's chosen substeps and
metrics). Format 1 kept the hyperparameters flat under ``"params"``; it is read and migrated
(a format-1 config written before ``integration`` existed, with the then-fixed Euler
default, gets today's default). The weights are a flat safetensors file of the module state.

This layer reads and checks files without building networks and imports no estimator:
``StochasticROM.load`` (:mod:`engine.model`) builds the model from :func:`read_model_files`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_write
from engine.config import ModelConfig
from engine.fitted_state import MAX_STATE_VALUES, FittedState
from engine.initial_states import save_initial_states
from engine.solvers import DEFAULT_METHOD

__all__ = ["FORMAT_VERSION", "MAX_STATE_VALUES", "ModelFileError", "ModelFiles", "save_model",
           "read_model_files", "load_config", "hyperparameters"]

#: written by :func:`save_model`; 1 kept the flat ``params`` (read and migrated)
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
KIND = "srom.StochasticROM"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


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


def save_model(model: Any, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
    """Write a fitted model to ``directory`` (created; files replaced atomically).

    ``model`` is a fitted ``StochasticROM`` (anything with ``config``, ``fitted_state()``
    and ``module_``)."""
    model._check_fitted()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fitted = model.fitted_state().to_json()
    if metrics is not None:
        fitted["metrics"] = metrics
    config = {"format_version": FORMAT_VERSION, "kind": KIND,
              "config": model.config.to_dict(), **fitted}
    state = {k: v.detach().cpu().contiguous() for k, v in model.module_.state_dict().items()}
    text = json.dumps(_jsonable(config), indent=2)
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text))
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(
        state, tmp, metadata={"format_version": str(FORMAT_VERSION)}))
    # a few states of the training data: a model without a simulator starts from them
    save_initial_states(directory, getattr(model, "initial_states_", None))
    return directory


@dataclass
class ModelFiles:
    """A model directory read and checked, before any network is built.

    Attributes:
        config: the hyperparameters (migrated from format 1 if needed).
        fitted: the fitted fields, checked against each other.
        config_path, weights_path: the two files.
        stored_values: how many values the weights file holds (from its header).
        names_window_correction: whether the file sets ``window_correction`` (configs
            written before that field existed do not: :meth:`StochasticROM.load` then tells
            from the weights whether the encoder has the correction).
    """

    config: ModelConfig
    fitted: FittedState
    config_path: Path
    weights_path: Path
    stored_values: int
    names_window_correction: bool = True

    def read_weights(self) -> dict:
        """The weights (safetensors: nothing is unpickled).

        Raises:
            ModelFileError: the file cannot be read.
        """
        try:
            return load_file(str(self.weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{self.weights_path}: not a readable safetensors file "
                                 f"({exc})") from exc


def hyperparameters(config: dict) -> ModelConfig:
    """The ``ModelConfig`` of a parsed config.json, of format 1 (flat ``params``) or 2.

    Raises:
        KeyError, ValueError: the hyperparameters are missing or malformed.
    """
    if config.get("format_version") == 1:
        params = dict(config["params"])
        if "integration" not in config and (params.get("integrator"),
                                            params.get("substeps")) == ("euler", 1):
            # saved before issue 13, when Euler at the data step was the fixed default:
            # such a model gets today's accurate default (a chosen integrator is kept)
            params["integrator"], params["substeps"] = DEFAULT_METHOD, None
        return ModelConfig.from_params(params)
    return ModelConfig.from_dict(config["config"])


def read_model_files(directory: str | os.PathLike) -> ModelFiles:
    """Read and check a model directory written by :func:`save_model` (any supported
    format version) without building the networks.

    Raises:
        ModelFileError: the directory or a file is missing, corrupt, from an unsupported
            format version, or its config is malformed or does not fit its weights.
    """
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
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise ModelFileError(f"{config_path}: not an srom model config")
    version = config.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelFileError(f"{config_path}: format version {version!r} is not supported "
                             f"(expected one of {list(READABLE_VERSIONS)})")
    try:
        hyper = hyperparameters(config)
        hyper.validate()  # the types and signs of every hyperparameter
        try:
            stored = _stored_parameter_count(weights_path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
        needed = _hidden_layer_size(hyper.to_params())
        if needed > max(50 * stored, 10**7):
            raise ModelFileError(f"{config_path}: the layer widths ask for about {needed} "
                                 f"weights, {weights_path.name} holds {stored}: config and "
                                 "weights do not belong together")
        fitted = FittedState.from_json(config)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{config_path}: malformed or incompatible config ({exc})") from exc
    return ModelFiles(hyper, fitted, config_path, weights_path, stored,
                      names_window_correction=_names_window_correction(config))


def _names_window_correction(config: dict) -> bool:
    """Whether a parsed config.json (format 1's flat ``params`` or format 2's sections)
    sets ``window_correction``."""
    if config.get("format_version") == 1:
        section = config.get("params")
    else:
        section = (config.get("config") or {}).get("autoencoder")
    return isinstance(section, dict) and "window_correction" in section


def load_config(directory: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a model directory (for listings and cards)."""
    try:
        return json.loads((Path(directory) / CONFIG_NAME).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{directory}: cannot read {CONFIG_NAME} ({exc})") from exc

