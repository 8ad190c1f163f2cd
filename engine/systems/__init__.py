"""Simulated systems and their registry.

>>> from engine.systems import list_systems, get_system, generate
>>> data = generate("heat", n=4, split="train", seed=0, preset="small")
>>> data.x.shape   # (N, T, n_x)
(4, 21, 16)
"""

from __future__ import annotations

from typing import Any

from engine.data import Dataset
from engine.systems.base import ForcingSpec, ParamSpec, System, split_rng
from engine.systems.burgers import BurgersSystem
from engine.systems.cylinder import CylinderSystem
from engine.systems.heat import HeatSystem
from engine.systems.kuramoto_sivashinsky import KuramotoSivashinskySystem
from engine.systems.lorenz63 import Lorenz63System, lorenz_rhs
from engine.systems.lotka_volterra import LotkaVolterraSystem
from engine.systems.oscillator import OscillatorSystem
from engine.systems.pendulum_video import PendulumVideoSystem
from engine.systems.predprey4 import PredPrey4System
from engine.systems.reaction_diffusion import ReactionDiffusionSystem
from engine.systems.van_der_pol import VanDerPolSystem

__all__ = [
    "System", "ParamSpec", "ForcingSpec", "SYSTEMS", "list_systems", "get_system", "generate",
    "split_rng", "lorenz_rhs", "HeatSystem", "BurgersSystem", "ReactionDiffusionSystem",
    "LotkaVolterraSystem", "Lorenz63System", "PredPrey4System", "PendulumVideoSystem",
    "OscillatorSystem", "KuramotoSivashinskySystem", "VanDerPolSystem",
]

SYSTEMS: dict[str, type[System]] = {
    cls.system_name: cls
    for cls in (HeatSystem, BurgersSystem, ReactionDiffusionSystem, LotkaVolterraSystem,
                Lorenz63System, PredPrey4System, PendulumVideoSystem, OscillatorSystem,
                CylinderSystem, KuramotoSivashinskySystem, VanDerPolSystem)
}


def list_systems() -> list[str]:
    """Names of the registered systems."""
    return list(SYSTEMS)


def get_system(name: str, preset: str | None = None, **overrides: Any) -> System:
    """An instance of system ``name`` with ``preset`` (default ``"default"``) and overrides.

    Raises:
        ValueError: unknown system, unknown preset, unknown setting or invalid value.
    """
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; expected one of {list_systems()}")
    return SYSTEMS[name].from_preset(preset, **overrides)


def generate(name: str, n: int, split: str = "train", seed: int = 0,
             preset: str | None = None, **overrides: Any) -> Dataset:
    """Sample and simulate ``n`` trajectories of system ``name`` as a :class:`Dataset`.

    μ is drawn uniformly from the declared training ranges and the forcings from the declared
    families, from a random stream derived from (``seed``, ``split``); for systems cut in time
    (``time_split``) the stream depends on ``seed`` only and ``split`` selects the time piece.
    ``attrs`` records the preset, seed, split, every trajectory's forcing parameters, the
    training ranges and the full configuration.
    """
    return get_system(name, preset, **overrides).generate(n, split=split, seed=seed)
