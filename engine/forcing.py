"""Time-dependent forcing signals f(t), evaluable at any time.

A forcing is a small frozen dataclass: a ``family`` name plus its own parameters. Calling it
on an array of times returns the signal on those times (same shape)::

    >>> f = make_forcing("sine", amplitude=2.0, frequency=0.5)
    >>> f(np.array([0.0, 0.5]))          # 2 sin(2π·0.5·t)
    array([0., 2.])
    >>> Forcing.from_dict(f.to_dict()) == f
    True

Families (``FORCING_FAMILIES``):

==================  ==========================================================================
``none``            f(t) = 0
``sine``            f(t) = offset + amplitude · sin(2π · frequency · t + phase)
``step``            f(t) = before for t < time, level for t ≥ time
``ramp``            f(t) = offset + change · clip((t − start) / (end − start), 0, 1)
``sum_of_sines``    f(t) = offset + Σ_j amplitudes[j] · sin(2π · frequencies[j] · t + phases[j])
``smooth_random``   a stationary Gaussian-process sample with an RBF kernel
                    amplitude² · exp(−τ² / (2 length_scale²)) plus ``offset``, built from
                    ``n_features`` random Fourier features drawn from ``seed``: evaluable at
                    any t without a stored grid, identical for an identical seed.
==================  ==========================================================================

Frequencies are in cycles per unit time (Hz when t is in seconds); phases in radians.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Forcing",
    "NoForcing",
    "Sine",
    "Step",
    "Ramp",
    "SumOfSines",
    "SmoothRandom",
    "FORCING_FAMILIES",
    "make_forcing",
    "sample_forcing",
    "evaluate_forcings",
]


#: the largest size of a parameter, and the shortest ``smooth_random`` length scale: beyond
#: them a signal overflows to inf or NaN on ordinary times (1e308 + 1e308, 1 / 1e-320)
MAX_MAGNITUDE = 1e100
MIN_LENGTH_SCALE = 1e-100


def _finite(family: str, name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond 1e308
        raise ValueError(
            f"forcing '{family}': parameter '{name}' must be a number, got {value!r}"
        ) from None
    if not math.isfinite(out):
        raise ValueError(f"forcing '{family}': parameter '{name}' must be finite, got {out}")
    if abs(out) > MAX_MAGNITUDE:
        raise ValueError(f"forcing '{family}': parameter '{name}' must be at most "
                         f"{MAX_MAGNITUDE:g} in size, got {out:g}")
    return out


#: the most terms of a ``sum_of_sines`` and random features of a ``smooth_random`` (each
#: evaluation costs terms × times: a user-given 2·10⁷ would stall a server)
MAX_TERMS = 64
MAX_FEATURES = 4096


def _finite_tuple(family: str, name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ValueError(
            f"forcing '{family}': parameter '{name}' must be a list of numbers, got {str(values)[:80]!r}"
        )
    if len(values) > MAX_TERMS:
        raise ValueError(f"forcing '{family}': parameter '{name}' has {len(values)} terms; at "
                         f"most {MAX_TERMS}")
    return tuple(_finite(family, f"{name}[{i}]", v) for i, v in enumerate(values))


@dataclass(frozen=True)
class Forcing:
    """Base class: a scalar signal f(t). Subclasses are frozen dataclasses of parameters."""

    family: ClassVar[str] = ""

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """The signal at times ``t`` (any shape); returns float64 of ``np.shape(t)``."""
        t = np.asarray(t, dtype=np.float64)
        return self._evaluate(t)

    def _evaluate(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_scalars(self) -> None:
        """Coerce every (scalar) parameter to a finite float, naming the one at fault."""
        for f in fields(self):
            object.__setattr__(self, f.name, _finite(self.family, f.name, getattr(self, f.name)))

    def to_dict(self) -> dict:
        """JSON-safe parameters, with the ``family`` key (lists for tuples)."""
        out: dict[str, Any] = {"family": self.family}
        for f in fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Forcing:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: no ``family`` key, an unknown family or a bad parameter.
        """
        if not isinstance(d, Mapping) or "family" not in d:
            raise ValueError(f"forcing dict must have a 'family' key, got {d!r}")
        odd = [k for k in d if not isinstance(k, str)]
        if odd:
            raise ValueError(f"forcing dict: parameter names must be text, got {odd[0]!r}")
        params = {k: v for k, v in d.items() if k != "family"}
        return make_forcing(str(d["family"]), **params)


@dataclass(frozen=True)
class NoForcing(Forcing):
    """f(t) = 0."""

    family: ClassVar[str] = "none"

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        return np.zeros_like(t)


