"""What a model costs to run, as the model picker shows it.

GUI-free. Three figures, each for what it is:

* the number of weights, read from the header of the model's ``model.safetensors``
  (no tensor is loaded; cached per file and modification time);
* the prediction time per sample path **measured on this server**: every full prediction
  of the dashboard is recorded per model and device (:func:`record`), and the median of the
  recorded ones, scaled to 100 output times, is shown (:func:`measured`); until a model has
  predicted here there is no figure, and the text says so;
* the training run recorded in the model (steps, seconds, device), when there is one.

A GPU's prediction time is not guessed: only devices this server has run on are reported.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.io import WEIGHTS_NAME

__all__ = ["weight_count", "record", "measured", "cost_text", "clear"]

#: largest safetensors header read (bytes); a longer one is not a model of ours
MAX_HEADER_BYTES = 16 * 2**20
#: recorded predictions kept per model and device (the median of these is shown)
MAX_RECORDS = 9

_lock = threading.Lock()
_records: dict[tuple[str, str], list[float]] = defaultdict(list)
_weights: dict[tuple[str, float], int | None] = {}


def weight_count(model_dir: str | os.PathLike) -> int | None:
    """The number of weights in ``model_dir``'s safetensors file, from its header; ``None``
    when the file is missing or its header is not a safetensors header."""
    path = Path(model_dir) / WEIGHTS_NAME
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    with _lock:
        if key in _weights:
            return _weights[key]
    count = _read_weight_count(path)
    with _lock:
        _weights[key] = count
    return count


def _read_weight_count(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if not 0 < n <= MAX_HEADER_BYTES:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            return None
        total += int(np.prod(shape, dtype=np.int64)) if shape else 1
    return total


def record(model_path: str, device: str, seconds: float, n_paths: int, n_times: int) -> None:
    """Record one full prediction: ``n_paths`` paths over ``n_times`` output times took
    ``seconds`` on ``device`` (``cpu``, ``cuda``)."""
    if not (seconds > 0 and n_paths > 0 and n_times > 1):
        return
    per_path_100 = float(seconds) / int(n_paths) * 100.0 / int(n_times)
    with _lock:
        values = _records[(str(model_path), str(device))]
        values.append(per_path_100)
        del values[:-MAX_RECORDS]


def measured(model_path: str, device: str) -> tuple[float, int] | None:
    """``(median seconds per sample path per 100 output times, predictions recorded)`` of
    the model on ``device``, or ``None`` before its first prediction there."""
    with _lock:
        values = list(_records.get((str(model_path), str(device)), ()))
    if not values:
        return None
    return float(np.median(values)), len(values)


def clear() -> None:
    """Forget every record (tests)."""
    with _lock:
        _records.clear()
        _weights.clear()


def _si(n: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{n:.0f}"


def cost_text(model: Any, model_path: str, device: str, threads: int | None = None) -> str:
    """One or two lines: weights, the measured prediction time per path here, and the
    recorded training run."""
    parts = []
    weights = weight_count(model_path)
    if weights is not None:
        parts.append(f"{_si(weights)} weights")
    where = device.upper() if device == "cpu" else device
    if threads is not None and device == "cpu":
        where += f", {threads} thread{'s' if threads != 1 else ''}"
    seen = measured(model_path, device)
    if seen is None:
        parts.append(f"prediction time here ({where}): measured at its first prediction")
    else:
        per_path, n = seen
        parts.append(f"≈ {1e3 * per_path:.3g} ms per sample path per 100 output times, "
                     f"measured here ({where}; median of {n} prediction{'s' if n > 1 else ''})")
    training = getattr(model, "training_", None) or {}
    if isinstance(training.get("seconds"), (int, float)) and training.get("steps"):
        name = training.get("device_name") or training.get("device") or "?"
        parts.append(f"trained {int(training['steps'])} steps in {training['seconds']:.0f} s "
                     f"on {name}")
    return " · ".join(parts)
