"""Solver-in-the-loop competitors: latent SDEs / ODEs trained through a differential-equation solver.

They train the modules of a prepared :class:`engine.StochasticROM` (same encoder, decoder,
decoder noise variance, drift ψθ(z, t; μ, f(t)) and dispersion Ψ) with the loss of the ROM
paper's PNODE / PNSDE baselines:

    loss = −[ Σ_t log N(x_t; dec(z_t), σ²_dec) / (T·D) − KL(q(z0) ‖ N(0, I)) / (T·D)
              − KL(globals) / (N_tot·D) ]

per step on ``traj_per_step`` whole trajectories: z0 ~ q(z0 | x(t0)) from the encoder, the
latent path z_t from the solver over the whole horizon (μ fed to the drift, the stored
forcing interpolated linearly in time inside the drift), decoded at every snapshot. The
latent SDE is the *prior* SDE dz = ψ dt + Ψ dβ on one Brownian path per trajectory: no
posterior drift and no path KL (torchsde's ``logqp`` is not used), as in rom-visde's PNSDE.

Methods (``METHODS``):

- ``em_graph``: fixed-step Euler–Maruyama in plain torch (step ``solver_dt``, output
  linearly interpolated to the data times), direct backprop; on CUDA the whole training
  step (sampling, encoder, solve, decoder, loss, backward, clipping, Adam, lr decay) is one
  captured CUDA graph — the fastest implementation of a solver-in-the-loop method we know.
- ``torchsde_euler`` / ``torchsde_adjoint``: ``torchsde.sdeint`` (Euler, step ``solver_dt``)
  with direct backprop, and ``sdeint_adjoint`` (Euler forward and adjoint).
- ``odeint_dopri5`` (default tolerances rtol 1e-7, atol 1e-9, as rom-visde's PNODE),
  ``odeint_dopri5_1e-3`` (rtol = atol = 1e-3) and ``odeint_adjoint`` (dopri5 at 1e-3;
  ``odeint_adjoint_1e-2`` / ``_1e-4`` / ``_1e-6`` at the amortized-reparametrization
  paper's tolerances):
  torchdiffeq latent ODEs (Ψ unused; predicted without noise).
"""

from __future__ import annotations

import math

import torch
from _harness import DeviceData, install_counter
from torch import nn

from engine.elbo import gaussian_log_likelihood
from engine.model import StochasticROM
from engine.module import interpolate_forcing
from engine.train import WARMUP_STEPS, capture_training_step

__all__ = ["METHODS", "SolverTrainer", "available"]

METHODS: dict[str, dict] = {
    "em_graph": {"kind": "sde", "solver": "em", "graph": True,
                 "label": "Euler–Maruyama in the loop (plain torch, CUDA graph)"},
    "torchsde_euler": {"kind": "sde", "solver": "torchsde", "adjoint": False,
                       "label": "torchsde sdeint, Euler, direct backprop"},
    "torchsde_adjoint": {"kind": "sde", "solver": "torchsde", "adjoint": True,
                         "label": "torchsde sdeint_adjoint, Euler"},
    "odeint_dopri5": {"kind": "ode", "solver": "torchdiffeq", "adjoint": False,
                      "rtol": 1e-7, "atol": 1e-9,
                      "label": "torchdiffeq odeint dopri5, default tol (1e-7/1e-9)"},
    "odeint_dopri5_1e-3": {"kind": "ode", "solver": "torchdiffeq", "adjoint": False,
                           "rtol": 1e-3, "atol": 1e-3,
                           "label": "torchdiffeq odeint dopri5, rtol=atol=1e-3"},
    "odeint_adjoint": {"kind": "ode", "solver": "torchdiffeq", "adjoint": True,
                       "rtol": 1e-3, "atol": 1e-3,
                       "label": "torchdiffeq odeint_adjoint dopri5, rtol=atol=1e-3"},
    # the amortized-reparametrization paper's adjoint baselines (Lotka–Volterra)
    **{f"odeint_adjoint_{tol}": {"kind": "ode", "solver": "torchdiffeq", "adjoint": True,
                                 "rtol": float(tol), "atol": float(tol),
                                 "label": f"torchdiffeq odeint_adjoint dopri5, rtol=atol={tol}"}
       for tol in ("1e-2", "1e-4", "1e-6")},
}


def available(method: str) -> str | None:
    """``None`` when the method's package imports, else the reason it cannot run."""
    solver = METHODS[method]["solver"]
    try:
        if solver == "torchsde":
            import torchsde  # noqa: F401
        elif solver == "torchdiffeq":
            import torchdiffeq  # noqa: F401
    except ImportError as exc:
        return f"{solver} is not installed ({exc}); pip install -r benchmarks/requirements.txt"
    return None


