"""Validate the ``cylinder`` lattice-Boltzmann solver against Schäfer & Turek 2D-2 (Re = 100).

Runs the unactuated flow (jets off) at the given lattice resolution until periodic
shedding, then measures over the last ``--window`` time units the Strouhal number
St = f D / Ū (f from the upward zero crossings of the lift signal), max C_d and max C_l, and
prints them as JSON with the benchmark ranges (St 0.295–0.305, C_d,max 3.22–3.24,
C_l,max 0.99–1.01) and a pass flag for each. Meant for a GPU:

    python scripts/validate_cylinder.py --resolution 40 --t-end 12 --out cylinder_val.json

A short coarse CPU run only checks the script works (values will be off):

    python scripts/validate_cylinder.py --resolution 8 --t-end 1.5 --window 0.5
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
from engine.systems.cylinder import DIAMETER, U_MEAN, CylinderSystem

BENCHMARK = {"St": (0.295, 0.305), "cd_max": (3.22, 3.24), "cl_max": (0.99, 1.01)}


def shedding_stats(t: np.ndarray, cd: np.ndarray, cl: np.ndarray, window: float) -> dict:
    """St, max C_d, max C_l and a periodicity measure over the last ``window`` time units."""
    sel = t >= t[-1] - window
    ts, cds, cls = t[sel], cd[sel], cl[sel]
    z = cls - cls.mean()
    up = np.nonzero((z[:-1] < 0) & (z[1:] >= 0))[0]
    crossings = ts[up] - z[up] * (ts[up + 1] - ts[up]) / (z[up + 1] - z[up])
    periods = np.diff(crossings)
    out = {"cd_max": float(cds.max()), "cd_mean": float(cds.mean()),
           "cl_max": float(cls.max()), "cl_min": float(cls.min()),
           "n_periods": int(periods.size)}
    if periods.size:
        out["St"] = float(DIAMETER / (periods.mean() * U_MEAN))
        out["period_spread"] = float(periods.std() / periods.mean()) if periods.size > 1 else None
    else:
        out["St"] = None
        out["period_spread"] = None
    # periodicity: lift amplitude in the two halves of the window
    half = ts >= ts[0] + 0.5 * (ts[-1] - ts[0])
    a1, a2 = np.ptp(cls[~half]), np.ptp(cls[half])
    out["amplitude_change"] = float(abs(a2 - a1) / max(a2, 1e-12))
    out["periodic"] = bool(periods.size >= 2 and out["amplitude_change"] < 0.02
                           and (out["period_spread"] or 1.0) < 0.02)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=40, help="lattice cells per diameter")
    ap.add_argument("--t-end", type=float, default=12.0, help="simulated time units")
    ap.add_argument("--window", type=float, default=2.0, help="analysis window (last part)")
    ap.add_argument("--u-max-lattice", type=float, default=0.1)
    ap.add_argument("--collision", default="bgk", choices=["bgk", "trt"])
    ap.add_argument("--bounce-back", default="interpolated", choices=["interpolated", "simple"])
    ap.add_argument("--kick", type=float, default=0.005,
                    help="peak [s, -s] jet flow rate of a pulse over the first 0.05 time "
                         "units, to trigger shedding sooner")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    ap.add_argument("--save-signals", default=None, help="write t, cd, cl to this .npz")
    args = ap.parse_args(argv)

    spin = min(0.5, 0.25 * args.t_end)  # short spin-up carrying the symmetry-breaking kick
    system = CylinderSystem.from_preset(
        "default", resolution=args.resolution, u_max_lattice=args.u_max_lattice,
        collision=args.collision, bounce_back=args.bounce_back, spinup=spin,
        spinup_kick=args.kick, device=args.device, lattice_dtype=args.dtype,
        output_shape=(8, 44))
    info = system.lattice_info()
    start = time.perf_counter()
    out = system.run([], [make_forcing("none")], np.array([0.0, args.t_end - spin]))
    wall = time.perf_counter() - start
    t, cd, cl = out["t_steps"] + spin, out["cd"][0], out["cl"][0]
    stats = shedding_stats(t, cd, cl, args.window)
    report = {
        "resolution": args.resolution, "t_end": args.t_end, "window": args.window,
        "lattice": info, "steps": int(t.size), "wall_s": round(wall, 2),
        "mlups": round((t.size + round(spin / info["dt"])) * info["nx"] * (info["ny_fluid"] + 2)
                       / wall / 1e6, 2),
        **stats,
        "benchmark": {k: list(v) for k, v in BENCHMARK.items()},
        "pass": {k: (stats[k] is not None and v[0] <= stats[k] <= v[1])
                 for k, v in BENCHMARK.items()},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.save_signals:
        np.savez(args.save_signals, t=t, cd=cd, cl=cl)
    return report


if __name__ == "__main__":
    main()
