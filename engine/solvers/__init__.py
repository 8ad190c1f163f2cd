"""Fixed-step integrators of the latent SDE ``dz = ψ(z, t; μ, f(t)) dt + Ψ dβ``, each with
its declared strong, weak and deterministic order (additive noise):

| name | scheme | drift calls / step | strong | weak | without noise |
|---|---|---|---|---|---|
| ``euler`` | Euler–Maruyama | 1 | 1 | 1 | 1 |
| ``heun`` | stochastic Heun | 2 | 1 | 2 | 2 |
| ``sra1`` | Rößler's SRA1 | 2 | 1.5 | 2 | 2 |

``tests/test_solvers.py`` measures these orders on an Ornstein–Uhlenbeck process, a linear
SDE and a nonlinear drift. :mod:`engine.solvers.grid` lays out the stage times and forcing;
:mod:`engine.rollout` runs a scheme over a batch of paths (eagerly or as a CUDA graph);
:mod:`engine.solvers.step_check` picks the number of substeps by halving the step.
"""

from __future__ import annotations

from engine.solvers.base import Scheme
from engine.solvers.euler import EulerMaruyama
from engine.solvers.heun import StochasticHeun
from engine.solvers.sra import SRA1

__all__ = ["Scheme", "SCHEMES", "METHODS", "DEFAULT_METHOD", "get_scheme"]

SCHEMES: dict[str, Scheme] = {s.name: s for s in (EulerMaruyama(), StochasticHeun(), SRA1())}
METHODS = tuple(SCHEMES)
#: the scheme predictions use unless told otherwise (chosen by the work-precision table in
#: benchmarks/results/work_precision_*.md)
DEFAULT_METHOD = "heun"


def get_scheme(name: str) -> Scheme:
    """The scheme called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown integrator {name!r}: use one of {METHODS}") from None
