"""The model catalog: find saved models, load them once per process, match their simulator.

GUI-free. A *model directory* is any directory holding ``config.json`` (written by
``StochasticROM.save``). Two roots are searched:

* the pretrained models (:func:`pretrained_dir`): ``$SROM_PRETRAINED_DIR`` if set, else
  ``pretrained/`` of the source checkout the code runs from, else ``~/.srom/pretrained``
  (an installed wheel does not carry the ~50 MB of models: copy or link a checkout's
  ``pretrained/`` there, or point ``$SROM_PRETRAINED_DIR`` at it), and
* the user's models directory: ``$SROM_MODELS_DIR`` if set, else ``~/.srom/models``.

Loaded models are kept in a small process-wide LRU cache keyed by the directory, the
modification time of its files and the serving device (``$SROM_DEVICE``: ``auto``, the
default, predicts on the GPU when there is one; ``cpu`` or ``cuda`` force one), so every
dashboard session shares one read-only copy and a re-trained model is picked up. Prediction
calls on a shared model are serialized by a lock (the rollout engine caches per-shape
state). Whoever adds a model (the Train tab) calls :func:`notify_changed`; sessions compare
:func:`generation` with the value they last saw and re-discover when it moved.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.io import CONFIG_NAME, WEIGHTS_NAME, ModelFileError, load_config
from engine.model import StochasticROM, load_model

__all__ = [
    "ModelEntry", "model_key", "pretrained_dir", "user_models_dir", "model_roots", "discover_models",
    "default_model", "load_cached", "model_lock", "clear_cache",
    "serving_device", "ENV_DEVICE", "ENV_MODELS_DIR", "ENV_PRETRAINED_DIR",
    "notify_changed", "generation",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_MODELS_DIR = "SROM_MODELS_DIR"
ENV_PRETRAINED_DIR = "SROM_PRETRAINED_DIR"
#: directories deeper than this below a root are not searched (keeps discovery fast)
MAX_DEPTH = 3


@dataclass(frozen=True)
class ModelEntry:
    """One discovered model directory.

    Attributes:
        path: absolute directory path.
        label: what the model picker shows, e.g. ``"burgers — pretrained/burgers"``.
        system: the simulator name recorded in the config (``None`` for custom data).
        source: ``"pretrained"`` or ``"user"``.
    """

    path: str
    label: str
    system: str | None
    source: str


def model_key(entry: ModelEntry) -> str:
    """The public name of a model: ``pretrained/<folder>`` or ``user/<folder>`` (the
    directory below its root, never a server path). What the page's model picker holds (a
    select sends its values to the browser) and what a shared URL names."""
    root = pretrained_dir() if entry.source == "pretrained" else user_models_dir()
    try:
        rel = Path(entry.path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        rel = Path(entry.path).name
    return f"{entry.source}/{rel}"


def pretrained_dir() -> Path:
    """Where the pretrained models are looked for, first match wins:

    1. ``$SROM_PRETRAINED_DIR`` if set (``~`` expanded; a missing folder logs a warning
       and holds no models);
    2. ``<checkout>/pretrained`` when the code runs from a source checkout (a folder with
       ``pyproject.toml`` beside ``app/`` and ``engine/``, as with ``pip install -e``);
    3. ``~/.srom/pretrained`` (an installed wheel: the models are not package data).
    """
    env = os.environ.get(ENV_PRETRAINED_DIR, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            _warn_missing_pretrained(str(path))
        return path
    checkout = REPO_ROOT / "pretrained"
    if (REPO_ROOT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return Path.home() / ".srom" / "pretrained"


@functools.lru_cache(maxsize=8)
def _warn_missing_pretrained(path: str) -> None:
    # once per path: the catalog is re-read on every model discovery
    logging.getLogger(__name__).warning(
        "$%s is %s, which is not a folder: no pretrained models are listed",
        ENV_PRETRAINED_DIR, path)


def user_models_dir() -> Path:
    """``$SROM_MODELS_DIR`` if set, else ``~/.srom/models``."""
    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env).expanduser() if env else Path.home() / ".srom" / "models"


def model_roots() -> list[tuple[str, Path]]:
    """The searched roots as ``(source, path)``, pretrained first."""
    return [("pretrained", pretrained_dir()), ("user", user_models_dir())]


def _model_dirs(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        visible = sorted(d for d in dirnames if not d.startswith("."))
        dirnames[:] = visible if depth < MAX_DEPTH else []
        if CONFIG_NAME in filenames:
            found.append(Path(dirpath))
    return found


def discover_models(roots: Sequence[tuple[str, Path]] | None = None) -> list[ModelEntry]:
    """Every model directory under ``roots`` (default :func:`model_roots`), in root order.

    Directories whose ``config.json`` cannot be read are skipped (a half-written model
    must not break the dashboard).
    """
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for source, root in roots if roots is not None else model_roots():
        root = Path(root)
        if not root.is_dir():
            continue
        for directory in _model_dirs(root):
            path = str(directory.resolve())
            if path in seen:
                continue
            try:
                config = load_config(directory)
            except ModelFileError:
                continue
            seen.add(path)
            system = config.get("system") if isinstance(config, dict) else None
            where = directory.relative_to(root).as_posix()
            where = root.name if where == "." else f"{root.name}/{where}"
            label = f"{system or 'custom data'} — {where}"
            entries.append(ModelEntry(path=path, label=label, system=system, source=source))
    return entries


def default_model(entries: Sequence[ModelEntry], prefer: str = "burgers") -> ModelEntry | None:
    """The model shown first: a pretrained ``prefer`` model, else any ``prefer`` model, else
    the first pretrained one, else the first one; ``None`` when there are none."""
    for test in (lambda e: e.source == "pretrained" and e.system == prefer,
                 lambda e: e.system == prefer,
                 lambda e: e.source == "pretrained",
                 lambda e: True):
        for entry in entries:
            if test(entry):
                return entry
    return None


def _stamp(path: Path) -> tuple[int, int]:
    return (path / CONFIG_NAME).stat().st_mtime_ns, (path / WEIGHTS_NAME).stat().st_mtime_ns


ENV_DEVICE = "SROM_DEVICE"


def serving_device() -> str:
    """Where the dashboard's models predict: ``$SROM_DEVICE`` (``auto``, ``cpu`` or
    ``cuda``; default ``auto``) resolved to ``cpu`` or ``cuda``.

    Raises:
        ValueError: an unknown value, or ``cuda`` without a GPU.
    """
    from engine.model import resolve_device

    value = os.environ.get(ENV_DEVICE, "auto").strip().lower() or "auto"
    if value not in ("auto", "cpu", "cuda"):
        raise ValueError(f"${ENV_DEVICE} must be auto, cpu or cuda, got {value!r}")
    return resolve_device(value).type


@functools.lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[int, int], device: str) -> StochasticROM:
    return load_model(path, device=device)


_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def load_cached(path: str | os.PathLike) -> StochasticROM:
    """The model in ``path``, loaded once per process (on :func:`serving_device`) and shared
    read-only.

    Raises:
        ModelFileError: missing or corrupt files (see :func:`engine.load_model`).
    """
    directory = Path(path).resolve()
    try:
        stamp = _stamp(directory)
    except OSError as exc:
        raise ModelFileError(f"{directory}: cannot read the model files ({exc})") from exc
    return _load(str(directory), stamp, serving_device())


def model_lock(model: StochasticROM) -> threading.Lock:
    """The lock that serializes ``predict`` calls on a shared model."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(model), threading.Lock())


def clear_cache() -> None:
    """Forget every loaded model (tests, or after deleting models)."""
    _load.cache_clear()


_GENERATION = [0]


def notify_changed() -> None:
    """Record that a model directory was added or removed (any thread)."""
    with _LOCKS_GUARD:
        _GENERATION[0] += 1


def generation() -> int:
    """A process-wide counter bumped by :func:`notify_changed`: a session whose last seen
    value differs should call :func:`discover_models` again."""
    with _LOCKS_GUARD:
        return _GENERATION[0]
