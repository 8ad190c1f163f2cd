"""Kuramoto–Sivashinsky: spatio-temporal chaos on a periodic line (ETDRK4, numpy).

    u_t + u u_x + u_xx + u_xxxx = f(t) cos(2πx/L),   x ∈ [0, L) periodic,

μ = (L,) by default (``length``, training range U[22, 36], valid L > 0). L = 22 is the
standard chaotic benchmark (Cvitanović, Davidchack & Siminos 2010; largest Lyapunov exponent
≈ 0.043–0.048). The range also holds windows where the attractor is a travelling wave or a
periodic orbit (measured near L = 28 and 32; see docs/systems.md). For L < 2π every mode is
linearly damped and u decays to its mean.

The state is u at ``n_grid`` points x_j = j L / n, shape (n_grid,). The spatial mean of u is
an invariant of the unforced equation and of the forcing above (cos has zero mean); the
initial condition has zero mean, so u keeps zero mean.

**Forcing.** With ``forced=True`` one channel ``f`` (any family) multiplies the fixed profile
cos(2πx/L), the longest wave of the box; the ``forced`` preset draws a ``smooth_random`` f.
By default (``forced=False``) the system is unforced and has no forcing channel (F = 0).

**Initial condition.** A smooth random zero-mean field: the Fourier modes n = 1 … ``ic_modes``
get independent N(0, (``ic_amplitude``/n)²) cosine and sine coefficients, drawn from the
simulation's random stream. The solver then runs ``spinup`` time units without forcing
before t = 0 so that the stored data lie on the attractor (the transient is discarded).
Output times must therefore be ≥ 0; with t[0] > 0 the state is advanced from 0 to t[0].

**Solver.** Fourier pseudo-spectral in space with the 2/3 rule (the quadratic term is
evaluated on the grid and its modes with |n| > n_grid/3 are zeroed). In time, ETDRK4
(Cox & Matthews 2002) with the coefficients computed by the Kassam & Trefethen (2005) contour
integral (32 points), vectorized over trajectories (each may have its own L), with equal
substeps ≤ ``dt`` (default 0.05) inside each output interval. The forcing is evaluated at the
ETDRK4 stage times (t, t + h/2, t + h). At ``dt`` = 0.05 the error after one time unit on
the attractor is ≈ 2e-6 (n_grid 64, |u| ≈ 3). At such steps halving h divides the error by
≈ 8 (the stiff order reduction of Cox–Matthews ETDRK4, Hochbruck & Ostermann 2005); the
factor tends to 16 (4th order) for h ≲ 0.01.

**Presets.**

- ``default``: 64 points, L ~ U[22, 36], spin-up 100, t ∈ [0, 50] with 201 snapshots.
- ``forced``: ``default`` plus the forcing channel (``smooth_random``, length scale
  U[2, 5], amplitude U[0.1, 0.5]).
- ``small`` (CPU tests): 32 points, spin-up 20, t ∈ [0, 10] with 21 snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import param

from engine.forcing import Forcing, evaluate_forcings
from engine.systems._integrators import etdrk4_coefficients
from engine.systems.base import System
from engine.systems.progress import report_progress

__all__ = ["KuramotoSivashinskySystem"]

_FORCED = {
    "forced": True, "forcing_family": "smooth_random",
    "forcing_ranges": {"length_scale": (2.0, 5.0), "amplitude": (0.1, 0.5), "offset": 0.0},
}


class KuramotoSivashinskySystem(System):
    """Kuramoto–Sivashinsky u_t + u u_x + u_xx + u_xxxx = f(t) cos(2πx/L), periodic in x."""

    system_name = "kuramoto_sivashinsky"
    units = {"length": "length"}
    presets = {
        "default": {},
        "forced": dict(_FORCED),
        "small": {"n_grid": 32, "spinup": 20.0, "t_end": 10.0, "n_t": 21},
    }

    length = param.Number(22.0, bounds=(0, None), inclusive_bounds=(False, True),
                          softbounds=(22.0, 36.0), doc="Length L of the periodic domain.")
    n_grid = param.Integer(64, bounds=(4, None), doc="Grid points (even).")
    dt = param.Number(0.05, bounds=(0, None), inclusive_bounds=(False, True),
                      doc="Largest ETDRK4 step.")
    spinup = param.Number(100.0, bounds=(0, None),
                          doc="Time simulated (unforced) before t = 0 and discarded.")
    ic_modes = param.Integer(4, bounds=(1, None),
                             doc="Fourier modes 1..ic_modes of the random initial condition.")
    ic_amplitude = param.Number(1.0, bounds=(0, None),
                                doc="Std of the first mode of the random initial condition.")
    forced = param.Boolean(False, doc="Add the forcing channel f(t) cos(2πx/L).")
    mu_names = param.List(["length"], item_type=str)
    t_end = param.Number(50.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(201, bounds=(2, None))

    @property
    def forcing_channels(self) -> tuple[tuple[str, str, str], ...]:  # type: ignore[override]
        if not self.forced:
            return ()
        return (("f", "length/time", "Amplitude f(t) of the source f(t) cos(2πx/L)."),)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n_grid,)

    def grid(self) -> dict[str, np.ndarray]:
        """``x`` = j L/n for the fixed L, or ``x_over_L`` = j/n when L is part of μ."""
        s = np.arange(self.n_grid) / self.n_grid
        return {"x_over_L": s} if "length" in self.mu_names else {"x": s * self.length}

    # ------------------------------------------------------------------ solver
    def initial_condition(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, n_grid) smooth random zero-mean fields (see the module docstring)."""
        modes = np.arange(1, self.ic_modes + 1)
        coef = rng.standard_normal((n, 2, modes.size)) * (self.ic_amplitude / modes)
        phase = 2 * np.pi * np.outer(modes, np.arange(self.n_grid) / self.n_grid)  # (M, n_grid)
        return coef[:, 0] @ np.cos(phase) + coef[:, 1] @ np.sin(phase)

    def integrate(self, u0: np.ndarray, t: np.ndarray, length: np.ndarray | float | None = None,
                  forcings: Sequence[Sequence[Forcing]] | None = None,
                  phase: str = "horizon") -> np.ndarray:
        """Advance N fields from ``t[0]`` by ETDRK4 and return them on ``t`` (no spin-up).

        Args:
            u0: (N, n_grid) states at ``t[0]``.
            t: (T,) strictly increasing output times.
            length: (N,) or scalar domain lengths L; default ``self.length``.
            forcings: N sequences of one forcing (the ``f`` channel); ``None``: unforced.
            phase: what the progress reports name (``engine.systems.progress``): ``"horizon"``
                or ``"spin-up"``; one report per output interval.

        Returns:
            (N, T, n_grid) float64 states.
        """
        t = self.check_times(t)
        if self.n_grid % 2:
            raise ValueError(f"{self.system_name}: n_grid must be even, got {self.n_grid}")
        u0 = np.asarray(u0, dtype=np.float64)
        if u0.ndim != 2 or u0.shape[1] != self.n_grid:
            raise ValueError(f"{self.system_name}: u0 must have shape (N, {self.n_grid}), "
                             f"got {u0.shape}")
        n = u0.shape[0]
        length = np.broadcast_to(np.asarray(self.length if length is None else length,
                                            dtype=np.float64), (n,))
        wave = np.arange(self.n_grid // 2 + 1)
        k = 2 * np.pi * wave / length[:, None]  # (N, n_k)
        lin = k**2 - k**4
        # −(u²/2)_x in Fourier space, with the 2/3 rule applied to the product.
        nl = -0.5j * k * (wave <= self.n_grid // 3)
        source = np.fft.rfft(np.cos(2 * np.pi * np.arange(self.n_grid) / self.n_grid))

        counts = np.maximum(1, np.ceil(np.diff(t) / self.dt - 1e-9)).astype(int)
        forced = forcings is not None and len(forcings[0]) > 0
        if forcings is not None and forced:
            if len(forcings) != n:
                raise ValueError(f"{self.system_name}: {len(forcings)} forcings for {n} states")
            # f at every stage time: start and midpoint of each substep, plus the last end.
            stage = [t[:1]] + [t[i] + (t[i + 1] - t[i]) / m * (np.arange(2 * m) + 1) / 2
                               for i, m in enumerate(counts)]
            fvals = evaluate_forcings(forcings, np.concatenate(stage))[:, :, 0]  # (N, M)
        cache: dict[float, tuple[np.ndarray, ...]] = {}

        def rhs(v, s):
            out = nl * np.fft.rfft(np.fft.irfft(v, n=self.n_grid) ** 2)
            if forced:
                out = out + fvals[:, s, None] * source
            return out

        v = np.fft.rfft(u0)
        out = np.empty((n, t.size, self.n_grid))
        out[:, 0] = u0
        s = 0  # index of the current substep's start in the stage times
        for i, m in enumerate(counts):
            h = (t[i + 1] - t[i]) / m
            key = round(h, 12)
            if key not in cache:
                cache[key] = etdrk4_coefficients(lin, h)
            e, e2, q, f1, f2, f3 = cache[key]
            for _ in range(m):
                nv = rhs(v, s)
                a = e2 * v + q * nv
                na = rhs(a, s + 1)
                b = e2 * v + q * na
                nb = rhs(b, s + 1)
                c = e2 * a + q * (2 * nb - nv)
                nc = rhs(c, s + 2)
                v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
                s += 2
            out[:, i + 1] = np.fft.irfft(v, n=self.n_grid)
            report_progress(i + 1, len(counts), phase)  # a reporter may stop the run here
        return out

    def lyapunov_exponents(self, mu: np.ndarray) -> np.ndarray:
        """Of the unforced equation, one per distinct L (a few seconds each)."""
        from engine.systems.lyapunov import kuramoto_sivashinsky_lyapunov

        lengths = self.mu_dict(self.check_mu(mu))["length"]
        unique, index = np.unique(np.round(lengths, 9), return_inverse=True)
        return kuramoto_sivashinsky_lyapunov(self, unique)[index]

    def _simulate_batch(self, mu, forcings, t, rng):
        if t[0] < 0:
            raise ValueError(f"{self.system_name}: times must be >= 0 (t < 0 is the discarded "
                             f"spin-up), got t[0] = {t[0]}")
        length = self.mu_dict(mu)["length"]
        fs = forcings if self.forced else None
        u0 = self.initial_condition(len(mu), rng)
        if self.spinup > 0:
            u0 = self.integrate(u0, np.array([-self.spinup, 0.0]), length,
                                phase="spin-up")[:, -1]
        if t[0] > 0:  # the attractor state is at t = 0; the forcing acts from there on
            u0 = self.integrate(u0, np.array([0.0, t[0]]), length, fs, phase="spin-up")[:, -1]
        return self.integrate(u0, t, length, fs)
