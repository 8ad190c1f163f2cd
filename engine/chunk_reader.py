"""Windows of an uncompressed HDF5 dataset read with ``os.preadv``, beside the HDF5 library.

Two things make reading random windows through h5py slow, whatever the disk:

* h5py holds one global lock around every HDF5 call, so reader threads take turns;
* a partial read of a chunk that is not in the chunk cache reads the whole chunk when it
  fits the cache (a 128 KB window of a 1 MiB chunk costs 1 MiB of copying).

For an unfiltered (uncompressed) dataset the bytes of each chunk lie at a fixed offset in
the file, in C order. :class:`ChunkReader` reads the chunk index once (where each chunk
starts), checks it against the file, and then reads exactly the bytes of a run of
snapshots with ``os.preadv`` on a duplicate of HDF5's own file descriptor (the very file
HDF5 opened, even if the path was replaced since). That call takes no lock and releases
the GIL, so several reader threads read in parallel.

It applies when the dataset is chunked (or contiguous) with no filter, its chunks span the
whole state (``chunks[2:] == shape[2:]``, as :func:`engine.streaming.save_sharded` writes
them), its values are plain numbers, the file uses HDF5's default (sec2) driver and the
platform has ``os.preadv``; otherwise :meth:`ChunkReader.open` returns ``None`` and the
caller reads through h5py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from engine.data import DatasetError

__all__ = ["ChunkReader"]

_UNALLOCATED = -1


class ChunkReader:
    """Direct reads of runs of snapshots ``x[i, a:b]`` of an unfiltered HDF5 dataset.

    Build it with :meth:`open`. Thread-safe: :meth:`read` keeps no state between calls.

    Attributes:
        dtype: the stored dtype (with its byte order); :meth:`read` fills arrays of it.
        index_bytes: host memory of the chunk index.
    """

    def __init__(self, path: Path, fd: int, offsets: np.ndarray, chunk_rows: tuple[int, int],
                 dtype: np.dtype, snapshot_bytes: int, file_bytes: int):
        self.path, self._fd = path, fd
        self._offsets = offsets  # (trajectory chunks, time chunks) byte offsets, -1: none
        self._cn, self._ct = chunk_rows
        self.dtype = dtype
        self._snapshot = snapshot_bytes
        self._file_bytes = file_bytes
        self.index_bytes = int(offsets.nbytes)

    @classmethod
    def open(cls, h5, x, path: Path, max_index_bytes: int) -> ChunkReader | None:
        """A reader for the dataset ``x`` of the open ``h5py.File`` ``h5``, or ``None`` where
        direct reads do not apply (see the module docstring) or the chunk index would take
        more than ``max_index_bytes``.

        Raises:
            DatasetError: the chunk index contradicts the dataset (a chunk of the wrong
                size, a filtered chunk, or one past the end of the file).
        """
        import h5py

        if not hasattr(os, "preadv") or h5.driver != "sec2" or x.dtype.kind not in "fiu":
            return None
        n, t, *state = (int(s) for s in x.shape)
        plist = x.id.get_create_plist()
        layout = plist.get_layout()
        if layout == h5py.h5d.CHUNKED:
            if plist.get_nfilters() or tuple(x.chunks[2:]) != tuple(state):
                return None
            cn, ct = int(x.chunks[0]), int(x.chunks[1])
        elif layout == h5py.h5d.CONTIGUOUS:
            cn, ct = n, t
        else:  # compact: tiny, kept in the object header
            return None
        grid = (math.ceil(n / cn), math.ceil(t / ct))
        if math.prod(grid) * 8 > max_index_bytes:
            return None
        snapshot = math.prod(state) * x.dtype.itemsize
        chunk_bytes = cn * ct * snapshot
        fd = os.dup(h5.id.get_vfd_handle())
        try:
            file_bytes = os.fstat(fd).st_size
            offsets = np.full(grid, _UNALLOCATED, np.int64)

            def place(coords, filter_mask, offset, size) -> None:
                if filter_mask or size != chunk_bytes or offset is None or offset < 0 \
                        or offset + size > file_bytes or any(coords[2:]) \
                        or coords[0] % cn or coords[1] % ct:
                    raise DatasetError(
                        f"{path}: field 'x': the chunk at {tuple(coords)} is stored as "
                        f"{size} bytes at offset {offset} (expected {chunk_bytes} bytes "
                        f"within the file's {file_bytes}): the file is truncated or corrupt")
                offsets[coords[0] // cn, coords[1] // ct] = offset

            if layout == h5py.h5d.CONTIGUOUS:
                offset = x.id.get_offset()
                if offset is None:  # never written: HDF5 gives fill values
                    os.close(fd)
                    return None
                place((0, 0), 0, int(offset), chunk_bytes)
            elif hasattr(x.id, "chunk_iter"):
                x.id.chunk_iter(lambda c: place(c.chunk_offset, c.filter_mask,
                                                c.byte_offset, c.size))
            else:  # pragma: no cover - HDF5 before 1.14
                for k in range(x.id.get_num_chunks()):
                    c = x.id.get_chunk_info(k)
                    place(c.chunk_offset, c.filter_mask, c.byte_offset, c.size)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, offsets, (cn, ct), x.dtype, snapshot, file_bytes)

    def read(self, out: np.ndarray, traj: int, start: int, stop: int) -> bool:
        """Read the stored states ``x[traj, start:stop]`` into ``out``.

        Args:
            out: ``(stop - start, *S)`` C-contiguous, of :attr:`dtype`.

        Returns:
            ``False`` (and ``out`` partly filled) where the run touches a chunk that was
            never written: HDF5 gives its fill value, read it through h5py.

        Raises:
            DatasetError: the file ended early (truncated since it was opened).
        """
        if self._fd < 0:
            raise DatasetError(f"{self.path}: the streaming dataset is closed")
        if out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous array of {self.dtype}, got "
                             f"{out.dtype} (C-contiguous: {out.flags.c_contiguous})")
        flat = out.reshape(-1).view(np.uint8)
        i_chunk, i_within = divmod(traj, self._cn)
        pos = start
        while pos < stop:
            c_time, t_within = divmod(pos, self._ct)
            end = min(stop, pos - t_within + self._ct)
            base = int(self._offsets[i_chunk, c_time])
            if base == _UNALLOCATED:
                return False
            offset = base + (i_within * self._ct + t_within) * self._snapshot
            want = (end - pos) * self._snapshot
            lo = (pos - start) * self._snapshot
            got = os.preadv(self._fd, [flat[lo:lo + want].data], offset)
            if got != want:
                raise DatasetError(f"{self.path}: the file ended while reading trajectory "
                                   f"{traj}, snapshots {pos}..{end - 1}: it was truncated")
            pos = end
        return True

    def close(self) -> None:
        """Close the duplicate descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
