"""The latent SDE prior ``dz = ψθ(z, t; μ, f(t)) dt + Ψ dβ``: drifts and dispersion.

Every drift maps ``z (M, d)``, ``t (M,)``, ``mu (M, P)`` and ``f (M, F)`` (μ and f in the
model's normalized units) to ``(M, d)``. Available drifts:

- :class:`NeuralDrift`: an MLP on ``[z, μ, f(t)]`` (optionally ``cos``/``sin`` time features);
- :class:`LibraryDrift`: a linear combination of monomials of ``[z (, μ, f)]`` with
  learnable coefficients under a sparsity-promoting Laplace prior (SINDy-like);
- :class:`PhysicsDrift`: a registered right-hand side (e.g. Lorenz-63) with learnable
  physical parameters;
- :class:`SumDrift`: a structural drift plus a neural correction (zero at start).

:class:`Dispersion` is the diagonal Ψ, positive by construction, optionally with a
log-normal prior on Ψ².
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.functional import softplus

from engine.networks import mlp
from engine.posterior import inverse_softplus
from engine.priors import LogNormalVariance, laplace_kl

__all__ = [
    "NeuralDrift", "SecondOrderDrift", "LibraryDrift", "PhysicsDrift", "SumDrift",
    "Dispersion", "PHYSICS_DRIFTS", "DRIFT_KINDS", "register_physics_drift", "build_drift",
]

#: what ``drift=`` may name: an MLP, its mechanical (position, velocity) form, a polynomial
#: library, a registered physics drift
DRIFT_KINDS = ("neural", "second_order", "library", "physics")


class NeuralDrift(nn.Module):
    """``ψ = MLP([z, μ, f, cos(2πt/T), sin(2πt/T)])``."""

    def __init__(self, latent_dim: int, n_params: int, n_forcing: int,
                 hidden: Sequence[int] = (128, 128, 128), act: str = "silu",
                 time_period: float | None = None, zero_init: bool = False,
                 out_dim: int | None = None):
        super().__init__()
        self.time_period = time_period
        self.latent_dim = latent_dim
        #: False: ``stepper`` falls back to ``forward`` (``benchmarks/inference.py`` measures
        #: both ways)
        self.use_stepper = True
        n_in = latent_dim + n_params + n_forcing + (2 if time_period else 0)
        self.net = mlp(n_in, hidden, out_dim or latent_dim, act, zero_last=zero_init)

    def _other_inputs(self, t, mu, f):
        """``[μ, f, cos, sin]`` of ``t (..., M)``, ``mu (M, P)``, ``f (..., M, F)``."""
        inputs = [mu.expand(*f.shape[:-1], mu.shape[-1]), f]
        if self.time_period:
            phase = (2 * math.pi / self.time_period) * t
            inputs += [torch.cos(phase)[..., None], torch.sin(phase)[..., None]]
        return torch.cat(inputs, dim=-1)

    def forward(self, z, t, mu, f):
        return self.net(torch.cat([z, self._other_inputs(t, mu, f)], dim=-1))

    #: on a CPU, more paths than this are integrated with ``forward``: the stepper saves
    #: per-call overhead, so its gain shrinks as the paths grow (``ours_latent`` against
    #: ``ours_latent_forward`` in ``benchmarks/results/inference_cpu.md``), and in a trial
    #: with it on for 256 paths it was slower than ``forward``
    STEPPER_CPU_MAX_PATHS = 128

    def stepper(self, t: torch.Tensor, mu: torch.Tensor, f: torch.Tensor,
                block: int = 64) -> Callable[[int, torch.Tensor], torch.Tensor]:
        """``step(k, z) = ψ(z, t[k], μ, f[:, k])`` for a rollout on a fixed grid, with less
        work per step than ``forward``: the first layer's product with everything that does
        not depend on ``z`` (μ, f, the time features) is computed ``block`` steps at a time,
        and the layers run as plain ``addmm`` calls on contiguous transposed weights. The same
        values up to rounding; quicker on a CPU for a few paths (fewer calls; more than
        ``STEPPER_CPU_MAX_PATHS`` paths get ``forward``), on a GPU half the kernels for
        the products (see below).

        Args:
            t: ``(K, M)`` step times; mu: ``(M, P)``; f: ``(M, K, F)``; block: steps whose
                first-layer terms are computed together (memory ``block × M × width``).
        """
        layers = list(self.net)
        linears = [x for x in layers[0::2] if isinstance(x, nn.Linear)]
        acts = layers[1::2]

        def plain(k: int, z: torch.Tensor) -> torch.Tensor:
            return self(z, t[k], mu, f[:, k])

        if not (len(linears) == len(layers[0::2]) == len(acts) + 1
                and not any(isinstance(x, nn.Linear) for x in acts)):
            return plain  # not the mlp() layout
        if not self.use_stepper or (not t.is_cuda and t.shape[-1] > self.STEPPER_CPU_MAX_PATHS):
            return plain
        d, first = self.latent_dim, linears[0]
        # transposed once into contiguous (in, out) matrices: with the (out, in) weights as
        # they are (a transposed view, like F.linear), cuBLAS picks split-K kernels for these
        # small products, about 20 kernels per step instead of 10 (torch profiler on an H100):
        # ``ours_latent`` against ``ours_latent_forward`` in benchmarks/results/inference_cuda.md
        # shows the gain (largest for a few dozen to a thousand paths, none for very few or
        # very many)
        w_z, w_other = first.weight[:, :d].T.contiguous(), first.weight[:, d:]
        rest = [(layer.weight.T.contiguous(), layer.bias) for layer in linears[1:]]
        n_steps = t.shape[0]
        cache: dict = {"start": None, "terms": None}

        def step(k: int, z: torch.Tensor) -> torch.Tensor:
            start = cache["start"]
            if start is None or not start <= k < start + block:
                stop = min(k + block, n_steps)
                other = self._other_inputs(t[k:stop], mu, f[:, k:stop].transpose(0, 1))
                cache["terms"] = torch.nn.functional.linear(other, w_other, first.bias)
                cache["start"] = start = k
            x = torch.addmm(cache["terms"][k - start], z, w_z)
            for (weight, bias), act in zip(rest, acts):
                x = torch.addmm(bias, act(x), weight)
            return x

        return step

    def kl(self) -> torch.Tensor:
        return next(self.net.parameters()).new_zeros(())  # no variational variables


#: the most monomials a library may hold (its features cost terms × paths at every step)
MAX_LIBRARY_TERMS = 100_000


def monomial_exponent_indices(n_vars: int, degree: int) -> list[tuple[int, ...]]:
    """Monomials up to ``degree`` in ``n_vars`` variables, as index tuples into ``[1, v…]``.

    Raises:
        ValueError: ``degree`` is not a positive integer, or there would be more than
            ``MAX_LIBRARY_TERMS`` monomials (counted before any is listed).
    """
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 1:
        raise ValueError(f"library_degree must be a positive integer, got {degree!r}")
    count = math.comb(n_vars + int(degree), int(degree))
    if count > MAX_LIBRARY_TERMS:
        raise ValueError(f"library_degree {degree} in {n_vars} variables gives {count:.3g} "
                         f"monomials; at most {MAX_LIBRARY_TERMS}")
    return list(itertools.combinations_with_replacement(range(n_vars + 1), degree))


class LibraryDrift(nn.Module):
    """``ψ = W Φ(v)`` with Φ the monomials up to ``degree`` of ``v = [z (, μ) (, f)]``.

    ``W`` has a mean-field Laplace variational posterior (location starts at zero) and a
    Laplace(0, ``prior_scale``) prior, which promotes sparse coefficients.
    """

    term_index: torch.Tensor  # (n_terms, degree) buffer: the factors of each monomial

    def __init__(self, latent_dim: int, n_params: int, n_forcing: int, degree: int = 3,
                 include_params: bool = False, include_forcing: bool = True,
                 prior_scale: float = 1.0, init_log_scale: float = -6.0):
        super().__init__()
        self.include_params, self.include_forcing = include_params, include_forcing
        n_vars = latent_dim + (n_params if include_params else 0) + (n_forcing if include_forcing else 0)
        terms = monomial_exponent_indices(n_vars, degree)
        self.register_buffer("term_index", torch.tensor(terms, dtype=torch.long), persistent=False)
        self.loc = nn.Parameter(torch.zeros(latent_dim, len(terms)))
        self.log_scale = nn.Parameter(torch.full((latent_dim, len(terms)), float(init_log_scale)))
        self.prior_scale = float(prior_scale)
        self.sample_coefficients = True

    def features(self, z, mu, f) -> torch.Tensor:
        """``(M, n_terms)`` library features."""
        parts = [torch.ones_like(z[:, :1]), z]
        if self.include_params:
            parts.append(mu)
        if self.include_forcing:
            parts.append(f)
        v = torch.cat(parts, dim=-1)
        # one index_select per factor: its backward (index_add) can be captured in a CUDA
        # graph, unlike advanced indexing's (a sort-based index_put with accumulate)
        out = v.index_select(1, self.term_index[:, 0])
        for k in range(1, self.term_index.shape[1]):
            out = out * v.index_select(1, self.term_index[:, k])
        return out

    def coefficients(self) -> torch.Tensor:
        """A reparametrized sample of W while training, its location otherwise."""
        if not (self.training and self.sample_coefficients):
            return self.loc
        u = torch.rand_like(self.loc) - 0.5
        noise = -torch.sign(u) * torch.log1p(-2 * u.abs().clamp(max=0.4999999))
        return self.loc + torch.exp(self.log_scale) * noise

    def forward(self, z, t, mu, f):
        return self.features(z, mu, f) @ self.coefficients().T

    def kl(self) -> torch.Tensor:
        return laplace_kl(self.loc, torch.exp(self.log_scale), self.prior_scale)


# ------------------------------------------------------------------ physics drifts
PhysicsFn = Callable[..., torch.Tensor]
#: a parameter's default: a number, a nested list, or None where the size depends on the
#: latent dimension (the drift fills it in)
PhysicsDefault = float | list | None
PHYSICS_DRIFTS: dict[str, tuple[PhysicsFn, dict[str, PhysicsDefault]]] = {}


def register_physics_drift(name: str, fn: PhysicsFn,
                           defaults: dict[str, PhysicsDefault]) -> None:
    """Register a known right-hand side ``fn(x, t, mu, f, **params) -> dx/dt``.

    ``x`` is the state in physical units ``(M, d)``, ``mu`` the physical parameters; the
    params are tensors initialised from ``defaults`` and learned. Models save only the
    name and parameter values, so loading never runs code from a file.
    """
    PHYSICS_DRIFTS[name] = (fn, dict(defaults))


def _lorenz63(x, t, mu, f, sigma, rho, beta):
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack([sigma * (b - a), a * (rho - c) - b, a * b - beta * c], dim=-1)


def _lotka_volterra(x, t, mu, f, alpha, beta, delta, gamma):
    a, b = x[:, 0], x[:, 1]
    return torch.stack([alpha * a - beta * a * b, delta * a * b - gamma * b], dim=-1)


def _linear(x, t, mu, f, A, b):
    return x @ A.T + b


register_physics_drift("lorenz63", _lorenz63, {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0})
register_physics_drift("lotka_volterra", _lotka_volterra,
                       {"alpha": 2 / 3, "beta": 4 / 3, "delta": 1.0, "gamma": 1.0})
register_physics_drift("linear", _linear, {"A": None, "b": None})


class PhysicsDrift(nn.Module):
    """A registered right-hand side with learnable parameters, applied in physical units.

    The latent is ``z = (x − shift) / scale`` (the model's state normalization for identity
    autoencoders), so ``dz/dt = F(x) / scale``.
    """

    fn: PhysicsFn
    # buffers, (d,) for z and (P,) or (0,) for μ
    z_shift: torch.Tensor
    z_scale: torch.Tensor
    mu_shift: torch.Tensor
    mu_scale: torch.Tensor

    def __init__(self, name: str, latent_dim: int, params: dict | None = None,
                 z_shift: Sequence[float] | None = None, z_scale: Sequence[float] | None = None,
                 mu_shift: Sequence[float] | None = None, mu_scale: Sequence[float] | None = None):
        super().__init__()
        if name not in PHYSICS_DRIFTS:
            raise ValueError(f"unknown physics drift '{name}': registered are {sorted(PHYSICS_DRIFTS)}")
        self.name = name
        self.fn, defaults = PHYSICS_DRIFTS[name]
        values = dict(defaults)
        values.update(params or {})
        if name == "linear":
            values["A"] = values["A"] if values["A"] is not None else [[0.0] * latent_dim] * latent_dim
            values["b"] = values["b"] if values["b"] is not None else [0.0] * latent_dim
        unknown = set(values) - set(defaults)
        if unknown:
            raise ValueError(f"physics drift '{name}': unknown parameters {sorted(unknown)}")
        self.params = nn.ParameterDict(
            {k: nn.Parameter(torch.as_tensor(v, dtype=torch.float32)) for k, v in values.items()}
        )
        def buf(v, n):
            return torch.as_tensor(v if v is not None else [0.0] * n, dtype=torch.float32)
        self.register_buffer("z_shift", buf(z_shift, latent_dim))
        self.register_buffer("z_scale", buf(z_scale, latent_dim) if z_scale is not None else torch.ones(latent_dim))
        self.register_buffer("mu_shift", buf(mu_shift, 0) if mu_shift is not None else torch.zeros(0))
        self.register_buffer("mu_scale", buf(mu_scale, 0) if mu_scale is not None else torch.zeros(0))

    def forward(self, z, t, mu, f):
        x = z * self.z_scale + self.z_shift
        mu_phys = mu * self.mu_scale + self.mu_shift if self.mu_scale.numel() else mu
        dx = self.fn(x, t, mu_phys, f, **dict(self.params.items()))
        return dx / self.z_scale

    def kl(self) -> torch.Tensor:
        return self.z_scale.new_zeros(())

    def parameter_values(self) -> dict[str, float | list]:
        return {k: v.detach().cpu().tolist() for k, v in self.params.items()}


class SecondOrderDrift(nn.Module):
    """The drift of a mechanical system: ``z = (q, v)`` in two halves and
    ``ψ = [v, a(q, v, t; μ, f)]``, so the first half's rate *is* the second half.

    A structural prior for latents of oscillating bodies seen from outside (a pendulum
    video): without it the autoencoder may embed the position alone, as a curve traced back
    and forth, on which no Markov drift exists (``docs/attempts/pendulum_video.md``). The
    acceleration ``a`` is a :class:`NeuralDrift` MLP with ``d/2`` outputs.
    """

    def __init__(self, latent_dim: int, n_params: int, n_forcing: int,
                 hidden: Sequence[int], act: str, time_period: float | None):
        super().__init__()
        if latent_dim % 2:
            raise ValueError(f"drift='second_order' needs an even latent_dim (positions and "
                             f"velocities), got {latent_dim}")
        self.n_positions = latent_dim // 2
        self.acceleration = NeuralDrift(latent_dim, n_params, n_forcing, hidden, act,
                                        time_period, out_dim=self.n_positions)

    def forward(self, z, t, mu, f):
        return torch.cat([z[..., self.n_positions:], self.acceleration(z, t, mu, f)], dim=-1)

    def stepper(self, t: torch.Tensor, mu: torch.Tensor, f: torch.Tensor,
                block: int = 64) -> Callable[[int, torch.Tensor], torch.Tensor]:
        """:meth:`NeuralDrift.stepper` for the acceleration, the velocity copied."""
        acceleration = self.acceleration.stepper(t, mu, f, block)
        return lambda k, z: torch.cat([z[..., self.n_positions:], acceleration(k, z)], dim=-1)

    def kl(self) -> torch.Tensor:
        return self.acceleration.kl()


class SumDrift(nn.Module):
    """A structural drift plus a neural correction."""

    def __init__(self, structural: LibraryDrift | PhysicsDrift, correction: NeuralDrift):
        super().__init__()
        self.structural, self.correction = structural, correction

    def forward(self, z, t, mu, f):
        return self.structural(z, t, mu, f) + self.correction(z, t, mu, f)

    def kl(self) -> torch.Tensor:
        return self.structural.kl() + self.correction.kl()


class Dispersion(nn.Module):
    """Diagonal dispersion Ψ (a std per latent dimension), positive by construction.

    Without a prior, Ψ = softplus(p). With ``prior=(log_mean, log_std)``, log Ψ² has a
    Gaussian variational posterior and that log-normal prior; training draws one sample
    per step and adds the KL.
    """

    def __init__(self, latent_dim: int, init_std: float = 0.1,
                 prior: tuple[float, float] | None = None):
        super().__init__()
        self.bayesian = prior is not None
        if prior is not None:
            self.variable = LogNormalVariance((latent_dim,), 2 * math.log(init_std), 1e-2, *prior)
        else:
            self.raw = nn.Parameter(torch.full((latent_dim,), inverse_softplus(init_std)))

    def variance(self, sample: bool = False) -> torch.Tensor:
        """Ψ², ``(d,)``: a posterior sample when ``sample`` and Bayesian, else the point value."""
        if self.bayesian:
            return self.variable.sample() if sample else self.variable.point()
        return softplus(self.raw) ** 2 + 1e-10

    def std(self) -> torch.Tensor:
        return self.variance(False).sqrt()

    def kl(self) -> torch.Tensor:
        if self.bayesian:
            return self.variable.kl()
        return self.raw.new_zeros(())


def build_drift(kind: str, latent_dim: int, n_params: int, n_forcing: int, *,
                hidden: Sequence[int], act: str, time_period: float | None,
                library_degree: int, library_include_params: bool,
                library_prior_scale: float, physics: str | None, physics_params: dict | None,
                correction: bool, physics_units: dict | None = None) -> LatentDrift:
    """The drift named by ``kind`` (one of :data:`DRIFT_KINDS`)."""
    if kind == "neural":
        return NeuralDrift(latent_dim, n_params, n_forcing, hidden, act, time_period)
    if kind == "second_order":
        return SecondOrderDrift(latent_dim, n_params, n_forcing, hidden, act, time_period)
    base: LibraryDrift | PhysicsDrift
    if kind == "library":
        base = LibraryDrift(latent_dim, n_params, n_forcing, library_degree,
                            library_include_params, True, library_prior_scale)
    elif kind == "physics":
        if not physics:
            raise ValueError("drift='physics' needs physics=<name of a registered drift>")
        base = PhysicsDrift(physics, latent_dim, physics_params, **(physics_units or {}))
    else:
        raise ValueError(f"unknown drift '{kind}': use one of {DRIFT_KINDS}")
    if correction:
        return SumDrift(base, NeuralDrift(latent_dim, n_params, n_forcing, hidden, act,
                                          time_period, zero_init=True))
    return base


#: the drifts :func:`build_drift` makes (each has ``forward(z, t, mu, f)`` and ``kl()``)
LatentDrift = NeuralDrift | SecondOrderDrift | LibraryDrift | PhysicsDrift | SumDrift