@dataclass(frozen=True)
class Sine(Forcing):
    """f(t) = offset + amplitude · sin(2π · frequency · t + phase)."""

    family: ClassVar[str] = "sine"
    amplitude: float = 1.0
    frequency: float = 1.0
    phase: float = 0.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        self._check_scalars()
        if self.frequency < 0:
            raise ValueError(f"forcing 'sine': frequency must be >= 0, got {self.frequency}")

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        return self.offset + self.amplitude * np.sin(2 * np.pi * self.frequency * t + self.phase)


@dataclass(frozen=True)
class Step(Forcing):
    """f(t) = before for t < time, level for t ≥ time."""

    family: ClassVar[str] = "step"
    time: float = 0.0
    level: float = 1.0
    before: float = 0.0

    def __post_init__(self) -> None:
        self._check_scalars()

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        return np.where(t < self.time, self.before, self.level).astype(np.float64)


@dataclass(frozen=True)
class Ramp(Forcing):
    """f(t) = offset before ``start``, rising linearly by ``change`` until ``end``, then flat."""

    family: ClassVar[str] = "ramp"
    start: float = 0.0
    end: float = 1.0
    change: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        self._check_scalars()
        if not self.end > self.start:
            raise ValueError(
                f"forcing 'ramp': end must be greater than start, got start={self.start}, "
                f"end={self.end}"
            )

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        frac = np.clip((t - self.start) / (self.end - self.start), 0.0, 1.0)
        return self.offset + self.change * frac


@dataclass(frozen=True)
class SumOfSines(Forcing):
    """f(t) = offset + Σ_j amplitudes[j] · sin(2π · frequencies[j] · t + phases[j]).

    ``phases`` may be empty (all zero); otherwise all lists have the same length.
    """

    family: ClassVar[str] = "sum_of_sines"
    amplitudes: tuple[float, ...] = (1.0,)
    frequencies: tuple[float, ...] = (1.0,)
    phases: tuple[float, ...] = ()
    offset: float = 0.0

    def __post_init__(self) -> None:
        fam = self.family
        amps = _finite_tuple(fam, "amplitudes", self.amplitudes)
        freqs = _finite_tuple(fam, "frequencies", self.frequencies)
        phases = _finite_tuple(fam, "phases", self.phases) or (0.0,) * len(amps)
        if not (len(amps) == len(freqs) == len(phases)):
            raise ValueError(
                f"forcing 'sum_of_sines': amplitudes, frequencies and phases must have the same "
                f"length, got {len(amps)}, {len(freqs)}, {len(phases)}"
            )
        if any(f < 0 for f in freqs):
            raise ValueError(f"forcing 'sum_of_sines': frequencies must be >= 0, got {freqs}")
        object.__setattr__(self, "amplitudes", amps)
        object.__setattr__(self, "frequencies", freqs)
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "offset", _finite(fam, "offset", self.offset))

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        out = np.full_like(t, self.offset)
        for a, f, p in zip(self.amplitudes, self.frequencies, self.phases):
            out = out + a * np.sin(2 * np.pi * f * t + p)
        return out


@dataclass(frozen=True)
class SmoothRandom(Forcing):
    """A stationary Gaussian-process sample, RBF kernel, by random Fourier features.

    f(t) = offset + amplitude · √(1/M) Σ_m [w_m cos(ω_m t) + v_m sin(ω_m t)] with
    ω_m ~ N(0, 1/length_scale²) and w_m, v_m ~ N(0, 1) drawn from ``seed``; its covariance
    tends to amplitude² · exp(−τ²/(2 length_scale²)) as M = ``n_features`` grows (for a
    fixed draw of ω it is exactly Gaussian and stationary).
    """

    family: ClassVar[str] = "smooth_random"
    length_scale: float = 1.0
    amplitude: float = 1.0
    seed: int = 0
    offset: float = 0.0
    n_features: int = 256
    _features: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fam = self.family
        for name in ("length_scale", "amplitude", "offset"):
            object.__setattr__(self, name, _finite(fam, name, getattr(self, name)))
        if not self.length_scale >= MIN_LENGTH_SCALE:
            raise ValueError(f"forcing 'smooth_random': length_scale must be at least "
                             f"{MIN_LENGTH_SCALE:g}, got {self.length_scale:g}")
        for name in ("seed", "n_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not float(_finite(fam, name, value)).is_integer():
                raise ValueError(f"forcing 'smooth_random': {name} must be an integer, got "
                                 f"{value!r}")
            object.__setattr__(self, name, int(value))
        if self.seed < 0:
            raise ValueError(f"forcing 'smooth_random': seed must be >= 0, got {self.seed}")
        if not 1 <= self.n_features <= MAX_FEATURES:
            raise ValueError(f"forcing 'smooth_random': n_features must be in 1..{MAX_FEATURES}, "
                             f"got {self.n_features}")
        rng = np.random.default_rng(self.seed)
        omega = rng.standard_normal(self.n_features) / self.length_scale
        weights = rng.standard_normal((2, self.n_features)) / math.sqrt(self.n_features)
        object.__setattr__(self, "_features", (omega, weights))

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        omega, (w, v) = self._features
        flat = t.reshape(-1, 1) * omega  # (n, M)
        values = np.cos(flat) @ w + np.sin(flat) @ v
        return self.offset + self.amplitude * values.reshape(t.shape)


FORCING_FAMILIES: dict[str, type[Forcing]] = {
    cls.family: cls for cls in (NoForcing, Sine, Step, Ramp, SumOfSines, SmoothRandom)
}


def _family(family: str) -> type[Forcing]:
    try:
        return FORCING_FAMILIES[family]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown forcing family {family!r}; expected one of {sorted(FORCING_FAMILIES)}"
        ) from None


