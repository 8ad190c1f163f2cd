"""The base class of every simulated system, and its declarations.

A :class:`System` is a GUI-free ``param.Parameterized`` object. Its physical parameters are
``param.Number`` objects whose ``softbounds`` are the default *training* ranges and whose
``bounds`` are the *physical* validity limits, so a dashboard can build sliders from them.
``mu_names`` picks which of them vary per trajectory (the vector μ); the others are fixed at
their current values. A preset is a named dict of parameter values (``presets``).

Random streams: :meth:`System.generate` derives one generator from ``(seed, split)`` so that
splits never share draws; systems with a ``time_split`` (one long trajectory cut in time)
derive it from ``seed`` alone and cut the same trajectories.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import param

from engine.data import Dataset
from engine.forcing import (
    FORCING_FAMILIES,
    Forcing,
    evaluate_forcings,
    make_forcing,
    sample_forcing,
)

__all__ = ["ParamSpec", "ForcingSpec", "System", "split_rng"]

ALL_FAMILIES: tuple[str, ...] = tuple(FORCING_FAMILIES)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of μ.

    Attributes:
        name: parameter name (a ``param`` attribute of the system).
        unit: physical unit ("1" when dimensionless).
        default: its value when not varied.
        range: (lo, hi) training range, sampled uniformly by ``generate``.
        doc: one sentence.
        valid: (lo, hi) physical validity bounds, ``None`` meaning unbounded; values outside
            raise ``ValueError``; values outside ``range`` but inside ``valid`` are allowed.
        inclusive: whether each end of ``valid`` is allowed.
    """

    name: str
    unit: str
    default: float
    range: tuple[float, float]
    doc: str
    valid: tuple[float | None, float | None] = (None, None)
    inclusive: tuple[bool, bool] = (True, True)

    def check(self, value: float, system: str = "") -> None:
        """Raise ``ValueError`` when ``value`` is not finite or physically invalid."""
        where = f"{system}: " if system else ""
        if not math.isfinite(value):
            raise ValueError(f"{where}parameter '{self.name}' must be finite, got {value}")
        lo, hi = self.valid
        if lo is not None and (value < lo or (value == lo and not self.inclusive[0])):
            op = ">=" if self.inclusive[0] else ">"
            raise ValueError(f"{where}parameter '{self.name}' must be {op} {lo}, got {value}")
        if hi is not None and (value > hi or (value == hi and not self.inclusive[1])):
            op = "<=" if self.inclusive[1] else "<"
            raise ValueError(f"{where}parameter '{self.name}' must be {op} {hi}, got {value}")


@dataclass(frozen=True)
class ForcingSpec:
    """One forcing channel.

    Attributes:
        name: channel name, e.g. ``"u_left"``.
        unit: physical unit.
        doc: how the channel enters the equations.
        families: forcing families this channel accepts.
        default_family: the family ``generate`` samples.
        ranges: parameter ranges of ``default_family`` (see ``engine.forcing.sample_forcing``).
    """

    name: str
    unit: str
    doc: str
    families: tuple[str, ...]
    default_family: str
    ranges: Mapping[str, Any]


