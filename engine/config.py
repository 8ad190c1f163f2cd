"""A model's hyperparameters as small objects, one per section of ``config.json``.

:class:`ModelConfig` groups six frozen dataclasses: the autoencoder (with its decoder
noise), the drift, the posterior's deep kernel, the prior on the dispersion, the training
schedule and the integrator. Each field keeps the flat name that ``StochasticROM(...)``,
``srom train --set key=value`` and older ``config.json`` files use, so the flat and the
sectioned views map 1:1 (:meth:`ModelConfig.from_params`, :meth:`ModelConfig.to_params`).

``config.json`` of format 2 stores ``ModelConfig.to_dict()`` (a ``version`` and the six
sections); format 1 stored the flat ``params``: :meth:`ModelConfig.from_dict` reads both.
:meth:`ModelConfig.validate` checks the type, sign and range of every value before
anything is built (a value from ``--set`` or a hand-edited file can be anything).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CONFIG_VERSION", "AutoencoderConfig", "DriftConfig", "PosteriorConfig",
           "PriorConfig", "TrainingConfig", "IntegratorConfig", "ModelConfig"]

#: version of the sectioned layout written by :meth:`ModelConfig.to_dict`
CONFIG_VERSION = 2


@dataclass(frozen=True)
class AutoencoderConfig:
    """Encoder, decoder and the decoder's noise model (see ``StochasticROM``'s docstring).

    ``activation`` is shared with the drift MLP; ``normalize`` and ``dtype`` apply to the
    whole model."""

    latent_dim: int | None = None
    architecture: str = "auto"
    n_win: int = 1
    window_correction: bool = True
    decode_positions_only: bool = False
    hidden: tuple[int, ...] = (128, 128)
    conv_channels: int = 8
    conv_levels: int | None = None
    periodic: bool = False
    encoder_variance: str = "constant"
    encoder_log_var_init: float = -4.0
    activation: str = "silu"
    decoder_log_var_init: float = -4.0
    decoder_log_var_prior: tuple[float, float] = (-4.0, 1.0)
    decoder_var_floor: float = 0.0
    likelihood: str = "gaussian"
    normalize: bool = True
    dtype: str = "float32"


@dataclass(frozen=True)
class DriftConfig:
    """The latent drift ψθ(z, t; μ, f): its kind, MLP, library or physics terms."""

    drift: str = "neural"
    drift_hidden: tuple[int, ...] = (128, 128, 128)
    time_features: bool = False
    library_degree: int = 3
    library_include_params: bool = False
    library_prior_scale: float = 1.0
    physics: str | None = None
    physics_params: dict | None = None
    drift_correction: bool = False
    # weight of the contraction prior on the drift (engine.contraction); 0: none
    contraction_weight: float = 0.0
    # expansion rate (1 / time unit) the prior allows before it penalises
    contraction_margin: float = 0.0


@dataclass(frozen=True)
class PosteriorConfig:
    """The deep kernel of the window posterior's GP interpolation."""

    kernel_hidden: tuple[int, ...] = (32, 32)
    kernel_length_scale: float = 0.1
    kernel_nugget: float = 1e-2


@dataclass(frozen=True)
class PriorConfig:
    """The dispersion Ψ: its initial value and an optional log-normal prior on Ψ²."""

    dispersion_init: float = 0.1
    dispersion_prior: tuple[float, float] | None = None


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation schedule, the ELBO's Monte-Carlo settings and where it runs."""

    steps: int | None = None  # None: from the data's size (engine.schedule)
    lr: float = 1e-3
    lr_decay_steps: int = 1000
    window: int = 64
    windows_per_step: int = 4
    n_samples: int = 1
    n_quad: int = 32
    quadrature: str = "stratified"
    kl_warmup: int = 0
    kl_transition: int | None = None
    grad_clip: float = 10.0
    average_steps: int | None = None  # None: from the steps (engine.param_average)
    log_every: int = 50
    checkpoint_every: int = 0
    device: str = "auto"
    cuda_graph: bool = True
    seed: int = 0


@dataclass(frozen=True)
class IntegratorConfig:
    """How predictions integrate the latent SDE (``substeps=None``: chosen at fit time)."""

    integrator: str = "heun"
    substeps: int | None = None
    assimilate_iterations: int = 0  # 0: the encoder's q(z0) as it is (engine.assimilation)
    # the encoder's variance × this is the fit's prior (1: as trained; larger: the window's
    # snapshots decide more, for an encoder overconfident on noisy data)
    assimilate_prior_scale: float = 1.0


#: section name in ``config.json`` → its dataclass, in the order they are written
SECTIONS: dict[str, type] = {
    "autoencoder": AutoencoderConfig, "drift": DriftConfig, "posterior": PosteriorConfig,
    "prior": PriorConfig, "training": TrainingConfig, "integrator": IntegratorConfig,
}


