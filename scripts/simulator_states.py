"""Precompute the simulator's initial state of pretrained models and ship it with them.

The dashboard's first prediction of a model needs the simulator's state at the model's first
time for the default μ; for the cylinder that is a lattice-Boltzmann spin-up of 18 000 steps
(about 2 minutes on a 2-core CPU). This script makes that state once, at the values the
dashboard starts from (μ: the system's default when trained, else the middle of the trained
range; the system's default forcing; seed 0), and writes it to
``pretrained/<model>/simulator_states/<key>.npy`` (``engine.state_cache``: the key hashes the
system settings, μ, forcing, t0, dt, n_win and seed; the cylinder's key leaves out the forcing
and the seed, which its state at t = 0 does not depend on). Models that share a key share one
computation. Usage::

    python scripts/simulator_states.py                       # the cylinder models
    python scripts/simulator_states.py --only cylinder_paper_d8 --check
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# engine importable when run as a script from a checkout
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import load_model  # noqa: E402
from engine.sensitivity import Conditions, model_system  # noqa: E402
from engine.state_cache import (  # noqa: E402
    SHIPPED_DIR,
    load_state,
    simulator_initial_state,
    state_key,
    store_state,
)

DEFAULT_MODELS = ("cylinder_paper_d7", "cylinder_paper_d8", "cylinder_paper_d9")


def nominal_case(model_dir: Path):
    """The model, its simulator and the key, μ, forcings, t0, dt of the dashboard's first
    prediction."""
    model = load_model(model_dir)
    system = model_system(model)
    if system is None:
        raise SystemExit(f"{model_dir.name}: no built-in simulator; nothing to precompute")
    cond = Conditions.for_model(model, system)
    mu, forcings = cond.case({})
    t0, dt, n_win = float(cond.t[0]), float(model.dt_), int(model.n_win)
    key = state_key(system, mu, forcings, t0, dt, n_win, cond.seed)
    return model, system, key, mu, forcings, t0, dt, n_win, cond.seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT_MODELS),
                        help="comma-separated model directories under pretrained/")
    parser.add_argument("--check", action="store_true",
                        help="only report which models have their state shipped")
    args = parser.parse_args(argv)
    done: dict[str, np.ndarray] = {}
    for name in filter(None, (n.strip() for n in args.only.split(","))):
        model_dir = ROOT / "pretrained" / name
        model, system, key, mu, forcings, t0, dt, n_win, seed = nominal_case(model_dir)
        shipped = load_state(key, model_dir / SHIPPED_DIR)
        if args.check:
            print(f"{name}: {'shipped' if shipped is not None else 'missing'} ({key[:12]})")
            continue
        if key not in done:
            start = time.perf_counter()
            done[key] = np.asarray(simulator_initial_state(
                system, mu, forcings, t0, dt, n_win, seed, min_seconds=0.0))
            print(f"{name}: computed {done[key].shape} {done[key].dtype} in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        path = store_state(key, done[key], directory=model_dir / SHIPPED_DIR,
                           max_bytes=64 * 2**20)
        if path is None:
            raise SystemExit(f"{name}: could not write {model_dir / SHIPPED_DIR}")
        print(f"{name}: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
