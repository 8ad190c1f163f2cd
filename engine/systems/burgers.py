"""Viscous Burgers equation on x ∈ [0, 1] driven through its left boundary.

    u_t = ν u_xx − u u_x,   u(x, 0) = A exp(−x² / w),   du(1, t)/dt = 0,

discretised by centred finite differences on ``n_x`` points x_i = i/(n_x − 1) (method of
lines). μ = (ν,). The left boundary u(0, t) is driven by the forcing channel ``u_left`` in one
of two ways (``boundary``):

``"rate"`` (paper preset)
    the channel is du(0, t)/dt = f(t); u(0, 0) = A. The paper draws
    f(t) = −A π w sin(2πwt), w ~ U[0.8, 1], so u(0, t) = (A/2)(1 + cos 2πwt). The dataset's
    ``f`` holds this rate, exactly as in the ROM paper's data.
``"value"`` (default and small presets)
    the channel is the boundary value itself, u(0, t) = f(t) for any forcing family, and the
    initial bump's amplitude A is f(0) unless ``ic_amplitude`` is set. The dataset's ``f``
    holds u(0, t).

Grid spacing (``grid_spacing``): ``"paper"`` uses h = 6/(n_x − 1) on the [0, 1] grid, a quirk
of the ROM paper's generator (the stencil acts as if the domain had length 6); ``"physical"``
uses h = 1/(n_x − 1).

Time integration (``integrator``): ``"rk45"`` is scipy's RK45 per trajectory with the paper's
rtol 1e-4, atol 1e-6 (and, with ``forcing_sampling="grid"``, the forcing linearly
interpolated from its samples on the output grid, as the paper did); ``"rk4"`` is a batched
classical RK4 with the step set by the diffusion and advection stability limits (safety 0.9).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import param
from scipy.integrate import solve_ivp

from engine.forcing import Forcing, Sine, evaluate_forcings
from engine.systems._integrators import rk4_additive
from engine.systems.base import System
from engine.systems.parallel import map_trajectories

__all__ = ["BurgersSystem"]


class BurgersSystem(System):
    """Forced viscous Burgers 1-D (the stochastic-ROM paper's flagship problem)."""

    system_name = "burgers"
    units = {"nu": "length²/time"}
    forcing_channels = (("u_left", "velocity", "Left boundary: u(0,t) (value mode) or "
                         "du(0,t)/dt (rate mode)."),)
    presets = {
        "paper": {
            "n_x": 500, "grid_spacing": "paper", "boundary": "rate", "integrator": "rk45",
            "forcing_sampling": "grid", "paper_forcing": True, "ic_amplitude": 5.0,
            "t_end": 3.0, "n_t": 1001, "forcing_family": "sine",
            "forcing_ranges": {"frequency": (0.8, 1.0)}, "ranges": {"nu": (0.05, 0.10)},
        },
        "default": {},
        "small": {"n_x": 64, "t_end": 1.0, "n_t": 51, "ranges": {"nu": (0.05, 0.1)},
                  "nu": 0.075},
    }

    nu = param.Number(0.035, bounds=(0, None), inclusive_bounds=(False, True),
                      softbounds=(0.05, 0.10), doc="Kinematic viscosity.")
    n_x = param.Integer(128, bounds=(3, None), doc="Grid points, boundaries included.")
    grid_spacing: param.Selector[str] = param.Selector(
        default="physical", objects=["physical", "paper"],
        doc="h = 1/(n_x-1), or the paper's quirky 6/(n_x-1).")
    boundary: param.Selector[str] = param.Selector(
        default="value", objects=["value", "rate"],
        doc="The forcing is u(0,t) (value) or du(0,t)/dt (rate).")
    ic_amplitude = param.Number(None, allow_None=True,
                                doc="A of the initial bump; None: the boundary value f(0).")
    ic_width = param.Number(0.001, bounds=(0, None), inclusive_bounds=(False, True),
                            doc="w of the initial bump A exp(-x²/w).")
    integrator: param.Selector[str] = param.Selector(
        default="rk4", objects=["rk4", "rk45"],
        doc="Batched fixed-step RK4, or scipy RK45 per trajectory.")
    rtol = param.Number(1e-4, bounds=(0, None), doc="RK45 relative tolerance.")
    atol = param.Number(1e-6, bounds=(0, None), doc="RK45 absolute tolerance.")
    forcing_sampling: param.Selector[str] = param.Selector(
        default="exact", objects=["exact", "grid"],
        doc="Evaluate the forcing exactly, or interpolate it "
            "linearly from the output grid (paper).")
    paper_forcing = param.Boolean(False, doc="Sample f = -A π w sin(2πwt) with w from the "
                                             "'frequency' range (paper).")
    mu_names = param.List(["nu"], item_type=str)
    ranges = param.Dict({"nu": (0.02, 0.05)})
    t_end = param.Number(3.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(301, bounds=(2, None))
    forcing_family = param.String("sine")
    forcing_ranges = param.Dict({"amplitude": (1.5, 2.5), "frequency": (0.5, 1.5),
                                 "phase": (0.0, 2 * np.pi), "offset": 2.5})

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n_x,)

    def grid(self) -> dict[str, np.ndarray]:
        return {"x": np.linspace(0.0, 1.0, self.n_x)}

    @property
    def spacing(self) -> float:
        """The h used by the finite-difference stencil."""
        length = 6.0 if self.grid_spacing == "paper" else 1.0
        return length / (self.n_x - 1)

    # ---------------------------------------------------------------- forcing
    def sample_forcings(self, n: int, rng: np.random.Generator) -> list[tuple[Forcing, ...]]:
        if not self.paper_forcing:
            return super().sample_forcings(n, rng)
        lo, hi = self.forcing_ranges.get("frequency", (0.8, 1.0))
        amp = self._ic_amp(None)
        w = rng.uniform(lo, hi, size=n)
        return [(Sine(amplitude=-amp * np.pi * wi, frequency=wi),) for wi in w]

    def default_forcing(self) -> tuple[Forcing, ...]:
        if not self.paper_forcing:
            return super().default_forcing()
        lo, hi = self.forcing_ranges.get("frequency", (0.8, 1.0))
        w = 0.5 * (lo + hi)
        return (Sine(amplitude=-self._ic_amp(None) * np.pi * w, frequency=w),)

    def _ic_amp(self, g0: float | None) -> float:
        if self.ic_amplitude is not None:
            return float(self.ic_amplitude)
        if self.boundary == "rate" or g0 is None:
            raise ValueError("burgers: ic_amplitude must be set when boundary='rate'")
        return float(g0)

    def _signals(self, forcings: list[tuple[Forcing, ...]], t: np.ndarray) -> list[Callable]:
        """Per trajectory, the boundary signal as a callable of time."""
        if self.forcing_sampling == "exact":
            return [row[0] for row in forcings]
        out: list[Callable] = []
        for row in forcings:
            samples = row[0](t)
            out.append(functools.partial(np.interp, xp=t, fp=samples))  # picklable
        return out

    # --------------------------------------------------------------- dynamics
    def _rhs(self, u: np.ndarray, nu: np.ndarray, bc: np.ndarray) -> np.ndarray:
        """du/dt for u (N, n_x), ν (N,), bc (N,): the boundary value or rate."""
        h = self.spacing
        if self.boundary == "value":
            u = u.copy()
            u[:, 0] = bc
        du = np.empty_like(u)
        left, mid, right = u[:, :-2], u[:, 1:-1], u[:, 2:]
        du[:, 1:-1] = (nu[:, None] * (right - 2 * mid + left) / h**2
                       - mid * (right - left) / (2 * h))
        du[:, 0] = bc if self.boundary == "rate" else 0.0
        du[:, -1] = 0.0
        return du

    def _initial(self, signals: list[Callable], t0: float) -> np.ndarray:
        x = self.grid()["x"]
        u0 = np.empty((len(signals), self.n_x))
        for i, g in enumerate(signals):
            g0 = float(g(np.array([t0]))[0])
            u0[i] = self._ic_amp(g0) * np.exp(-x**2 / self.ic_width)
            if self.boundary == "value":
                u0[i, 0] = g0
        return u0

    def _max_speed(self, signals: list[Callable], u0: np.ndarray, t: np.ndarray) -> float:
        ts = np.linspace(t[0], t[-1], 4 * t.size)
        vals = np.stack([g(ts) for g in signals])
        if self.boundary == "rate":
            steps = 0.5 * (vals[:, 1:] + vals[:, :-1]) * np.diff(ts)
            vals = u0[:, :1] + np.concatenate([np.zeros((len(vals), 1)),
                                               np.cumsum(steps, axis=1)], axis=1)
        return float(max(np.abs(u0).max(), np.abs(vals).max(), 1e-12))

    def _simulate_batch(self, mu, forcings, t, rng):
        nu = self.mu_dict(mu)["nu"]
        signals = self._signals(forcings, t)
        u0 = self._initial(signals, float(t[0]))
        if self.integrator == "rk45":
            rows = map_trajectories(_solve_rk45, [(self, float(nu[i]), g, u0[i], t)
                                                  for i, g in enumerate(signals)])
            out = np.stack(rows) if rows else np.empty((0, t.size, self.n_x))
        else:
            h = self.spacing
            umax = self._max_speed(signals, u0, t)
            rate = 4 * nu.max() / (2.78 * h**2) + umax / (2.83 * h)
            max_step = 0.9 / rate
            out = rk4_additive(lambda s, u, f: self._rhs(u, nu, f[:, 0]), u0, t, max_step,
                               forcings=[(g,) for g in signals])
        if self.boundary == "value":
            out[:, :, 0] = evaluate_forcings([(g,) for g in signals], t)[..., 0]
        return out


def _solve_rk45(system: BurgersSystem, nu: float, signal: Callable, u0: np.ndarray,
                t: np.ndarray) -> np.ndarray:
    """One trajectory with SciPy's RK45: ``u0`` (n_x,) → (T, n_x) states at ``t``."""
    nu_row = np.array([nu])

    def rhs(s, y):
        bc = np.asarray(signal(np.array([s])), dtype=np.float64)
        return system._rhs(y[None], nu_row, bc)[0]

    sol = solve_ivp(rhs, (t[0], t[-1]), u0, t_eval=t, method="RK45",
                    rtol=system.rtol, atol=system.atol)
    if not sol.success:
        raise RuntimeError(f"burgers: RK45 failed ({sol.message})")
    return sol.y.T
