"""The trajectory dataset contract: validation, npz/HDF5 files and normalization.

A dataset holds ``N`` trajectories sampled on one shared, strictly increasing time grid:

=========  ============================  ==========================================
field      shape                         meaning
=========  ============================  ==========================================
``t``      (T,)                          times, strictly increasing
``x``      (N, T, *state_shape)          states: a vector, a 1-D field (L,) or
                                         (C, L), or a multi-channel 2-D field
                                         (C, H, W)
``mu``     (N, P)                        parameters, constant along a trajectory
``f``      (N, T, F)                     forcing sampled on ``t``
=========  ============================  ==========================================

``P`` and ``F`` may be zero. Optional metadata: ``param_names`` (P strings),
``forcing_names`` (F strings) and ``system`` (a string).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from engine.untrusted_files import (
    check_h5_attribute,
    check_h5_field,
    check_npz_members,
    max_dataset_bytes,
)

__all__ = ["Dataset", "load_dataset", "DatasetError", "Normalization"]

_ARRAY_FIELDS = ("t", "x", "mu", "f")
_NAME_FIELDS = ("param_names", "forcing_names")
#: names people give the fields by mistake (lower case), and what the field holds
_ALIASES = {
    "t": (("time", "times", "ts", "tt"), "time grid"),
    "x": (("state", "states", "data", "xs", "u", "y", "snapshots"), "states"),
    "mu": (("params", "param", "parameters", "parameter", "mus", "theta", "p"), "parameters"),
    "f": (("forcing", "forcings", "force", "forces", "inputs", "input", "fs"), "forcing"),
}


class DatasetError(ValueError):
    """A dataset file or array does not meet the contract; the message names the field."""


def _as_float_array(name: str, value: object) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy rarely fails here
        raise DatasetError(f"field '{name}': cannot be read as an array ({exc})") from exc
    if array.dtype.kind not in "fiub":
        raise DatasetError(f"field '{name}': expected numbers, got dtype {array.dtype}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    return array


def _names(kind: str, names: Sequence[str] | None, count: int, prefix: str) -> list[str]:
    if names is None:
        return [f"{prefix}{i}" for i in range(count)]
    names = [str(n) for n in np.asarray(names, dtype=object).reshape(-1).tolist()]
    if len(names) != count:
        raise DatasetError(f"field '{kind}': expected {count} names, got {len(names)}")
    for i, name in enumerate(names):
        _check_text(f"{kind}[{i}]", name)
    return names


def _check_text(kind: str, text: str) -> None:
    """Names and ``system`` are stored as text in .npz and HDF5 files: a NUL character (cut
    off by numpy, refused by HDF5) or a lone surrogate (not encodable) could not be saved."""
    if "\0" in text:
        raise DatasetError(f"field '{kind}': contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetError(f"field '{kind}': is not valid Unicode text") from None


@dataclass(init=False)
class Dataset:
    """Trajectories of a parametrized, forced dynamical system (see the module docstring).

    Args:
        t: (T,) strictly increasing times.
        x: (N, T, *state_shape) states.
        mu: (N, P) parameters; ``None`` means P = 0.
        f: (N, T, F) forcing on ``t``; ``None`` means F = 0.
        param_names: P names of the parameters (default ``mu0``, ``mu1``, ...).
        forcing_names: F names of the forcing channels (default ``f0``, ...).
        system: name of the system that made the data, if any.

    Raises:
        DatasetError: a field has the wrong shape, holds NaN/inf, or the times are not
            strictly increasing.
    """

    # after validation every field is filled in: an absent ``mu``/``f`` is an empty axis and
    # absent names are the defaults (hence an explicit __init__ whose arguments may be None)
    t: np.ndarray
    x: np.ndarray
    mu: np.ndarray
    f: np.ndarray
    param_names: list[str]
    forcing_names: list[str]
    system: str | None
    attrs: dict

    def __init__(self, t: ArrayLike, x: ArrayLike, mu: ArrayLike | None = None,
                 f: ArrayLike | None = None, param_names: Sequence[str] | None = None,
                 forcing_names: Sequence[str] | None = None, system: str | None = None,
                 attrs: dict | None = None) -> None:
        self.attrs = {} if attrs is None else attrs
        self.t = _as_float_array("t", t)
        self.x = _as_float_array("x", x)
        if self.t.ndim != 1:
            raise DatasetError(f"field 't': expected shape (T,), got {self.t.shape}")
        if self.t.size == 0:
            raise DatasetError("field 't': is empty, expected at least 2 times")
        if self.x.ndim < 3:
            raise DatasetError(
                f"field 'x': expected shape (N, T, *state_shape) with at least 3 axes, "
                f"got {self.x.shape}"
            )
        n_traj, n_times = self.x.shape[:2]
        if n_traj == 0 or self.x.size == 0:
            raise DatasetError(f"field 'x': is empty (shape {self.x.shape})")
        if n_times != self.t.size:
            raise DatasetError(
                f"field 'x': axis 1 has {n_times} times but 't' has {self.t.size}"
            )
        if self.t.size < 2:
            raise DatasetError("field 't': expected at least 2 times")
        steps = np.diff(self.t)
        if not np.all(np.isfinite(self.t)):
            raise DatasetError("field 't': contains NaN or inf")
        if np.any(steps <= 0):
            bad = int(np.argmax(steps <= 0))
            kind = "repeated" if steps[bad] == 0 else "unsorted"
            raise DatasetError(
                f"field 't': times must be strictly increasing; {kind} at index {bad + 1} "
                f"(t[{bad}]={self.t[bad]!r}, t[{bad + 1}]={self.t[bad + 1]!r})"
            )
        self.mu = np.zeros((n_traj, 0)) if mu is None else _as_float_array("mu", mu)
        if self.mu.ndim == 1 and self.mu.shape[0] == n_traj:
            self.mu = self.mu[:, None]
        if self.mu.ndim != 2 or self.mu.shape[0] != n_traj:
            raise DatasetError(
                f"field 'mu': expected shape (N, P) with N={n_traj}, got {self.mu.shape}"
            )
        self.f = np.zeros((n_traj, n_times, 0)) if f is None else _as_float_array("f", f)
        if self.f.ndim != 3 or self.f.shape[:2] != (n_traj, n_times):
            raise DatasetError(
                f"field 'f': expected shape (N, T, F) with N={n_traj}, T={n_times}, "
                f"got {self.f.shape}"
            )
        for name in ("x", "mu", "f"):
            array = getattr(self, name)
            if not np.all(np.isfinite(array)):
                count = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
                raise DatasetError(f"field '{name}': contains {count} NaN or inf values")
        self.param_names = _names("param_names", param_names, self.mu.shape[1], "mu")
        self.forcing_names = _names("forcing_names", forcing_names, self.f.shape[2], "f")
        self.system = None if system in (None, "") else str(system)
        if self.system is not None:
            _check_text("system", self.system)

    # ------------------------------------------------------------------ shapes
    @property
    def n_trajectories(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_times(self) -> int:
        return int(self.t.size)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[2:])

    @property
    def n_params(self) -> int:
        return int(self.mu.shape[1])

    @property
    def n_forcing(self) -> int:
        return int(self.f.shape[2])

    def __len__(self) -> int:
        return self.n_trajectories

    def __repr__(self) -> str:
        return (
            f"Dataset(system={self.system!r}, trajectories={self.n_trajectories}, "
            f"times={self.n_times} on [{self.t[0]:.4g}, {self.t[-1]:.4g}], "
            f"state_shape={self.state_shape}, params={self.param_names}, "
            f"forcing={self.forcing_names})"
        )

    def subset(self, indices: Sequence[int] | slice) -> Dataset:
        """The trajectories at ``indices`` (same time grid and names)."""
        idx = np.arange(self.n_trajectories)[indices]
        idx = np.atleast_1d(idx)
        return Dataset(
            self.t, self.x[idx], self.mu[idx], self.f[idx], self.param_names,
            self.forcing_names, self.system, dict(self.attrs),
        )

    def time_slice(self, start: int, stop: int | None = None) -> Dataset:
        """The snapshots ``start:stop`` of every trajectory."""
        sl = slice(start, stop)
        return Dataset(
            self.t[sl], self.x[:, sl], self.mu, self.f[:, sl], self.param_names,
            self.forcing_names, self.system, dict(self.attrs),
        )

    def summary(self) -> dict:
        """A JSON-friendly description: sizes, ranges and names."""
        return {
            "system": self.system,
            "n_trajectories": self.n_trajectories,
            "n_times": self.n_times,
            "t_range": [float(self.t[0]), float(self.t[-1])],
            "state_shape": list(self.state_shape),
            "x_range": [float(self.x.min()), float(self.x.max())],
            "param_names": list(self.param_names),
            "param_ranges": [
                [float(lo), float(hi)]
                for lo, hi in zip(self.mu.min(axis=0), self.mu.max(axis=0))
            ],
            "forcing_names": list(self.forcing_names),
        }

    # --------------------------------------------------------------------- io
    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset to ``.npz`` or ``.h5``/``.hdf5`` (chosen by the suffix), atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".h5", ".hdf5"):
            raise DatasetError(
                f"unknown dataset file type '{path.suffix}' for {path}: use .npz, .h5 or .hdf5"
            )
        from engine.atomic import atomic_write

        return atomic_write(path, self._write_npz if suffix == ".npz" else self._write_h5,
                            suffix=suffix)

    def _write_npz(self, path: str) -> None:
        with open(path, "wb") as handle:
            np.savez(
                handle, t=self.t, x=self.x, mu=self.mu, f=self.f,
                param_names=np.asarray(self.param_names, dtype=np.str_),
                forcing_names=np.asarray(self.forcing_names, dtype=np.str_),
                system=np.asarray(self.system or "", dtype=np.str_),
                attrs=np.asarray(json.dumps(self.attrs), dtype=np.str_),
            )

    def _write_h5(self, path: str) -> None:
        import h5py

        with h5py.File(path, "w") as h5:
            for name in _ARRAY_FIELDS:
                h5.create_dataset(name, data=getattr(self, name))
            for name in _NAME_FIELDS:
                h5.create_dataset(
                    name, data=np.asarray(getattr(self, name), dtype=object),
                    dtype=h5py.string_dtype(),
                )
            h5.attrs["system"] = self.system or ""
            h5.attrs["attrs"] = json.dumps(self.attrs)


def _check_misnamed_fields(path: Path, keys: list[str], fields: dict) -> None:
    """Refuse a file whose fields are misnamed (``params`` for ``mu``, ``forcing`` for ``f``):
    read as it is, it would train with no parameters or no forcing and nobody would notice.
    Other extra fields are ignored."""
    known = set(_ARRAY_FIELDS) | set(_NAME_FIELDS) | {"system", "attrs"}
    for name, (aliases, meaning) in _ALIASES.items():
        if name in fields:
            continue
        found = [k for k in keys if k not in known and k.lower() in aliases]
        if found:
            raise DatasetError(
                f"{path}: field '{found[0]}' is not part of the dataset format; did you mean "
                f"'{name}' (the {meaning})? Read as it is, the dataset would have no {meaning}. "
                f"Fields: t, x, mu, f, param_names, forcing_names, system.")


def _read_npz(path: Path) -> dict:
    try:
        check_npz_members(path)  # bounded before anything is decompressed
        # allow_pickle=False: a dataset is never allowed to execute code on load.
        with np.load(path, allow_pickle=False) as archive:
            fields = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError,
            NotImplementedError) as exc:  # NotImplementedError: an unknown zip compression
        raise DatasetError(f"{path}: not a readable .npz dataset ({exc})") from exc
    for key in ("system", "attrs"):
        if key in fields:
            fields[key] = str(fields[key].reshape(-1)[0]) if fields[key].size else ""
    return fields


def _read_h5(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            fields = read_h5_fields(h5, (*_ARRAY_FIELDS, *_NAME_FIELDS))
            fields["_keys"] = [str(k) for k in list(h5.keys())[:1000]]
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable HDF5 dataset ({exc})") from exc
    return fields


def read_h5_fields(h5, keys: Sequence[str]) -> dict:
    """The fields ``keys`` present in an open HDF5 file (names decoded to ``str``) and its
    ``system``/``attrs`` attributes; every field is checked
    (:func:`engine.untrusted_files.check_h5_field`) and their declared sizes bounded
    together before any is read.

    Raises:
        ValueError, OSError, …: as h5py and the checks raise them (callers wrap them).
    """
    fields, total, limit = {}, 0, max_dataset_bytes()
    present = [k for k in keys if k in h5]
    for key in present:  # every field checked before any is read
        total += check_h5_field(h5, key, names=key in _NAME_FIELDS)
    if total > limit:
        raise ValueError(f"the fields declare {total / 2**30:.3g} GiB together, over "
                         f"the limit of {limit / 2**30:.3g} GiB (SROM_MAX_DATASET_BYTES)")
    for key in present:
        data = h5[key][()]
        if key in _NAME_FIELDS:
            data = [d.decode() if isinstance(d, bytes) else str(d) for d in data]
        fields[key] = data
    for key in ("system", "attrs"):
        if key in h5.attrs:
            check_h5_attribute(h5, key)
            value = h5.attrs[key]
            fields[key] = value.decode() if isinstance(value, bytes) else str(value)
    return fields


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read and validate a dataset from ``.npz`` or ``.h5``/``.hdf5``.

    Raises:
        DatasetError: unknown file type, missing or corrupt file, missing field, or any
            violation of the contract (the message names the field).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise DatasetError(
            f"unknown dataset file type '{path.suffix}' for {path}: use .npz, .h5 or .hdf5"
        )
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    fields = _read_npz(path) if suffix == ".npz" else _read_h5(path)
    _check_misnamed_fields(path, fields.pop("_keys", list(fields)), fields)
    for key in ("t", "x"):
        if key not in fields:
            raise DatasetError(f"{path}: missing required field '{key}'")
    attrs_text = fields.get("attrs") or "{}"
    try:
        attrs = json.loads(attrs_text)
    except (ValueError, RecursionError):  # not JSON, nested 10⁵ deep, a 5000-digit integer
        attrs = {}
    return Dataset(
        t=fields["t"], x=fields["x"], mu=fields.get("mu"), f=fields.get("f"),
        param_names=fields.get("param_names"), forcing_names=fields.get("forcing_names"),
        system=fields.get("system") or None, attrs=attrs if isinstance(attrs, dict) else {},
    )


@dataclass
class Normalization:
    """Affine maps to and from the unit scales the networks see.

    The state uses one mean and std per channel (the first state axis for fields with
    2+ axes, one scalar for vectors and (L,) fields); parameters and forcing one per
    component. Times are not rescaled: the latent SDE lives in physical time.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    mu_mean: np.ndarray
    mu_std: np.ndarray
    f_mean: np.ndarray
    f_std: np.ndarray

    @staticmethod
    def fit(dataset: Dataset, enabled: bool = True, per_component: bool = False) -> Normalization:
        """Statistics of ``dataset`` (or of an :class:`engine.streaming.StreamingDataset`, in
        one pass over its file); ``enabled=False`` gives the identity map.

        Args:
            per_component: one mean/std per state component (for vector states whose
                components have different units); otherwise per channel.
        """
        state_shape = dataset.state_shape
        ndim = 2 + len(state_shape)
        shape: tuple[int, ...]
        axes: tuple[int, ...]
        if per_component or len(state_shape) == 1 and state_shape[0] <= 16:
            shape = state_shape
            axes = (0, 1)
        elif len(state_shape) >= 2:
            shape = (state_shape[0],) + (1,) * (len(state_shape) - 1)
            axes = (0, 1) + tuple(range(3, ndim))
        else:
            shape = (1,)
            axes = tuple(range(ndim))
        if enabled and not isinstance(dataset, Dataset):
            # a dataset whose states stay on disk (engine.streaming): one bounded pass
            x_mean, x_std = dataset.state_moments(shape, axes)
        elif enabled:
            x = dataset.x
            x_mean = x.mean(axis=axes).reshape(shape)
            x_std = x.std(axis=axes).reshape(shape)
        if enabled:
            mu_mean, mu_std = dataset.mu.mean(axis=0), dataset.mu.std(axis=0)
            f_flat = dataset.f.reshape(dataset.n_trajectories * dataset.n_times, dataset.n_forcing)
            f_mean, f_std = f_flat.mean(axis=0), f_flat.std(axis=0)
        else:
            x_mean, x_std = np.zeros(shape), np.ones(shape)
            mu_mean, mu_std = np.zeros(dataset.n_params), np.ones(dataset.n_params)
            f_mean, f_std = np.zeros(dataset.n_forcing), np.ones(dataset.n_forcing)

        def safe(std: np.ndarray) -> np.ndarray:
            std = np.asarray(std, dtype=np.float64)
            return np.where(std > 1e-12, std, 1.0)

        return Normalization(
            np.asarray(x_mean, np.float64), safe(x_std), np.asarray(mu_mean, np.float64),
            safe(mu_std), np.asarray(f_mean, np.float64), safe(f_std),
        )

    def check_shapes(self, state_shape: tuple[int, ...], n_params: int, n_forcing: int) -> None:
        """Raise ``DatasetError`` unless these statistics fit states of ``state_shape``, ``P``
        parameters and ``F`` forcing channels (statistics read from a checkpoint or a model
        file can be edited to any shape)."""
        for name, size in (("mu_mean", n_params), ("mu_std", n_params),
                           ("f_mean", n_forcing), ("f_std", n_forcing)):
            shape = getattr(self, name).shape
            if shape != (size,):
                raise DatasetError(f"normalization: '{name}' has shape {shape}, expected ({size},)")
        for name in ("x_mean", "x_std"):
            shape = getattr(self, name).shape
            try:
                fits = np.broadcast_shapes(shape, tuple(state_shape)) == tuple(state_shape)
            except ValueError:
                fits = False
            if not fits:
                raise DatasetError(f"normalization: '{name}' of shape {shape} does not fit "
                                   f"states of shape {tuple(state_shape)}")

    def without_state_scaling(self) -> Normalization:
        """The same map for μ and f with the states left as they are (zero shift, unit
        scale): for likelihoods that need the raw values, such as 0/1 frames."""
        return replace(self, x_mean=np.zeros_like(self.x_mean), x_std=np.ones_like(self.x_std))

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in self.__dict__.items()}

    @staticmethod
    def from_dict(values: dict) -> Normalization:
        try:
            arrays = {k: np.asarray(values[k], np.float64) for k in (
                "x_mean", "x_std", "mu_mean", "mu_std", "f_mean", "f_std")}
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise DatasetError(f"normalization: malformed entry ({exc})") from exc
        for name, array in arrays.items():
            if not np.all(np.isfinite(array)) or (name.endswith("_std") and np.any(array <= 0)):
                raise DatasetError(f"normalization: '{name}' must hold finite numbers"
                                   f"{' > 0' if name.endswith('_std') else ''}")
        return Normalization(**arrays)
