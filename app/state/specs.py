"""Widget-ready declarations of the inputs: μ parameters and forcing-family parameters.

GUI-free. Built from what the model recorded (names, trained ranges) and what its simulator
declares (units, docs, physical validity, forcing families and training ranges), so that the
views can build sliders without knowing any system.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from engine.forcing import FORCING_FAMILIES

__all__ = ["MuSpec", "ForcingField", "mu_specs", "forcing_fields", "forcing_defaults", "BANDS",
           "forcing_value_range", "data_forcing_ranges", "DATA_FORCING_FAMILY"]

#: the forcing a model without a simulator starts with: a step from and to the middle of the
#: values its training forcing took, i.e. a constant (what its data's forcing was is unknown)
DATA_FORCING_FAMILY = "step"

#: the nested bands the dashboard draws, widest first: 95 %, 90 %, 50 % (the 90 % one is the
#: band whose coverage the page quotes, so the number and the picture are of the same band)
BANDS: tuple[tuple[float, float], ...] = ((0.025, 0.975), (0.05, 0.95), (0.25, 0.75))


@dataclass(frozen=True)
class MuSpec:
    """What a μ widget needs.

    Attributes:
        name: parameter name; unit: its physical unit; doc: one sentence.
        trained: (lo, hi) range seen in training (outside it the model extrapolates).
        bounds: (lo, hi) range offered by a slider (trained range widened, clipped to the
            physically valid range).
        default: the starting value (system default if trained, else the range middle).
    """

    name: str
    unit: str
    doc: str
    trained: tuple[float, float]
    bounds: tuple[float, float]
    default: float


@dataclass(frozen=True)
class ForcingField:
    """One parameter of a forcing family: ``kind`` is ``float``, ``int`` or ``list``;
    ``bounds`` is a suggested slider range for floats (``None`` otherwise)."""

    name: str
    kind: str
    default: Any
    bounds: tuple[float, float] | None = None


def forcing_fields(family: str, trained: dict | None = None) -> list[ForcingField]:
    """The parameters of forcing ``family`` with defaults and slider ranges.

    Args:
        family: a key of ``engine.forcing.FORCING_FAMILIES``.
        trained: ``{name: (lo, hi) | value}`` training ranges of this family, if known:
            defaults go to the middle and sliders span the range widened by its width.
    """
    cls = FORCING_FAMILIES[family]
    trained = dict(trained or {})
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default
        if default is dataclasses.MISSING:
            raise ValueError(f"forcing '{family}': parameter '{f.name}' has no default")
        spec = trained.get(f.name)
        if isinstance(default, tuple):
            out.append(ForcingField(f.name, "list", list(default)))
        elif isinstance(default, int) and not isinstance(default, bool):
            out.append(ForcingField(f.name, "int", int(default)))
        else:
            default = float(default)
            if isinstance(spec, (list, tuple)) and len(spec) == 2:
                lo, hi = float(spec[0]), float(spec[1])
                default, span = 0.5 * (lo + hi), max(hi - lo, 1e-3)
                bounds = (lo - span, hi + span)
            elif isinstance(spec, (int, float)):
                default = float(spec)
                bounds = (default - max(1.0, abs(default)), default + max(1.0, abs(default)))
            else:
                width = max(2.0, 2 * abs(default))
                bounds = (default - width, default + width)
            if f.name in ("frequency", "length_scale"):
                bounds = (max(bounds[0], 0.0), bounds[1])
            if f.name == "phase":
                bounds = (0.0, 2 * math.pi)
            out.append(ForcingField(f.name, "float", default, (float(bounds[0]), float(bounds[1]))))
    return out


def mu_specs(model, system) -> list[MuSpec]:
    """One :class:`MuSpec` per parameter of ``model``; units, docs and validity from the
    matching ``system`` (may be ``None``)."""
    specs = []
    declared = {s.name: s for s in system.param_specs()} if system is not None else {}
    for name, (lo, hi) in zip(model.param_names_, model.param_ranges_):
        span = max(hi - lo, 1e-6 * max(abs(lo), abs(hi), 1.0))
        start, end = lo - 0.5 * span, hi + 0.5 * span
        unit, doc, default = "1", "", 0.5 * (lo + hi)
        if name in declared:
            d = declared[name]
            unit, doc = d.unit, d.doc
            vlo, vhi = d.valid
            if vlo is not None:
                start = max(start, vlo if d.inclusive[0] else vlo + 1e-6 * span)
            if vhi is not None:
                end = min(end, vhi if d.inclusive[1] else vhi - 1e-6 * span)
            if lo <= d.default <= hi:
                default = d.default
        specs.append(MuSpec(name, unit, doc, (float(lo), float(hi)),
                            (float(start), float(end)), float(default)))
    return specs


def forcing_value_range(model) -> tuple[float, float]:
    """``(lo, hi)``: the values the first forcing channel of ``model`` took in training, as
    its saved initial states record them; for a model saved before they were kept, the
    mean ± 2 std of its forcing normalization."""
    cases = getattr(model, "initial_states_", None)
    if cases is not None and cases.f_range.shape[0]:
        lo, hi = (float(v) for v in cases.f_range[0])
    else:
        norm = model.normalization_
        mean, std = float(norm.f_mean[0]), float(norm.f_std[0])
        lo, hi = mean - 2 * std, mean + 2 * std
    if hi - lo < 1e-9 * max(abs(lo), abs(hi), 1.0):  # a constant forcing in training
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    return lo, hi


def data_forcing_ranges(model, family: str) -> dict:
    """Slider ranges of forcing ``family``'s parameters for a model without a simulator:
    levels and offsets over the values its training forcing took (:func:`forcing_value_range`),
    amplitudes up to half their spread, switching times over the trained time range."""
    lo, hi = forcing_value_range(model)
    times = (float(model.t_range_[0]), float(model.t_range_[1]))
    half = 0.5 * (hi - lo)
    return {"none": {},
            "step": {"time": times, "level": (lo, hi), "before": (lo, hi)},
            "sine": {"offset": (lo, hi), "amplitude": (0.0, half)},
            "ramp": {"start": times, "end": times, "change": (lo - hi, hi - lo),
                     "offset": (lo, hi)},
            "sum_of_sines": {"offset": (lo, hi)},
            "smooth_random": {"offset": (lo, hi), "amplitude": (0.0, half)},
            }.get(family, {})


def forcing_defaults(model, system) -> tuple[list[str], str, dict]:
    """The accepted forcing families, the trained family and its default parameters (the
    middle of the training ranges) for the first forcing channel of ``model``; without a
    ``system``, a constant at the middle of the values the training forcing took."""
    if not model.forcing_names_:
        return ["none"], "none", {}
    if system is None:
        fields = forcing_fields(DATA_FORCING_FAMILY,
                                data_forcing_ranges(model, DATA_FORCING_FAMILY))
        return list(FORCING_FAMILIES), DATA_FORCING_FAMILY, {f.name: f.default for f in fields}
    spec = system.forcing_specs()[0]
    default = system.default_forcing()[0].to_dict()
    default.pop("family")
    return list(spec.families), spec.default_family, default
