"""Checks on dataset files that someone else made, before anything is read from them.

An HDF5 file can point outside itself (external storage of a dataset's bytes in another
file — ``/etc/passwd``, say —, external and soft links, virtual datasets mapping other
files), and both HDF5 and ``.npz`` files can declare arrays far larger than the file (a
4 KB HDF5 file declaring a (4, 40, 10⁷) array, a zip whose members inflate to gigabytes).
These functions reject all of that from the metadata alone, so a bad file costs one clear
error and no memory. The limit on the bytes a dataset file may declare is
``SROM_MAX_DATASET_BYTES`` (default 8 GiB).
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["max_dataset_bytes", "check_h5_field", "check_h5_attribute", "check_npz_members"]

DEFAULT_MAX_BYTES = 8 * 2**30
MAX_ATTRIBUTE_BYTES = 2**20


def env_bytes(name: str, default: int) -> int:
    """A positive byte count from the environment variable ``name`` (``default`` if unset).

    Raises:
        ValueError: the variable is not a positive integer.
    """
    text = os.environ.get(name, "")
    try:
        value = int(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a number of bytes, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def max_dataset_bytes() -> int:
    """The most bytes a dataset file may declare (``$SROM_MAX_DATASET_BYTES``)."""
    return env_bytes("SROM_MAX_DATASET_BYTES", DEFAULT_MAX_BYTES)


def _declared(shape, itemsize: int) -> int:
    return math.prod(int(s) for s in shape) * int(itemsize)


def _size_text(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def check_h5_field(h5, key: str, names: bool = False) -> int:
    """Check the field ``key`` of an open ``h5py.File`` before it is read.

    Args:
        h5: the open file.
        key: a top-level name.
        names: a list of strings (else a numeric array).

    Returns:
        The bytes its array declares.

    Raises:
        ValueError: naming the field: a link, a group, external storage, a virtual
            dataset, a non-numeric (or, for names, non-string) type, or more bytes than
            :func:`max_dataset_bytes`.
    """
    import h5py

    link = h5.get(key, getlink=True)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        raise ValueError(f"field '{key}' is a {type(link).__name__}: datasets must be stored "
                         "in the file itself")
    obj = h5.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"field '{key}' is not an array (found a {type(obj).__name__})")
    if obj.is_virtual:
        raise ValueError(f"field '{key}' is a virtual dataset (it maps other files): "
                         "store the data in the file itself")
    if obj.external:
        raise ValueError(f"field '{key}' keeps its bytes in external files: store the data "
                         "in the file itself")
    kind = obj.dtype.kind
    allowed = "SOU" if names else "biuf"
    if kind not in allowed or (kind == "O" and h5py.check_string_dtype(obj.dtype) is None):
        what = "strings" if names else "numbers"
        raise ValueError(f"field '{key}' holds {obj.dtype} values, expected {what}")
    itemsize = obj.dtype.itemsize if kind != "O" else 256  # variable-length strings: bounded below
    declared = _declared(obj.shape, itemsize)
    if declared > max_dataset_bytes():
        raise ValueError(f"field '{key}' declares shape {obj.shape} of {obj.dtype} "
                         f"({_size_text(declared)}), over the limit of "
                         f"{_size_text(max_dataset_bytes())} (SROM_MAX_DATASET_BYTES)")
    return declared


def check_h5_attribute(h5, key: str) -> None:
    """Reject an attribute of the file whose stored size exceeds 1 MiB before reading it."""
    size = h5.attrs.get_id(key).get_storage_size()
    if size > MAX_ATTRIBUTE_BYTES:
        raise ValueError(f"attribute '{key}' stores {_size_text(size)}, over the 1 MiB limit")


def check_npz_members(path: Path) -> int:
    """Read the header of every array of an ``.npz`` file and bound what it declares.

    Returns:
        The bytes all members declare together.

    Raises:
        ValueError: a member that is not an ``.npy`` array, holds objects, declares more
            bytes than its stored uncompressed size (a forged header) or, with the others,
            more than :func:`max_dataset_bytes`.
    """
    limit, total = max_dataset_bytes(), 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                except ValueError as exc:
                    raise ValueError(f"member '{name}' is not a .npy array ({exc})") from exc
                header = member.tell()
            if dtype.hasobject:
                raise ValueError(f"member '{name}' holds pickled Python objects, which are "
                                 "never loaded")
            declared = _declared(shape, dtype.itemsize)
            if declared > info.file_size - header:
                raise ValueError(f"member '{name}' declares shape {shape} of {dtype} "
                                 f"({_size_text(declared)}) but stores "
                                 f"{_size_text(info.file_size - header)}")
            total += declared
            if total > limit:
                raise ValueError(f"the arrays declare {_size_text(total)} (at '{name}'), over "
                                 f"the limit of {_size_text(limit)} (SROM_MAX_DATASET_BYTES)")
    return total
