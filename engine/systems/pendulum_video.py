"""A nonlinear pendulum seen as binary video frames (the ARCTA ``nsde-video`` experiment).

    θ̈ = −(g/L) sin θ,   θ(0) = θ₀ = π/2,   θ̇(0) = 0,   g/L = 1,

sampled on t = linspace(0, 30, 450) (15 fps) and rendered as (1, res, res) frames of 0/1:
the rod from the pivot (0, 0) to the bob (sin θ, −cos θ) as a thick segment plus a filled
disc for the bob, rasterised by ``supersample``² points per pixel and binarised at half
coverage. The ``paper`` view box x ∈ [−1.5, 1.5], y ∈ [−1.5, 0.1] is the ARCTA figure window
(stretched to a square image, as resizing its frames to 32×32 did). The default preset varies
μ = (θ₀,) in [1.0, 2.0] rad and uses a square box. The ODE is solved by scipy DOP853
(rtol = atol = 1e-10); the data are deterministic (the seed only matters for sampling μ).
"""

from __future__ import annotations

import numpy as np
import param
from scipy.integrate import solve_ivp

from engine.systems.base import System

__all__ = ["PendulumVideoSystem"]


class PendulumVideoSystem(System):
    """Pendulum rendered as 32×32 binary frames."""

    system_name = "pendulum_video"
    units = {"theta0": "rad", "omega0": "rad/time", "frequency2": "1/time²"}
    presets = {
        # one video; the first 20 s train, the last 10 s (1.35 periods) are held out
        "paper": {"mu_names": [], "view": (-1.5, 1.5, -1.5, 0.1),
                  "time_split": [("train", 20.0), ("test", None)]},
        "default": {},
        "small": {"t_end": 2.0, "n_t": 30, "resolution": 16},
    }

    theta0 = param.Number(np.pi / 2, bounds=(-np.pi, np.pi), softbounds=(1.0, 2.0),
                          doc="Initial angle from the downward vertical.")
    omega0 = param.Number(0.0, softbounds=(-0.5, 0.5), doc="Initial angular velocity.")
    frequency2 = param.Number(1.0, bounds=(0, None), inclusive_bounds=(False, True),
                              softbounds=(0.5, 2.0), doc="g/L, the squared small-angle "
                                                         "angular frequency.")
    resolution = param.Integer(32, bounds=(4, None), doc="Frame side in pixels.")
    view = param.NumericTuple((-1.3, 1.3, -1.3, 1.3), length=4,
                              doc="(x_min, x_max, y_min, y_max) shown in a frame.")
    rod_width = param.Number(0.2, bounds=(0, None), doc="Rod thickness (0: no rod).")
    bob_radius = param.Number(0.2, bounds=(0, None), doc="Bob disc radius (0: no disc).")
    supersample = param.Integer(4, bounds=(1, None), doc="Subpixel samples per axis.")
    mu_names = param.List(["theta0"], item_type=str)
    t_end = param.Number(30.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(450, bounds=(2, None))

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (1, self.resolution, self.resolution)

    def grid(self) -> dict[str, np.ndarray]:
        """Pixel-centre coordinates: ``x`` (columns, left to right), ``y`` (rows, top down)."""
        x0, x1, y0, y1 = self.view
        r = self.resolution
        return {"y": y1 - (np.arange(r) + 0.5) * (y1 - y0) / r,
                "x": x0 + (np.arange(r) + 0.5) * (x1 - x0) / r}

    def angles(self, mu: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(N, T) angle θ(t) for each row of μ."""
        p = self.mu_dict(self.check_mu(mu))
        out = np.empty((len(p["theta0"]), t.size))
        for i in range(out.shape[0]):
            w2 = p["frequency2"][i]
            sol = solve_ivp(lambda _t, y, w2=w2: np.array([y[1], -w2 * np.sin(y[0])]), (t[0], t[-1]),
                            [p["theta0"][i], p["omega0"][i]], t_eval=t, method="DOP853",
                            rtol=1e-10, atol=1e-10)
            out[i] = sol.y[0]
        return out

    def render(self, theta: np.ndarray) -> np.ndarray:
        """Frames (*theta.shape, 1, res, res) of 0/1 for angles ``theta``."""
        x0, x1, y0, y1 = self.view
        r, s = self.resolution, self.supersample
        xs = x0 + (np.arange(r * s) + 0.5) * (x1 - x0) / (r * s)
        ys = y1 - (np.arange(r * s) + 0.5) * (y1 - y0) / (r * s)
        px, py = np.meshgrid(xs, ys)  # (r s, r s): rows top down
        px, py = px.astype(np.float32), py.astype(np.float32)
        flat = np.asarray(theta, dtype=np.float64).reshape(-1)
        frames = np.empty((flat.size, r, r), dtype=np.float64)
        for start in range(0, flat.size, 64):
            th = flat[start:start + 64, None, None].astype(np.float32)
            bx, by = np.sin(th), -np.cos(th)
            inside = np.zeros((th.shape[0],) + px.shape, dtype=bool)
            if self.bob_radius > 0:
                inside |= (px - bx) ** 2 + (py - by) ** 2 <= self.bob_radius**2
            if self.rod_width > 0:
                # distance from each point to the segment pivot -> bob (length |bob| = 1)
                proj = np.clip(px * bx + py * by, 0.0, 1.0)
                inside |= (px - proj * bx) ** 2 + (py - proj * by) ** 2 <= (self.rod_width / 2) ** 2
            cover = inside.reshape(-1, r, s, r, s).mean(axis=(2, 4))
            frames[start:start + th.shape[0]] = cover >= 0.5
        return frames.reshape(np.shape(theta) + (1, r, r))

    def _simulate_batch(self, mu, forcings, t, rng):
        return self.render(self.angles(mu, t))
