"""Datasets brought by the user: check an uploaded file and describe it.

GUI-free. The bytes of an upload are written to a private temporary file (the user's file
name is never used as a path) and read by :func:`engine.data.load_dataset`, which validates
the dataset contract and never unpickles anything (``allow_pickle=False``; HDF5 has no
pickles). Every problem becomes an :class:`UploadError` whose message names the file and
the reason, ready to show::

    try:
        upload = read_upload("train.npz", data)
    except UploadError as exc:
        show(str(exc))
    upload.dataset, upload.summary_markdown()

On a server, :func:`read_upload_isolated` does the reading in a separate process with a
time limit and a memory limit, so that a hostile or broken file (a zip bomb, a corrupted
HDF5 that makes the reader spin, a declared array of many GB) costs one message in one
session and nothing else: the server's event loop and memory are never involved.

Environment:
    SROM_MAX_UPLOAD_MB: the largest accepted upload in megabytes (default 200).
    SROM_UPLOAD_TIMEOUT_S: seconds the reading process may take (default 60).
    SROM_UPLOAD_MEMORY_MB: memory the reading process may use beyond its start (default 4096).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.state.safe_text import md
from engine.data import Dataset, DatasetError, load_dataset

__all__ = ["UploadError", "Upload", "read_upload", "read_upload_isolated", "max_upload_mb",
           "display_name", "SUFFIXES"]

SUFFIXES = (".npz", ".h5", ".hdf5")
ENV_MAX_MB = "SROM_MAX_UPLOAD_MB"
DEFAULT_MAX_MB = 200
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with files / an empty zip


class UploadError(ValueError):
    """An uploaded file is refused; the message says why (for the user)."""


def _positive_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def max_upload_mb() -> int:
    """``$SROM_MAX_UPLOAD_MB`` if set (a positive integer), else 200."""
    return _positive_env(ENV_MAX_MB, DEFAULT_MAX_MB)


@dataclass
class Upload:
    """An accepted upload: the file name as sent, its size and the validated dataset."""

    name: str
    size: int
    dataset: Dataset

    def summary_markdown(self) -> str:
        """Sizes, times, μ names (with ranges) and forcing channels, as Markdown."""
        d = self.dataset
        dt = np.diff(d.t)
        grid = (f"uniform step {dt[0]:.4g}" if np.allclose(dt, dt[0], rtol=1e-6)
                else f"steps {dt.min():.3g}–{dt.max():.3g}")
        ranges = d.summary()["param_ranges"]
        mu = ", ".join(f"{md(n)} ∈ [{lo:.4g}, {hi:.4g}]" for n, (lo, hi) in
                       zip(d.param_names, ranges)) or "none"
        return "<br>".join([
            f"**{md(self.name)}** accepted ({self.size / 1e6:.3g} MB)"
            + (f" · system *{md(d.system)}*" if d.system else ""),
            (f"x: shape {tuple(d.x.shape)} — {d.n_trajectories} trajectories × "
             f"{d.n_times} times × state {d.state_shape}"),
            f"t ∈ [{d.t[0]:.4g}, {d.t[-1]:.4g}], {grid}",
            f"μ: {mu}",
            f"forcing channels: {', '.join(md(n) for n in d.forcing_names) or 'none'}",
        ])


def display_name(name: str) -> str:
    """What the browser sent as a file name, reduced to a printable base name (never a
    path) of at most 120 characters."""
    base = Path(str(name).replace("\\", "/")).name or "upload"
    return "".join(c if c.isprintable() else "?" for c in base)[:120]


def _precheck(name: str, data, max_mb: int | None) -> tuple[str, str, bytes]:
    """The cheap checks (type, size, archive magic): display name, suffix and the bytes."""
    shown = display_name(name)
    suffix = Path(shown).suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadError(f"{shown}: unsupported file type '{suffix or '(none)'}'; "
                          f"upload an .npz or HDF5 (.h5, .hdf5) dataset")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UploadError(f"{shown}: the upload did not arrive as binary data")
    data = bytes(data)
    limit = max_upload_mb() if max_mb is None else int(max_mb)
    if len(data) > limit * 1_000_000:
        raise UploadError(f"{shown}: {len(data) / 1e6:.1f} MB is over the {limit} MB limit")
    if not data:
        raise UploadError(f"{shown}: the file is empty")
    if suffix == ".npz" and not data.startswith(_ZIP_MAGIC):
        # numpy would answer "contains pickled data ... allow_pickle" for any non-zip file
        raise UploadError(f"{shown}: not an .npz archive (an .npz file is a zip of .npy "
                          "arrays, as written by numpy.savez)")
    return shown, suffix, data


def read_upload_isolated(name: str, data: bytes, max_mb: int | None = None,
                         timeout_s: float | None = None, memory_mb: int | None = None) -> Upload:
    """:func:`read_upload` in a separate process with a time and a memory limit.

    The child (``python -m app.state.upload_worker``) reads the file and writes the validated
    dataset back as a plain ``.npz``, which this process reads with ``load_dataset`` (no
    pickles cross the boundary). Defaults: ``$SROM_UPLOAD_TIMEOUT_S`` (60 s) and
    ``$SROM_UPLOAD_MEMORY_MB`` (4096 MB beyond what the child's imports take).

    Raises:
        UploadError: as :func:`read_upload`, or the reading took too long, needed too much
            memory or crashed.
    """
    shown, suffix, data = _precheck(name, data, max_mb)
    timeout = float(timeout_s if timeout_s is not None else _positive_env("SROM_UPLOAD_TIMEOUT_S", 60))
    memory = int(memory_mb if memory_mb is not None else _positive_env("SROM_UPLOAD_MEMORY_MB", 4096))
    with tempfile.TemporaryDirectory(prefix="srom-upload-") as folder:
        source, result = Path(folder) / f"upload{suffix}", Path(folder) / "checked.npz"
        source.write_bytes(data)
        command = [sys.executable, "-m", "app.state.upload_worker", str(source), shown, str(result),
                   str(memory)]
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=folder)
        except subprocess.TimeoutExpired:
            raise UploadError(f"{shown}: reading it took longer than {timeout:g} s; the file "
                              "was refused") from None
        report = {}
        for line in reversed(done.stdout.splitlines()):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        if "error" in report:
            raise UploadError(str(report["error"]))
        if done.returncode != 0 or not report.get("ok") or not result.is_file():
            raise UploadError(f"{shown}: the reader stopped without an answer (exit status "
                              f"{done.returncode}; out of its {memory} MB of memory, or a crash); "
                              "the file was refused")
        dataset = load_dataset(result)
    return Upload(name=shown, size=len(data), dataset=dataset)


def read_upload(name: str, data: bytes, max_mb: int | None = None) -> Upload:
    """Validate the bytes of an uploaded ``.npz`` or HDF5 dataset.

    Args:
        name: the file name sent by the browser (only its suffix is used).
        data: the file's content.
        max_mb: the size limit in megabytes; default :func:`max_upload_mb`.

    Raises:
        UploadError: wrong type or size, not an archive of the announced kind, pickled
            content, or a dataset that breaks the contract (the message says which field).
    """
    shown, suffix, data = _precheck(name, data, max_mb)
    with tempfile.TemporaryDirectory(prefix="srom-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            dataset = load_dataset(path)
        except DatasetError as exc:
            text = str(exc).replace(str(path), shown)
            if not text.startswith(shown):  # a contract violation names the field only
                text = f"{shown}: {text}"
            if "allow_pickle" in text or "pickled" in text:
                text = (f"{shown}: holds pickled Python objects (object arrays); "
                        "they are never loaded — save plain numeric and string arrays")
            raise UploadError(text) from None
        except Exception as exc:  # noqa: BLE001 - any reader failure is the file's fault
            raise UploadError(f"{shown}: could not be read ({type(exc).__name__}: {exc})"
                              .replace(str(path), shown)) from None
    return Upload(name=shown, size=len(data), dataset=dataset)
