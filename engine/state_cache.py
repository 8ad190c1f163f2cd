"""Initial states of predictions, cached: from a simulator (shipped with a model, cached on
disk, or computed), or from what a model saved about its data.

GUI-free. A prediction starts from ``x0``: ``(*S)`` for a model that reads one snapshot,
``(n_win, *S)`` for one that reads ``n_win``. With a built-in simulator, ``x0`` is the
simulator's state at the model's first time ``t0`` for the case's μ and forcing; some
simulators take minutes to make it (the cylinder's lattice-Boltzmann spin-up: about two
minutes on a 2-core CPU), so :func:`simulator_initial_state` looks in three places first:

1. the model directory's ``simulator_states/`` (states shipped with a pretrained model,
   written by ``scripts/simulator_states.py``);
2. the user cache directory (``$SROM_CACHE_DIR``, else ``$XDG_CACHE_HOME/srom``, else
   ``~/.cache/srom``), subfolder ``simulator_states/``, bounded to ``$SROM_CACHE_MAX_BYTES``
   (default 256 MiB) by removing the least recently used files;
3. the simulator, whose answer goes to the cache when it took at least ``min_seconds``.

Files are ``<key>.npy``, written atomically and read with ``allow_pickle=False``; the key is
a SHA-256 of (system name and settings, μ, forcings, t0, dt, n_win, seed), see
:func:`state_key`. A model trained on the user's own data has no simulator: then
:func:`data_initial_state` gives a state from what the model saved (a kept training state,
else its training data's mean).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.forcing import Forcing

__all__ = ["CACHE_DIR_ENV", "CACHE_BYTES_ENV", "SHIPPED_DIR", "DEFAULT_CACHE_BYTES",
           "cache_dir", "cache_limit", "state_key", "load_state", "store_state",
           "simulator_initial_state", "data_initial_state"]

CACHE_DIR_ENV = "SROM_CACHE_DIR"
CACHE_BYTES_ENV = "SROM_CACHE_MAX_BYTES"
DEFAULT_CACHE_BYTES = 256 * 2**20
#: folder of a model directory (and of the user cache) that holds simulator initial states
SHIPPED_DIR = "simulator_states"
#: a state file larger than this is refused on reading (a hand-placed or corrupt file)
MAX_STATE_BYTES = 512 * 2**20
_KEY_VERSION = 1


def cache_dir() -> Path:
    """The user cache folder of initial states (not created here)."""
    root = os.environ.get(CACHE_DIR_ENV, "").strip()
    if root:
        return Path(root).expanduser() / SHIPPED_DIR
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "srom" / SHIPPED_DIR


def cache_limit() -> int:
    """The cache's size bound in bytes (``$SROM_CACHE_MAX_BYTES``; 0 turns the cache off).

    Raises:
        ValueError: the variable is not a non-negative integer.
    """
    text = os.environ.get(CACHE_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${CACHE_BYTES_ENV} must be a whole number of bytes, got "
                         f"{text[:40]!r}") from None
    if value < 0:
        raise ValueError(f"${CACHE_BYTES_ENV} must be >= 0, got {value}")
    return value


def _fixed_start(system: Any, t0: float, n_win: int) -> bool:
    # A simulator whose state at t = 0 is made before any forcing acts and without noise (the
    # cylinder's spin-up) gives one x0 for every forcing and seed: one state serves them all.
    return bool(getattr(system, "initial_state_is_fixed", False)) and n_win == 1 \
        and float(t0) == 0.0


def state_key(system: Any, mu: np.ndarray, forcings: Sequence[Forcing], t0: float, dt: float,
              n_win: int = 1, seed: int = 0) -> str | None:
    """The cache key of one initial state: a 64-character hex SHA-256.

    Args:
        system: an ``engine.systems.System`` (its name and every setting enter the key).
        mu: ``(P,)`` parameters; forcings: one ``Forcing`` per channel.
        t0, dt: the model's first time and step; n_win: snapshots read; seed: simulator seed.
            The forcings and the seed are left out of the key where the system's state at
            ``t0 = 0`` cannot depend on them (``initial_state_is_fixed``).

    Returns:
        The key, or ``None`` for an object without ``system_name`` and ``config()`` (nothing
        to key it by: it is not cached).
    """
    name, config = getattr(system, "system_name", None), getattr(system, "config", None)
    if not isinstance(name, str) or not callable(config):
        return None
    fixed = _fixed_start(system, t0, n_win)
    record = {
        "version": _KEY_VERSION, "system": name, "config": config(),
        "mu": [float(v) for v in np.asarray(mu, dtype=np.float64).ravel()],
        "forcings": None if fixed else [f.to_dict() for f in forcings],
        "t0": float(t0), "dt": float(dt), "n_win": int(n_win),
        "seed": None if fixed else int(seed),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _path(directory: Path, key: str) -> Path:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"a state key is 64 lowercase hex digits, got {key[:80]!r}")
    return Path(directory) / f"{key}.npy"


def load_state(key: str, directory: str | os.PathLike | None = None,
               shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """A stored state, or ``None`` when there is none (or it is unreadable, too large or of
    another ``shape``: a stale file is then ignored, never trusted).

    Args:
        key: from :func:`state_key`; directory: default :func:`cache_dir`.
        shape: the expected shape, if known.

    Returns:
        The read-only array, as stored.
    """
    path = _path(Path(directory) if directory is not None else cache_dir(), key)
    try:
        if not path.is_file() or path.stat().st_size > MAX_STATE_BYTES:
            return None
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or not np.all(np.isfinite(x)) \
            or (shape is not None and tuple(x.shape) != tuple(shape)):
        return None
    try:
        os.utime(path)  # least recently used goes first when the cache is pruned
    except OSError:
        pass
    x.flags.writeable = False
    return x


def store_state(key: str, x: np.ndarray, directory: str | os.PathLike | None = None,
                max_bytes: int | None = None) -> Path | None:
    """Write ``x`` as ``<key>.npy`` atomically, then remove the least recently used states
    until the folder holds at most ``max_bytes`` (default :func:`cache_limit`).

    Returns:
        The file, or ``None`` when the cache is off (limit 0), ``x`` alone exceeds the limit
        or the folder cannot be written (a cache is never worth failing a prediction).
    """
    directory = Path(directory) if directory is not None else cache_dir()
    limit = cache_limit() if max_bytes is None else int(max_bytes)
    x = np.ascontiguousarray(x)
    if limit <= 0 or x.nbytes + 128 > limit:
        return None
    path = _path(directory, key)
    try:
        atomic_write(path, lambda tmp: _save(tmp, x), suffix=".npy")
        _prune(directory, limit, keep=path)
    except OSError:
        return None
    return path


def _save(tmp: str, x: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, x, allow_pickle=False)


def _prune(directory: Path, limit: int, keep: Path) -> None:
    files = []
    for p in directory.glob("*.npy"):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total <= limit:
            break
        if p == keep:
            continue
        try:
            p.unlink()
            total -= size
        except OSError:
            continue


def simulator_initial_state(system: Any, mu: np.ndarray, forcings: Sequence[Forcing],
                            t0: float, dt: float, n_win: int = 1, seed: int = 0, *,
                            model_dir: str | os.PathLike | None = None, use_cache: bool = True,
                            min_seconds: float = 1.0,
                            simulate: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """The simulator's initial state for ``mu`` and ``forcings``.

    Args:
        system: an ``engine.systems.System`` (or any object with
            ``simulate(mu, forcings, t, seed=...)``; one without ``system_name``/``config``
            is never cached).
        mu: ``(P,)`` parameters; forcings: one ``Forcing`` per channel.
        t0, dt: start time and step of the model's training grid.
        n_win: snapshots the model's encoder reads (default 1).
        seed: seed of the simulator noise (default 0).
        model_dir: a model directory whose ``simulator_states/`` is looked in first.
        use_cache: read and write the user cache (default ``True``).
        min_seconds: a computed state goes to the cache only if it took at least this long
            (default 1 s: cheap states are recomputed rather than filling the cache).
        simulate: override of the computation (tests); returns ``(max(2, n_win), *S)``.

    Returns:
        ``(*S)`` when ``n_win == 1``, else ``(n_win, *S)``; read-only when it was stored.
    """
    n_win = int(n_win)
    if n_win < 1:
        raise ValueError(f"n_win must be >= 1, got {n_win}")
    key = state_key(system, mu, forcings, t0, dt, n_win, seed)
    if key is not None:
        state_shape = getattr(system, "state_shape", None)
        shape = None if state_shape is None else (
            tuple(state_shape) if n_win == 1 else (n_win, *state_shape))
        if model_dir is not None:
            shipped = load_state(key, Path(model_dir) / SHIPPED_DIR, shape)
            if shipped is not None:
                return shipped
        if use_cache:
            cached = load_state(key, shape=shape)
            if cached is not None:
                return cached
    t = float(t0) + float(dt) * np.arange(max(2, n_win))
    start = time.perf_counter()
    if simulate is not None:
        x = np.asarray(simulate())
    else:
        x = np.asarray(system.simulate(mu, list(forcings) if forcings else None, t, seed=seed))
    x0 = x[0] if n_win == 1 else x[:n_win]
    if key is not None and use_cache and time.perf_counter() - start >= min_seconds:
        store_state(key, x0)
    return x0


def data_initial_state(model: Any, case: int = 0) -> np.ndarray:
    """An initial state from what ``model`` saved about its training data, for a model with
    no simulator: kept training case ``case`` (``model.initial_states_``, see
    :mod:`engine.initial_states`), else the mean of its training states
    (``normalization_.x_mean`` broadcast to the state shape, repeated ``n_win`` times).

    Args:
        model: a fitted ``StochasticROM``.
        case: which kept training case (0..K-1; default 0).

    Returns:
        ``(*S)`` when ``model.n_win == 1``, else ``(n_win, *S)``.

    Raises:
        ValueError: the model is not fitted, ``case`` is not a kept case, or the model saved
            nothing usable.
    """
    shape = tuple(int(s) for s in getattr(model, "state_shape_", ()) or ())
    if not shape:
        raise ValueError("the model is not fitted: it has no state shape")
    n = int(getattr(model, "n_win", 1))
    kept = getattr(model, "initial_states_", None)
    x0 = getattr(kept, "x0", None)
    if x0 is not None:
        x0 = np.asarray(x0)
        if not 0 <= int(case) < x0.shape[0]:
            raise ValueError(f"case must be a kept training case in 0..{x0.shape[0] - 1}, "
                             f"got {case}")
        if tuple(x0.shape[2:]) == shape and x0.shape[1] >= n:
            window = x0[int(case)]
            return window[0].copy() if n == 1 else window[:n].copy()
    norm = getattr(model, "normalization_", None)
    mean = getattr(norm, "x_mean", None)
    if mean is None:
        raise ValueError("the model saved no initial states and no data mean")
    try:
        x = np.broadcast_to(np.asarray(mean, dtype=np.float64), shape).copy()
    except ValueError:
        raise ValueError(f"the model's data mean of shape {np.shape(mean)} does not fit its "
                         f"state shape {shape}") from None
    return x if n == 1 else np.repeat(x[None], n, axis=0)
