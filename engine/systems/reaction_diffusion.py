"""λ–ω reaction–diffusion: rotating spiral waves in 2-D (Champion et al.'s data).

    u_t = (1 − A²) u + β A² v + d Δu,    v_t = −β A² u + (1 − A²) v + d Δv,    A² = u² + v²,

on [−10, 10)² with periodic boundaries (``n_grid`` points per side), d₁ = d₂ = d = 0.1, β = 1, and
the one-armed spiral initial condition (m = 1, r = |(x, y)|, θ = atan2(y, x))

    u = tanh(r) cos(mθ − r),   v = tanh(r) sin(mθ − r).

Space: Fourier pseudo-spectral (no dealiasing, as the original). Time: ETDRK4 (Cox–Matthews,
coefficients by the Kassam–Trefethen contour integral) with substeps ≤ ``dt_max``.

The ``paper`` preset reproduces the SINDy-autoencoder data used by the stochastic-ROM paper:
100×100 grid, snapshots every 0.05 with the first two (t = 0, 0.05) dropped — here the
solver starts at t = −``spinup`` = −0.1 so the stored times are 0, 0.05, …, 499.9 (9999
snapshots) — and the Gaussian mask exp(−0.01 r²) applied to the stored u (the file's ``uf``).
It is one trajectory cut in time: 8000 train, 1000 val, the rest test. ``paper_noisy`` adds
N(0, 0.01²) observation noise. ``parametric`` (= ``default``) varies μ = (β, d) on a 48×48
grid for the dashboard.
"""

from __future__ import annotations

import numpy as np
import param

from engine.systems._integrators import etdrk4_coefficients
from engine.systems.base import System
from engine.systems.progress import report_progress

__all__ = ["ReactionDiffusionSystem"]

_PAPER = {
    "mu_names": [], "n_grid": 100, "t_end": 499.9, "n_t": 9999, "spinup": 0.1, "mask": True,
    "split_counts": (8000, 1000), "time_split": [("train", None), ("val", None),
                                                 ("test", None)], "dtype": "float32",
}


