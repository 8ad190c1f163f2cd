"""Four-species predator–prey SDE: two logistic prey, two predators (ARCTA ``grad-variance``).

With prey x₁, x₂ and predators y₁, y₂:

    dx₁ = x₁ (α₁ − β₁ y₁ − γ₁ y₂)(1 − x₁/K₁) dt + s dW₁
    dx₂ = x₂ (α₂ − β₂ y₁ − γ₂ y₂)(1 − x₂/K₂) dt + s dW₂
    dy₁ = y₁ (−δ₁ + ε₁ x₁ + ψ₁ x₂ − ν₁ y₂) dt + s dW₃
    dy₂ = y₂ (−δ₂ + ε₂ x₁ + ψ₂ x₂ + ν₂ y₁) dt + s dW₄

α: prey birth rates; β, γ: predation by predator 1 and 2; δ: predator death rates;
ε, ψ: conversion of prey 1 and prey 2 into predators; ν: interaction between predators
(y₂ harms y₁, y₁ feeds y₂); K: prey carrying capacities. These are the equations of the
public ARCTA data generator (its logistic factor multiplies the whole prey rate).
Values: α = (.3, .3), β = (.6, .3), γ = (.3, .6), δ = (1, 1), ε = (.6, .3), ψ = (.3, .6),
ν = (.05, .025), K = (1.5, 1.5); x(0) = (0.9, 0.8, 0.2, 0.1); s = 1e-3; observation noise
N(0, 0.01²); t = linspace(0, 350, 3500); paper split: train t ≤ 300, validation after.

Integration: batched RK4 + exact additive-noise increment per substep (``max_step``).
"""

from __future__ import annotations

import numpy as np
import param

from engine.systems._integrators import rk4_additive
from engine.systems.base import System

__all__ = ["PredPrey4System"]

_DEFAULTS = {
    "alpha": (0.3, 0.3), "beta": (0.6, 0.3), "gamma": (0.3, 0.6), "delta": (1.0, 1.0),
    "epsilon": (0.6, 0.3), "psi": (0.3, 0.6), "nu": (0.05, 0.025), "k": (1.5, 1.5),
}
_DOCS = {
    "alpha": "Birth rate of prey {i}.", "beta": "Predation of prey {i} by predator 1.",
    "gamma": "Predation of prey {i} by predator 2.", "delta": "Death rate of predator {i}.",
    "epsilon": "Conversion of prey 1 into predator {i}.",
    "psi": "Conversion of prey 2 into predator {i}.",
    "nu": "Interaction between the predators, for predator {i}.",
    "k": "Carrying capacity of prey {i}.",
}


def _number(name: str, i: int) -> param.Number:
    v = _DEFAULTS[name][i - 1]
    lo, hi = round(0.8 * v, 12), round(1.2 * v, 12)
    return param.Number(v, bounds=(0, None), softbounds=(lo, hi), doc=_DOCS[name].format(i=i))


class PredPrey4System(System):
    """Two logistic prey and two predators, with small additive noise."""

    system_name = "predprey4"
    process_noise_param = "diffusion"
    units = {f"{k}{i}": "1" if k == "k" else "1/time" for k in _DEFAULTS for i in (1, 2)}
    presets = {
        "paper": {"mu_names": [], "t_end": 350.0,
                  "time_split": [("train", 300.0), ("val", None)]},
        "default": {},
        "small": {"t_end": 10.0},
    }

    alpha1, alpha2 = _number("alpha", 1), _number("alpha", 2)
    beta1, beta2 = _number("beta", 1), _number("beta", 2)
    gamma1, gamma2 = _number("gamma", 1), _number("gamma", 2)
    delta1, delta2 = _number("delta", 1), _number("delta", 2)
    epsilon1, epsilon2 = _number("epsilon", 1), _number("epsilon", 2)
    psi1, psi2 = _number("psi", 1), _number("psi", 2)
    nu1, nu2 = _number("nu", 1), _number("nu", 2)
    k1 = param.Number(1.5, bounds=(0, None), inclusive_bounds=(False, True),
                      softbounds=(1.2, 1.8), doc=_DOCS["k"].format(i=1))
    k2 = param.Number(1.5, bounds=(0, None), inclusive_bounds=(False, True),
                      softbounds=(1.2, 1.8), doc=_DOCS["k"].format(i=2))
    x0 = param.NumericTuple((0.9, 0.8, 0.2, 0.1), length=4,
                            doc="Initial (prey 1, prey 2, predator 1, predator 2).")
    diffusion = param.Number(1e-3, bounds=(0, None), doc="Diffusion std s per √time.")
    hz = param.Number(10.0, bounds=(0, None), inclusive_bounds=(False, True),
                      doc="Samples per unit time.")
    max_step = param.Number(0.02, bounds=(0, None), inclusive_bounds=(False, True),
                            doc="Largest integration substep.")
    mu_names = param.List(["alpha1", "alpha2"], item_type=str)
    t_end = param.Number(100.0, bounds=(0, None), inclusive_bounds=(False, True))
    obs_noise = param.Number(0.01, bounds=(0, None))

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (4,)

    def time_grid(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, max(2, int(round(self.t_end * self.hz))))

    def _simulate_batch(self, mu, forcings, t, rng):
        p = {k: v[:, None] for k, v in self.mu_dict(mu).items()}

        def drift(_t, z, _f):
            x1, x2, y1, y2 = (z[:, i:i + 1] for i in range(4))
            dx1 = x1 * (p["alpha1"] - p["beta1"] * y1 - p["gamma1"] * y2) * (1 - x1 / p["k1"])
            dx2 = x2 * (p["alpha2"] - p["beta2"] * y1 - p["gamma2"] * y2) * (1 - x2 / p["k2"])
            dy1 = y1 * (-p["delta1"] + p["epsilon1"] * x1 + p["psi1"] * x2 - p["nu1"] * y2)
            dy2 = y2 * (-p["delta2"] + p["epsilon2"] * x1 + p["psi2"] * x2 + p["nu2"] * y1)
            return np.concatenate([dx1, dx2, dy1, dy2], axis=1)

        z0 = np.tile(np.asarray(self.x0, dtype=np.float64), (len(mu), 1))
        return rk4_additive(drift, z0, t, self.max_step, rng, self.diffusion)