def _param_names(cls: type[Forcing]) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


def make_forcing(family: str, **params: Any) -> Forcing:
    """Build a forcing of ``family`` from its parameters.

    Raises:
        ValueError: unknown family, unknown parameter name, or an invalid value.
    """
    cls = _family(family)
    allowed = _param_names(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"forcing {family!r}: unknown parameter(s) {unknown}; expected some of {allowed}"
        )
    return cls(**params)


def _draw(family: str, name: str, spec: Any, rng: np.random.Generator, size: int | None = None):
    """A value for ``spec``: a number is fixed, a (lo, hi) pair is drawn uniformly."""
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        lo, hi = _finite(family, f"{name} lower bound", spec[0]), _finite(
            family, f"{name} upper bound", spec[1])
        if hi < lo:
            raise ValueError(f"forcing {family!r}: range for '{name}' has hi < lo: {spec!r}")
        value = rng.uniform(lo, hi, size=size)
        return value.tolist() if size is not None else float(value)
    if isinstance(spec, (tuple, list)):
        raise ValueError(
            f"forcing {family!r}: range for '{name}' must be a number or a (lo, hi) pair, "
            f"got {spec!r}"
        )
    return [spec] * size if size is not None else spec


def sample_forcing(
    family: str, rng: np.random.Generator, ranges: Mapping[str, Any] | None = None
) -> Forcing:
    """Draw a forcing of ``family`` with parameters sampled from ``ranges``.

    Args:
        family: a key of ``FORCING_FAMILIES``.
        rng: the random stream (consumed in a fixed order, so results are reproducible).
        ranges: per parameter, either a fixed value or a ``(lo, hi)`` pair drawn uniformly.
            Parameters not listed keep their defaults, except ``smooth_random``'s ``seed``,
            which is drawn from ``rng``. For ``sum_of_sines`` the key ``n_terms`` (default 3)
            sets the number of terms and each of ``amplitudes``, ``frequencies``, ``phases``
            is a per-term range (phases default to U[0, 2π]).

    Raises:
        ValueError: unknown family, unknown parameter or a malformed range.
    """
    cls = _family(family)
    ranges = dict(ranges or {})
    allowed = _param_names(cls) + (["n_terms"] if cls is SumOfSines else [])
    unknown = sorted(set(ranges) - set(allowed))
    if unknown:
        raise ValueError(
            f"forcing {family!r}: unknown parameter(s) {unknown} in ranges; expected some of "
            f"{allowed}"
        )
    params: dict[str, Any] = {}
    if cls is SumOfSines:
        n_terms = ranges.pop("n_terms", 3)
        if isinstance(n_terms, bool) or not float(n_terms).is_integer() or n_terms < 1:
            raise ValueError(f"forcing 'sum_of_sines': n_terms must be a positive integer, "
                             f"got {n_terms!r}")
        ranges.setdefault("phases", (0.0, 2 * np.pi))
        for name in ("amplitudes", "frequencies", "phases"):
            if name in ranges:
                params[name] = _draw(family, name, ranges.pop(name), rng, size=int(n_terms))
    if cls is SmoothRandom and "seed" not in ranges:
        params["seed"] = int(rng.integers(0, 2**31 - 1))
    for name in _param_names(cls):
        if name in ranges:
            params[name] = _draw(family, name, ranges[name], rng)
    if cls is SmoothRandom and isinstance(params.get("n_features"), float):
        params["n_features"] = int(round(params["n_features"]))
    return make_forcing(family, **params)


def evaluate_forcings(forcings: Sequence[Sequence[Forcing]], t: np.ndarray) -> np.ndarray:
    """Evaluate N trajectories × F channels of forcing on times ``t``.

    Args:
        forcings: N sequences of F forcings each.
        t: (M,) or (N, M) times.

    Returns:
        (N, M, F) float64 values.
    """
    t = np.asarray(t, dtype=np.float64)
    n = len(forcings)
    n_ch = len(forcings[0]) if n else 0
    m = t.shape[-1]
    out = np.zeros((n, m, n_ch))
    for i, row in enumerate(forcings):
        ti = t if t.ndim == 1 else t[i]
        for c, f in enumerate(row):
            out[i, :, c] = f(ti)
    return out