class ReactionDiffusionSystem(System):
    """λ–ω reaction–diffusion spiral waves."""

    system_name = "reaction_diffusion"
    units = {"beta": "1", "d": "length²/time"}
    presets = {
        "paper": dict(_PAPER),
        "paper_noisy": {**_PAPER, "obs_noise": 0.01},
        "parametric": {},
        "default": {},
        "small": {"n_grid": 24, "t_end": 2.0, "n_t": 11},
    }

    beta = param.Number(1.0, softbounds=(0.8, 1.2), doc="Amplitude-dependent rotation rate β.")
    d = param.Number(0.1, bounds=(0, None), softbounds=(0.08, 0.12),
                     doc="Diffusivity of u and v (d₁ = d₂ = d).")
    n_grid = param.Integer(48, bounds=(4, None), doc="Grid points per side (even).")
    length = param.Number(20.0, bounds=(0, None), inclusive_bounds=(False, True),
                          doc="Side of the periodic square [-L/2, L/2).")
    arms = param.Integer(1, bounds=(1, None), doc="Number of spiral arms m.")
    dt_max = param.Number(0.05, bounds=(0, None), inclusive_bounds=(False, True),
                          doc="Largest ETDRK4 step.")
    spinup = param.Number(0.0, bounds=(0, None), doc="Time simulated before t = 0.")
    mask = param.Boolean(False, doc="Multiply the stored fields by exp(-0.01 r²).")
    channels: param.Selector[str] = param.Selector(
        default="u", objects=["u", "uv"], doc="Stored fields.")
    split_counts = param.NumericTuple((8000, 1000), length=2,
                                      doc="Snapshots in train and val when cut in time.")
    mu_names = param.List(["beta", "d"], item_type=str)
    t_end = param.Number(20.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(101, bounds=(2, None))

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (len(self.channels), self.n_grid, self.n_grid)

    def channel_names(self) -> tuple[str, ...]:
        """The stored fields, ``("u",)`` or ``("u", "v")`` (see ``channels``)."""
        return tuple(self.channels)

    def grid(self) -> dict[str, np.ndarray]:
        """Axis coordinates: ``y`` (rows), ``x`` (columns): linspace(-L/2, L/2, n_grid+1)[:-1]."""
        x = np.linspace(-self.length / 2, self.length / 2, self.n_grid + 1)[:-1]
        return {"y": x.copy(), "x": x}

    def split_slices(self, t: np.ndarray) -> dict[str, slice]:
        a, b = (int(c) for c in self.split_counts)
        return {"train": slice(0, a), "val": slice(a, a + b), "test": slice(a + b, t.size)}

    def initial_state(self) -> np.ndarray:
        """(2, n, n) the spiral (u, v) at the start of the simulation."""
        g = self.grid()
        x, y = np.meshgrid(g["x"], g["y"])
        r, th = np.hypot(x, y), np.arctan2(y, x)
        return np.stack([np.tanh(r) * np.cos(self.arms * th - r),
                         np.tanh(r) * np.sin(self.arms * th - r)])

    def _stored(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2, n, n) -> (N, C, n, n) stored channels."""
        out = uv[:, :1] if self.channels == "u" else uv
        if self.mask:
            g = self.grid()
            x, y = np.meshgrid(g["x"], g["y"])
            out = out * np.exp(-0.01 * (x**2 + y**2))
        return out

    def _simulate_batch(self, mu, forcings, t, rng):
        if self.n_grid % 2:
            raise ValueError(f"reaction_diffusion: n_grid must be even, got {self.n_grid}")
        size = (self.n_grid, self.n_grid)
        p = self.mu_dict(mu)
        beta, d = p["beta"][:, None, None, None], p["d"]
        k = 2 * np.pi / self.length * np.fft.fftfreq(self.n_grid, 1.0 / self.n_grid)
        kr = 2 * np.pi / self.length * np.fft.rfftfreq(self.n_grid, 1.0 / self.n_grid)
        k2 = k[:, None] ** 2 + kr[None, :] ** 2  # (n, n//2+1)
        lin = -d[:, None, None, None] * k2  # (N, 1, n, n//2+1), same for u and v
        cache: dict[float, tuple] = {}

        def nonlinear(uv_hat):
            u, v = np.fft.irfft2(uv_hat, s=size).transpose(1, 0, 2, 3)
            a2 = u * u + v * v
            react = np.stack([(1 - a2) * u + beta[:, 0] * a2 * v,
                              -beta[:, 0] * a2 * u + (1 - a2) * v], axis=1)
            return np.fft.rfft2(react)

        def advance(uv_hat, span):
            steps = max(1, int(np.ceil(span / self.dt_max - 1e-9)))
            h = span / steps
            key = round(h, 12)
            if key not in cache:
                cache[key] = etdrk4_coefficients(lin, h)
            e, e2, q, f1, f2, f3 = cache[key]
            for _ in range(steps):
                nv = nonlinear(uv_hat)
                a = e2 * uv_hat + q * nv
                na = nonlinear(a)
                b = e2 * uv_hat + q * na
                nb = nonlinear(b)
                c = e2 * a + q * (2 * nb - nv)
                nc = nonlinear(c)
                uv_hat = e * uv_hat + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
            return uv_hat

        uv_hat = np.fft.rfft2(np.broadcast_to(self.initial_state(), (len(mu), 2) + size))
        if self.spinup > 0:
            uv_hat = advance(uv_hat, self.spinup)
        out = np.empty((len(mu), t.size) + self.state_shape, dtype=self.dtype)
        out[:, 0] = self._stored(np.fft.irfft2(uv_hat, s=size))
        for i in range(t.size - 1):
            uv_hat = advance(uv_hat, t[i + 1] - t[i])
            out[:, i + 1] = self._stored(np.fft.irfft2(uv_hat, s=size))
            report_progress(i + 1, t.size - 1)  # a reporter may stop the run here
        return out
