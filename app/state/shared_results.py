"""Predictions shared between sessions: the same request gets the same result object.

Every new page of the dashboard predicts once before it is sent (the default model at its
default inputs, or a shared URL's), on the server's event loop that all sessions share: a
third of the cost of a new page (``benchmarks/ui_page_cost.py``), and the same numbers for
every page opened at the same inputs (a prediction is seeded). This small cache keeps the
last few synchronous predictions, keyed by what was asked (the model object itself, its
inputs as JSON, the kept paths), so that pages opened alike reuse them.

A cached :class:`~app.state.explore.ExploreResult` is shared: nobody may change it in
place (the app never does; a comparison with the simulator writes into a fresh result, and
such requests are not cached). Its ``seconds`` stays the time the prediction took when it
was made.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["SharedResults", "shared_results"]


class SharedResults:
    """A thread-safe LRU of ``(result, notes)`` per prediction request.

    Args:
        size: most requests kept (default 8); 0 keeps none.
    """

    def __init__(self, size: int = 8, max_bytes: int = 256 * 2**20):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.size = int(size)
        #: a result whose arrays are larger is not kept (a cylinder prediction's samples
        #: can be hundreds of MB), and the kept ones together stay under it
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, tuple[Any, Any, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(req: Any) -> str | None:
        """The cache key of a :class:`~app.state.explore.PredictRequest`, or ``None`` for
        one that is not shared (a comparison with the simulator)."""
        if req.show_truth:
            return None
        return json.dumps({"inputs": req.inputs, "n_keep": int(req.n_keep),
                           "t": [float(req.t[0]), float(req.t[-1]), int(req.t.size)]},
                          sort_keys=True, default=str)

    def get_or_compute(self, req: Any, compute: Callable[[Any], tuple[Any, list[str]]]
                       ) -> tuple[Any, list[str]]:
        """``compute(req)``, or the result of an equal earlier request for the same model
        object (a model saved again under the same name is a new object: not a hit)."""
        key = self.key(req) if self.size else None
        if key is not None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] is req.model:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[1], list(entry[2])
        result, notes = compute(req)
        size = _array_bytes(result)
        if key is not None and size <= self.max_bytes:
            with self._lock:
                # the model is held with its result: its id cannot name another model
                self._entries[key] = (req.model, result, list(notes))
                self._entries.move_to_end(key)
                while len(self._entries) > self.size or (
                        sum(_array_bytes(e[1]) for e in self._entries.values()) > self.max_bytes):
                    self._entries.popitem(last=False)
        return result, notes

    def clear(self) -> None:
        """Forget every kept result."""
        with self._lock:
            self._entries.clear()


def _array_bytes(result: Any) -> int:
    """Bytes of the NumPy arrays a result holds as attributes (0 for other objects)."""
    fields = getattr(result, "__dict__", {})
    return sum(int(v.nbytes) for v in fields.values() if isinstance(v, np.ndarray))


#: the process-wide cache of the served dashboard's sessions
shared_results = SharedResults()
