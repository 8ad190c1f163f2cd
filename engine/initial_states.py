"""A few initial states of the training data, kept with a fitted model.

A model trained on a built-in system can ask its simulator for an initial state; a model
trained on the user's own data has no simulator, so :meth:`StochasticROM.fit` keeps the
first ``n_win`` snapshots of a few training trajectories (spread over the dataset), their μ
and the range of values the forcing took. They travel with the saved model as
``initial_states.safetensors`` (optional: models saved before it exist) and let a
dashboard or a script start a prediction from the model's own data::

    cases = model.initial_states_
    model.predict(cases.x0[k], cases.mu[k], t, f)

The file is read as untrusted input: its size, shapes and values are checked against the
model before anything is used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["InitialStates", "INITIAL_STATES_NAME", "MAX_CASES", "MAX_VALUES",
           "initial_states_from_dataset", "save_initial_states", "load_initial_states"]

INITIAL_STATES_NAME = "initial_states.safetensors"
#: trajectories kept at most
MAX_CASES = 8
#: state values kept at most over every case and window (float64: 16 MB)
MAX_VALUES = 2**21
_KEYS = ("x0", "mu", "index", "f_range")


@dataclass(frozen=True)
class InitialStates:
    """Initial windows of a few training trajectories.

    Attributes:
        x0: ``(K, W, *S)`` the first ``W`` snapshots (the model's ``n_win``, at most the
            dataset's length) of ``K`` trajectories, physical units.
        mu: ``(K, P)`` their parameters.
        index: ``(K,)`` their trajectory numbers in the training dataset.
        f_range: ``(F, 2)`` the lowest and highest value each forcing channel took over the
            whole training dataset (not only these cases).
    """

    x0: np.ndarray
    mu: np.ndarray
    index: np.ndarray
    f_range: np.ndarray

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The states alone: ``(K, *S)`` for one-snapshot windows, else ``(K, W, *S)``."""
        x = self.x0[:, 0] if self.x0.shape[1] == 1 else self.x0
        return np.asarray(x, dtype=dtype)

    @property
    def n_cases(self) -> int:
        """``K``, the number of kept trajectories."""
        return int(self.x0.shape[0])

    def check(self, state_shape: tuple[int, ...], n_params: int, n_forcing: int) -> None:
        """Raise ``ValueError`` unless the arrays fit a model of these sizes and are finite."""
        k = self.x0.shape[0] if self.x0.ndim >= 2 else -1
        if (not 1 <= k <= MAX_CASES or tuple(self.x0.shape[2:]) != tuple(state_shape)
                or self.x0.shape[1] < 1):
            raise ValueError(f"initial states: x0 must be (K <= {MAX_CASES}, W, "
                             f"*{tuple(state_shape)}), got {self.x0.shape}")
        if self.x0.size > MAX_VALUES:
            raise ValueError(f"initial states: {self.x0.size} values, at most {MAX_VALUES}")
        if self.mu.shape != (k, n_params):
            raise ValueError(f"initial states: mu must be ({k}, {n_params}), got {self.mu.shape}")
        if self.index.shape != (k,) or self.index.dtype.kind not in "iu" or np.any(self.index < 0):
            raise ValueError(f"initial states: index must be {k} whole numbers >= 0, got "
                             f"{self.index.shape} {self.index.dtype}")
        if self.f_range.shape != (n_forcing, 2):
            raise ValueError(f"initial states: f_range must be ({n_forcing}, 2), got "
                             f"{self.f_range.shape}")
        for name in _KEYS:
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"initial states: {name} holds NaN or inf")
        if np.any(self.f_range[:, 0] > self.f_range[:, 1]):
            raise ValueError("initial states: f_range has a low above its high")


def _pick(n_trajectories: int, per_case: int) -> np.ndarray:
    """Trajectory numbers spread evenly over the dataset, as many as the bounds allow."""
    k = min(MAX_CASES, n_trajectories, MAX_VALUES // max(per_case, 1))
    if k < 1:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_trajectories - 1, k)).astype(np.int64))


