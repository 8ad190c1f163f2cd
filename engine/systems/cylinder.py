"""2-D flow past a cylinder in a channel with two synthetic jets (lattice Boltzmann, torch).

Geometry after the Schäfer & Turek benchmark 2D-2 (physical units: length, time with
Ū = 1): a channel [0, 2.2] × [0, 0.41], a cylinder of diameter D = 0.1 centred at
(0.2, 0.2) (``cylinder_y``), a parabolic inflow of mean velocity Ū = 1 (peak 1.5 Ū), so
Re = Ū D / ν (ν = Ū D / Re). No-slip walls by halfway bounce-back (the walls lie half a cell
outside the first and last fluid rows, so the fluid spans exactly [0, 0.41]), the cylinder
by interpolated (Bouzidi, linear) or simple bounce-back, the inflow by Guo's
non-equilibrium extrapolation of a prescribed velocity, the outflow zero-gradient
(``outflow``).

Lattice: D2Q9 with BGK (default) or TRT collision (experimental, see ``collision``) and He &
Luo's incompressible equilibrium (``equilibrium``), ``resolution`` lattice cells per
diameter, Δx = 0.41 / round(4.1 · resolution), lattice inflow peak velocity
``u_max_lattice`` (sets Δt = Δx · Ū_lattice / Ū and the Mach number). The zero-gradient
outlet lets sound waves leave but fixes no density level, so the mean density drifts slowly
(about 0.5 % per time unit); with the incompressible equilibrium the velocity and the forces
do not depend on that level (with the standard one they grow with it: the cause of the
+9 % drag seen before). The whole batch of trajectories is advanced at once as an
(N, 9, n_y, n_x) tensor, on CUDA when available (``device``). A step is a few fused tensor
operations; on CUDA blocks of up to 64 steps are captured once as CUDA graphs and replayed
(``cuda_graph``).

Two jets on the cylinder surface at +90° (top) and −90° (bottom), as in Rabault et al.
(2019), blow along the outward normal with a cos profile over ``jet_width`` degrees. Their
flow rates (length²/time, per unit depth) are [s(t), −s(t)], where s(t) is the single
forcing channel ``jet`` (default family ``smooth_random``, amplitude √1e-5, length scale
1/3, as in the stochastic-ROM paper's data) clipped to the action limit ±``jet_limit``. The
discrete mass injected per step by each jet is normalised to exactly s·Δt and −s·Δt, so the
jets' net flux is zero to rounding.

Before t = 0 the unactuated flow is run for ``spinup`` time units from the inflow profile
everywhere (optionally kicked by a short jet pulse ``spinup_kick`` to trigger shedding
sooner); the spun-up state depends only on Re and the lattice settings, so it is computed
once per distinct Re and cached.

State: (u, v, p) on an ``output_shape`` = (H, W) cell-centred grid over the channel
(row 0 at the bottom wall, column 0 at the inlet), shape (3, H, W); p is the kinematic
pressure (ρ − ρ_out) c_s² relative to the mean over the outlet column; inside the cylinder
all three are 0. The lattice fields are downsampled by antialiased bilinear interpolation.

Forces: drag and lift coefficients C_d = 2 F_x / (ρ₀ Ū² D), C_l = 2 F_y / (ρ₀ Ū² D)
(ρ₀ = 1) by Galilean-invariant momentum exchange (Wen et al. 2014: the jets are moving
walls) on the cylinder links, per lattice step: see :meth:`CylinderSystem.run`, or
``simulate(..., return_forces=True)``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import param
import torch
import torch.nn.functional as F

from engine.forcing import Forcing, evaluate_forcings
from engine.state_cache import load_state, store_state
from engine.systems.base import System
from engine.systems.progress import report_progress

__all__ = ["D2Q9", "CylinderSystem"]

# D2Q9 lattice: velocities, weights, opposite directions.
_C = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1], [-1, -1], [1, -1]])
_W = np.array([4 / 9] + [1 / 9] * 4 + [1 / 36] * 4)
_OPP = np.array([0, 3, 4, 1, 2, 7, 8, 5, 6])
_LEFT = [3, 6, 7]  # directions with c_x < 0
D2Q9 = {"c": _C, "w": _W, "opp": _OPP}

LENGTH, HEIGHT, DIAMETER, U_MEAN = 2.2, 0.41, 0.1, 1.0

_SPINUP_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_SPINUP_CACHE_SIZE = 8
#: a spin-up that took at least this long also goes to the user's disk cache (engine.state_cache)
SPINUP_DISK_MIN_SECONDS = 1.0
_GRAPH_BLOCK = 64  # longest block of steps captured as one CUDA graph


class _Lattice:
    """Geometry, links, jet weights and the step of one lattice (independent of the batch).

    Populations are (N, 9, ny, nx) tensors; rows 0 and ny − 1 are solid wall nodes, so the
    fluid rows 1 … ny − 2 have centres y_j = (j − 1/2) Δx and the walls lie at y = 0 and
    y = 0.41 (halfway bounce-back). Column i has its centre at x_i = (i + 1/2) Δx.
    """

    def __init__(self, system: CylinderSystem, device: torch.device, dtype: torch.dtype):
        res = system.resolution
        self.ny_f = int(round(HEIGHT / DIAMETER * res))
        self.dx = HEIGHT / self.ny_f
        self.nx = int(round(LENGTH / self.dx))
        self.ny = self.ny_f + 2  # solid wall rows 0 and ny - 1
        self.u_mean_lu = system.u_max_lattice / 1.5
        self.dt = self.dx * self.u_mean_lu / U_MEAN
        self.d_lu = DIAMETER / self.dx
        self.device, self.dtype = device, dtype
        self.bgk = system.collision == "bgk"
        self.incompressible = system.equilibrium == "incompressible"
        self.outflow = system.outflow
        nx, ny = self.nx, self.ny
        self.nn = nn = nx * ny
        x = (np.arange(nx) + 0.5) * self.dx
        y = (np.arange(ny) - 0.5) * self.dx
        X, Y = np.meshgrid(x, y)
        xc, yc, r = system.cylinder_x, system.cylinder_y, DIAMETER / 2
        cyl = (X - xc) ** 2 + (Y - yc) ** 2 < r**2
        solid = cyl.copy()
        solid[0, :] = solid[-1, :] = True
        self.solid_np, self.cyl_np = solid, cyl

        def t(a, dt: torch.dtype = torch.long) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), dtype=dt, device=device)

        # Streaming as one gather: population k at x pulls f*_k(x - c_k). Where x - c_k is
        # solid this is the halfway bounce-back f*_opp(k)(x) (exact for the walls; cylinder
        # links are overwritten afterwards). Solid nodes and pulls from beyond the inlet and
        # outlet columns keep their own value: the latter are overwritten by the open
        # boundaries, the former stay at rest (w_k is a fixed point of the collision).
        rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        node = rows * nx + cols
        pull = np.empty((9, ny, nx), dtype=np.int64)
        for k in range(9):
            cx, cy = _C[k]
            sj, si = rows - cy, cols - cx
            ok = (sj >= 0) & (sj < ny) & (si >= 0) & (si < nx)
            src_solid = np.zeros_like(ok)
            src_solid[ok] = solid[sj[ok], si[ok]]
            src = np.where(ok, k * nn + sj * nx + si, k * nn + node)
            src = np.where(ok & src_solid & ~solid, _OPP[k] * nn + node, src)
            pull[k] = np.where(solid, k * nn + node, src)
        self.pull = t(pull.reshape(-1))

        # Cylinder links: fluid node x_f, direction d with x_f + c_d inside the cylinder, the
        # wall at x_f + q c_d. Their returning population f_opp(d)(x_f) is set afterwards.
        node_list: list[int] = []
        far_list: list[int] = []
        dir_list: list[int] = []
        q_list: list[float] = []
        theta_list: list[float] = []
        fj, fi = np.nonzero(~solid)
        for d in range(1, 9):
            cx, cy = _C[d]
            tj, ti = fj + cy, fi + cx
            inside = (ti >= 0) & (ti < nx)
            hit = np.zeros_like(fj, dtype=bool)
            hit[inside] = cyl[tj[inside], ti[inside]]
            for j, i in zip(fj[hit], fi[hit]):
                if system.bounce_back == "interpolated":
                    # |x_f + q c - centre| = r, smallest root in (0, 1]
                    px, py = X[j, i] - xc, Y[j, i] - yc
                    a = (cx * cx + cy * cy) * self.dx**2
                    b = 2 * self.dx * (px * cx + py * cy)
                    c = px * px + py * py - r * r
                    q = (-b - math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
                    q = min(max(q, 1e-3), 1.0)
                else:
                    q = 0.5
                j2, i2 = j - cy, i - cx  # second fluid node behind x_f (for q < 1/2)
                if q < 0.5 and not (0 <= i2 < nx and not solid[j2, i2]):
                    q = 0.5
                node_list.append(j * nx + i)
                far_list.append(j2 * nx + min(max(i2, 0), nx - 1))
                dir_list.append(d)
                q_list.append(q)
                wx, wy = X[j, i] + q * cx * self.dx - xc, Y[j, i] + q * cy * self.dx - yc
                theta_list.append(math.degrees(math.atan2(wy, wx)))
        nodes, dirs, qs = np.array(node_list), np.array(dir_list), np.array(q_list)
        far, theta = np.array(far_list), np.array(theta_list)
        small = qs < 0.5
        opp = _OPP[dirs]
        # linear Bouzidi rule on post-collision populations: f*_d(x_f), f*_d(x_f - c_d),
        # f*_opp(x_f), gathered at once
        weights = np.stack([np.where(small, 2 * qs, 1 / (2 * qs)),
                            np.where(small, 1 - 2 * qs, 0.0),
                            np.where(small, 0.0, (2 * qs - 1) / (2 * qs))])
        wall_scale = np.where(small, 1.0, 1 / (2 * qs))
        self.link_src = t(np.concatenate([dirs * nn + nodes, dirs * nn + far, opp * nn + nodes]))
        self.link_w = t(weights, dtype)  # (3, L)
        self.link_dst = t(opp * nn + nodes)
        self.link_c = t(_C[dirs].astype(float), dtype)  # (L, 2)
        self.n_links = len(dirs)

        # Jets: wall velocity A φ(θ) n(θ) (Ladd's moving-wall term, Bouzidi-scaled); the mass
        # added per link and step is s Δt/Δx² · coef, coef summing to 1 over each jet.
        half = 0.5 * max(system.jet_width,
                         math.degrees(3 * self.dx / (DIAMETER / 2)))  # >= ~3 links of arc
        self.jet_half_width = half
        nrm = np.stack([np.cos(np.radians(theta)), np.sin(np.radians(theta))], axis=1)
        base = 6 * _W[dirs] * np.sum(_C[opp] * nrm, axis=1) * wall_scale
        coefs, wall_u = [], np.zeros((len(dirs), 2))
        for centre, sign in ((90.0, 1.0), (-90.0, -1.0)):
            dev = (theta - centre + 180) % 360 - 180
            phi = np.where(np.abs(dev) < half, np.cos(np.pi * dev / (2 * half)), 0.0)
            total = (base * phi).sum()
            if total <= 0:
                raise ValueError("cylinder: no lattice links under a jet; raise resolution")
            coefs.append(base * phi / total)  # unit mass per step in total
            wall_u += sign * (phi / total)[:, None] * nrm  # wall velocity per unit mass
        self.jet_coef = t(np.stack(coefs), dtype)  # (2, L): top, bottom
        self.jet_dcoef = t(coefs[0] - coefs[1], dtype)  # (L,): top minus bottom
        self.jet_wall_u = t(wall_u, dtype)  # (L, 2)
        self.jet_links = [int((c != 0).sum()) for c in coefs]

        # inflow profile (lattice units) on the fluid rows, walls at y = 0 and HEIGHT
        yy = (np.arange(1, ny - 1) - 0.5) * self.dx
        self.u_in = t(4 * 1.5 * self.u_mean_lu * yy * (HEIGHT - yy) / HEIGHT**2, dtype)
        self.solid = t(solid, torch.bool)
        self.fluid_f = t(~solid, dtype)
        self.cyl_out = t(cyl, torch.bool)
        self.c = t(_C.astype(float), dtype)
        self.w = t(_W, dtype)
        self.opp = t(_OPP)
        self.left = t(_LEFT)
        self.w4 = t(_W[[1, 2, 5, 6]], dtype)
        self.up, self.down = t([2, 5, 6]), t([4, 7, 8])  # c_y > 0 and their opposites
        self.cyl_nodes = t(np.flatnonzero(cyl))
        self.w_cyl = self.w.view(1, 9, 1).expand(1, 9, int(cyl.sum())).contiguous()
        self.gather = device.type == "cuda"  # streaming method, see step()

    # ---------------------------------------------------------------- moments
    def _view(self, a: torch.Tensor, dim: int) -> torch.Tensor:
        return a.view((1, 9) + (1,) * (dim - 2))

    def feq(self, rho: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
        """Equilibria (N, 9, ...) for ρ, u of shape (N, 1, ...) (or (N, ...)).

        Opposite directions share w (1 − 1.5 u² + 4.5 (c·u)²) ρ and differ in the sign of
        3 w ρ c·u, so only four velocity projections are formed, on (N, 4, ...) tensors.
        """
        if rho.dim() < 2 or rho.shape[1] != 1:
            rho, ux, uy = rho.unsqueeze(1), ux.unsqueeze(1), uy.unsqueeze(1)
        shape = (1, 4) + (1,) * (rho.dim() - 2)
        w4 = self.w4.view(shape)
        usq = ux * ux + uy * uy
        cu = torch.cat([ux, uy, ux + uy, uy - ux], 1)  # directions 1, 2, 5, 6
        if self.incompressible:  # He & Luo: ρ₀ = 1 in the momentum terms
            base, rcu = rho - 1.5 * usq, cu
        else:
            base, rcu = rho * (1 - 1.5 * usq), rho * cu
        even = w4 * (base + 4.5 * rcu * cu)
        odd = w4 * (3 * rcu)
        plus, minus = even + odd, even - odd  # directions 1, 2, 5, 6 and 3, 4, 7, 8
        return torch.cat([base * (4 / 9), plus[:, :2], minus[:, :2], plus[:, 2:],
                          minus[:, 2:]], 1)

    def moments(self, f: torch.Tensor):
        """ρ, u_x, u_y of shape (N, 1, ...) for populations (N, 9, ...).

        Sums of slices rather than a matmul, so that TF32 settings made elsewhere (training
        enables them) never reach the lattice.
        """
        rho = f.sum(1, keepdim=True)

        def s(k: int) -> torch.Tensor:
            return f[:, k:k + 1]

        ux = (s(1) + s(5) + s(8)) - (s(3) + s(6) + s(7))
        uy = (s(2) + s(5) + s(6)) - (s(4) + s(7) + s(8))
        if self.incompressible:  # u = j / ρ₀
            return rho, ux, uy
        return rho, ux / rho, uy / rho

    def macros(self, f: torch.Tensor):
        """ρ, u_x, u_y of shape (N, ...) for populations (N, 9, ...)."""
        return tuple(m.squeeze(1) for m in self.moments(f))

    def initial(self, n: int) -> torch.Tensor:
        """(n, 9, ny, nx) equilibria at ρ = 1 with the inflow profile in all fluid nodes."""
        ux = torch.zeros(n, 1, self.ny, self.nx, dtype=self.dtype, device=self.device)
        ux[:, 0, 1:-1] = self.u_in.view(-1, 1)
        ux = ux * self.fluid_f
        return self.feq(torch.ones_like(ux), ux, torch.zeros_like(ux))

    # ------------------------------------------------------------------- step
    def _stream_gather(self, fpf: torch.Tensor) -> torch.Tensor:
        """Streaming and wall bounce-back as one gather (one kernel: best on CUDA)."""
        return fpf.index_select(1, self.pull)

    def _stream_slices(self, fpf: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`_stream_gather` by shifted copies (gathers are slow on CPUs)."""
        n, nn, nx = fpf.shape[0], self.nn, self.nx
        fp, fn = fpf.view(n, 9, nn), torch.empty_like(fpf).view(n, 9, nn)
        for k in range(9):
            s = int(_C[k, 1]) * nx + int(_C[k, 0])  # flat shift; wrapped ends are
            if s >= 0:                              # walls or open-boundary columns
                fn[:, k, s:] = fp[:, k, :nn - s]
            else:
                fn[:, k, :s] = fp[:, k, -s:]
        rows = fn.view(n, 9, self.ny, nx)
        rows[:, :, 0] = rows[:, :, -1] = self.w.view(1, 9, 1)  # wall nodes at rest
        rows[:, :, 1].index_copy_(1, self.up, fp.view(n, 9, self.ny, nx)[:, :, 1]
                                  .index_select(1, self.down))
        rows[:, :, -2].index_copy_(1, self.down, fp.view(n, 9, self.ny, nx)[:, :, -2]
                                   .index_select(1, self.up))
        fn.index_copy_(2, self.cyl_nodes, self.w_cyl.expand(n, -1, -1))  # at rest
        return fn.view(n, -1)

    def step(self, f: torch.Tensor, wp: torch.Tensor, wm: torch.Tensor, q: torch.Tensor):
        """One collide-stream-boundary step (no host synchronisation: graph-capturable).

        Args:
            f: populations (N, 9, ny, nx).
            wp, wm: relaxation rates (N, 1, 1, 1) (even, odd; equal for BGK).
            q: jet mass per step s Δt/Δx² (N,) of the top jet (the bottom one gets −q).

        Returns:
            The new populations (N, 9, ny, nx) and the force on the cylinder (N, 2) in
            lattice units.
        """
        n = f.shape[0]
        rho, ux, uy = self.moments(f)
        feq = self.feq(rho, ux, uy)
        if self.bgk:
            fp = torch.lerp(f, feq, wp)
        else:
            neq = f - feq
            fp = f - 0.5 * (wp + wm) * neq - 0.5 * (wp - wm) * neq.index_select(1, self.opp)
        fpf = fp.reshape(n, -1)
        fnf = self._stream_gather(fpf) if self.gather else self._stream_slices(fpf)
        # cylinder links: interpolated bounce-back plus the jets' moving-wall term
        g = fpf.index_select(1, self.link_src).view(n, 3, -1)
        val = (g * self.link_w).sum(1) + q[:, None] * self.jet_dcoef
        fnf.index_copy_(1, self.link_dst, val)
        # Galilean-invariant momentum exchange: Σ c_d (f*_d + f_opp) − u_w (f*_d − f_opp)
        force = ((g[:, 0] + val).unsqueeze(-1) * self.link_c).sum(1) \
            - q[:, None] * ((g[:, 0] - val).unsqueeze(-1) * self.jet_wall_u).sum(1)
        fn = fnf.view_as(f)
        # inflow: prescribed velocity, ρ and f_neq from the next column (Guo); the two
        # equilibria of each boundary are evaluated as one batch of 2N columns
        f1 = fn[:, :, 1:-1, 1]
        r1, ux1, uy1 = self.moments(f1)
        eq = self.feq(torch.cat([r1, r1]), torch.cat([self.u_in.expand_as(ux1), ux1]),
                      torch.cat([torch.zeros_like(uy1), uy1]))
        fn[:, :, 1:-1, 0] = f1 + (eq[:n] - eq[n:])
        if self.outflow == "pressure":  # ρ = 1, velocity and f_neq from the previous column
            f2 = fn[:, :, 1:-1, -2]
            r2, ux2, uy2 = self.moments(f2)
            eq = self.feq(torch.cat([torch.ones_like(r2), r2]), torch.cat([ux2, ux2]),
                          torch.cat([uy2, uy2]))
            fn[:, :, 1:-1, -1] = f2 + (eq[:n] - eq[n:])
        else:  # zero-gradient: the populations entering from the outlet copy the neighbour
            fn[:, :, 1:-1, -1].index_copy_(
                1, self.left, fn[:, :, 1:-1, -2].index_select(1, self.left))
        return fn, force


