"""Simulator calls of the dashboard, cached: initial states and truth trajectories.

GUI-free. The model needs an initial state x0 for every prediction, and the truth overlay
needs a full simulator trajectory; both depend only on (system settings, μ, forcing, times,
seed), so they are kept in a small process-wide LRU cache shared by all sessions, bounded in
entries and in bytes (a cylinder truth over a trained span is ~57 MB). Cached arrays are
read-only. Identical requests that arrive while the first is still simulating (a class
opening the same link) wait for that one simulation instead of starting their own: they see
its progress through their own reporter (so their progress bars move and their cancel still
stops their wait), and if the simulating request is cancelled, a waiting one takes over.
Initial states that are slow to make (the cylinder's spin-up) are also looked up among the
states shipped with the model and in the user's disk cache, and stored there once made
(:func:`engine.state_cache.simulator_initial_state`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.forcing import Forcing
from engine.state_cache import simulator_initial_state
from engine.systems.progress import (
    SimulationCancelled,
    current_reporter,
    report_progress,
    reporting,
)

__all__ = ["initial_state", "simulate_truth", "clear_cache", "cache_info"]

_MAX_ENTRIES = 64
#: bytes the cached arrays may hold together (the newest one is kept even when larger)
_MAX_BYTES = 512 * 2**20
_cache: OrderedDict[Hashable, np.ndarray] = OrderedDict()
_lock = threading.Lock()
#: how often a waiting request looks at the running simulation's progress (seconds)
_WAIT_POLL_S = 0.05


@dataclass
class _Running:
    """A simulation in progress: its result to come and its latest progress report."""

    result: Future = field(default_factory=Future)
    progress: tuple[float, float, str] | None = None


#: simulations running now, by key: later identical requests wait on these
_in_flight: dict[Hashable, _Running] = {}
_stats = {"hits": 0, "misses": 0, "shared": 0}


def _system_key(system) -> str:
    return system.system_name + ":" + json.dumps(system.config(), sort_keys=True)


def _key(kind: str, system, mu: np.ndarray, forcings: Sequence[Forcing], t: np.ndarray,
         seed: int, extra: Any = None) -> Hashable:
    forcing_json = json.dumps([f.to_dict() for f in forcings], sort_keys=True)
    return (kind, _system_key(system), np.asarray(mu, np.float64).tobytes(), forcing_json,
            np.asarray(t, np.float64).tobytes(), int(seed), extra)


def _cached(key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
    while True:
        with _lock:
            if key in _cache:
                _cache.move_to_end(key)
                _stats["hits"] += 1
                return _cache[key]
            running = _in_flight.get(key)
            if running is None:
                mine = _in_flight[key] = _Running()
                break
            _stats["shared"] += 1
        value = _wait_for(running)
        if value is not None:
            return value
        # the simulating request was cancelled, not this one: simulate (or wait) anew
    return _compute_and_store(key, mine, compute)


def _wait_for(running: _Running) -> np.ndarray | None:
    """The result of another request's identical simulation (``None`` if that request was
    cancelled); its progress is passed to this thread's reporter meanwhile, so this request's
    progress shows and its cancel works.

    Raises:
        SimulationCancelled: this request was cancelled while it waited.
        Exception: the simulation's own error.
    """
    while True:
        try:
            return running.result.result(timeout=_WAIT_POLL_S)
        except SimulationCancelled:
            return None
        except TimeoutError:
            if running.progress is not None:
                report_progress(*running.progress)


def _compute_and_store(key: Hashable, mine: _Running,
                       compute: Callable[[], np.ndarray]) -> np.ndarray:
    outer = current_reporter()

    def relay(done: float, total: float, phase: str) -> None:
        mine.progress = (done, total, phase)
        if outer is not None:
            outer(done, total, phase)

    try:
        with reporting(relay):
            value = np.asarray(compute())
        value.flags.writeable = False
    except BaseException as error:
        with _lock:
            del _in_flight[key]
        # waiters get the simulation's own error; an interrupt of this thread only (Ctrl-C,
        # SystemExit) makes them simulate anew instead of being raised in their threads
        mine.result.set_exception(error if isinstance(error, Exception)
                                  else SimulationCancelled("the simulating request stopped"))
        raise
    with _lock:
        _stats["misses"] += 1
        _cache[key] = value
        del _in_flight[key]
        size = sum(v.nbytes for v in _cache.values())
        while len(_cache) > 1 and (len(_cache) > _MAX_ENTRIES or size > _MAX_BYTES):
            size -= _cache.popitem(last=False)[1].nbytes
    mine.result.set_result(value)
    return value


def initial_state(system, mu: np.ndarray, forcings: Sequence[Forcing], t0: float, dt: float,
                  n_win: int = 1, seed: int = 0, model_dir: str | None = None) -> np.ndarray:
    """The simulator's initial state for ``mu`` and ``forcings``.

    Args:
        system: an ``engine.systems.System``.
        mu: ``(P,)`` parameters; forcings: one ``Forcing`` per channel.
        t0, dt: start time and step of the model's training grid.
        n_win: snapshots the model's encoder reads.
        seed: seed of the simulator noise.
        model_dir: the model's directory (states shipped with it are used).

    Returns:
        ``(*S)`` when ``n_win == 1``, else ``(n_win, *S)``.
    """
    n = max(2, int(n_win))
    t = t0 + dt * np.arange(n)

    def compute() -> np.ndarray:
        return simulator_initial_state(system, mu, forcings, t0, dt, n_win, seed,
                                       model_dir=model_dir)

    return _cached(_key("x0", system, mu, forcings, t, seed, n_win), compute)


def simulate_truth(system, mu: np.ndarray, forcings: Sequence[Forcing], t: np.ndarray,
                   seed: int = 0) -> np.ndarray:
    """``(T, *S)`` the simulator trajectory on ``t`` (cached)."""
    return _cached(_key("truth", system, mu, forcings, t, seed),
                   lambda: system.simulate(mu, list(forcings) if forcings else None, t, seed=seed))


def clear_cache() -> None:
    """Forget every cached simulation."""
    with _lock:
        _cache.clear()
        _stats.update(hits=0, misses=0, shared=0)


def cache_info() -> dict[str, int]:
    """``{"hits", "misses", "shared", "size"}`` of the simulation cache (``shared``: requests
    that waited for an identical simulation already running)."""
    with _lock:
        return {**_stats, "size": len(_cache)}