def initial_states_from_dataset(dataset, n_win: int) -> InitialStates | None:
    """The initial windows of up to :data:`MAX_CASES` trajectories of ``dataset`` (an
    ``engine.Dataset`` or an ``engine.streaming.StreamingDataset``); ``None`` when even one
    window exceeds :data:`MAX_VALUES`.

    Args:
        dataset: the training data: ``x`` ``(N, T, *S)``, ``mu`` ``(N, P)``, ``f`` ``(N, T, F)``.
        n_win: snapshots the model's encoder reads (at most ``T`` are kept).
    """
    shape = tuple(dataset.state_shape)
    w = max(1, min(int(n_win), int(dataset.n_times)))
    index = _pick(int(dataset.n_trajectories), w * math.prod(shape))
    if index.size == 0:
        return None
    if hasattr(dataset, "read_into"):  # states on disk: read only the windows kept
        x0 = np.empty((index.size, w, *shape), dtype=np.float64)
        for row, i in enumerate(index):
            dataset.read_into(x0[row], int(i), 0, w)
    else:
        x0 = np.asarray(dataset.x[index, :w], dtype=np.float64)
    n_forcing, n_params = int(dataset.n_forcing), int(dataset.n_params)
    f_range = np.zeros((n_forcing, 2))
    if n_forcing:
        f = np.asarray(dataset.f, dtype=np.float64).reshape(-1, n_forcing)
        f_range = np.stack([f.min(axis=0), f.max(axis=0)], axis=1)
    mu = np.asarray(dataset.mu, np.float64)[index].reshape(index.size, n_params)
    return InitialStates(x0=x0, mu=mu, index=index, f_range=f_range)


def save_initial_states(directory: str | os.PathLike, cases: InitialStates | None
                        ) -> Path | None:
    """Write ``cases`` to ``directory/initial_states.safetensors`` (atomically); ``None``
    removes an earlier model's file there (it would not be this model's)."""
    from safetensors.numpy import save_file

    from engine.atomic import atomic_write

    if cases is None:
        (Path(directory) / INITIAL_STATES_NAME).unlink(missing_ok=True)
        return None

    arrays = {"x0": np.ascontiguousarray(cases.x0, np.float64),
              "mu": np.ascontiguousarray(cases.mu, np.float64),
              "index": np.ascontiguousarray(cases.index, np.int64),
              "f_range": np.ascontiguousarray(cases.f_range, np.float64)}
    return atomic_write(Path(directory) / INITIAL_STATES_NAME, lambda tmp: save_file(arrays, tmp))


def load_initial_states(directory: str | os.PathLike, state_shape: tuple[int, ...],
                        n_params: int, n_forcing: int) -> InitialStates | None:
    """The initial states saved in ``directory``, checked against the model's sizes;
    ``None`` when the directory has none (a model saved before they were kept).

    Raises:
        ValueError: the file is unreadable, too large or does not fit the model.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(directory) / INITIAL_STATES_NAME
    if not path.is_file():
        return None
    # the four arrays' float64 values, with room for the header's JSON
    limit = 8 * (MAX_VALUES + MAX_CASES * (n_params + 1) + 2 * n_forcing) + 2**16
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path}: {size} bytes, more than this model's initial states can "
                         f"take ({limit})")
    try:
        with safe_open(str(path), "np") as f:
            keys = set(f.keys())
            if keys != set(_KEYS):
                raise ValueError(f"{path}: expected arrays {list(_KEYS)}, got {sorted(keys)}")
            arrays = {k: f.get_tensor(k) for k in _KEYS}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    kinds = {"x0": "f", "mu": "f", "index": "iu", "f_range": "f"}
    odd = [k for k in _KEYS if arrays[k].dtype.kind not in kinds[k]]
    if odd:
        raise ValueError(f"{path}: arrays {odd} are not of the expected kind (floats; index: "
                         "whole numbers)")
    cases = InitialStates(x0=arrays["x0"].astype(np.float64), mu=arrays["mu"].astype(np.float64),
                          index=arrays["index"].astype(np.int64),
                          f_range=arrays["f_range"].astype(np.float64))
    try:
        cases.check(state_shape, n_params, n_forcing)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return cases
