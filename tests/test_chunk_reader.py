"""Direct reads of uncompressed HDF5 chunks (engine/chunk_reader.py) against h5py's reads."""

import os

import h5py
import numpy as np
import pytest

from engine.chunk_reader import ChunkReader
from engine.data import DatasetError
from engine.streaming import StreamingDataset

N, T, S = 7, 53, (3, 5)


def write(path, dtype="<f4", chunks=(1, 8, *S), compression=None, fill=None, skip=()):
    """A dataset file with states ``x`` (N, T, *S) stored as asked; the trajectories in
    ``skip`` are never written (their chunks stay unallocated)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, T, *S)).astype(dtype)
    with h5py.File(path, "w") as h5:
        h5["t"] = np.linspace(0.0, 1.0, T)
        d = h5.create_dataset("x", shape=x.shape, dtype=dtype, chunks=chunks,
                              compression=compression, fillvalue=fill)
        for i in range(N):
            if i not in skip:
                d[i] = x[i]
    return x


def runs():
    """Runs of snapshots inside one chunk, across chunk borders, at both ends, and whole."""
    return [(0, 0, 5), (1, 6, 11), (2, 7, 25), (6, 40, 53), (3, 0, 53), (5, 52, 53)]


@pytest.mark.parametrize("layout", [
    dict(chunks=(1, 8, *S)),            # a chunk per trajectory and 8 snapshots
    dict(chunks=(3, 5, *S)),            # several trajectories per chunk, edge chunks
    dict(chunks=None),                  # contiguous
    dict(chunks=(2, 11, *S), dtype=">f8"),  # big-endian doubles
    dict(chunks=(1, 53, *S), dtype="<i2"),  # integers, a chunk per trajectory
])
def test_direct_reads_give_what_h5py_reads(tmp_path, layout):
    path = tmp_path / "x.h5"
    x = write(path, **layout)
    with StreamingDataset(path) as source:
        assert source._direct is not None and source.cache_bytes == 0
        for i, a, b in runs():
            out = np.full((b - a, *S), 99, x.dtype)
            source.read_into(out, i, a, b)  # the stored dtype: the direct path
            np.testing.assert_array_equal(out, x[i, a:b])
            assert out.dtype == x.dtype
            as_float64 = np.empty((b - a, *S))  # another dtype: through h5py
            source.read_into(as_float64, i, a, b)
            np.testing.assert_array_equal(as_float64, x[i, a:b].astype(np.float64))


def test_compressed_and_partial_chunks_fall_back_to_h5py(tmp_path):
    path = tmp_path / "gz.h5"
    x = write(path, compression="gzip")
    with StreamingDataset(path) as source:
        assert source._direct is None and source.cache_bytes > 0  # filtered: through HDF5
        out = np.empty((20, *S), np.float32)
        source.read_into(out, 4, 30, 50)
        np.testing.assert_array_equal(out, x[4, 30:50])
    path = tmp_path / "split.h5"
    write(path, chunks=(1, 8, 3, 1))  # chunks split the state: not read directly
    with StreamingDataset(path) as source:
        assert source._direct is None and source.cache_bytes == 0


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    path = tmp_path / "holes.h5"
    x = write(path, fill=2.5, skip=(2,))
    with StreamingDataset(path) as source:
        out = np.empty((10, *S), np.float32)
        source.read_into(out, 2, 3, 13)  # unallocated chunks: h5py gives the fill value
        assert (out == 2.5).all()
        source.read_into(out, 3, 3, 13)
        np.testing.assert_array_equal(out, x[3, 3:13])


def test_a_file_truncated_after_opening_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.h5"
    write(path)
    with StreamingDataset(path) as source:
        os.truncate(path, path.stat().st_size // 2)
        out = np.empty((T, *S), np.float32)
        with pytest.raises(DatasetError, match="cut.h5: the file ended while reading trajectory"):
            for i in range(N):
                source.read_into(out, i, 0, T)


def test_reads_check_the_buffer_and_the_reader_closes(tmp_path):
    path = tmp_path / "x.h5"
    write(path)
    with h5py.File(path, "r") as h5:
        reader = ChunkReader.open(h5, h5["x"], path, max_index_bytes=2**20)
        assert reader is not None and reader.index_bytes == N * 7 * 8  # 7 runs of 8 snapshots
        with pytest.raises(ValueError, match="C-contiguous array of float32"):
            reader.read(np.empty((4, *S)), 0, 0, 4)
        with pytest.raises(ValueError, match="C-contiguous"):
            reader.read(np.empty((4, S[1], S[0]), np.float32).transpose(0, 2, 1), 0, 0, 4)
        reader.close()
        reader.close()  # idempotent
        with pytest.raises(DatasetError, match="closed"):
            reader.read(np.empty((4, *S), np.float32), 0, 0, 4)
        # an index larger than allowed: read through h5py instead
        assert ChunkReader.open(h5, h5["x"], path, max_index_bytes=N * 7 * 8 - 1) is None


def test_a_chunk_index_pointing_past_the_file_is_refused(tmp_path, monkeypatch):
    """The index is checked against the file's size before any read (here the size is
    made to look smaller than where the last chunks lie)."""
    import engine.chunk_reader as module

    path = tmp_path / "x.h5"
    write(path)
    real = os.fstat

    class Short:
        def __init__(self, fd):
            self.st_size = real(fd).st_size // 2

    monkeypatch.setattr(module.os, "fstat", Short)
    expected = r"x.h5: field 'x': the chunk at \(.*\) is stored as .* truncated or corrupt"
    with pytest.raises(DatasetError, match=expected):
        StreamingDataset(path)
