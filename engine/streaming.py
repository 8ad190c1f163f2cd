"""Datasets larger than memory: states stay in a chunked HDF5 file and are read as needed.

:class:`StreamingDataset` opens an HDF5 dataset file (the layout of :mod:`engine.data`)
and keeps only the small fields in memory: times ``t`` (T,), parameters ``mu`` (N, P) and
forcing ``f`` (N, T, F). The states ``x`` (N, T, *S) stay on disk. ``StochasticROM.fit``
accepts it in place of a :class:`~engine.data.Dataset` and then trains with a
:class:`StreamingWindowSampler`: background reader threads compute the windows of the
coming steps from the same schedule as the in-memory sampler (:mod:`engine.windows`), read
them from the file, normalize them, and keep a bounded number of steps ready (in pinned
memory when training on CUDA). So the training sees exactly the batches it would see with
the whole dataset in memory, and the host memory is bounded by ``max_host_bytes`` whatever
the size of the file.

Uncompressed states (as :func:`save_sharded` writes them) are read with ``os.preadv`` at
the offsets of the HDF5 chunk index (:mod:`engine.chunk_reader`): only a window's bytes,
without h5py's global lock, so the reader threads read in parallel. Other layouts
(compressed chunks, say) are read through h5py, one call at a time.

:func:`save_sharded` writes such a file from shards generated one at a time
(``srom generate --shards K``), so that writing is bounded in memory too.

The file is untrusted: fields are checked before they are read (no links, external
storage or virtual datasets; sizes bounded, :mod:`engine.untrusted_files`), every block of
states read is checked for NaN/inf, and read errors (a truncated or corrupt file) end the
training with a :class:`~engine.data.DatasetError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from engine.chunk_reader import ChunkReader
from engine.data import Dataset, DatasetError, Normalization, read_h5_fields
from engine.untrusted_files import env_bytes
from engine.windows import DrawTable, rank_slots, seed_key

__all__ = ["StreamingDataset", "StreamingWindowSampler", "save_sharded", "default_readers",
           "DEFAULT_MAX_HOST_BYTES", "DEFAULT_PREFETCH", "MAX_READERS"]

#: host memory a streaming training may hold for read-ahead and caches (env
#: ``SROM_STREAM_HOST_BYTES``)
DEFAULT_MAX_HOST_BYTES = 512 * 2**20
#: steps read ahead
DEFAULT_PREFETCH = 4
#: the most reader threads of one sampler
MAX_READERS = 16
#: the most bytes a streamed state array may declare (env ``SROM_MAX_STREAM_BYTES``)
DEFAULT_MAX_STREAM_BYTES = 2**44
#: the largest HDF5 chunk accepted (one chunk is read whole)
MAX_CHUNK_BYTES = 64 * 2**20
_SMALL_FIELDS = ("t", "mu", "f")
_NAME_FIELDS = ("param_names", "forcing_names")


def _check_state_field(h5, path: Path) -> None:
    """The checks of :func:`engine.untrusted_files.check_h5_field` for ``x``, with the
    streaming limit instead of the in-memory one, plus a bounded chunk size."""
    import h5py

    link = h5.get("x", getlink=True)
    if link is None:
        raise DatasetError(f"{path}: missing required field 'x'")
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        raise DatasetError(f"{path}: field 'x' is a {type(link).__name__}: datasets must be "
                           "stored in the file itself")
    x = h5.get("x")
    if not isinstance(x, h5py.Dataset):
        raise DatasetError(f"{path}: field 'x' is not an array (found a {type(x).__name__})")
    if x.is_virtual or x.external:
        raise DatasetError(f"{path}: field 'x' maps other files (virtual or external "
                           "storage): store the data in the file itself")
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: field 'x' holds {x.dtype} values, expected numbers")
    if x.ndim < 3 or 0 in x.shape:
        raise DatasetError(f"{path}: field 'x': expected shape (N, T, *state_shape) with at "
                           f"least 3 axes and no empty one, got {x.shape}")
    limit = env_bytes("SROM_MAX_STREAM_BYTES", DEFAULT_MAX_STREAM_BYTES)
    declared = math.prod(x.shape) * x.dtype.itemsize
    if declared > limit:
        raise DatasetError(f"{path}: field 'x' declares {declared / 2**30:.3g} GiB, over the "
                           f"streaming limit of {limit / 2**30:.3g} GiB (SROM_MAX_STREAM_BYTES)")
    if x.chunks is not None and math.prod(x.chunks) * x.dtype.itemsize > MAX_CHUNK_BYTES:
        raise DatasetError(f"{path}: field 'x' has chunks {x.chunks} of "
                           f"{math.prod(x.chunks) * x.dtype.itemsize / 2**20:.3g} MiB, over "
                           f"{MAX_CHUNK_BYTES // 2**20} MiB (each chunk is read whole)")


def default_readers() -> int:
    """Reader threads per training process: a quarter of the cores shared by the processes
    of this node (``LOCAL_WORLD_SIZE`` under torchrun), between 1 and 4. A reader thread
    spends most of its time in ``preadv`` and numpy with the GIL released; 4 read a few
    GB/s from the page cache, far above what a training step takes."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, min(4, (os.cpu_count() or 1) // (4 * local)))


