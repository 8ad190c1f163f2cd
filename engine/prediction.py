"""The result of :meth:`engine.StochasticROM.predict`: moments, quantiles, sample paths."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from engine.cancellation import CancelCheck, check_cancelled

__all__ = ["Prediction", "sample_quantiles", "sorted_quantiles", "over_time_chunks",
           "over_path_chunks"]


def sample_quantiles(samples: torch.Tensor, levels: np.ndarray, dim: int) -> torch.Tensor:
    """Empirical quantiles (linear interpolation, numpy's default) along ``dim`` by sorting.

    ``torch.quantile`` refuses inputs above 2**24 elements; a sort has no such limit.
    Returns ``(len(levels), *shape without dim)``.
    """
    return sorted_quantiles(torch.sort(samples, dim=dim).values, levels, dim)


def over_time_chunks(fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
                     paths: torch.Tensor, out_dims: Sequence[int],
                     cancel: CancelCheck | None = None, what: str = "the reductions",
                     chunk_values: int = 2**22) -> tuple[torch.Tensor, ...]:
    """``fn`` applied to chunks of output times of ``paths`` and joined, with ``cancel``
    checked before each chunk, so that a long reduction over paths can be stopped.

    ``fn`` must treat every time on its own (a reduction over the paths axis, a sort along
    it): its chunked result is then the whole one's (a sort's exactly, a sum's up to
    rounding: its order may follow the shape). The chunks depend on ``paths``' shape and
    ``chunk_values`` only, never on ``cancel``.

    Args:
        fn: ``paths[:, :, i:j] -> tuple of tensors``.
        paths: ``(B, n, T, *S)`` sample paths.
        out_dims: the time axis of each of ``fn``'s outputs (where the chunks are joined).
        cancel: see :mod:`engine.cancellation`; ``None``: never checked.
        what: the stage named in the cancel message.
        chunk_values: values of ``paths`` per chunk (at least one time per chunk).
    """
    n_times = paths.shape[2]
    per_time = max(1, paths[:, :, :1].numel())
    step = max(1, int(chunk_values) // per_time)
    parts: list[tuple[torch.Tensor, ...]] = []
    for i in range(0, n_times, step):
        check_cancelled(cancel, f"{what}, time {i} of {n_times}")
        parts.append(tuple(fn(paths[:, :, i:i + step])))
    if len(parts) == 1:
        return parts[0]
    return tuple(torch.cat([p[k] for p in parts], dim=out_dims[k]) for k in range(len(out_dims)))


def over_path_chunks(fn: Callable[[torch.Tensor], torch.Tensor], paths: torch.Tensor,
                     cancel: CancelCheck | None = None, what: str = "the sample paths",
                     chunk_values: int = 2**22) -> torch.Tensor:
    """``fn`` applied to chunks of whole sample paths of ``paths``, in order, with ``cancel``
    checked before each: the draw of a big field's observation noise (a 3 × 80 × 440 flow,
    37 paths × 67 times: 6 s in one piece on a CPU) can be stopped.

    A prediction that fits one chunk is computed as before, in one piece; a larger one draws
    its random numbers chunk after chunk (the same law; on a CPU even the same numbers when
    each chunk holds a multiple of 16 values, as torch fills normals 16 at a time).

    Args:
        fn: ``part -> same-shaped tensor`` (``part``: ``(k, T, *S)`` whole paths).
        paths: ``(B, n, T, *S)`` sample paths.
        cancel: see :mod:`engine.cancellation`; ``None``: never checked.
        what: the stage named in the cancel message.
        chunk_values: values per chunk (at least one path per chunk).

    Returns:
        ``(B, n, T, *S)``.
    """
    rows = paths.reshape(-1, *paths.shape[2:])
    per_path = max(1, rows[:1].numel())
    step = max(1, int(chunk_values) // per_path)
    if step >= rows.shape[0]:
        check_cancelled(cancel, what)
        return fn(paths)
    out = torch.empty_like(rows)
    for i in range(0, rows.shape[0], step):
        check_cancelled(cancel, f"{what}, path {i} of {rows.shape[0]}")
        out[i:i + step] = fn(rows[i:i + step])
    return out.view(paths.shape)


def sorted_quantiles(ordered: torch.Tensor, levels: np.ndarray, dim: int) -> torch.Tensor:
    """:func:`sample_quantiles` of samples already sorted along ``dim``."""
    ordered = ordered.movedim(dim, 0)
    n = ordered.shape[0]
    pos = torch.as_tensor(levels, dtype=ordered.dtype, device=ordered.device) * (n - 1)
    lo = pos.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo.to(pos.dtype)).view(-1, *([1] * (ordered.dim() - 1)))
    return ordered[lo] * (1 - w) + ordered[hi] * w


def _space_dims(state_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Names of the state axes: ``component`` (vectors of ≤ 16), ``x`` (1-D fields),
    ``channel, y, x`` (2-D fields), ``channel, z, y, x`` (3-D)."""
    if len(state_shape) == 1:
        return ("component",) if state_shape[0] <= 16 else ("x",)
    names = {2: ("channel", "x"), 3: ("channel", "y", "x"), 4: ("channel", "z", "y", "x")}
    return names.get(len(state_shape), tuple(f"axis{i}" for i in range(len(state_shape))))