class _ForcedDrift(nn.Module):
    """The model's drift on a batch of B trajectories at a scalar solver time ``t``:
    μ as given, f(t) linearly interpolated from the stored forcing samples."""

    def __init__(self, drift: nn.Module, t_grid: torch.Tensor):
        super().__init__()
        self.drift = drift
        self.t_grid = t_grid
        self.mu = self.f_traj = None

    def set_batch(self, mu: torch.Tensor, f_traj: torch.Tensor) -> None:
        self.mu, self.f_traj = mu, f_traj

    def at(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        t_b = t.reshape(1).expand(b).to(z.dtype)
        f_t = interpolate_forcing(self.t_grid, self.f_traj, t_b[:, None])[:, 0]
        return self.drift(z, t_b, self.mu, f_t)


class _TorchSDE(nn.Module):
    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, forced: _ForcedDrift, dispersion: nn.Module):
        super().__init__()
        self.forced, self.dispersion = forced, dispersion

    def f(self, t, y):
        return self.forced.at(t, y)

    def g(self, t, y):
        return self.dispersion.std().expand_as(y)


class _ODEFunc(nn.Module):
    def __init__(self, forced: _ForcedDrift):
        super().__init__()
        self.forced = forced

    def forward(self, t, z):
        return self.forced.at(t, z)


