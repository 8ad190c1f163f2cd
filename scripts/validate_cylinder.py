"""Validate the ``cylinder`` lattice-Boltzmann solver against Schäfer & Turek 2D-2 (Re = 100).

Runs the unactuated flow (jets off) at the given lattice resolution until periodic
shedding, then measures over the last ``--window`` time units the Strouhal number
St = f D / Ū (f from the upward zero crossings of the lift signal), max C_d and max C_l, and
prints them as JSON with the benchmark ranges (St 0.295–0.305, C_d,max 3.22–3.24,
C_l,max 0.99–1.01) and a pass flag for each, plus the lattice's mean density at the end
(it floats with the zero-gradient outlet; the incompressible equilibrium makes the forces
independent of it). Shedding is periodic from t ≈ 4 at resolution 20 (the kick in the
spin-up triggers it), so ``--t-end 10 --window 3`` measures well inside the periodic regime.

On a GPU (about 10 s at resolution 20, 40 s at 40 on an H100)::

    python scripts/validate_cylinder.py --device cuda --resolution 40 --t-end 10 --window 3 \
        --out benchmarks/results/cylinder_validation_r40.json

On a CPU (resolution 20: about 2–4 minutes on two cores)::

    python scripts/validate_cylinder.py --device cpu --resolution 20 --t-end 10 --window 3 \
        --out benchmarks/results/cylinder_validation_r20.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

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
    ap.add_argument("--trt-magic", type=float, default=0.25, help="TRT magic parameter")
    ap.add_argument("--bounce-back", default="interpolated", choices=["interpolated", "simple"])
    ap.add_argument("--equilibrium", default="incompressible",
                    choices=["incompressible", "standard"])
    ap.add_argument("--outflow", default="zero_gradient", choices=["zero_gradient", "pressure"])
    ap.add_argument("--kick", type=float, default=0.005,
                    help="peak [s, -s] jet flow rate of a pulse over the first tenth of the "
                         "spin-up, to trigger shedding sooner")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-cuda-graph", action="store_true",
                    help="eager steps on CUDA (to time the CUDA-graph speed-up)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    ap.add_argument("--save-signals", default=None, help="write t, cd, cl to this .npz")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    spin = min(0.5, 0.25 * args.t_end)  # short spin-up carrying the symmetry-breaking kick
    system = CylinderSystem.from_preset(
        "default", resolution=args.resolution, u_max_lattice=args.u_max_lattice,
        collision=args.collision, trt_magic=args.trt_magic, bounce_back=args.bounce_back,
        spinup=spin,
        equilibrium=args.equilibrium, outflow=args.outflow,
        spinup_kick=args.kick, device=args.device, lattice_dtype=args.dtype,
        cuda_graph=not args.no_cuda_graph,
        output_shape=(8, 44))
    info = system.lattice_info()
    start = time.perf_counter()
    out = system.run([], [make_forcing("none")], np.array([0.0, args.t_end - spin]))
    wall = time.perf_counter() - start
    t, cd, cl = out["t_steps"] + spin, out["cd"][0], out["cl"][0]
    fluid_nodes = float(system.lattice().fluid_f.sum())
    stats = shedding_stats(t, cd, cl, args.window)
    report = {
        "resolution": args.resolution, "t_end": args.t_end, "window": args.window,
        "equilibrium": args.equilibrium, "outflow": args.outflow,
        "lattice": info, "steps": int(t.size), "wall_s": round(wall, 2),
        "threads": torch.get_num_threads() if info["device"] == "cpu" else None,
        "cuda_graph": info["device"].startswith("cuda") and not args.no_cuda_graph,
        "mlups": round((t.size + round(spin / info["dt"])) * info["nx"] * (info["ny_fluid"] + 2)
                       / wall / 1e6, 2),
        "density_end": float(out["mass"][0, -1] / fluid_nodes),
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
