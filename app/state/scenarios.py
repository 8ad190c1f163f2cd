"""Named scenarios per system: a few μ and forcing settings a teacher picks from a list.

GUI-free. A :class:`Scenario` is data: μ values (physical, or a position in the model's
trained range, :class:`InTrained`, so that one scenario fits every model of a system
whatever range it was trained on) and optionally a forcing family with some of its
parameters (times may be a position in the model's trained time span, :class:`AtTime`;
levels a position among the values its training forcing took, :class:`AtForcing`).
Whatever a scenario leaves out takes the model's default, so a scenario is the same picture
whichever sliders were moved before.

:func:`resolve` checks a scenario against the loaded model (its parameters, the slider
ranges, the accepted forcing families) and :func:`apply_scenario` sets the state's inputs
in one update (one prediction); the view then moves its sliders to the new values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.state.specs import forcing_defaults, forcing_fields, forcing_value_range

__all__ = ["InTrained", "AtTime", "AtForcing", "Scenario", "SCENARIOS", "resolve", "scenarios_for",
           "apply_scenario"]


@dataclass(frozen=True)
class InTrained:
    """A μ value at position ``at`` of the model's trained range: 0 its low end, 1 its high
    end; below 0 or above 1 extrapolates (at most to the slider's ends)."""

    at: float


@dataclass(frozen=True)
class AtTime:
    """A forcing time at position ``at`` of the model's trained time span (0 its start, 1 its
    end)."""

    at: float


@dataclass(frozen=True)
class AtForcing:
    """A forcing level at position ``at`` of the values the model's training forcing took
    (0 the lowest, 1 the highest; :func:`app.state.specs.forcing_value_range`): the same scenario
    then fits models trained on forcings of different sizes."""

    at: float


@dataclass(frozen=True)
class Scenario:
    """A named setting of the Explore inputs.

    Attributes:
        name: what the list shows (unique per system).
        description: one sentence: what to look at.
        mu: ``{parameter: value | InTrained}``; parameters left out take their default.
        forcing_family: the forcing family, or ``None`` for the model's default forcing.
        forcing: ``{parameter: value | AtTime | AtForcing}`` over the family's defaults.
    """

    name: str
    description: str
    mu: Mapping[str, float | InTrained] = field(default_factory=dict)
    forcing_family: str | None = None
    forcing: Mapping[str, Any] = field(default_factory=dict)


_EXTRAPOLATE = "Beyond the training data"
_EXTRAPOLATE_DOC = ("{name} past what the model was trained on: the bar under its slider turns "
                    "red, and the answer — its uncertainty too — deserves less trust.")

#: the scenarios of each built-in system (keys: ``engine.systems`` names)
SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    "burgers": (
        Scenario("Steep front (low viscosity)",
                 "Little viscosity: the inflow wave steepens into a shock-like front.",
                 {"nu": InTrained(0.1)}),
        Scenario("Smooth flow (high viscosity)",
                 "Much viscosity: fronts are smeared out and the field stays smooth.",
                 {"nu": InTrained(0.9)}),
        Scenario("Sudden faster inflow (step)",
                 "The inflow speed jumps a third of the way in: watch the jump travel "
                 "downstream — a forcing shape the model never saw in training.",
                 {"nu": InTrained(0.5)}, "step",
                 {"time": AtTime(1 / 3), "before": AtForcing(0.4), "level": AtForcing(0.9)}),
        Scenario(_EXTRAPOLATE, _EXTRAPOLATE_DOC.format(name="Viscosity"),
                 {"nu": InTrained(1.4)}),
    ),
    "heat": (
        Scenario("Slow diffusion", "A small diffusivity: heat stays where the forcing puts it.",
                 {"kappa": InTrained(0.1)}),
        Scenario("Fast diffusion", "A large diffusivity: the profile flattens quickly.",
                 {"kappa": InTrained(0.9)}),
        Scenario("Heater switched on (step)",
                 "The forcing switches on a fifth of the way in: the rod warms up to a new "
                 "level.", {"kappa": InTrained(0.5)}, "step",
                 {"time": AtTime(0.2), "before": AtForcing(0.5), "level": AtForcing(0.9)}),
        Scenario(_EXTRAPOLATE, _EXTRAPOLATE_DOC.format(name="Diffusivity"),
                 {"kappa": InTrained(1.4)}),
    ),
    "oscillator": (
        Scenario("Lightly damped, soft spring",
                 "Little damping and a nearly linear spring: long, regular swings.",
                 {"delta": InTrained(0.05), "beta": InTrained(0.05)}),
        Scenario("Strongly damped", "Much damping: the swings die out and follow the drive.",
                 {"delta": InTrained(0.95), "beta": InTrained(0.5)}),
        Scenario("Hard spring, strong drive",
                 "A stiff cubic spring driven hard: the response is no longer a scaled copy "
                 "of the drive.", {"delta": InTrained(0.5), "beta": InTrained(0.95)},
                 "sine", {"amplitude": 1.5, "frequency": 0.25}),
        Scenario("A sudden push (step)", "A constant force switched on a quarter of the way "
                 "in: the oscillator settles around a shifted position.",
                 {}, "step", {"time": AtTime(0.25), "before": AtForcing(0.5),
                                "level": AtForcing(0.9)}),
    ),
    "van_der_pol": (
        Scenario("Nearly harmonic (weak damping)",
                 "Weak nonlinear damping: an almost sinusoidal limit cycle.",
                 {"damping": InTrained(0.05)}),
        Scenario("Relaxation oscillations",
                 "Strong nonlinear damping: slow build-ups and sudden jumps.",
                 {"damping": InTrained(0.95)}),
        Scenario("Soft spring, strong drive", "A soft spring driven hard.",
                 {"stiffness": InTrained(0.05)}, "sine", {"amplitude": 1.5, "frequency": 0.25}),
    ),
    "lotka_volterra": (
        Scenario("Slow prey births", "Prey reproduce slowly: long, shallow population cycles.",
                 {"alpha": InTrained(0.1)}),
        Scenario("Fast prey births", "Prey reproduce quickly: faster, larger cycles.",
                 {"alpha": InTrained(0.9)}),
        Scenario(_EXTRAPOLATE, _EXTRAPOLATE_DOC.format(name="The prey birth rate"),
                 {"alpha": InTrained(1.4)}),
    ),
    "predprey4": (
        Scenario("Equal prey", "Both prey species reproduce alike.",
                 {"alpha1": InTrained(0.5), "alpha2": InTrained(0.5)}),
        Scenario("Prey 1 favoured", "Prey 1 reproduces fastest, prey 2 slowest.",
                 {"alpha1": InTrained(0.95), "alpha2": InTrained(0.05)}),
        Scenario("Prey 2 favoured", "Prey 2 reproduces fastest, prey 1 slowest.",
                 {"alpha1": InTrained(0.05), "alpha2": InTrained(0.95)}),
    ),
    "reaction_diffusion": (
        Scenario("Tight spirals (low diffusion)", "Little diffusion: thin spiral arms.",
                 {"d": InTrained(0.05)}),
        Scenario("Broad spirals (high diffusion)", "Much diffusion: wide, smooth spiral arms.",
                 {"d": InTrained(0.95)}),
        Scenario("Fast rotation", "A large β: the spiral turns faster.",
                 {"beta": InTrained(0.95)}),
    ),
    "kuramoto_sivashinsky": (
        Scenario("Short domain", "A short periodic domain: few cells, milder chaos.",
                 {"length": InTrained(0.05)}),
        Scenario("Long domain", "A long domain: more cells, and the forecast loses the true "
                 "path sooner.", {"length": InTrained(0.95)}),
    ),
    "pendulum_video": (
        Scenario("Small swing", "Released near the bottom: a small, nearly harmonic swing.",
                 {"theta0": InTrained(0.05)}),
        Scenario("Large swing", "Released high: a large swing with a longer period.",
                 {"theta0": InTrained(0.95)}),
    ),
    "cylinder": (
        Scenario("Jets off", "No actuation: the wake sheds vortices on its own.", {}, "none"),
        Scenario("Steady blowing (step)", "Both jets switch on to a constant rate a quarter "
                 "of the way in.", {}, "step",
                 {"time": AtTime(0.25), "before": AtForcing(0.5), "level": AtForcing(0.9)}),
    ),
}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def resolve(scenario: Scenario, state: Any) -> dict[str, Any]:
    """The inputs ``scenario`` sets on ``state``'s model: ``{"mu": {name: value},
    "forcing_family": str, "forcing_params": dict}``.

    Args:
        scenario: the scenario.
        state: an :class:`app.state.explore.ExploreState` with a model loaded.

    Raises:
        ValueError: no model; a μ the model has not; a μ outside the range its slider
            offers (the trained range widened, within physical validity); a forcing on a
            model without forcing, a family it does not accept, an unknown or non-finite
            forcing parameter.
    """
    model = state.model
    if model is None:
        raise ValueError("no model is loaded")
    specs = {s.name: s for s in state.mu_specs}
    mu = {name: s.default for name, s in specs.items()}
    for name, value in scenario.mu.items():
        if name not in specs:
            raise ValueError(f"this model has no parameter {name!r}")
        spec = specs[name]
        lo, hi = spec.trained
        value = lo + float(value.at) * (hi - lo) if isinstance(value, InTrained) else value
        value = _number(value, f"{name}")
        start, end = spec.bounds
        slack = 1e-9 * max(abs(start), abs(end), 1.0)
        if not start - slack <= value <= end + slack:
            raise ValueError(f"{name} = {value:.4g} is outside the range this model offers "
                             f"[{start:.4g}, {end:.4g}]")
        mu[name] = min(max(value, start), end)
    families, family, params = forcing_defaults(model, state.system)
    if scenario.forcing_family is not None or scenario.forcing:
        if not model.forcing_names_:
            raise ValueError("this model has no forcing")
        if scenario.forcing_family is not None:
            family = scenario.forcing_family
            if family not in families:
                raise ValueError(f"this model does not accept the forcing family {family!r}")
            fields = forcing_fields(family, state.trained_forcing_ranges(family))
            params = {f.name: f.default for f in fields}
        t0, t1 = (float(t) for t in model.t_range_)
        for name, value in scenario.forcing.items():
            if name not in params:
                raise ValueError(f"the forcing family {family!r} has no parameter {name!r}")
            if isinstance(value, AtTime):
                value = t0 + float(value.at) * (t1 - t0)
            elif isinstance(value, AtForcing):
                f_lo, f_hi = forcing_value_range(model)
                value = f_lo + float(value.at) * (f_hi - f_lo)
            if isinstance(params[name], (int, float)) and not isinstance(params[name], bool):
                value = _number(value, f"forcing {name}")
                value = int(value) if isinstance(params[name], int) else value
            params[name] = value
    return {"mu": mu, "forcing_family": family, "forcing_params": dict(params)}


def scenarios_for(state: Any) -> list[Scenario]:
    """The scenarios of the loaded model's system that fit the model (see :func:`resolve`);
    none for a model of the user's own data or when no model is loaded."""
    model = state.model
    if model is None or state.system is None:
        return []
    out = []
    for scenario in SCENARIOS.get(getattr(model, "system_", None) or "", ()):
        try:
            resolve(scenario, state)
        except ValueError:
            continue
        out.append(scenario)
    return out


def apply_scenario(state: Any, scenario: Scenario) -> dict[str, Any]:
    """Set ``state``'s μ and forcing to ``scenario``'s in one update (one prediction); the
    inputs set (see :func:`resolve`, which raises before anything is changed)."""
    inputs = resolve(scenario, state)
    state.param.update(**inputs)
    return inputs