class SolverTrainer:
    """Trains a prepared model's modules through a solver (see the module docstring).

    Args:
        model: a StochasticROM prepared by ``_harness.prepare_model`` (not fitted).
        train: its training data on the device.
        method: a key of :data:`METHODS`.
        traj_per_step: whole trajectories per optimizer step (rom-visde used 1).
        solver_dt: the fixed step of the Euler / Euler–Maruyama solvers.
        lr_decay_steps: lr × 0.9 every that many steps (the engine's schedule family).
        grad_clip: gradient-norm clipping (0 for none), as the engine's default 10.
    """

    def __init__(self, model: StochasticROM, train: DeviceData, method: str,
                 traj_per_step: int = 1, solver_dt: float = 0.01, lr_decay_steps: int = 1000,
                 grad_clip: float = 10.0):
        if method not in METHODS:
            raise ValueError(f"unknown solver method {method!r}; choose from {sorted(METHODS)}")
        reason = available(method)
        if reason:
            raise RuntimeError(reason)
        self.spec = METHODS[method]
        self.method = method
        self.model, self.data = model, train
        self.module = model.module_
        self.counter = install_counter(model)
        self.stochastic = self.spec["kind"] == "sde"
        self.device = train.x.device
        self.batch = int(traj_per_step)
        self.grad_clip = float(grad_clip)
        self.lr0 = float(model.lr)
        self.gamma = 0.9 ** (1.0 / max(int(lr_decay_steps), 1))
        self.n_total = train.x.shape[0] * train.x.shape[1]
        self.state_size = math.prod(model.state_shape_)
        m = self.module
        parts = [m.encoder, m.decoder, m.decoder_variance, m.drift]
        if self.stochastic:
            parts.append(m.dispersion)
        self.params = [p for part in parts for p in part.parameters() if p.requires_grad]
        self.use_graph = bool(self.spec.get("graph") and self.device.type == "cuda"
                              and model.cuda_graph)
        fused = self.device.type == "cuda"
        if self.use_graph:
            self.lr = torch.tensor(self.lr0, device=self.device)
            self.gamma_t = torch.tensor(self.gamma, device=self.device)
            self.optimizer = torch.optim.Adam(self.params, lr=self.lr, capturable=True, fused=fused)
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=self.lr0, fused=fused or None)
        self.step_tensor = torch.zeros((), dtype=torch.long, device=self.device)
        self.loss_sum = torch.zeros((), device=self.device)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self.steps = 0
        self.graph = None
        self.graph_calls = self.graph_rows = 0  # per-step drift counts of the captured step
        self.replays = 0
        self.forced = _ForcedDrift(m.drift, train.t)
        t = train.t
        span = float(t[-1] - t[0])
        # the fixed-step grid of the Euler(–Maruyama) solvers, and its interpolation to t
        self.n_coarse = max(1, int(math.ceil(span / solver_dt - 1e-4)))
        self.h = span / self.n_coarse
        self.t_coarse = t[0] + self.h * torch.arange(self.n_coarse + 1, device=self.device,
                                                     dtype=t.dtype)
        pos = ((t - t[0]) / self.h).clamp(0, self.n_coarse)
        self.j = pos.floor().long().clamp(max=self.n_coarse - 1)
        self.frac = (pos - self.j.to(t.dtype))[None, :, None]
        self.solver_dt = self.h

    # ------------------------------------------------------------------- pieces
    def _sample(self):
        d = self.data
        traj = torch.randint(0, d.x.shape[0], (self.batch,), device=self.device)
        x = d.x[traj]
        n_win = self.model.n_win
        idx = torch.arange(n_win, device=self.device).clamp(max=d.x.shape[1] - 1)
        return x, x[:, idx], d.mu[traj], d.f[traj]

    def _integrate(self, z0: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` → latent path on the data times, ``(B, T, d)``."""
        t = self.data.t
        solver = self.spec["solver"]
        if solver == "em":
            return self._euler_maruyama(z0)
        if solver == "torchsde":
            import torchsde

            sde = _TorchSDE(self.forced, self.module.dispersion)
            if self.spec["adjoint"]:
                params = tuple(self.module.drift.parameters()) + tuple(self.module.dispersion.parameters())
                path = torchsde.sdeint_adjoint(sde, z0, t, method="euler", adjoint_method="euler",
                                               dt=self.h, adjoint_params=params)
            else:
                path = torchsde.sdeint(sde, z0, t, method="euler", dt=self.h)
            return path.transpose(0, 1)
        import torchdiffeq

        func = _ODEFunc(self.forced)
        kw = dict(method="dopri5", rtol=self.spec["rtol"], atol=self.spec["atol"])
        if self.spec["adjoint"]:
            path = torchdiffeq.odeint_adjoint(func, z0, t, adjoint_params=tuple(self.module.drift.parameters()), **kw)
        else:
            path = torchdiffeq.odeint(func, z0, t, **kw)
        return path.transpose(0, 1)

    def _euler_maruyama(self, z0: torch.Tensor) -> torch.Tensor:
        b, d = z0.shape
        f_c = interpolate_forcing(self.data.t, self.forced.f_traj,
                                  self.t_coarse[None].expand(b, -1).contiguous())
        h = self.h
        noise = torch.randn(self.n_coarse, b, d, device=z0.device, dtype=z0.dtype)
        noise = noise * (self.module.dispersion.std() * math.sqrt(h))
        z, out = z0, [z0]
        mu = self.forced.mu
        for k in range(self.n_coarse):
            tk = self.t_coarse[k].expand(b)
            z = z + self.module.drift(z, tk, mu, f_c[:, k]) * h + noise[k]
            out.append(z)
        path = torch.stack(out, 1)  # (B, K + 1, d)
        lo, hi = path[:, self.j], path[:, self.j + 1]
        return lo + self.frac * (hi - lo)

    def loss(self) -> torch.Tensor:
        """The negative normalized ELBO of one random batch of whole trajectories."""
        m = self.module
        x, x_win, mu, f = self._sample()
        self.forced.set_batch(mu, f)
        mean0, log_var0 = m.encode(x_win)
        z0 = mean0 + torch.exp(0.5 * log_var0) * torch.randn_like(mean0)
        kl0 = 0.5 * (torch.exp(log_var0) + mean0**2 - 1.0 - log_var0).sum(-1)  # (B,)
        z = self._integrate(z0)  # (B, T, d)
        b, n_t, d = z.shape
        x_hat = m.decode(z.reshape(-1, d)).view(b, n_t, *self.model.state_shape_)
        log_lik = gaussian_log_likelihood(x, x_hat, m.decoder_variance.sample(),
                                          len(self.model.state_shape_))  # (B, T)
        norm = n_t * self.state_size
        ell = log_lik.sum(1).mean() / norm
        kl_globals = m.decoder_variance.kl() + (m.dispersion.kl() if self.stochastic else 0.0)
        kl = kl0.mean() / norm + kl_globals / (self.n_total * self.state_size)
        return -(ell - kl)

    # ------------------------------------------------------------------- steps
    def _compute_and_update(self) -> None:
        loss = self.loss()
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        self.step_tensor += 1
        if self.use_graph:
            self.lr.copy_(self.lr0 * torch.pow(self.gamma_t, self.step_tensor.float()))
        self.loss_sum += loss.detach()
        self.nonfinite |= ~torch.isfinite(loss.detach())

    def _capture(self) -> None:
        before = {}
        self.graph = capture_training_step(
            self._compute_and_update, self.optimizer,
            before_capture=lambda: before.update(calls=self.counter.calls, rows=self.counter.rows))
        # capture records the step without running it: its drift calls happen at replays
        self.graph_calls = self.counter.calls - before["calls"]
        self.graph_rows = self.counter.rows - before["rows"]
        self.counter.calls, self.counter.rows = before["calls"], before["rows"]
        self.steps += WARMUP_STEPS  # the warm-up steps are real updates; the captured one is not run

    def step(self) -> None:
        """One optimizer step (the first call on CUDA with a graph captures it)."""
        if self.use_graph:
            if self.graph is None:
                self._capture()
            else:
                self.graph.replay()
                self.replays += 1
                self.steps += 1
            return
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr0 * self.gamma ** self.steps
        self.optimizer.zero_grad(set_to_none=True)
        self._compute_and_update()
        self.steps += 1

    def read_loss(self, n_steps: int) -> tuple[float, bool]:
        """Mean loss since the last read (syncs), and whether every loss was finite."""
        value = float(self.loss_sum.item()) / max(n_steps, 1)
        ok = not bool(self.nonfinite.item())
        self.loss_sum.zero_()
        return value, ok and math.isfinite(value)

    def drift_counts(self) -> tuple[int, int]:
        """Total drift (calls, rows) so far, graph replays included."""
        return (self.counter.calls + self.replays * self.graph_calls,
                self.counter.rows + self.replays * self.graph_rows)