def _section_of() -> dict[str, str]:
    """Flat parameter name → its section."""
    return {f.name: section for section, cls in SECTIONS.items()
            for f in dataclasses.fields(cls)}


def _stored(value: Any) -> Any:
    """Lists become tuples (a config is hashable and compares equal however it was given)."""
    return tuple(_stored(v) for v in value) if isinstance(value, list) else value


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def is_integer(value: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A finite int or float (not a bool) that float32 can hold: at most 1e30 in size."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(value)) and abs(float(value)) <= 1e30
    except OverflowError:  # an int beyond 1e308
        return False


@dataclass(frozen=True)
class ModelConfig:
    """Every hyperparameter of a ``StochasticROM``, by section."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    posterior: PosteriorConfig = field(default_factory=PosteriorConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    integrator: IntegratorConfig = field(default_factory=IntegratorConfig)

    # ------------------------------------------------------------ flat view
    @staticmethod
    def param_names() -> list[str]:
        """Every flat parameter name, section by section."""
        return list(_section_of())

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelConfig:
        """From flat keyword values (missing ones take their defaults).

        Raises:
            ValueError: a name that is no parameter (with the closest one, if any).
        """
        where = _section_of()
        unknown = [name for name in params if name not in where]
        if unknown:
            import difflib

            hints = [f"'{n}'" + (f" (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(
                str(n), list(where), n=1)) else "") for n in unknown]
            raise ValueError(f"unknown hyperparameter(s) {', '.join(hints)}")
        grouped: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for name, value in params.items():
            grouped[where[name]][name] = _stored(value)
        return cls(**{section: SECTIONS[section](**values) for section, values in grouped.items()})

    def to_params(self) -> dict[str, Any]:
        """The flat values (tuples kept), as ``StochasticROM(**config.to_params())`` takes."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            part = getattr(self, section)
            out.update({f.name: getattr(part, f.name) for f in dataclasses.fields(part)})
        return out

    def replace(self, **params: Any) -> ModelConfig:
        """A copy with some flat values changed."""
        return ModelConfig.from_params({**self.to_params(), **params})

    # ------------------------------------------------------------ config.json
    def to_dict(self) -> dict[str, Any]:
        """``{"version": 2, "autoencoder": {...}, ...}``, JSON-friendly (tuples as lists)."""
        out: dict[str, Any] = {"version": CONFIG_VERSION}
        for section in SECTIONS:
            part = getattr(self, section)
            out[section] = {f.name: _jsonable(getattr(part, f.name))
                            for f in dataclasses.fields(part)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """From :meth:`to_dict`'s layout, or from format 1's flat ``params`` mapping (the
        migration: every older model directory loads).

        Raises:
            ValueError: not a mapping, an unknown version, section or parameter, or a
                parameter in the wrong section.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a model config must be a JSON object, got {type(data).__name__}")
        if "version" not in data:  # format 1: flat
            return cls.from_params(data)
        if data["version"] != CONFIG_VERSION:
            raise ValueError(f"config version {data['version']!r} is not supported "
                             f"(expected {CONFIG_VERSION})")
        extra = set(data) - set(SECTIONS) - {"version"}
        if extra:
            raise ValueError(f"unknown config section(s) {sorted(extra)}")
        flat: dict[str, Any] = {}
        where = _section_of()
        for section in SECTIONS:
            values = data.get(section, {})
            if not isinstance(values, Mapping):
                raise ValueError(f"config section '{section}' must be a JSON object")
            misplaced = [n for n in values if where.get(n, section) != section]
            if misplaced:
                raise ValueError(f"config section '{section}' holds {misplaced}, which belong "
                                 f"to {sorted({where[n] for n in misplaced})}")
            flat.update(values)
        return cls.from_params(flat)

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check the type, sign and range of every value (nothing is built).

        Raises:
            ValueError: the first bad value, named, with what it must be.
        """
        from engine.drift import DRIFT_KINDS
        from engine.likelihoods import LIKELIHOODS
        from engine.networks import ACTIVATIONS
        from engine.solvers import METHODS

        p = self.to_params()
        if p["quadrature"] not in ("stratified", "data"):
            raise ValueError(f"quadrature must be 'stratified' or 'data', got '{p['quadrature']}'")
        if p["integrator"] not in METHODS:
            raise ValueError(f"integrator must be one of {METHODS}, got '{p['integrator']}'")
        if p["dtype"] not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got '{p['dtype']}'")
        for name in ("steps", "window", "windows_per_step", "n_samples", "n_quad", "n_win",
                     "log_every", "substeps", "lr_decay_steps"):
            value = p[name]
            if name in ("substeps", "steps") and value is None:
                continue  # chosen at fit time
            if not is_integer(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden", "drift_hidden", "kernel_hidden"):
            widths = p[name]
            if (not isinstance(widths, (list, tuple))
                    or not all(is_integer(w) and 1 <= w <= 65536 for w in widths)):
                raise ValueError(f"{name} must be a list of layer widths in 1..65536, got "
                                 f"{widths!r}")
        levels = p["conv_levels"]
        if levels is not None and (not is_integer(levels) or not 1 <= levels <= 8):
            raise ValueError(f"conv_levels must be None or an integer in [1, 8], got {levels!r}")
        if p["window"] < 2:
            raise ValueError(f"window must be at least 2 snapshots, got {p['window']}")
        if not isinstance(p["likelihood"], str) or p["likelihood"] not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)}, got "
                             f"{p['likelihood']!r}")
        if not isinstance(p["activation"], str) or p["activation"] not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                             f"{p['activation']!r}")
        latent = p["latent_dim"]
        if latent is not None and not (is_integer(latent) and 1 <= latent <= 65536):
            raise ValueError(f"latent_dim must be None or an integer in 1..65536, got "
                             f"{latent!r}")
        if not isinstance(p["drift"], str) or p["drift"] not in DRIFT_KINDS:
            raise ValueError(f"drift must be one of {list(DRIFT_KINDS)}, got {p['drift']!r}")
        if not isinstance(p["decode_positions_only"], (bool, np.bool_)):
            raise ValueError(f"decode_positions_only must be true or false, got "
                             f"{p['decode_positions_only']!r}")
        if p["decode_positions_only"] and (p["drift"] != "second_order"
                                           or p["architecture"] == "identity"):
            raise ValueError("decode_positions_only needs drift='second_order' (whose first "
                             "half of z are the positions) and a decoder (not the identity)")
        if p["drift"] == "second_order" and latent is not None and latent % 2:
            raise ValueError(f"drift='second_order' needs an even latent_dim (positions and "
                             f"velocities), got {latent}")
        if not isinstance(p["window_correction"], (bool, np.bool_)):
            raise ValueError(f"window_correction must be true or false, got "
                             f"{p['window_correction']!r}")
        if not (is_integer(p["assimilate_iterations"]) and 0 <= p["assimilate_iterations"] <= 1000):
            raise ValueError(f"assimilate_iterations must be an integer in 0..1000, got "
                             f"{p['assimilate_iterations']!r}")
        weight = p["contraction_weight"]
        if not (isinstance(weight, (int, float, np.number)) and not isinstance(weight, bool)
                and math.isfinite(weight) and 0 <= weight <= 1e6):
            raise ValueError(f"contraction_weight must be a number in [0, 1e6], got {weight!r}")
        margin = p["contraction_margin"]
        if not (isinstance(margin, (int, float, np.number)) and not isinstance(margin, bool)
                and math.isfinite(margin) and -1e6 <= margin <= 1e6):
            raise ValueError(f"contraction_margin must be a number in [-1e6, 1e6], got {margin!r}")
        scale = p["assimilate_prior_scale"]
        if not (isinstance(scale, (int, float, np.number)) and not isinstance(scale, bool)
                and math.isfinite(scale) and 1e-6 <= scale <= 1e12):
            raise ValueError(f"assimilate_prior_scale must be a number in [1e-6, 1e12], got "
                             f"{scale!r}")
        for name, optional in (("kl_warmup", False), ("kl_transition", True),
                               ("checkpoint_every", False), ("average_steps", True)):
            value = p[name]
            if not (value is None and optional) and not (is_integer(value) and value >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not (is_integer(p["seed"]) and 0 <= p["seed"] < 2**63):
            raise ValueError(f"seed must be an integer in 0..2**63 - 1, got {p['seed']!r}")
        for name, low in (("encoder_log_var_init", None), ("decoder_log_var_init", None),
                          ("dispersion_init", 0.0), ("kernel_length_scale", 0.0),
                          ("kernel_nugget", 0.0), ("lr", 0.0)):
            value = p[name]
            if not (is_real(value) and (low is None or value > low)):
                limit = "" if low is None else f" > {low:g}"
                raise ValueError(f"{name} must be a finite number{limit}, got {value!r}")
        for name, optional in (("decoder_var_floor", False), ("grad_clip", True)):
            value = p[name]
            if not (value is None and optional) and not (is_real(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name, optional in (("decoder_log_var_prior", False), ("dispersion_prior", True)):
            pair = p[name]
            if not (pair is None and optional) and not (
                    isinstance(pair, (list, tuple)) and len(pair) == 2
                    and all(is_real(v) for v in pair) and pair[1] > 0):
                raise ValueError(f"{name} must be a (mean, std) pair of finite numbers with "
                                 f"std > 0, got {pair!r}")