class StreamingDataset:
    """A dataset file whose states ``x`` stay on disk (see the module docstring).

    Has the metadata of a :class:`~engine.data.Dataset` (``t``, ``mu``, ``f``, names,
    ``system``, ``attrs``, ``n_trajectories``, ``n_times``, ``state_shape``, ...), and
    reads states on request.

    Args:
        path: an ``.h5``/``.hdf5`` dataset file; ``x`` preferably chunked by trajectory
            and a run of snapshots (as :func:`save_sharded` writes it).
        prefetch: steps of windows read ahead while training.
        readers: reader threads of a training (default :func:`default_readers`, from
            ``os.cpu_count()``); at most ``prefetch`` of them work at once.
        max_host_bytes: the most host memory the read-ahead, the HDF5 chunk cache and the
            normalization pass may hold (default ``$SROM_STREAM_HOST_BYTES``, 512 MiB).

    Raises:
        DatasetError: the file is missing, not HDF5, truncated, fails the checks of
            untrusted files, or its small fields break the dataset contract.
    """

    def __init__(self, path: str | os.PathLike, *, prefetch: int = DEFAULT_PREFETCH,
                 readers: int | None = None, max_host_bytes: int | None = None):
        import h5py

        self.path = Path(path)
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, got {prefetch!r}")
        if readers is None:
            readers = default_readers()
        if not isinstance(readers, int) or isinstance(readers, bool) \
                or not 1 <= readers <= MAX_READERS:
            raise ValueError(f"readers must be an integer from 1 to {MAX_READERS}, got "
                             f"{readers!r}")
        self.prefetch, self.readers = prefetch, readers
        self.max_host_bytes = int(max_host_bytes or env_bytes("SROM_STREAM_HOST_BYTES",
                                                               DEFAULT_MAX_HOST_BYTES))
        if self.path.suffix.lower() not in (".h5", ".hdf5"):
            raise DatasetError(f"{self.path}: streaming needs an HDF5 dataset (.h5 or .hdf5)")
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: no such dataset file")
        try:
            probe = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{self.path}: not a readable HDF5 dataset ({exc})") from exc
        try:
            _check_state_field(probe, self.path)
            x = probe["x"]
            self.x_shape, self.x_dtype, self.chunks = tuple(x.shape), x.dtype, x.chunks
            meta = self._read_small_fields(probe)
        finally:
            probe.close()
        self._h5 = h5py.File(self.path, "r", rdcc_nbytes=0)
        self._x = self._h5["x"]
        self._direct: ChunkReader | None = None
        try:
            self._direct = ChunkReader.open(self._h5, self._x, self.path,
                                            max_index_bytes=self.max_host_bytes // 16)
        except DatasetError:
            self.close()
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            self.close()
            raise DatasetError(f"{self.path}: cannot read the chunk index of 'x' ({exc})") from exc
        self.index_bytes = self._direct.index_bytes if self._direct is not None else 0
        self.cache_bytes = 0
        if self._direct is None and self.chunks is not None:
            # compressed chunks are read through HDF5: a cache for a few of them (a window
            # spans one or two), within an eighth of the cap. Unfiltered ones do better
            # without: HDF5 then reads only the bytes asked for, not the whole chunk
            # (measured: 2.1x the windows/s of a 4 MiB cache for 128 KB windows of 1 MiB
            # chunks, 3.3x that of a 64 MiB one)
            filtered = self._x.id.get_create_plist().get_nfilters() > 0
            chunk_bytes = math.prod(self.chunks) * self.x_dtype.itemsize
            if filtered:
                self.cache_bytes = int(min(max(4 * chunk_bytes, 2**20), self.max_host_bytes // 8))
                self._h5.close()
                self._h5 = h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes,
                                     rdcc_nslots=10007)
                self._x = self._h5["x"]
        n, t = self.x_shape[:2]
        # the contract of the small fields, checked by Dataset itself on a placeholder state
        # (a broadcast view: no memory)
        placeholder = np.broadcast_to(np.zeros((1, 1, 1)), (n, t, 1))
        try:
            checked = Dataset(t=meta["t"], x=placeholder, mu=meta.get("mu"), f=meta.get("f"),
                              param_names=meta.get("param_names"),
                              forcing_names=meta.get("forcing_names"),
                              system=meta.get("system") or None, attrs=meta.get("attrs", {}))
        except DatasetError as exc:
            self.close()
            raise DatasetError(f"{self.path}: {exc}") from None
        self.t, self.mu, self.f = checked.t, checked.mu, checked.f
        self.param_names, self.forcing_names = checked.param_names, checked.forcing_names
        self.system, self.attrs = checked.system, checked.attrs
        self._summary: dict | None = None

    def _read_small_fields(self, h5) -> dict:
        fields: dict = {}
        try:
            if "t" not in h5:
                raise DatasetError(f"{self.path}: missing required field 't'")
            fields = read_h5_fields(h5, (*_SMALL_FIELDS, *_NAME_FIELDS))  # x stays on disk
        except DatasetError:
            raise
        except (OSError, ValueError, TypeError, KeyError, RuntimeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{self.path}: not a readable HDF5 dataset ({exc})") from exc
        try:
            attrs = json.loads(fields.get("attrs") or "{}")
        except (ValueError, RecursionError):
            attrs = {}
        fields["attrs"] = attrs if isinstance(attrs, dict) else {}
        return fields

    # ------------------------------------------------------------------ shapes
    @property
    def n_trajectories(self) -> int:
        return int(self.x_shape[0])

    @property
    def n_times(self) -> int:
        return int(self.x_shape[1])

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_shape[2:])

    @property
    def n_params(self) -> int:
        return int(self.mu.shape[1])

    @property
    def n_forcing(self) -> int:
        return int(self.f.shape[2])

    @property
    def snapshot_values(self) -> int:
        """Values in one snapshot, |S|."""
        return math.prod(self.state_shape)

    def __len__(self) -> int:
        return self.n_trajectories

    def __repr__(self) -> str:
        return (f"StreamingDataset({str(self.path)!r}, system={self.system!r}, "
                f"trajectories={self.n_trajectories}, times={self.n_times}, "
                f"state_shape={self.state_shape}, chunks={self.chunks}, "
                f"{math.prod(self.x_shape) * self.x_dtype.itemsize / 2**30:.3g} GiB of states)")

    def __enter__(self) -> StreamingDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        direct = getattr(self, "_direct", None)
        if direct is not None:
            direct.close()
            self._direct = None
        h5 = getattr(self, "_h5", None)
        if h5 is not None:
            try:
                h5.close()
            except Exception:  # pragma: no cover - a file already gone
                pass
            self._h5 = None

    # ------------------------------------------------------------------ reading
    def read_into(self, out: np.ndarray, traj: int, start: int, stop: int) -> None:
        """Read the raw states ``x[traj, start:stop]`` into ``out`` (``(stop - start, *S)``,
        C-contiguous), converted to ``out``'s dtype. Fastest with ``out`` of the stored
        dtype (:attr:`x_dtype`): then an uncompressed file is read directly
        (:mod:`engine.chunk_reader`), from any thread without a lock.

        Raises:
            DatasetError: the file cannot be read there (truncated or corrupt), or the
                states hold NaN/inf.
        """
        if self._h5 is None:
            raise DatasetError(f"{self.path}: the streaming dataset is closed")
        try:
            direct = self._direct
            if direct is None or out.dtype != direct.dtype \
                    or not direct.read(out, traj, start, stop):
                self._x.read_direct(out, np.s_[traj, start:stop])
        except DatasetError:
            raise
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise DatasetError(f"{self.path}: cannot read states of trajectory {traj}, "
                               f"snapshots {start}..{stop - 1} ({exc}): the file is truncated "
                               "or corrupt") from exc
        if not np.isfinite(out).all():
            raise DatasetError(f"{self.path}: field 'x' holds NaN or inf in trajectory {traj} "
                               f"between snapshots {start} and {stop - 1}")

    def _rows_per_block(self) -> int:
        """Snapshots per block of the normalization pass (a quarter of the cap, float64)."""
        return max(1, (self.max_host_bytes // 4) // (8 * self.snapshot_values))

    def blocks(self) -> Iterable[tuple[int, int, np.ndarray]]:
        """All states, block by block: ``(traj, start, (rows, *S) float64)`` (one buffer,
        reused: copy what you keep)."""
        rows = min(self._rows_per_block(), self.n_times)
        buffer = np.empty((rows, *self.state_shape), np.float64)
        for i in range(self.n_trajectories):
            for a in range(0, self.n_times, rows):
                b = min(a + rows, self.n_times)
                out = buffer[: b - a]
                self.read_into(out, i, a, b)
                yield i, a, out

    def state_moments(self, shape: tuple[int, ...], axes: tuple[int, ...]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and (population) std of ``x`` over ``axes`` of ``(N, T, *S)``, reshaped to
        ``shape``, in one bounded pass (Chan's pairwise update, float64); also records the
        range of the states for :meth:`summary`."""
        block_axes = tuple(a - 1 for a in axes if a != 0)  # a block is (rows, *S)
        count, mean, m2 = 0, np.zeros(shape), np.zeros(shape)
        lo, hi = np.inf, -np.inf
        for _, _, block in self.blocks():
            n_b = block.size // math.prod(shape)
            m_b = block.mean(axis=block_axes, keepdims=True)
            m2_b = ((block - m_b) ** 2).sum(axis=block_axes).reshape(shape)
            m_b = m_b.reshape(shape)
            delta = m_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        self._x_range = [lo, hi]
        return mean, np.sqrt(m2 / count)

    def subset(self, indices: Sequence[int] | slice) -> Dataset:
        """The trajectories at ``indices``, read into an in-memory :class:`Dataset`."""
        idx = np.atleast_1d(np.arange(self.n_trajectories)[indices])
        x = np.empty((idx.size, self.n_times, *self.state_shape), np.float64)
        for row, i in enumerate(idx):
            self.read_into(x[row], int(i), 0, self.n_times)
        return Dataset(self.t, x, self.mu[idx], self.f[idx], self.param_names,
                       self.forcing_names, self.system, dict(self.attrs))

    def summary(self) -> dict:
        """As :meth:`Dataset.summary` (the state range needs one pass over the file)."""
        if getattr(self, "_x_range", None) is None:
            shape = (1,)
            self.state_moments(shape, tuple(range(len(self.x_shape))))
        return {
            "system": self.system, "n_trajectories": self.n_trajectories,
            "n_times": self.n_times, "t_range": [float(self.t[0]), float(self.t[-1])],
            "state_shape": list(self.state_shape), "x_range": list(self._x_range),
            "param_names": list(self.param_names),
            "param_ranges": [[float(lo), float(hi)]
                             for lo, hi in zip(self.mu.min(axis=0), self.mu.max(axis=0))],
            "forcing_names": list(self.forcing_names),
        }


class _Slot:
    """One step's windows in host memory (pinned for CUDA) and the event of its last copy."""

    def __init__(self, per_rank: int, length: int, state_shape, dtype, pin: bool):
        self.block = torch.empty((per_rank, length, *state_shape), dtype=dtype, pin_memory=pin)
        # the readers write through numpy: torch's copies from a reader thread would start
        # an OpenMP team of their own per thread and oversubscribe the cores
        self.array = self.block.numpy()
        self.traj = torch.empty(per_rank, dtype=torch.int64, pin_memory=pin)
        self.start = torch.empty(per_rank, dtype=torch.int64, pin_memory=pin)
        self.event: torch.cuda.Event | None = None
        self.step = -1

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.block, self.traj, self.start))


class StreamingWindowSampler:
    """The windows of the schedule (:mod:`engine.windows`), read from a
    :class:`StreamingDataset` by background reader threads ahead of the training.

    Same arguments and same batches as :class:`engine.train.WindowSampler`, except that the
    states come from ``source`` and are normalized with ``norm`` on the host. The trainer
    calls :meth:`start` once, :meth:`stage` before each step (it moves the next step's
    windows into fixed device buffers, which a CUDA graph reads), :meth:`sample` inside
    the step and :meth:`close` at the end.

    Each of the ``source.readers`` threads (at most ``prefetch``) takes the next step not
    yet taken and fills a free slot with its windows; :meth:`stage` hands the slots to the
    training in step order, so the batches do not depend on the number of readers.

    Host memory: ``prefetch`` slots of one step's windows (``W/k × (B + n_win − 1) × |S|``
    values of the training dtype), per reader one window read and normalized
    (``(B + n_win − 1) × |S|`` values stored and as many float64), the HDF5 chunk cache and
    the chunk index; the prefetch depth is lowered to fit ``source.max_host_bytes``
    (:attr:`host_bytes` is the total).

    Raises:
        ValueError: one step's windows alone do not fit the host-memory cap.
    """

    def __init__(self, source: StreamingDataset, norm: Normalization, t: torch.Tensor,
                 mu: torch.Tensor, f: torch.Tensor, window: int, windows_per_step: int,
                 n_win: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.source, self.norm = source, norm
        self.t, self.mu, self.f = t, mu, f
        self.device, self.dtype = t.device, t.dtype
        self.n_traj, self.n_times = source.n_trajectories, source.n_times
        self.window = min(window, self.n_times)
        self.windows_per_step = windows_per_step
        self.length = self.window + n_win - 1  # snapshots a window's encoder inputs span
        self.slots_cpu = rank_slots(windows_per_step, rank, world_size)
        self.per_rank = int(self.slots_cpu.numel())
        self.n_starts = self.n_times - self.window + 1
        # the in-memory sampler's schedule, computed on the host by the reader threads
        self._table = DrawTable(seed_key(int(seed)), self.slots_cpu, self.n_traj, self.n_starts,
                                block=max(1, min(1024, 2**20 // self.per_rank)))
        shape = (self.per_rank, self.length, *source.state_shape)
        self.pin = self.device.type == "cuda"
        window_values = self.length * source.snapshot_values
        # each reader's window, as stored and normalized in float64
        per_reader = window_values * (source.x_dtype.itemsize + 8)
        slot_bytes = math.prod(shape) * t.element_size() + 16 * self.per_rank
        fixed = source.cache_bytes + source.index_bytes
        room = source.max_host_bytes - fixed - per_reader
        if room < slot_bytes:
            raise ValueError(
                f"one step's windows need {(per_reader + slot_bytes) / 2**20:.3g} MiB of host "
                f"memory (plus {fixed / 2**20:.3g} MiB of chunk cache and index), over the "
                f"cap of {source.max_host_bytes / 2**20:.3g} MiB: raise SROM_STREAM_HOST_BYTES "
                "or use fewer windows per step or a shorter window")
        self.prefetch = int(min(source.prefetch, room // slot_bytes))
        # readers beyond the slots would find none free; each takes its buffers from the room
        self.readers = int(max(1, min(source.readers, self.prefetch,
                                      (room - self.prefetch * slot_bytes) // per_reader + 1)))
        self.host_bytes = (fixed + self.readers * per_reader + self.prefetch * slot_bytes)
        self._window_shape = (self.length, *source.state_shape)
        self._slots = [_Slot(self.per_rank, self.length, source.state_shape, self.dtype, self.pin)
                       for _ in range(self.prefetch)]
        self._x_mean = np.asarray(norm.x_mean, np.float64)
        self._x_std = np.asarray(norm.x_std, np.float64)
        # the device buffers every step reads (fixed addresses, as a CUDA graph needs)
        self.block = torch.empty(shape, dtype=self.dtype, device=self.device)
        self.traj = torch.zeros(self.per_rank, dtype=torch.int64, device=self.device)
        self.start_idx = torch.zeros(self.per_rank, dtype=torch.int64, device=self.device)
        self.offsets = torch.arange(self.window, device=self.device)
        self.win_offsets = torch.arange(n_win, device=self.device)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._free: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._done: dict[int, _Slot] = {}  # filled slots by step, under _cond
        self._error: BaseException | None = None
        self._next_read = 0  # the next step a reader takes, under _cond
        self.wait_seconds = 0.0  # time the training waited for the disk
        self.read_seconds = 0.0  # time the readers spent reading and normalizing, summed
        self.steps_staged = 0
        self._next_step = 0

    # ------------------------------------------------------------ the reader
    def draws(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Trajectory and start of this rank's windows at ``step``, each ``(W/k,)`` int64
        host tensors (not thread-safe: the readers call it under a lock)."""
        self._table.prepare(step)
        return self._table.lookup(torch.tensor(step, dtype=torch.int64))

    def _fill(self, slot: _Slot, step: int, traj: torch.Tensor, start: torch.Tensor,
              raw: np.ndarray, normalized: np.ndarray) -> None:
        """Read, check and normalize the windows of ``step`` into ``slot`` (``raw`` and
        ``normalized``: this reader's ``(B + n_win − 1, *S)`` buffers, stored dtype and
        float64)."""
        block = slot.array
        for j, (i, a) in enumerate(zip(traj.tolist(), start.tolist())):
            b = min(a + self.length, self.n_times)
            n = b - a
            self.source.read_into(raw[:n], i, a, b)
            # (x − mean) / std in float64, then the training dtype: as fit normalizes in memory
            np.subtract(raw[:n], self._x_mean, out=normalized[:n])
            np.divide(normalized[:n], self._x_std, out=normalized[:n])
            if n < self.length:  # the encoder's windows are edge-padded at the end
                normalized[n:] = normalized[n - 1]
            np.copyto(block[j], normalized, casting="same_kind")  # rounds as torch does
        slot.traj.copy_(traj)
        slot.start.copy_(start)
        slot.step = step

    def _read_ahead(self) -> None:
        raw = np.empty(self._window_shape, self.source.x_dtype)
        normalized = np.empty(self._window_shape, np.float64)
        while not self._stop.is_set():
            try:
                slot = self._free.get(timeout=0.05)
            except queue.Empty:
                continue
            if self._stop.is_set():
                return
            try:
                with self._cond:  # steps are taken in order, each with a free slot
                    step = self._next_read
                    self._next_read += 1
                    traj, start = self.draws(step)
                if slot.event is not None:
                    slot.event.synchronize()  # its last copy to the device is done
                tic = time.perf_counter()
                self._fill(slot, step, traj, start, raw, normalized)
                seconds = time.perf_counter() - tic
            except BaseException as exc:  # handed to the training thread, which raises it
                with self._cond:
                    if self._error is None:
                        self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._done[step] = slot
                self.read_seconds += seconds
                self._cond.notify_all()

    def start(self, step: int) -> None:
        """Begin reading ahead from ``step`` (the first step the training will take)."""
        self.close()
        self._stop.clear()
        self._free = queue.Queue()
        self._done, self._error = {}, None
        for slot in self._slots:
            slot.event = None
            self._free.put(slot)
        self._next_step = self._next_read = step
        self._threads = [threading.Thread(target=self._read_ahead, daemon=True,
                                          name=f"srom-stream-reader-{k}")
                         for k in range(self.readers)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop the reader threads and wait for them (idempotent)."""
        if self._threads:
            self._stop.set()
            for thread in self._threads:
                thread.join()
            self._threads = []

    # ------------------------------------------------------------ the trainer
    def stage(self, step: int | None = None) -> None:
        """Move the next step's windows into the device buffers (waits for the reader if it
        is behind: :attr:`wait_seconds` adds that time up). ``step``, if given, must be the
        step the reader is at.

        Raises:
            DatasetError: the reader failed (the file is truncated or corrupt).
        """
        if not self._threads:
            self.start(self._next_step)
        if step is not None and step != self._next_step:
            raise RuntimeError(f"the reader is at step {self._next_step}, the training at {step}")
        tic = time.perf_counter()
        with self._cond:
            while self._next_step not in self._done and self._error is None:
                if not self._cond.wait(timeout=1.0) and not any(
                        thread.is_alive() for thread in self._threads):
                    self._error = RuntimeError("the reader threads stopped")
            slot = self._done.pop(self._next_step, None)
            error = self._error
        self.wait_seconds += time.perf_counter() - tic
        if slot is None:  # this step will not come: a reader failed
            self.close()
            if isinstance(error, DatasetError):
                raise DatasetError(str(error)) from error
            raise DatasetError(f"{self.source.path}: reading ahead failed ({error})") from error
        self.block.copy_(slot.block, non_blocking=self.pin)
        self.traj.copy_(slot.traj, non_blocking=self.pin)
        self.start_idx.copy_(slot.start, non_blocking=self.pin)
        if self.pin:
            event = slot.event = torch.cuda.Event()
            event.record()
        self._next_step = slot.step + 1
        self.steps_staged += 1
        self._free.put(slot)

    def sample(self, step: torch.Tensor | None = None):
        """The staged windows as a :class:`~engine.module.WindowBatch` (``step`` is
        ignored: the windows of the step were staged by :meth:`stage`)."""
        from engine.module import WindowBatch

        idx = self.start_idx[:, None] + self.offsets  # (W, B)
        x_nodes = self.block[:, : self.window].contiguous()
        if self.win_offsets.numel() == 1:
            x_windows = x_nodes.unsqueeze(2)
        else:
            x_windows = self.block[:, self.offsets[:, None] + self.win_offsets]  # (W, B, n_win, *S)
        return WindowBatch(t_nodes=self.t[idx], x_nodes=x_nodes, x_windows=x_windows,
                           mu=self.mu[self.traj], t_grid=self.t, f_traj=self.f[self.traj])


# ---------------------------------------------------------------- writing
def _chunk_rows(n_times: int, snapshot_bytes: int, chunk_bytes: int) -> int:
    return int(max(1, min(n_times, chunk_bytes // max(snapshot_bytes, 1))))


def save_sharded(path: str | os.PathLike, shards: Iterable[Dataset],
                 chunk_bytes: int = 2**20) -> Path:
    """Write datasets that come one shard at a time into one chunked HDF5 dataset file,
    atomically; only one shard is in memory at a time.

    The states are chunked by trajectory and runs of snapshots of about ``chunk_bytes``
    (a window read touches one or two chunks). Every shard must share the time grid, the
    state shape and the names of the first. ``attrs`` are the first shard's, with
    ``shards`` listing each shard's seed and size and ``forcings`` joined (left out when
    they would pass 512 KiB).

    Returns:
        The path written.

    Raises:
        DatasetError: a shard does not match the first, the path is not ``.h5``/``.hdf5``,
            or no shard was given.
    """
    import h5py

    from engine.atomic import atomic_write

    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise DatasetError(f"{path}: a sharded dataset is written as HDF5 (.h5 or .hdf5)")

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as h5:
            first, n, records = None, 0, []
            forcings: list = []  # JSON descriptions of each shard's forcings
            for shard in shards:
                if first is None:
                    first = shard
                    rows = _chunk_rows(shard.n_times, math.prod(shard.state_shape)
                                       * shard.x.dtype.itemsize, chunk_bytes)
                    h5.create_dataset("t", data=shard.t)
                    for name, array, chunk in (("x", shard.x, (1, rows, *shard.state_shape)),
                                               ("mu", shard.mu, None), ("f", shard.f, None)):
                        h5.create_dataset(name, shape=(0, *array.shape[1:]), dtype=array.dtype,
                                          maxshape=(None, *array.shape[1:]),
                                          chunks=chunk or (max(1, min(1024, 2**16 // max(
                                              1, math.prod(array.shape[1:])))), *array.shape[1:]))
                    for name in _NAME_FIELDS:
                        h5.create_dataset(name, data=np.asarray(getattr(shard, name), dtype=object),
                                          dtype=h5py.string_dtype())
                    h5.attrs["system"] = shard.system or ""
                elif (shard.state_shape != first.state_shape or shard.n_params != first.n_params
                      or shard.n_forcing != first.n_forcing
                      or not np.array_equal(shard.t, first.t)):
                    raise DatasetError(f"shard {len(records)} does not match the first (state "
                                       "shape, parameters, forcing channels or time grid)")
                m = shard.n_trajectories
                for name in ("x", "mu", "f"):
                    h5[name].resize(n + m, axis=0)
                    h5[name][n:n + m] = getattr(shard, name)
                n += m
                records.append({"seed": shard.attrs.get("seed"), "n": m})
                forcings.extend(shard.attrs.get("forcings") or [])
            if first is None:
                raise DatasetError("no shard to write")
            attrs = {k: v for k, v in first.attrs.items() if k not in ("forcings", "seed")}
            attrs["shards"] = records
            if forcings and len(json.dumps(forcings)) <= 2**19:
                attrs["forcings"] = forcings
            h5.attrs["attrs"] = json.dumps(attrs)

    return atomic_write(path, write, suffix=path.suffix)
