"""A model trained on the user's own data (no built-in simulator), shared by the app tests
and the browser tests: a tiny forced, damped oscillator written as an ``.npz`` file the way
a researcher would upload it, read back with :func:`engine.load_dataset`, trained for a few
steps and saved under ``root/<name>``."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

_LOCK = threading.Lock()


def own_data_npz(path: Path, n_traj: int = 6, n_times: int = 41, seed: int = 0) -> Path:
    """Write ``x'' + c x' + x = f(t)`` (state ``(x, x')``, μ = ``stiffness`` c in [0.2, 0.6],
    forcing ``push`` a constant in [-0.5, 0.5] per trajectory) as an npz with no system."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 8.0, n_times)
    c = rng.uniform(0.2, 0.6, n_traj)
    push = rng.uniform(-0.5, 0.5, n_traj)
    state = np.stack([rng.uniform(-1, 1, n_traj), rng.uniform(-1, 1, n_traj)], axis=1)
    out, h = [state], t[1] - t[0]
    for _ in range(n_times - 1):
        for _ in range(10):
            x, v = state[:, 0], state[:, 1]
            state = state + h / 10 * np.stack([v, -c * v - x + push], axis=1)
        out.append(state)
    x = np.stack(out, axis=1)
    f = np.broadcast_to(push[:, None, None], (n_traj, n_times, 1)).copy()
    np.savez(path, t=t, x=x, mu=c[:, None], f=f, param_names=np.array(["stiffness"]),
             forcing_names=np.array(["push"]))
    return path


def train_own_data_model(root: Path, name: str = "own-oscillator", steps: int = 20,
                         n_win: int = 1) -> Path:
    """Train (few steps) and save a model of :func:`own_data_npz` under ``root/name``."""
    from engine import StochasticROM, load_dataset

    with _LOCK:
        directory = Path(root) / name
        if (directory / "config.json").is_file():
            return directory
        Path(root).mkdir(parents=True, exist_ok=True)
        data = load_dataset(own_data_npz(Path(root) / f"{name}.npz"))
        assert data.system is None
        model = StochasticROM(latent_dim=2, steps=steps, window=8, windows_per_step=2,
                              n_win=n_win, drift_hidden=(16,), device="cpu", log_every=10,
                              seed=0)
        return model.fit(data).save(directory)