@dataclass
class Prediction:
    """A probabilistic prediction of B cases over T times, in physical units.

    Attributes:
        t: ``(T,)`` times.
        mean: ``(B, T, *S)`` predictive mean (over latent paths and decoder noise).
        std: ``(B, T, *S)`` predictive standard deviation.
        samples: ``(B, n, T, *S)`` sample paths including decoder noise (``None`` when
            not requested).
        latent: ``(B, n, T, d)`` latent sample paths.
        mu: ``(B, P)`` parameters used.
        f: ``(B, T, F)`` forcing used.
        quantile_levels, quantile_values: levels computed at prediction time and their
            values ``(Q, B, T, *S)``.
        param_names, forcing_names, system, units, grid: what the numbers are (labels of
            μ and f, the system's name, units by name, coordinates of the state's space
            axes by name), for :meth:`to_xarray` and plots.
    """

    t: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    latent: np.ndarray
    mu: np.ndarray
    f: np.ndarray
    quantile_levels: np.ndarray | None = None
    quantile_values: np.ndarray | None = None
    param_names: list[str] = field(default_factory=list)
    forcing_names: list[str] = field(default_factory=list)
    system: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)

    @property
    def n_cases(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_paths(self) -> int:
        return int(self.latent.shape[1])

    def quantiles(self, qs: ArrayLike) -> np.ndarray:
        """Empirical quantiles over the sample paths: ``(len(qs), B, T, *S)``.

        Raises:
            ValueError: when the prediction was made without samples or a q is outside [0, 1].
        """
        levels = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        stored, values = self.quantile_levels, self.quantile_values
        if (stored is not None and values is not None
                and all(np.any(np.isclose(q, stored)) for q in levels)):
            idx = [int(np.argmin(np.abs(stored - q))) for q in levels]
            return values[idx]
        if self.samples is None:
            raise ValueError("this prediction has no samples for these levels; call "
                             "predict(..., return_samples=True) or predict(..., quantiles=levels)")
        if np.any((levels < 0) | (levels > 1)):
            raise ValueError(f"quantiles must lie in [0, 1], got {levels.tolist()}")
        return np.quantile(self.samples, levels, axis=1).astype(self.mean.dtype)

    def latent_quantiles(self, qs: ArrayLike) -> np.ndarray:
        """Quantiles of the latent paths: ``(len(qs), B, T, d)``."""
        levels = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        return np.quantile(self.latent, levels, axis=1).astype(self.latent.dtype)

    def to_xarray(self, qs: Sequence[float] | None = None):
        """The prediction as a labelled :class:`xarray.Dataset` (needs ``xarray``).

        Variables: ``mean`` and ``std`` ``(case, time, *space)``; ``quantile``
        ``(quantile, case, time, *space)`` at ``qs`` (default: the levels computed at
        prediction time, else 5/25/50/75/95 % when there are samples); ``samples``
        ``(case, path, time, *space)`` when kept; ``latent`` ``(case, path, time,
        latent_dim)``; ``mu`` ``(case, param)``; ``forcing`` ``(case, time, forcing_channel)``.
        Space axes are ``component`` for vector states, ``x`` for 1-D fields and
        ``channel, y, x`` for 2-D fields. Attributes: ``system`` and the ``units`` of μ
        and f where known.
        """
        try:
            import xarray as xr
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("Prediction.to_xarray needs xarray: pip install xarray") from exc
        space = _space_dims(self.mean.shape[2:])
        cases = np.arange(self.n_cases)
        coords = {"case": cases, "time": np.asarray(self.t), "path": np.arange(self.n_paths),
                  "latent_dim": [f"z{i + 1}" for i in range(self.latent.shape[-1])],
                  "param": list(self.param_names) or [f"mu{i + 1}" for i in range(self.mu.shape[1])],
                  "forcing_channel": (list(self.forcing_names)
                                      or [f"f{i + 1}" for i in range(self.f.shape[-1])])}
        data = {"mean": (("case", "time", *space), self.mean),
                "std": (("case", "time", *space), self.std),
                "latent": (("case", "path", "time", "latent_dim"), self.latent),
                "mu": (("case", "param"), np.asarray(self.mu)),
                "forcing": (("case", "time", "forcing_channel"), np.asarray(self.f))}
        levels: np.ndarray | None = None
        if qs is not None:
            levels = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        elif self.quantile_levels is not None:
            levels = np.atleast_1d(np.asarray(self.quantile_levels, dtype=np.float64))
        elif self.samples is not None:
            levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
        if levels is not None:
            data["quantile_value"] = (("quantile", "case", "time", *space), self.quantiles(levels))
            coords["quantile"] = levels
        for dim, size in zip(space, self.mean.shape[2:]):
            values = self.grid.get(dim)
            if values is not None and np.ndim(values) == 1 and len(values) == size:
                coords[dim] = np.asarray(values, dtype=np.float64)
        if self.samples is not None:
            data["samples"] = (("case", "path", "time", *space), self.samples)
        out = xr.Dataset(data, coords=coords,
                         attrs={"system": self.system or "", "n_paths": self.n_paths})
        for name, var in (("mean", "mean"), ("std", "std")):
            out[var].attrs["long_name"] = f"predictive {name}"
        for names, coord in ((self.param_names, "param"), (self.forcing_names, "forcing_channel")):
            found = {n: self.units[n] for n in names if n in self.units}
            if found:
                out[coord].attrs["units"] = found
        return out

    def to_npz(self, path: str | os.PathLike, qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> Path:
        """Write t, mean, std, quantiles (and samples, latent, mu, f) to a ``.npz`` file."""
        path = Path(path)
        # Any: numpy's stub for savez's keywords also names allow_pickle (a bool)
        arrays: dict[str, Any] = {"t": self.t, "mean": self.mean, "std": self.std,
                                  "latent": self.latent, "mu": self.mu, "f": self.f}
        if self.samples is not None:
            arrays["samples"] = self.samples
        levels = np.asarray(qs) if self.samples is not None else self.quantile_levels
        if levels is not None:
            arrays["quantile_levels"] = np.asarray(levels)
            arrays["quantiles"] = self.quantiles(levels)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path
