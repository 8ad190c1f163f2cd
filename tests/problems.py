"""Small seeded problems shared by the engine tests (numpy, exact where possible)."""

from __future__ import annotations

import numpy as np

from engine import Dataset


def ou_dataset(n_traj: int, n_times: int = 401, dt: float = 0.05, rate: float = 1.0,
               sigma: float = 0.5, obs_noise: float = 0.01, seed: int = 0) -> Dataset:
    """2-D Ornstein–Uhlenbeck paths dx = −rate·x dt + sigma dW, sampled exactly."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) * dt
    decay = np.exp(-rate * dt)
    step_sd = sigma * np.sqrt((1 - decay**2) / (2 * rate))
    x = np.zeros((n_traj, n_times, 2))
    x[:, 0] = rng.normal(0.0, sigma / np.sqrt(2 * rate), (n_traj, 2))
    for k in range(n_times - 1):
        x[:, k + 1] = x[:, k] * decay + step_sd * rng.normal(size=(n_traj, 2))
    return Dataset(t, x + obs_noise * rng.normal(size=x.shape), system="ou")


def duffing_dataset(n_traj: int, n_times: int = 201, t_end: float = 10.0,
                    seed: int = 0) -> Dataset:
    """Forced, damped Duffing oscillator x'' + c x' + x + x³ = f(t) with μ = c.

    Forcing: a sine with random amplitude and frequency per trajectory; solved with RK4
    on 20 substeps per sample. State (x, x'), shape (2,).
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, t_end, n_times)
    c = rng.uniform(0.1, 0.5, n_traj)
    amp = rng.uniform(0.2, 1.0, n_traj)
    freq = rng.uniform(0.5, 1.5, n_traj)

    def forcing(tt):
        return amp * np.sin(freq * tt)

    def rhs(tt, s):
        x, v = s[:, 0], s[:, 1]
        return np.stack([v, -c * v - x - x**3 + forcing(tt)], axis=1)

    state = np.stack([rng.uniform(-1, 1, n_traj), rng.uniform(-1, 1, n_traj)], axis=1)
    out = [state]
    sub = 20
    for k in range(n_times - 1):
        h = (t[k + 1] - t[k]) / sub
        for j in range(sub):
            tt = t[k] + j * h
            k1 = rhs(tt, state)
            k2 = rhs(tt + h / 2, state + h / 2 * k1)
            k3 = rhs(tt + h / 2, state + h / 2 * k2)
            k4 = rhs(tt + h, state + h * k3)
            state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(state)
    x = np.stack(out, axis=1)
    f = forcing(t[:, None]).T[..., None]
    return Dataset(t, x, mu=c[:, None], f=f, param_names=["damping"], forcing_names=["force"],
                   system="duffing")
