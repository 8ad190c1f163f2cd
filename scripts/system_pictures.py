"""Draw one picture of a sample trajectory of each built-in system for docs/systems.md.

For every system of ``engine.systems.list_systems()`` (or those named by ``--only``) this
generates one trajectory (two for vector states) with ``engine.systems.generate`` (split
``"test"``, ``--seed``) at a preset that takes seconds on a laptop CPU (the cylinder: 30–45 s
on a busy 2-core VM), and writes a compact PNG
(about 900 × 300 px) to ``assets/systems/<name>.png``:

- 1-D fields: a space–time map of trajectory 0, plus f(t) in a side panel when forced;
- 2-D fields: four snapshots of trajectory 0 at evenly spaced times (the cylinder shows the
  velocity magnitude |u|), plus f(t) when forced;
- vector states: the time series of trajectory 0, f(t) when forced, and a phase portrait of
  both trajectories (trajectory 1 dashed).

The title gives the system, the preset and the μ of the trajectories shown, read from the
dataset. Usage::

    python scripts/system_pictures.py                    # all systems
    python scripts/system_pictures.py --only heat,cylinder --out /tmp/pictures
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

# engine importable when run as a script from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data import Dataset
from engine.systems import generate, get_system, list_systems

ROOT = Path(__file__).resolve().parent.parent

FIGSIZE, DPI = (9.4, 3.1), 96  # 902 × 298 px
N_SNAPSHOTS = 4


@dataclass(frozen=True)
class Plan:
    """How to picture one system.

    Attributes:
        preset: the preset to generate (chosen so that it takes seconds on a CPU).
        kind: ``"field1d"``, ``"field2d"`` or ``"vector"``.
        labels: names of the state components (vector states).
        phase: indices of the two components of the phase portrait (vector states).
        space_unit: unit of the spatial coordinates ("" when they are pixels).
        cmap: colormap of the field.
        overrides: settings passed to ``generate`` on top of the preset (shown in the title).
    """

    preset: str
    kind: str
    labels: tuple[str, ...] = ()
    phase: tuple[int, int] = (0, 1)
    space_unit: str = "length"
    cmap: str = "RdBu_r"
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def n_trajectories(self) -> int:
        """Fields show one trajectory; vector states compare two in the phase portrait."""
        return 2 if self.kind == "vector" else 1

    @property
    def label(self) -> str:
        """The preset and the overrides, e.g. ``small (spinup=1, t_end=0.6)``."""
        extra = ", ".join(f"{k}={v}" for k, v in self.overrides)
        return f"{self.preset} ({extra})" if extra else self.preset


PLANS: dict[str, Plan] = {
    "heat": Plan("default", "field1d"),
    "burgers": Plan("default", "field1d", cmap="viridis"),
    "kuramoto_sivashinsky": Plan("default", "field1d"),
    "reaction_diffusion": Plan("default", "field2d"),
    # small (8 cells/D) runs on a CPU but starts impulsively at t = 0 (spinup 0); one time
    # unit of ramped spin-up shows the attached wake instead, in 30-45 s. default: GPU.
    "cylinder": Plan("small", "field2d", cmap="viridis",
                     overrides=(("spinup", 1.0), ("t_end", 0.6), ("n_t", 13))),
    "pendulum_video": Plan("default", "field2d", space_unit="", cmap="gray_r"),
    "lotka_volterra": Plan("default", "vector", ("x (prey)", "y (predator)")),
    "lorenz63": Plan("default", "vector", ("x", "y", "z"), phase=(0, 2)),
    "predprey4": Plan("default", "vector", ("x₁ (prey)", "x₂ (prey)", "y₁ (pred.)",
                                            "y₂ (pred.)"), phase=(0, 2)),
    "oscillator": Plan("default", "vector", ("x", "v")),
    "van_der_pol": Plan("default", "vector", ("x", "v")),
}


def plan_for(name: str) -> Plan:
    """The plan of ``name``; a system registered later gets one from its state shape."""
    if name in PLANS:
        return PLANS[name]
    system = get_system(name)
    preset = "small" if "small" in system.presets else "default"
    shape = system.state_shape
    kind = "vector" if len(shape) == 1 and shape[0] <= 8 else ("field1d" if len(shape) == 1
                                                                else "field2d")
    return Plan(preset, kind)


# ---------------------------------------------------------------- labels
def _unit(name: str, units: dict[str, str]) -> str:
    u = units.get(name, "1")
    return "" if u in ("1", "") else f" {u}"


def _mu_text(data: Dataset, units: dict[str, str], rows: list[int]) -> str:
    """'nu = 0.0360 length²/time', with one value per row of ``rows``."""
    if data.mu is None or data.mu.shape[1] == 0:
        return "no μ (P = 0)"
    parts = []
    for j, name in enumerate(data.param_names):
        values = [f"{data.mu[i, j]:.4g}" for i in rows]
        joined = values[0] if len(values) == 1 else f"{values[0]} (solid), {values[1]} (dashed)"
        parts.append(f"{name} = {joined}{_unit(name, units)}")
    return "μ: " + ", ".join(parts)


def _title(fig: plt.Figure, name: str, plan: Plan, data: Dataset, units: dict[str, str],
           rows: list[int]) -> None:
    fig.suptitle(f"{name}  ·  preset {plan.label}  ·  {_mu_text(data, units, rows)}",
                 fontsize=10, x=0.01, ha="left")


def _forcing_panel(ax: plt.Axes, data: Dataset, channel_units: dict[str, str],
                   rows: list[int]) -> None:
    """f(t) of ``rows`` (row 1 dashed), every channel."""
    for c in range(len(data.forcing_names)):
        for k, i in enumerate(rows):
            ax.plot(data.t, data.f[i, :, c], lw=1.0, color=f"C{3 + c}",
                    ls="-" if k == 0 else "--")
    unit = channel_units.get(data.forcing_names[0], "")
    ax.set_ylabel(", ".join(data.forcing_names) + (f" [{unit}]" if unit and unit != "1" else ""),
                  fontsize=8)
    ax.set_xlabel("t [time]", fontsize=8)
    ax.set_title("forcing", fontsize=9)
    ax.tick_params(labelsize=7)


def _has_forcing(data: Dataset) -> bool:
    return data.f is not None and data.f.shape[-1] > 0


# ---------------------------------------------------------------- drawings
def draw_field1d(data: Dataset, plan: Plan, units: dict, channel_units: dict) -> plt.Figure:
    """Space–time map of trajectory 0 (time across), plus f(t) when forced."""
    grid = data.attrs.get("grid", {})
    if "x" in grid:
        xs = np.asarray(grid["x"], dtype=float)
    elif "x_over_L" in grid:  # L is part of μ: scale by this trajectory's L
        length = data.mu[0, list(data.param_names).index("length")]
        xs = np.asarray(grid["x_over_L"], dtype=float) * length
    else:
        xs = np.arange(data.x.shape[-1], dtype=float)
    u = data.x[0]  # (T, n_x)
    forced = _has_forcing(data)
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    outer = fig.add_gridspec(1, 2 if forced else 1, width_ratios=[4, 1.3][:2 if forced else 1],
                             left=0.06, right=0.98 if forced else 0.94, bottom=0.16,
                             top=0.84, wspace=0.32)
    inner = outer[0].subgridspec(1, 2, width_ratios=[1, 0.025], wspace=0.03)
    ax = fig.add_subplot(inner[0])
    signed = plan.cmap == "RdBu_r"
    lim = float(np.abs(u).max()) if signed else None
    im = ax.imshow(u.T, origin="lower", aspect="auto", interpolation="nearest", cmap=plan.cmap,
                   vmin=-lim if signed else None, vmax=lim,
                   extent=[data.t[0], data.t[-1], xs[0], xs[-1]])
    ax.set_xlabel("t [time]", fontsize=8)
    ax.set_ylabel(f"x [{plan.space_unit}]" if plan.space_unit else "x", fontsize=8)
    ax.tick_params(labelsize=7)
    cb = fig.colorbar(im, cax=fig.add_subplot(inner[1]))
    cb.set_label("u", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if forced:
        _forcing_panel(fig.add_subplot(outer[1]), data, channel_units, [0])
    return fig


def _frames(name: str, x: np.ndarray) -> tuple[np.ndarray, str]:
    """(T, H, W) the scalar picture of a 2-D state (T, C, H, W) and its label."""
    if name == "cylinder":  # (u, v, p): speed; the cylinder (all zero) is masked
        speed = np.hypot(x[:, 0], x[:, 1])
        solid = np.all(x == 0, axis=1)
        return np.where(solid, np.nan, speed), "|u|"
    return x[:, 0], "u" if name != "pendulum_video" else "pixel"


def draw_field2d(data: Dataset, plan: Plan, units: dict, channel_units: dict,
                 name: str) -> plt.Figure:
    """Snapshots of trajectory 0 at evenly spaced times, plus f(t) when forced."""
    frames, label = _frames(name, data.x[0])
    grid = data.attrs.get("grid", {})
    h, w = frames.shape[1:]
    ys = np.asarray(grid.get("y", np.arange(h)), dtype=float)
    xs = np.asarray(grid.get("x", np.arange(w)), dtype=float)
    upper = ys[0] > ys[-1]  # rows top down (pendulum) or bottom up (fields)
    dx, dy = abs(xs[1] - xs[0]), abs(ys[1] - ys[0])
    extent = [xs[0] - dx / 2, xs[-1] + dx / 2, min(ys) - dy / 2, max(ys) + dy / 2]
    wide = (extent[1] - extent[0]) > 2 * (extent[3] - extent[2])
    forced = _has_forcing(data)
    idx = np.unique(np.linspace(0, len(data.t) - 1, N_SNAPSHOTS).round().astype(int))
    signed = plan.cmap == "RdBu_r"
    vmax = float(np.nanmax(np.abs(frames[idx])))
    vmin = -vmax if signed else (0.0 if plan.cmap == "gray_r" else float(np.nanmin(frames[idx])))

    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    rows, cols = (2, 2) if wide else (1, len(idx))
    colorbar = plan.cmap != "gray_r"  # binary frames need no colour scale
    outer = fig.add_gridspec(1, 2 if forced else 1, width_ratios=[4.6, 1][:2 if forced else 1],
                             left=0.05, right=0.98 if forced or not colorbar else 0.94,
                             bottom=0.14, top=0.84, wspace=0.38)
    inner = outer[0].subgridspec(rows, cols + 1, width_ratios=[1] * cols + [0.04],
                                 wspace=0.08, hspace=0.45)
    cmap = plt.get_cmap(plan.cmap).copy()
    cmap.set_bad("0.6")
    for k, i in enumerate(idx):
        ax = fig.add_subplot(inner[k // cols, k % cols])
        im = ax.imshow(frames[i], origin="upper" if upper else "lower", extent=extent,
                       cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"t = {data.t[i]:.3g}", fontsize=8, pad=2)
        ax.tick_params(labelsize=6)
        if not plan.space_unit:
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            if k // cols == rows - 1:
                ax.set_xlabel(f"x [{plan.space_unit}]", fontsize=7, labelpad=1)
            else:
                ax.tick_params(labelbottom=False)
            if k % cols == 0:
                ax.set_ylabel(f"y [{plan.space_unit}]", fontsize=7, labelpad=1)
            else:
                ax.tick_params(labelleft=False)
    if colorbar:
        cb = fig.colorbar(im, cax=fig.add_subplot(inner[:, cols]))
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if forced:
        _forcing_panel(fig.add_subplot(outer[1]), data, channel_units, [0])
    return fig


def draw_vector(data: Dataset, plan: Plan, units: dict, channel_units: dict) -> plt.Figure:
    """Time series of trajectory 0, f(t) when forced, phase portrait of trajectories 0, 1."""
    n_c = data.x.shape[-1]
    labels = plan.labels if len(plan.labels) == n_c else tuple(f"x{c}" for c in range(n_c))
    forced = _has_forcing(data)
    rows = list(range(min(2, data.x.shape[0])))
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    ratios = [3.2, 1.4, 1.6] if forced else [3.6, 1.6]
    gs = fig.add_gridspec(1, len(ratios), width_ratios=ratios, left=0.06, right=0.98,
                          bottom=0.16, top=0.84, wspace=0.3)
    ax = fig.add_subplot(gs[0])
    for c in range(n_c):
        ax.plot(data.t, data.x[0, :, c], lw=0.9, label=labels[c])
    ax.set_xlabel("t [time]", fontsize=8)
    ax.set_ylabel("state", fontsize=8)
    ax.set_title("trajectory (solid μ)", fontsize=9, loc="left")
    ax.legend(fontsize=7, ncol=n_c, loc="lower right", bbox_to_anchor=(1.0, 0.98),
              frameon=False, handlelength=1.2, columnspacing=1.0, borderaxespad=0.0)
    ax.tick_params(labelsize=7)
    if forced:
        _forcing_panel(fig.add_subplot(gs[1]), data, channel_units, rows)
    ax = fig.add_subplot(gs[-1])
    a, b = plan.phase
    for k, i in enumerate(rows):
        ax.plot(data.x[i, :, a], data.x[i, :, b], lw=0.8, color="k" if k == 0 else "C1",
                ls="-" if k == 0 else "--", alpha=1.0 if k == 0 else 0.8)
        ax.plot(data.x[i, 0, a], data.x[i, 0, b], "o", ms=3, color="k" if k == 0 else "C1")
    ax.set_xlabel(labels[a], fontsize=8)
    ax.set_ylabel(labels[b], fontsize=8)
    ax.set_title("phase portrait (● start)", fontsize=9)
    ax.tick_params(labelsize=7)
    return fig


# ---------------------------------------------------------------- driver
def picture(name: str, out_dir: Path, seed: int = 0) -> tuple[Path, float, Dataset]:
    """Generate, draw and save the picture of ``name``; returns (path, seconds, data)."""
    plan = plan_for(name)
    start = time.perf_counter()
    data = generate(name, n=plan.n_trajectories, split="test", seed=seed,
                    preset=plan.preset, **dict(plan.overrides))
    seconds = time.perf_counter() - start
    system = get_system(name, plan.preset)
    units = dict(system.units)
    channel_units = {c[0]: c[1] for c in system.forcing_channels}
    if plan.kind == "field1d":
        fig, rows = draw_field1d(data, plan, units, channel_units), [0]
    elif plan.kind == "field2d":
        fig, rows = draw_field2d(data, plan, units, channel_units, name), [0]
    else:
        fig, rows = draw_vector(data, plan, units, channel_units), [0, 1]
    _title(fig, name, plan, data, units, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path, seconds, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated systems (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "systems",
                        help="output folder (default: assets/systems)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list_systems()
    unknown = sorted(set(names) - set(list_systems()))
    if unknown:
        parser.error(f"unknown system(s) {unknown}; expected some of {list_systems()}")
    total = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        path, gen_s, data = picture(name, args.out, args.seed)
        print(f"{name:22s} {plan_for(name).label:8s} "
              f"x {tuple(data.x.shape)}  generate {gen_s:5.1f} s, total "
              f"{time.perf_counter() - t0:5.1f} s  {path.stat().st_size / 1024:5.0f} kB  {path}",
              flush=True)
    print(f"all: {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