class _Stepper:
    """Advances a batch by blocks of steps: eager, or replayed CUDA graphs on CUDA.

    A block of L steps is split into pieces of 64, 32, …, 1 steps; each piece length is
    captured once (lazily) as a CUDA graph reading and writing static buffers.
    """

    def __init__(self, lat: _Lattice, wp: torch.Tensor, wm: torch.Tensor, n: int,
                 use_graph: bool):
        self.lat, self.wp, self.wm, self.n = lat, wp, wm, n
        self.use_graph = bool(use_graph) and lat.device.type == "cuda"
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        if self.use_graph:
            self._static_buffers()
            self.pool = torch.cuda.graph_pool_handle()

    def _static_buffers(self) -> None:
        kw: dict[str, Any] = {"dtype": self.lat.dtype, "device": self.lat.device}
        self.f = torch.empty(self.n, 9, self.lat.ny, self.lat.nx, **kw)
        self.q = torch.zeros(self.n, _GRAPH_BLOCK, **kw)
        self.forces = torch.zeros(self.n, _GRAPH_BLOCK, 2, **kw)

    def _static_steps(self, length: int) -> None:
        """``length`` steps from the static buffers back into them (the captured work)."""
        f = self.f
        for i in range(length):
            f, force = self.lat.step(f, self.wp, self.wm, self.q[:, i])
            self.forces[:, i].copy_(force)
        self.f.copy_(f)

    def _graph(self, length: int) -> torch.cuda.CUDAGraph:
        if length not in self.graphs:
            lat = self.lat
            side = torch.cuda.Stream(device=lat.device)
            side.wait_stream(torch.cuda.current_stream(lat.device))
            with torch.cuda.stream(side):  # warm-up (lazy initialisations), result dropped
                lat.step(self.f, self.wp, self.wm, self.q[:, 0])
            torch.cuda.current_stream(lat.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self._static_steps(length)
            self.graphs[length] = graph
        return self.graphs[length]

    def advance(self, f: torch.Tensor, q: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        """Run ``q.shape[1]`` steps from ``f``; fill ``forces`` (N, L, 2); return the state.

        Args:
            f: populations (N, 9, ny, nx) (not modified in eager mode).
            q: jet mass per step (N, L).
            forces: output (N, L, 2), the lattice force on the cylinder per step.
        """
        steps = q.shape[1]
        if not self.use_graph:
            for i in range(steps):
                f, forces[:, i] = self.lat.step(f, self.wp, self.wm, q[:, i])
            return f
        if f is not self.f:
            self.f.copy_(f)
        pos, piece = 0, _GRAPH_BLOCK
        while pos < steps:
            while piece > steps - pos:
                piece //= 2
            self.q[:, :piece].copy_(q[:, pos:pos + piece])
            self._graph(piece).replay()
            forces[:, pos:pos + piece].copy_(self.forces[:, :piece])
            pos += piece
        return self.f


class CylinderSystem(System):
    """Flow past a cylinder with two synthetic jets (D2Q9 lattice Boltzmann in torch)."""

    system_name = "cylinder"
    units = {"Re": "1"}
    initial_state_is_fixed = True  # the spin-up before t = 0 is unactuated and noise-free
    forcing_channels = (("jet", "length²/time",
                         "Jet flow rates [s, −s] (top, bottom jet, per unit depth), "
                         "s clipped to ±jet_limit."),)
    presets = {
        "default": {},
        "small": {"resolution": 8, "output_shape": (16, 88), "t_end": 0.3, "n_t": 11,
                  "spinup": 0.0, "u_max_lattice": 0.15, "mu_names": ["Re"],
                  "Re": 40.0, "ranges": {"Re": (30.0, 50.0)}, "jet_limit": 0.02,
                  "forcing_ranges": {"amplitude": 0.01, "length_scale": 0.1}},
        "paper": {"resolution": 20, "output_shape": (80, 440), "t_end": 0.665, "n_t": 134,
                  "spinup": 6.0, "dtype": "float32"},
    }

    Re = param.Number(100.0, bounds=(0, None), inclusive_bounds=(False, True),
                      softbounds=(80.0, 120.0), doc="Reynolds number Ū D / ν.")
    resolution = param.Integer(12, bounds=(4, None), doc="Lattice cells per diameter.")
    u_max_lattice = param.Number(0.1, bounds=(0, 0.3), inclusive_bounds=(False, True),
                                 doc="Peak inflow velocity in lattice units (Mach · √3).")
    collision: param.Selector[str] = param.Selector(
        default="bgk", objects=["bgk", "trt"],
        doc="BGK, or TRT (magic Λ = trt_magic; EXPERIMENTAL: it went "
            "unstable at τ ≈ 0.52 where BGK did not, unresolved).")
    trt_magic = param.Number(0.25, bounds=(0, None), inclusive_bounds=(False, True),
                             doc="TRT magic parameter Λ (1/4: most stable, 3/16: exact walls).")
    bounce_back: param.Selector[str] = param.Selector(
        default="interpolated", objects=["interpolated", "simple"],
        doc="Cylinder boundary: Bouzidi linear or halfway.")
    equilibrium: param.Selector[str] = param.Selector(
        default="incompressible", objects=["incompressible", "standard"],
        doc="Equilibrium: He & Luo's incompressible one (u = Σ c f, momentum terms with "
            "ρ₀ = 1: forces do not depend on the density level) or the standard one "
            "(u = Σ c f / ρ).")
    outflow: param.Selector[str] = param.Selector(
        default="zero_gradient", objects=["zero_gradient", "pressure"],
        doc="Outlet: copy the incoming populations from the neighbour "
            "column (lets sound waves out; the density level floats, "
            "harmless with the incompressible equilibrium), or ρ = 1 by "
            "non-equilibrium extrapolation (reflects sound: with the "
            "velocity inlet the channel rings at its quarter-wave mode).")
    cylinder_x = param.Number(0.2, bounds=(0.05, 2.15), doc="Cylinder centre x.")
    cylinder_y = param.Number(0.2, bounds=(0.05, 0.36),
                              doc="Cylinder centre y (0.205 = symmetric channel).")
    jet_width = param.Number(10.0, bounds=(0, 90), inclusive_bounds=(False, True),
                             doc="Angular width of each jet in degrees (widened to ≥ 3 "
                                 "lattice spacings of arc on coarse lattices).")
    jet_limit = param.Number(0.0088, bounds=(0, None), inclusive_bounds=(False, True),
                             doc="Largest jet flow rate |s| (length²/time); s(t) is clipped "
                                 "to ±jet_limit. Default 0.06 Q_ref, Q_ref = 0.147 the "
                                 "inflow through the cylinder's height.")
    spinup = param.Number(3.0, bounds=(0, None),
                          doc="Unactuated time run before t = 0 (wake development).")
    spinup_kick = param.Number(0.005, bounds=(0, None),
                               doc="Peak flow rate of an [s, −s] jet pulse during the first "
                                   "tenth of the spin-up (triggers shedding sooner).")
    output_shape = param.NumericTuple((40, 220), length=2, doc="(H, W) of the output grid.")
    device = param.String("auto", doc="torch device: 'auto' (CUDA if available), 'cpu', ...")
    lattice_dtype: param.Selector[str] = param.Selector(
        default="float32", objects=["float32", "float64"],
        doc="Floating type of the lattice populations.")
    cuda_graph = param.Boolean(True, doc="On CUDA, replay blocks of steps as CUDA graphs.")
    batch_size = param.Integer(32, bounds=(1, None), doc="Trajectories per lattice batch.")
    mu_names = param.List([], item_type=str)
    t_end = param.Number(1.0, bounds=(0, None), inclusive_bounds=(False, True))
    n_t = param.Integer(201, bounds=(2, None))
    forcing_family = param.String("smooth_random")
    forcing_ranges = param.Dict({"amplitude": math.sqrt(1e-5), "length_scale": 1 / 3})

    # ----------------------------------------------------------- declarations
    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3, int(self.output_shape[0]), int(self.output_shape[1]))

    def channel_names(self) -> tuple[str, ...]:
        """The stored fields: velocity components u (streamwise), v and the pressure p."""
        return ("u", "v", "p")

    def grid(self) -> dict[str, np.ndarray]:
        h, w = (int(v) for v in self.output_shape)
        return {"y": (np.arange(h) + 0.5) * HEIGHT / h, "x": (np.arange(w) + 0.5) * LENGTH / w}

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def lattice(self) -> _Lattice:
        """The lattice of the current settings (geometry, links, units)."""
        dt = torch.float64 if self.lattice_dtype == "float64" else torch.float32
        return _Lattice(self, self.torch_device(), dt)

    def lattice_info(self) -> dict:
        """Lattice size and unit conversions, JSON-safe."""
        lat = self.lattice()
        return {"nx": lat.nx, "ny_fluid": lat.ny_f, "dx": lat.dx, "dt": lat.dt,
                "diameter_cells": lat.d_lu, "u_mean_lattice": lat.u_mean_lu,
                "tau": 0.5 + 3 * lat.u_mean_lu * lat.d_lu / self.Re,
                "jet_links": lat.jet_links, "jet_half_width_deg": lat.jet_half_width,
                "device": str(lat.device)}

    # ------------------------------------------------------------- simulation
    def simulate(self, mu: Any = None, forcing: Any = None, t: Any = None, seed: int = 0,
                 return_forces: bool = False):
        """One trajectory (T, 3, H, W); with ``return_forces`` also the :meth:`run` dict."""
        if not return_forces:
            return super().simulate(mu, forcing, t, seed)
        mu = self.default_mu() if mu is None else mu
        out = self.run(mu, [forcing], t)
        x = out.pop("x")[0]
        return x, {k: (v[0] if isinstance(v, np.ndarray) and v.ndim >= 1
                       and k not in ("t", "t_steps") else v) for k, v in out.items()}

    def _simulate_batch(self, mu, forcings, t, rng):
        return self._run(mu, forcings, t)["x"]

    def run(self, mu: Any, forcings: list, t: Any = None) -> dict:
        """Simulate N trajectories and return states plus diagnostics.

        Returns a dict of numpy arrays: ``x`` (N, T, 3, H, W); ``t`` (T,); ``t_steps`` (S,)
        the lattice step times; ``cd``, ``cl`` (N, S) drag and lift coefficients per step;
        ``mass`` (N, T) total lattice mass of the fluid nodes; ``jet_mass`` (N, S, 2) mass
        injected per step by the top and bottom jets (lattice units), whose sum over the
        last axis is zero to rounding; ``jet_flow`` (N, S) the applied s(t), i.e. the
        forcing clipped to ±``jet_limit``.
        """
        t = self.time_grid() if t is None else self.check_times(t)
        fs = [self.check_forcing(f) for f in forcings]
        mu = self.check_mu(mu)
        if mu.shape[0] == 1 and len(fs) > 1:
            mu = np.repeat(mu, len(fs), axis=0)
        return self._run(mu, fs, t)

    def _run(self, mu: np.ndarray, forcings: list[tuple[Forcing, ...]], t: np.ndarray) -> dict:
        if t[0] < 0:
            raise ValueError("cylinder: output times must be >= 0 (t = 0 ends the spin-up)")
        lat = self.lattice()
        re = self.mu_dict(mu)["Re"]
        n_steps = int(round(t[-1] / lat.dt)) + 1
        snap = np.rint(t / lat.dt).astype(int)
        t_steps = np.arange(n_steps) * lat.dt
        s = evaluate_forcings(forcings, t_steps)[..., 0]  # (N, S) physical flow rates
        s = np.clip(s, -self.jet_limit, self.jet_limit)
        outs = []
        n_batches = math.ceil(len(re) / self.batch_size)
        for b, lo in enumerate(range(0, len(re), self.batch_size)):
            hi = min(lo + self.batch_size, len(re))
            outs.append(self._run_batch(lat, re[lo:hi], s[lo:hi], snap, (b, n_batches)))
        out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        out["t"], out["t_steps"], out["jet_flow"] = t, t_steps, s
        return out

    # -------------------------------------------------------------- lattice
    def _omegas(self, lat: _Lattice, re: np.ndarray):
        nu = lat.u_mean_lu * lat.d_lu / np.asarray(re, dtype=np.float64)
        tau = 0.5 + 3 * nu
        w_plus = 1 / tau
        if self.collision == "bgk":
            w_minus = w_plus
        else:
            lam = self.trt_magic
            w_minus = 1 / (lam / (tau - 0.5) + 0.5)

        def v(a) -> torch.Tensor:
            return torch.as_tensor(a, dtype=lat.dtype, device=lat.device).view(-1, 1, 1, 1)

        return v(w_plus), v(w_minus)

    def _spun_up(self, lat: _Lattice, re: np.ndarray) -> torch.Tensor:
        """(N, 9, ny, nx) states at t = 0, one spin-up per distinct Re (cached)."""
        uniq, inv = np.unique(re, return_inverse=True)
        n_spin = int(round(self.spinup / lat.dt))
        states = []
        for value in uniq:
            key = (self.resolution, self.u_max_lattice, self.collision, self.trt_magic,
                   self.equilibrium, self.bounce_back, self.outflow, self.cylinder_x,
                   self.cylinder_y, self.jet_width, self.jet_limit, self.spinup,
                   self.spinup_kick, float(value), str(lat.device), str(lat.dtype))
            if key in _SPINUP_CACHE:
                _SPINUP_CACHE.move_to_end(key)
                states.append(_SPINUP_CACHE[key].to(lat.device))
                continue
            if n_spin == 0:
                states.append(lat.initial(1))
                continue
            # minutes on a CPU: spun-up lattices are also kept in the user's disk cache
            disk_key = hashlib.sha256(repr(("cylinder-spinup", 1, *key)).encode()).hexdigest()
            stored = load_state(disk_key, shape=(1, 9, lat.ny, lat.nx))
            if stored is not None:
                f = torch.as_tensor(np.array(stored), dtype=lat.dtype, device=lat.device)
                _SPINUP_CACHE[key] = f.detach().cpu()
                states.append(f)
                continue
            start = time.perf_counter()
            n_kick = max(1, n_spin // 10)  # a half-sine pulse over the first tenth
            kick = np.zeros(n_spin)
            kick[:n_kick] = min(self.spinup_kick, self.jet_limit) \
                * np.sin(np.pi * np.arange(n_kick) / n_kick)
            wp, wm = self._omegas(lat, np.array([value]))
            stepper = _Stepper(lat, wp, wm, 1, self.cuda_graph)
            forces = torch.empty(1, n_spin, 2, dtype=lat.dtype, device=lat.device)
            jet = torch.as_tensor(kick[None] * lat.dt / lat.dx**2, dtype=lat.dtype, device=lat.device)
            f = lat.initial(1)
            # in pieces, to report progress (a reporter may stop the spin-up there); the
            # steps are the same as in one call
            piece = max(1, -(-n_spin // 50))
            with torch.no_grad():
                for pos in range(0, n_spin, piece):
                    end = min(pos + piece, n_spin)
                    f = stepper.advance(f, jet[:, pos:end], forces[:, pos:end])
                    report_progress(end, n_spin, "spin-up")
            f = f.clone()
            _SPINUP_CACHE[key] = f.detach().cpu()
            if time.perf_counter() - start >= SPINUP_DISK_MIN_SECONDS:
                store_state(disk_key, _SPINUP_CACHE[key].numpy())
            while len(_SPINUP_CACHE) > _SPINUP_CACHE_SIZE:
                _SPINUP_CACHE.popitem(last=False)
            states.append(f)
        return torch.cat(states)[torch.as_tensor(inv, device=lat.device)]

    def _run_batch(self, lat: _Lattice, re: np.ndarray, s: np.ndarray,
                   snap: np.ndarray, batch: tuple[int, int] = (0, 1)) -> dict:
        """One batch of :meth:`_run`; ``batch`` is (its index, the number of batches), for
        the progress reports (:func:`engine.systems.progress.report_progress`)."""
        n, n_steps = len(re), s.shape[1]
        h, w = (int(v) for v in self.output_shape)
        f = self._spun_up(lat, re)
        wp, wm = self._omegas(lat, re)
        stepper = _Stepper(lat, wp, wm, n, self.cuda_graph)
        kw: dict[str, Any] = {"dtype": lat.dtype, "device": lat.device}
        q_all = torch.as_tensor(s * lat.dt / lat.dx**2, **kw)
        forces = torch.zeros(n, n_steps, 2, **kw)
        vel = lat.dx / lat.dt
        xs = np.empty((n, snap.size, 3, h, w))
        mass = np.empty((n, snap.size))
        jet = q_all[..., None] * lat.jet_coef.sum(1) * torch.tensor([1.0, -1.0], **kw)
        fluid = lat.fluid_f
        mask = (~lat.cyl_out)[1:-1].to(lat.dtype)
        mask_out = F.interpolate(mask[None, None], size=(h, w), mode="bilinear",
                                 align_corners=False, antialias=True)[:, 0]
        with torch.no_grad():
            i = 0
            for k in range(snap.size + 1):
                stop = n_steps if k == snap.size else int(snap[k])
                if stop > i:
                    f = stepper.advance(f, q_all[:, i:stop], forces[:, i:stop])
                    i = stop
                    # a reporter may stop the run here
                    report_progress(batch[0] * n_steps + i, batch[1] * n_steps)
                if k == snap.size:
                    break
                rho, ux, uy = lat.macros(f)
                if not bool(torch.isfinite(rho).all()):
                    raise RuntimeError(
                        f"cylinder: the lattice became unstable before t = {snap[k] * lat.dt:.4g} "
                        f"(tau = {0.5 + 3 * lat.u_mean_lu * lat.d_lu / float(re.min()):.4f}); "
                        "raise resolution or lower Re / u_max_lattice")
                mass[:, k] = (rho * fluid).sum((1, 2)).double().cpu().numpy()
                rho_out = rho[:, 1:-1, -1].mean(-1).view(-1, 1, 1)  # the pressure gauge
                fields = torch.stack([ux * vel, uy * vel, (rho - rho_out) / 3 * vel**2], 1)
                fields = fields[:, :, 1:-1] * mask  # fluid rows, zero in the cylinder
                out = F.interpolate(fields, size=(h, w), mode="bilinear",
                                    align_corners=False, antialias=True)
                out = torch.where(mask_out > 0.5, out / mask_out.clamp_min(1e-6),
                                  torch.zeros_like(out))
                xs[:, k] = out.double().cpu().numpy()
        fr = forces.double().cpu().numpy()
        scale_c = 2.0 / (lat.u_mean_lu**2 * lat.d_lu)
        return {"x": xs, "cd": fr[..., 0] * scale_c, "cl": fr[..., 1] * scale_c, "mass": mass,
                "jet_mass": jet.double().cpu().numpy()}