def split_rng(seed: int, split: str) -> np.random.Generator:
    """A generator for (``seed``, ``split``): different splits give independent streams."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode())]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


class System(param.Parameterized):
    """A parametrized, possibly forced and stochastic, dynamical system.

    Subclasses set ``system_name``, ``units``, ``presets``, ``forcing_channels`` and
    implement ``state_shape``, ``grid`` and ``_simulate_batch``.
    """

    system_name: ClassVar[str] = ""
    #: unit of each physical parameter
    units: ClassVar[dict[str, str]] = {}
    #: preset name -> parameter values; ``default`` must exist
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    #: (name, unit, doc) per forcing channel; empty for unforced systems
    forcing_channels: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    #: the parameter holding the process-noise std (``None``: no process noise)
    process_noise_param: ClassVar[str | None] = None
    #: the state at t = 0 depends on the settings and μ only, not on the forcing or the seed
    #: (e.g. a deterministic, unforced spin-up): one cached initial state serves every forcing
    initial_state_is_fixed: ClassVar[bool] = False

    preset = param.String("default", doc="Name of the preset these settings came from.")
    mu_names = param.List([], item_type=str, doc="Parameters that vary per trajectory (μ).")
    ranges = param.Dict({}, doc="Training ranges {name: (lo, hi)} overriding the softbounds.")
    t_end = param.Number(1.0, bounds=(0, None), inclusive_bounds=(False, True),
                         doc="Final time of the default time grid.")
    n_t = param.Integer(101, bounds=(2, None), doc="Number of snapshots of the default grid.")
    obs_noise = param.Number(0.0, bounds=(0, None),
                             doc="Std of additive Gaussian observation noise on the state.")
    forcing_family = param.String("none", doc="Forcing family sampled by generate().")
    forcing_ranges = param.Dict({}, doc="Parameter ranges of forcing_family.")
    accepted_families = param.List(list(ALL_FAMILIES), item_type=str,
                                   doc="Forcing families every channel accepts.")
    time_split = param.List(None, allow_None=True,
                            doc="[(split, t_stop), ...]: cut one long trajectory in time; a "
                                "split holds previous t_stop < t <= t_stop (None = inf).")
    dtype: param.Selector[str] = param.Selector(default="float64", objects=["float64", "float32"],
                                                doc="Floating type of the generated states.")

    # ------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides: Any) -> System:
        """An instance with ``preset`` values (default ``"default"``) then ``overrides``.

        Raises:
            ValueError: unknown preset, unknown parameter or an invalid value.
        """
        preset = "default" if preset is None else preset
        if preset not in cls.presets:
            raise ValueError(
                f"system '{cls.system_name}': unknown preset {preset!r}; expected one of "
                f"{sorted(cls.presets)}"
            )
        known = set(cls.param) - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"system '{cls.system_name}': unknown setting(s) {unknown}; expected some of "
                f"{sorted(known)}"
            )
        values = {**cls.presets[preset], **overrides, "preset": preset}
        return cls(name=cls.system_name, **values)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for n in self.mu_names:
            self.spec(n)  # raises for unknown names
        unknown = sorted(set(self.accepted_families) - set(ALL_FAMILIES))
        if unknown:
            raise ValueError(f"system '{self.system_name}': unknown forcing families {unknown}; "
                             f"expected some of {list(ALL_FAMILIES)}")
        if self.forcing_channels and self.forcing_family not in self.accepted_families:
            raise ValueError(f"system '{self.system_name}': forcing_family "
                             f"{self.forcing_family!r} is not accepted; expected one of "
                             f"{list(self.accepted_families)}")

    # ----------------------------------------------------------- declarations
    @property
    def has_process_noise(self) -> bool:
        """Whether a trajectory is random given its initial state, μ and f."""
        name = self.process_noise_param
        return name is not None and float(getattr(self, name)) > 0

    def lyapunov_exponents(self, mu: np.ndarray) -> np.ndarray | None:
        """``(N,)`` largest Lyapunov exponents for the rows of μ, for chaotic systems
        (``None``: not chaotic). See :mod:`engine.systems.lyapunov`."""
        return None

    @property
    def physical_params(self) -> list[str]:
        """Names of all declared physical parameters (those with a unit)."""
        return list(self.units)

    def spec(self, name: str) -> ParamSpec:
        """The :class:`ParamSpec` of parameter ``name``."""
        if name not in self.units:
            raise ValueError(
                f"system '{self.system_name}': unknown parameter {name!r}; expected one of "
                f"{self.physical_params}"
            )
        p = self.param[name]
        lo, hi = self.ranges.get(name, p.softbounds or (getattr(self, name),) * 2)
        return ParamSpec(
            name=name, unit=self.units[name], default=float(getattr(self, name)),
            range=(float(lo), float(hi)), doc=p.doc or "", valid=tuple(p.bounds or (None, None)),
            inclusive=tuple(p.inclusive_bounds),
        )

    def param_specs(self) -> list[ParamSpec]:
        """The parameters of μ, in order."""
        return [self.spec(n) for n in self.mu_names]

    def forcing_specs(self) -> list[ForcingSpec]:
        """The forcing channels, in order (empty for an unforced system)."""
        return [
            ForcingSpec(name, unit, doc, tuple(self.accepted_families), self.forcing_family,
                        dict(self.forcing_ranges))
            for name, unit, doc in self.forcing_channels
        ]

    @property
    def param_names(self) -> list[str]:
        return list(self.mu_names)

    @property
    def forcing_names(self) -> list[str]:
        return [c[0] for c in self.forcing_channels]

    @property
    def state_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def grid(self) -> dict[str, np.ndarray]:
        """Spatial coordinates of the state, by axis name (empty for vector states)."""
        return {}

    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels of a 2-D field state ``(C, H, W)``, e.g. ``("u", "v", "p")``
        (default ``"channel 1"``, …); empty for states without a channel axis."""
        shape = tuple(self.state_shape)
        if len(shape) != 3:
            return ()
        return tuple(f"channel {c + 1}" for c in range(shape[0]))

    def time_grid(self) -> np.ndarray:
        """(T,) the default output times."""
        return np.linspace(0.0, self.t_end, self.n_t)

    def config(self) -> dict:
        """All settings, JSON-safe (what ``generate`` records in ``attrs``)."""
        values = self.param.values()
        values.pop("name", None)
        return _jsonable(values)

    def describe(self) -> dict:
        """A JSON-safe summary of the declarations (for docs and dashboards)."""
        return _jsonable({
            "system": self.system_name,
            "preset": self.preset,
            "state_shape": list(self.state_shape),
            "params": [vars(s) for s in self.param_specs()],
            "forcings": [vars(s) for s in self.forcing_specs()],
            "time": [float(self.time_grid()[0]), float(self.time_grid()[-1]),
                     int(self.time_grid().size)],
        })

    # ------------------------------------------------------------- validation
    def default_mu(self) -> np.ndarray:
        """(P,) the current values of the μ parameters."""
        return np.array([getattr(self, n) for n in self.mu_names], dtype=np.float64)

    def check_mu(self, mu: Any) -> np.ndarray:
        """Validate μ: (P,) or (N, P) -> (N, P) float64.

        Raises:
            ValueError: wrong length or a physically invalid value.
        """
        arr = np.asarray(mu, dtype=np.float64)
        p = len(self.mu_names)
        if arr.ndim == 1 or arr.ndim == 0:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != p:
            raise ValueError(
                f"system '{self.system_name}': mu must have {p} value(s) {self.mu_names}, "
                f"got shape {np.shape(mu)}"
            )
        for j, spec in enumerate(self.param_specs()):
            for value in arr[:, j]:
                spec.check(float(value), self.system_name)
        return arr

    def default_forcing(self) -> tuple[Forcing, ...]:
        """Forcings at the middle of the declared ranges (``smooth_random`` seed 0)."""
        out = []
        for spec in self.forcing_specs():
            mid = {}
            for k, v in spec.ranges.items():
                mid[k] = (0.5 * (v[0] + v[1])) if isinstance(v, (list, tuple)) else v
            if spec.default_family == "sum_of_sines":
                n = int(mid.pop("n_terms", 3))
                for k in ("amplitudes", "frequencies", "phases"):
                    if k in mid:
                        mid[k] = [mid[k]] * n
            if spec.default_family == "smooth_random" and "n_features" in mid:
                mid["n_features"] = int(round(mid["n_features"]))
            out.append(make_forcing(spec.default_family, **mid))
        return tuple(out)

    def check_forcing(self, forcing: Any) -> tuple[Forcing, ...]:
        """Normalize one trajectory's forcing to a tuple of F ``Forcing`` objects.

        ``forcing`` may be ``None`` (the default forcing), a ``Forcing`` or its dict (when
        F = 1), or a sequence of F of those.

        Raises:
            ValueError: wrong number of channels or a family this system does not accept.
        """
        n_ch = len(self.forcing_channels)
        if forcing is None:
            return self.default_forcing()
        if isinstance(forcing, (Forcing, Mapping)):
            forcing = [forcing]
        items = [Forcing.from_dict(f) if isinstance(f, Mapping) else f for f in forcing]
        if len(items) != n_ch:
            raise ValueError(
                f"system '{self.system_name}': expected {n_ch} forcing channel(s) "
                f"{self.forcing_names}, got {len(items)}"
            )
        for name, f in zip(self.forcing_names, items):
            if not isinstance(f, Forcing):
                raise ValueError(f"system '{self.system_name}': forcing '{name}' must be a "
                                 f"Forcing or its dict, got {type(f).__name__}")
            if f.family not in self.accepted_families:
                raise ValueError(
                    f"system '{self.system_name}': forcing family {f.family!r} is not accepted "
                    f"for '{name}'; expected one of {list(self.accepted_families)}"
                )
        return tuple(items)

    @staticmethod
    def check_times(t: Any) -> np.ndarray:
        """Validate output times: (T,) finite, strictly increasing, T >= 2."""
        arr = np.asarray(t, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
            raise ValueError(f"times must be a finite 1-D array of >= 2 values, got shape "
                             f"{arr.shape}")
        if np.any(np.diff(arr) <= 0):
            raise ValueError("times must be strictly increasing")
        return arr

    # ------------------------------------------------------------- simulation
    def simulate(self, mu: Any = None, forcing: Any = None, t: Any = None,
                 seed: int = 0) -> np.ndarray:
        """One trajectory.

        Args:
            mu: (P,) parameters; default: the current values (``default_mu``).
            forcing: see :meth:`check_forcing`; default: mid-range forcing.
            t: (T,) output times; default: ``time_grid()``.
            seed: seed of the process and observation noise.

        Returns:
            (T, *state_shape) states (observations, when ``obs_noise`` > 0).
        """
        mu = self.default_mu() if mu is None else mu
        return self.simulate_batch(mu, [forcing], t, np.random.default_rng(seed))[0]

    def simulate_batch(self, mu: Any, forcings: Sequence[Any], t: Any = None,
                       rng: np.random.Generator | None = None) -> np.ndarray:
        """N trajectories at once.

        Args:
            mu: (N, P) parameters (a (P,) vector is broadcast to all N).
            forcings: N forcings, each as accepted by :meth:`check_forcing`.
            t: (T,) output times; default ``time_grid()``.
            rng: the random stream; default ``np.random.default_rng(0)``.

        Returns:
            (N, T, *state_shape) states.
        """
        t = self.time_grid() if t is None else self.check_times(t)
        rng = np.random.default_rng(0) if rng is None else rng
        fs = [self.check_forcing(f) for f in forcings]
        mu = self.check_mu(mu)
        if mu.shape[0] == 1 and len(fs) > 1:
            mu = np.repeat(mu, len(fs), axis=0)
        if mu.shape[0] != len(fs):
            raise ValueError(f"system '{self.system_name}': {mu.shape[0]} mu rows for "
                             f"{len(fs)} forcings")
        x = self._simulate_batch(mu, fs, t, rng)
        if self.obs_noise > 0:
            x = x + self.obs_noise * rng.standard_normal(x.shape)
        return x.astype(self.dtype, copy=False)

    def _simulate_batch(self, mu: np.ndarray, forcings: list[tuple[Forcing, ...]],
                        t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, T, *state_shape) noise-free-observation states; see ``simulate_batch``."""
        raise NotImplementedError  # pragma: no cover

    def mu_dict(self, mu: np.ndarray) -> dict[str, np.ndarray]:
        """Every physical parameter as an (N,) array: μ columns, else the current value."""
        n = mu.shape[0]
        out = {k: np.full(n, float(getattr(self, k))) for k in self.physical_params}
        for j, k in enumerate(self.mu_names):
            out[k] = mu[:, j].copy()
        return out

    # ------------------------------------------------------------- generation
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
        """Draw μ uniformly from the training ranges, then forcings from the declared families.

        Returns:
            (N, P) parameters and N tuples of F forcings.
        """
        return self.sample_mu(n, rng), self.sample_forcings(n, rng)

    def sample_mu(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(N, P) parameters drawn uniformly from the training ranges."""
        specs = self.param_specs()
        mu = np.empty((n, len(specs)))
        for j, s in enumerate(specs):
            mu[:, j] = rng.uniform(s.range[0], s.range[1], size=n)
        return mu

    def sample_forcings(self, n: int, rng: np.random.Generator) -> list[tuple[Forcing, ...]]:
        """N tuples of F forcings drawn from each channel's default family and ranges."""
        return [
            tuple(sample_forcing(fs.default_family, rng, fs.ranges) for fs in self.forcing_specs())
            for _ in range(n)
        ]

    def split_slices(self, t: np.ndarray) -> dict[str, slice]:
        """For a time-split system, the time index slice of each split."""
        out, start = {}, 0
        for name, stop in self.time_split or []:
            end = t.size if stop is None else int(np.searchsorted(t, stop, side="right"))
            out[str(name)] = slice(start, max(end, start))
            start = max(end, start)
        return out

    def generate(self, n: int, split: str = "train", seed: int = 0) -> Dataset:
        """Sample, simulate and package ``n`` trajectories as a :class:`Dataset`.

        With ``time_split`` set, the same ``n`` long trajectories (drawn from ``seed`` alone)
        are cut in time and ``split`` picks a piece (or ``"all"``).

        Raises:
            ValueError: ``n`` < 1, or an unknown split of a time-split system.
        """
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if self.time_split:
            slices = self.split_slices(self.time_grid())
            if split not in slices and split != "all":
                raise ValueError(f"system '{self.system_name}' (preset {self.preset!r}) is cut "
                                 f"in time; split must be one of {sorted(slices) + ['all']}, "
                                 f"got {split!r}")
            return self.generate_time_splits(n, seed, [split])[split]
        return self._package(n, split, seed, split_rng(seed, split), {split: slice(None)})[split]

    def generate_time_splits(self, n: int, seed: int = 0,
                             splits: Sequence[str] | None = None) -> dict[str, Dataset]:
        """For a time-split system: simulate the ``n`` long trajectories once and return
        each requested piece (default: every split), identical to :meth:`generate` of that
        split. One solve instead of one per split (a 100 × 100 spiral over 10 000
        snapshots takes minutes)."""
        if not self.time_split:
            raise ValueError(f"system '{self.system_name}' (preset {self.preset!r}) is not cut in time")
        slices = {**self.split_slices(self.time_grid()), "all": slice(None)}
        splits = list(splits) if splits is not None else [k for k in slices if k != "all"]
        unknown = [s for s in splits if s not in slices]
        if unknown:
            raise ValueError(f"unknown splits {unknown}; known: {sorted(slices)}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
        return self._package(n, None, seed, rng, {s: slices[s] for s in splits})

    def _check_dataset_size(self, n: int, n_times: int) -> None:
        """Refuse, before sampling, a dataset larger than a dataset file may be (10¹²
        trajectories would ask for terabytes at once)."""
        from engine.untrusted_files import max_dataset_bytes

        size = n * n_times * math.prod(self.state_shape) * 8
        if size > max_dataset_bytes():
            raise ValueError(f"{n} trajectories of {n_times} times of states {self.state_shape} "
                             f"would be {size / 2**30:.3g} GiB, over the limit of "
                             f"{max_dataset_bytes() / 2**30:.3g} GiB (SROM_MAX_DATASET_BYTES)")

    def _package(self, n: int, split: str | None, seed: int, rng: np.random.Generator,
                 pieces: dict[str, slice]) -> dict[str, Dataset]:
        """Sample and simulate ``n`` trajectories once; one Dataset per time piece."""
        t_all = self.time_grid()
        self._check_dataset_size(int(n), t_all.size)
        sample_rng, sim_rng = rng.spawn(2)
        mu, forcings = self.sample(int(n), sample_rng)
        x_all = self.simulate_batch(mu, forcings, t_all, sim_rng)
        f_all = evaluate_forcings(forcings, t_all) if self.forcing_channels else None
        return {name: self._dataset(x_all, t_all, f_all, mu, forcings, name, seed, sl)
                for name, sl in pieces.items()}

    def _dataset(self, x, t, f, mu, forcings, split: str, seed: int, sl: slice) -> Dataset:
        if sl != slice(None):
            x = np.ascontiguousarray(x[:, sl])
            t = t[sl]
            f = None if f is None else f[:, sl]
        attrs = {
            "preset": self.preset, "seed": int(seed), "split": split,
            "forcings": [[fc.to_dict() for fc in row] for row in forcings],
            "param_ranges": {s.name: list(s.range) for s in self.param_specs()},
            "config": self.config(), "grid": {k: v for k, v in self.grid().items()},
        }
        return Dataset(t=t, x=x, mu=mu, f=f, param_names=self.param_names,
                       forcing_names=self.forcing_names, system=self.system_name,
                       attrs=_jsonable(attrs))
