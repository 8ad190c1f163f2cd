"""What ``fit`` learns besides the weights, as one record that owns its serialisation.

A fitted ``StochasticROM`` carries its data's shapes, names, trained ranges and
normalization, and what training, calibration and the integrator's step check found.
:class:`FittedState` gathers them (``FittedState.of(model)``), writes them into
``config.json`` (:meth:`FittedState.to_json`), reads and checks them back
(:meth:`FittedState.from_json`) and sets them on a model (:meth:`FittedState.apply_to`).
It imports nothing from the model, so that the file layer (:mod:`engine.io`) needs no
model to read a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.calibration import validate_scale
from engine.data import Normalization

__all__ = ["FittedState", "FittedStateError", "MAX_STATE_VALUES", "checkpoint_extras"]

#: the most state values (the product of ``state_shape``) a model file may declare
MAX_STATE_VALUES = 2**27

#: record field → the model's attribute (scikit-learn style, ending in ``_``)
ATTRIBUTES = {
    "state_shape": "state_shape_", "latent_dim": "latent_dim_", "architecture": "architecture_",
    "n_params": "n_params_", "n_forcing": "n_forcing_", "param_names": "param_names_",
    "forcing_names": "forcing_names_", "param_ranges": "param_ranges_", "t_range": "t_range_",
    "dt": "dt_", "system": "system_", "dataset": "dataset_info_",
    "normalization": "normalization_", "training": "training_", "calibration": "calibration_",
    "integration": "integration_", "assimilation": "assimilation_", "metrics": "metrics_",
}


class FittedStateError(ValueError):
    """The fitted fields of a config are missing, malformed or disagree with each other."""


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FittedStateError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


@dataclass
class FittedState:
    """The learned, non-weight state of a model.

    Attributes:
        state_shape: shape of one state snapshot, e.g. ``(n_x,)`` or ``(C, H, W)``.
        latent_dim, architecture: what ``auto`` choices resolved to.
        n_params, n_forcing, param_names, forcing_names: the inputs μ (P) and f(t) (F).
        param_ranges: ``[[low, high]] * P`` seen in training.
        t_range, dt: the training time span and the data's time step.
        system: the built-in simulator's name, or ``None`` (the user's own data).
        dataset: facts about the training data (preset, sizes, …).
        normalization: the shift/scale statistics of states, μ and f.
        training, calibration, integration, assimilation, metrics: what those stages
            recorded (``assimilation``: the choice of the initial-state fit's prior scale).
    """

    state_shape: tuple[int, ...]
    latent_dim: int
    architecture: str
    n_params: int
    n_forcing: int
    param_names: list[str]
    forcing_names: list[str]
    param_ranges: list[list[float]]
    t_range: list[float]
    dt: float
    normalization: Normalization
    system: str | None = None
    dataset: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    integration: dict = field(default_factory=dict)
    assimilation: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @classmethod
    def of(cls, model: Any) -> FittedState:
        """The record of a fitted model (optional stages default to empty)."""
        values = {}
        for name, attribute in ATTRIBUTES.items():
            if hasattr(model, attribute):
                values[name] = getattr(model, attribute)
        return cls(**values)

    def apply_to(self, model: Any) -> None:
        """Set the model's fitted attributes from this record."""
        for name, attribute in ATTRIBUTES.items():
            setattr(model, attribute, getattr(self, name))

    # ------------------------------------------------------------ config.json
    def to_json(self) -> dict[str, Any]:
        """The fields as ``config.json`` keeps them (top-level keys; numpy made plain)."""
        out = {name: getattr(self, name) for name in ATTRIBUTES}
        out["state_shape"] = list(self.state_shape)
        out["normalization"] = self.normalization.to_dict()
        return out

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> FittedState:
        """Read and check the fitted fields of a parsed ``config.json``.

        Raises:
            FittedStateError: a field is missing, has the wrong type, or disagrees with
                another (counts against names and ranges, the normalization's shapes).
        """
        try:
            shape = tuple(int(v) for v in config["state_shape"])
            if not shape or min(shape) < 1 or math.prod(shape) > MAX_STATE_VALUES:
                raise FittedStateError(f"state_shape {config['state_shape']} is not a shape of "
                                       f"at most {MAX_STATE_VALUES} positive values")
            n_params = _whole(config["n_params"], "n_params")
            n_forcing = _whole(config["n_forcing"], "n_forcing")
            for count, key, names in ((n_params, "n_params", "param_names"),
                                      (n_forcing, "n_forcing", "forcing_names")):
                if not isinstance(config[names], list) or len(config[names]) != count:
                    raise FittedStateError(f"{names} must list {key} = {count} names")
            ranges = config["param_ranges"]
            if not isinstance(ranges, list) or len(ranges) != n_params or any(
                    not isinstance(r, list) or len(r) != 2 for r in ranges):
                raise FittedStateError("param_ranges must hold n_params [low, high] pairs")
            t_range, dt = [float(v) for v in config["t_range"]], float(config["dt"])
            if len(t_range) != 2 or not (np.all(np.isfinite(t_range)) and t_range[0] < t_range[1]):
                raise FittedStateError(f"t_range must be two finite increasing times, got "
                                       f"{config['t_range']!r}")
            if not (math.isfinite(dt) and dt > 0):
                raise FittedStateError(f"dt must be a positive finite time step, got {dt!r}")
            calibration = dict(config.get("calibration") or {})
            validate_scale(calibration.get("scale", 1.0))
            norm = Normalization.from_dict(config["normalization"])
            norm.check_shapes(shape, n_params, n_forcing)
            state = cls(
                state_shape=shape, latent_dim=int(config["latent_dim"]),
                architecture=str(config["architecture"]), n_params=n_params,
                n_forcing=n_forcing, param_names=list(config["param_names"]),
                forcing_names=list(config["forcing_names"]),
                param_ranges=[list(map(float, r)) for r in ranges], t_range=t_range, dt=dt,
                normalization=norm, system=config.get("system"),
                dataset=dict(config.get("dataset") or {}),
                training=dict(config.get("training") or {}),
                calibration=calibration,
                integration=dict(config.get("integration") or {}),
                assimilation=dict(config.get("assimilation") or {}),
                metrics=dict(config.get("metrics") or {}))
        except FittedStateError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise FittedStateError(f"malformed fitted fields ({exc!r})") from exc
        return state


def checkpoint_extras(config_dict: dict[str, Any], normalization: Normalization
                      ) -> dict[str, Any]:
    """What a training checkpoint stores besides the weights and optimizer: the config
    (``ModelConfig.to_dict()``) and the normalization a resumed run must reuse."""
    return {"normalization": normalization.to_dict(), "config": config_dict}
