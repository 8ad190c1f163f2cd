"""The cylinder wake without and with jet actuation: a figure and the measured differences.

Runs the ``cylinder`` system twice from the same spun-up state (one batch of two
trajectories, so both see identical initial conditions): jets off, and jets driven by
s(t) (a sine, or a smooth random signal as in the stochastic-ROM data), clipped to the
action limit ``jet_limit``. Writes

- a figure (``--png``): vorticity snapshots at the final time side by side, and the drag and
  lift coefficients over time for both runs with the jet flow rate s(t);
- a JSON (``--json``): mean drag, drag and lift amplitudes, shedding frequency and Strouhal
  number for each run and their differences, measured over the last ``--window`` time units.

Real figure (GPU, about a minute on an H100)::

    python scripts/cylinder_wake_figure.py --device cuda --resolution 40

Quick CPU check (coarse, about 15 s on two cores)::

    python scripts/cylinder_wake_figure.py --device cpu --resolution 12 --spinup 3 \\
        --t-end 2 --png /tmp/wake.png --json /tmp/wake.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.forcing import make_forcing
from engine.systems.cylinder import DIAMETER, HEIGHT, LENGTH, U_MEAN, CylinderSystem

ROOT = Path(__file__).resolve().parent.parent


def wake_stats(t: np.ndarray, cd: np.ndarray, cl: np.ndarray) -> dict:
    """Mean drag, amplitudes and the shedding frequency of one run.

    Args:
        t: times (S,); cd, cl: drag and lift coefficients (S,).

    Returns:
        A JSON-safe dict; the frequency comes from the upward crossings of the mean lift
        (None when fewer than two).
    """
    z = cl - cl.mean()
    up = np.nonzero((z[:-1] < 0) & (z[1:] >= 0))[0]
    cross = t[up] - z[up] * (t[up + 1] - t[up]) / (z[up + 1] - z[up])
    freq = float(1.0 / np.diff(cross).mean()) if cross.size >= 2 else None
    return {"cd_mean": float(cd.mean()), "cd_std": float(cd.std()),
            "cd_max": float(cd.max()), "cl_mean": float(cl.mean()),
            "cl_amplitude": float(0.5 * (cl.max() - cl.min())), "cl_rms": float(z.std()),
            "frequency": freq,
            "St": None if freq is None else freq * DIAMETER / U_MEAN,
            "periods": int(max(cross.size - 1, 0))}


def vorticity(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ω = ∂v/∂x − ∂u/∂y (H, W) on the cell-centred output grid."""
    h, w = u.shape
    return np.gradient(v, LENGTH / w, axis=1) - np.gradient(u, HEIGHT / h, axis=0)


def plot(path: Path, fields: np.ndarray, t: np.ndarray, cd: np.ndarray, cl: np.ndarray,
         s: np.ndarray, labels: list[str], t_snap: float, window: float,
         system: CylinderSystem) -> None:
    """Vorticity snapshots (one panel per run) over the drag, lift and jet signals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 6.8), constrained_layout=True)
    grid = fig.add_gridspec(3, 2, height_ratios=[0.95, 0.9, 0.9])
    lim = 0.0
    omegas = []
    for x in fields:
        u, v = x[0], x[1]
        om = vorticity(u, v)
        om[(u == 0) & (v == 0)] = np.nan  # inside the cylinder
        omegas.append(om)
        lim = max(lim, np.nanpercentile(np.abs(om), 99))
    top = []
    for j, (om, label) in enumerate(zip(omegas, labels)):
        ax = fig.add_subplot(grid[0, j])
        im = ax.imshow(om, origin="lower", extent=(0, LENGTH, 0, HEIGHT), cmap="RdBu_r",
                       vmin=-lim, vmax=lim, interpolation="bilinear")
        ax.add_patch(plt.Circle((system.cylinder_x, system.cylinder_y), DIAMETER / 2,
                                color="0.4"))
        ax.set_title(f"{label}: vorticity at t = {t_snap:.2f}", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        top.append(ax)
    fig.colorbar(im, ax=top, location="bottom", shrink=0.35, aspect=40, label="vorticity ω")
    colors = ["0.2", "tab:red"]
    ax_d = fig.add_subplot(grid[1, :])
    ax_l = fig.add_subplot(grid[2, :], sharex=ax_d)
    stride = max(1, t.size // 4000)
    for k, label in enumerate(labels):
        ax_d.plot(t[::stride], cd[k, ::stride], color=colors[k], lw=1.0, label=label)
        ax_l.plot(t[::stride], cl[k, ::stride], color=colors[k], lw=1.0, label=label)
    for ax in (ax_d, ax_l):
        ax.axvspan(t[-1] - window, t[-1], color="0.92", zorder=0)
    ax_d.set_ylabel("drag coefficient $C_d$")
    ax_d.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=9, ncol=2, frameon=False)
    ax_l.set_ylabel("lift coefficient $C_l$")
    ax_l.set_xlabel("t (shaded: the window of the statistics)")
    ax_s = ax_l.twinx()
    ax_s.plot(t[::stride], s[1, ::stride], color="tab:blue", lw=0.8, alpha=0.7)
    ax_s.set_ylabel("jet flow rate s(t)", color="tab:blue")
    ax_s.tick_params(axis="y", colors="tab:blue")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def summary_markdown(report: dict) -> str:
    """The wake comparison as a short markdown page (docs/systems.md links it, so that no
    figure of it is typed by hand)."""
    off, on, rel = report["jets_off"], report["jets_on"], report["relative_change"]
    lat, forcing = report["lattice"], report["forcing"]
    rows = [("shedding frequency (1/time)", "frequency", "{:.3g}"), ("Strouhal number", "St", "{:.3g}"),
            ("mean C_d", "cd_mean", "{:.4g}"), ("max C_d", "cd_max", "{:.4g}"),
            ("C_l amplitude", "cl_amplitude", "{:.3g}"), ("C_l rms", "cl_rms", "{:.3g}")]
    lines = [
        "# Cylinder wake with and without the jets", "",
        "Generated by `python scripts/cylinder_wake_figure.py` (figure: "
        "[assets/cylinder_wake.png](../../assets/cylinder_wake.png)); do not edit.", "",
        f"One batch of two trajectories from the same spun-up state ({report['spinup']:g} time "
        f"units unactuated) at {report['resolution']} cells/D on {lat.get('device', 'cpu')} "
        f"({report['wall_s']:g} s wall), {report['t_end']:g} time units after t = 0, statistics "
        f"over the last {report['window']:.3g}: jets off, and jets on with a `{forcing['family']}` "
        f"flow rate s(t) of amplitude {forcing['amplitude']:.3g}"
        + (f" at {forcing['frequency']:g} per time unit" if "frequency" in forcing else "")
        + f" (the action limit is {report['jet_limit']:.3g}; mean |s| {report['jet_flow_abs_mean']:.3g}).", "",
        "| quantity | jets off | jets on |", "|---|---|---|"]
    for label, key, fmt in rows:
        cells = [fmt.format(x[key]) if x.get(key) is not None else "—" for x in (off, on)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Mean drag changes by {100 * rel['cd_mean']:+.1f} % and the lift amplitude by "
              f"{100 * rel['cl_amplitude']:+.0f} % (×{1 + rel['cl_amplitude']:.2g}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=40, help="lattice cells per diameter")
    ap.add_argument("--spinup", type=float, default=4.0,
                    help="unactuated time before t = 0 (periodic shedding by then)")
    ap.add_argument("--t-end", type=float, default=3.0, help="actuated time after t = 0")
    ap.add_argument("--window", type=float, default=None,
                    help="statistics over the last WINDOW time units (default: 2/3 t_end)")
    ap.add_argument("--forcing", default="sine", choices=["sine", "smooth_random"])
    ap.add_argument("--amplitude", type=float, default=None,
                    help="s(t) amplitude (default: the action limit jet_limit)")
    ap.add_argument("--frequency", type=float, default=2.5,
                    help="sine frequency (natural shedding: about 3.0)")
    ap.add_argument("--length-scale", type=float, default=1 / 3,
                    help="smooth_random length scale")
    ap.add_argument("--seed", type=int, default=0, help="smooth_random seed")
    ap.add_argument("--u-max-lattice", type=float, default=0.1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--png", default=str(ROOT / "assets" / "cylinder_wake.png"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cylinder_wake.json"))
    ap.add_argument("--data", default=None,
                    help="also save what the figure needs to this .npz (for --replot)")
    ap.add_argument("--replot", default=None,
                    help="draw the figure from a --data file (e.g. made on a GPU machine "
                         "without matplotlib) instead of simulating")
    ap.add_argument("--summary-only", action="store_true",
                    help="rewrite the markdown summary beside --json from that file and stop")
    args = ap.parse_args(argv)
    summary_path = Path(args.json).with_suffix(".md")
    if args.summary_only:
        report = json.loads(Path(args.json).read_text())
        summary_path.write_text(summary_markdown(report))
        print(f"wrote {summary_path}")
        return report
    if args.replot:
        saved = np.load(args.replot, allow_pickle=False)
        system = CylinderSystem.from_preset("default", resolution=int(saved["resolution"]))
        plot(Path(args.png), saved["fields"], saved["t"], saved["cd"], saved["cl"], saved["s"],
             [str(x) for x in saved["labels"]], float(saved["t_snap"]), float(saved["window"]),
             system)
        return json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else {}

    res = args.resolution
    system = CylinderSystem.from_preset(
        "default", resolution=res, spinup=args.spinup, u_max_lattice=args.u_max_lattice,
        device=args.device, output_shape=(round(4.1 * res), round(22 * res)))
    amp = system.jet_limit if args.amplitude is None else args.amplitude
    if args.forcing == "sine":
        jets = make_forcing("sine", amplitude=amp, frequency=args.frequency)
    else:
        jets = make_forcing("smooth_random", amplitude=amp, length_scale=args.length_scale,
                            seed=args.seed)
    window = 2 / 3 * args.t_end if args.window is None else args.window
    start = time.perf_counter()
    out = system.run([], [make_forcing("none"), jets], np.array([0.0, args.t_end]))
    wall = time.perf_counter() - start
    t, cd, cl, s = out["t_steps"], out["cd"], out["cl"], out["jet_flow"]
    sel = t >= t[-1] - window
    if args.forcing == "sine":
        labels = ["jets off", f"jets on: s = {amp:.2g} sin(2π·{args.frequency:g} t)"]
    else:
        labels = ["jets off", f"jets on: smooth random s(t), amplitude {amp:.2g}"]
    stats = [wake_stats(t[sel], cd[k, sel], cl[k, sel]) for k in range(2)]
    diff = {k: (None if stats[1][k] is None or stats[0][k] is None
                else stats[1][k] - stats[0][k])
            for k in ("cd_mean", "cd_std", "cl_amplitude", "cl_rms", "frequency", "St")}
    report = {
        "resolution": res, "spinup": args.spinup, "t_end": args.t_end, "window": window,
        "lattice": system.lattice_info(), "wall_s": round(wall, 2),
        "forcing": jets.to_dict(), "jet_limit": system.jet_limit,
        "jet_flow_abs_mean": float(np.abs(s[1, sel]).mean()),
        "jets_off": stats[0], "jets_on": stats[1], "on_minus_off": diff,
        "relative_change": {
            "cd_mean": diff["cd_mean"] / stats[0]["cd_mean"],
            "cl_amplitude": diff["cl_amplitude"] / max(stats[0]["cl_amplitude"], 1e-12)},
    }
    if args.data:
        np.savez_compressed(args.data, fields=out["x"][:, -1], t=t, cd=cd, cl=cl, s=s,
                            labels=np.array(labels), t_snap=float(t[-1]), window=window,
                            resolution=res)
    try:
        plot(Path(args.png), out["x"][:, -1], t, cd, cl, s, labels, float(t[-1]), window, system)
    except ImportError:
        print("matplotlib is missing: no figure drawn (use --data here and --replot elsewhere)")
    text = json.dumps(report, indent=2)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(text + "\n")
    summary_path.write_text(summary_markdown(report))
    print(text)
    return report


if __name__ == "__main__":
    main()
