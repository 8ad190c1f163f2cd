"""Streaming datasets (engine/streaming.py) and the window schedule (engine/windows.py)."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from problems import duffing_dataset

from engine import Dataset, StochasticROM, load_dataset
from engine.data import DatasetError, Normalization
from engine.progress import NullCallback, StopFlag
from engine.streaming import (
    StreamingDataset,
    StreamingWindowSampler,
    default_readers,
    save_sharded,
)
from engine.train import WindowSampler
from engine.windows import DrawTable, rank_slots, seed_key, window_draws

ROOT = Path(__file__).resolve().parent.parent


def field_dataset(n_traj=5, n_times=24, seed=0) -> Dataset:
    """A small 2-channel 1-D field with a parameter and a forcing channel."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_traj, n_times, 2, 8)).cumsum(1)
    return Dataset(np.linspace(0, 2.3, n_times), x, mu=rng.uniform(size=(n_traj, 1)),
                   f=rng.normal(size=(n_traj, n_times, 1)), system="field")


def shards_of(dataset: Dataset, sizes):
    start = 0
    for size in sizes:
        yield dataset.subset(slice(start, start + size))
        start += size


def in_memory_sampler(dataset, norm, window, w, n_win, seed, rank=0, world=1):
    t, mu, f = device_fields(dataset, norm)
    x = torch.as_tensor((dataset.x - norm.x_mean) / norm.x_std, dtype=torch.float32)
    return WindowSampler(t, x, mu, f, window, w, n_win, seed, rank, world)


def device_fields(dataset, norm):
    dtype = torch.float32
    return (torch.as_tensor(dataset.t, dtype=dtype),
            torch.as_tensor((dataset.mu - norm.mu_mean) / norm.mu_std, dtype=dtype),
            torch.as_tensor((dataset.f - norm.f_mean) / norm.f_std, dtype=dtype))


# ------------------------------------------------------------------ schedule
def test_the_draw_table_gives_the_draws_of_single_steps():
    key, slots = seed_key(3), rank_slots(6, 1, 2)
    table = DrawTable(key, slots, 7, 30, block=16)
    for step in (0, 5, 15, 16, 40, 2**33 + 1):
        table.prepare(step)
        one = window_draws(key, torch.tensor(step), slots, 7, 30)
        got = table.lookup(torch.tensor(step))
        assert torch.equal(got[0], one[0]) and torch.equal(got[1], one[1]), step
    assert table.first == 2**33 + 1


def test_the_schedule_is_uniform_and_the_same_global_batch_for_any_rank_count():
    key, step = seed_key(7), torch.tensor(123)
    traj, start = window_draws(key, step, rank_slots(8, 0, 1), 5, 17)
    parts = [window_draws(key, step, rank_slots(8, r, 4), 5, 17) for r in range(4)]
    assert torch.equal(traj, torch.cat([p[0] for p in parts]))
    assert torch.equal(start, torch.cat([p[1] for p in parts]))
    many = torch.cat([window_draws(key, torch.tensor(s), rank_slots(64, 0, 1), 5, 17)[1]
                      for s in range(200)])
    counts = torch.bincount(many, minlength=17).double()
    assert many.min() >= 0 and many.max() < 17
    expected = many.numel() / 17
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50  # 16 degrees of freedom: p < 1e-4 above 40
    other = window_draws(seed_key(8), step, rank_slots(8, 0, 1), 5, 17)
    assert not (torch.equal(other[0], traj) and torch.equal(other[1], start))
    with pytest.raises(ValueError, match="multiple of the number of ranks"):
        rank_slots(6, 0, 4)


# ------------------------------------------------------------------ same windows
@pytest.mark.parametrize("n_win", [1, 3])
@pytest.mark.parametrize("rank,world,readers", [(0, 1, 1), (1, 2, 1), (0, 1, 3), (1, 2, 3)])
def test_streaming_yields_exactly_the_in_memory_windows(tmp_path, n_win, rank, world, readers):
    data = field_dataset()
    path = save_sharded(tmp_path / "d.h5", shards_of(data, [2, 3]), chunk_bytes=512)
    norm = Normalization.fit(data)
    with StreamingDataset(path, prefetch=4, readers=readers) as source:
        assert source.chunks == (1, 4, 2, 8)  # 512 bytes of float64 snapshots of 16 values
        assert source._direct is not None  # read with preadv, beside HDF5
        memory = in_memory_sampler(data, norm, 8, 4, n_win, seed=11, rank=rank, world=world)
        stream = StreamingWindowSampler(source, norm, *device_fields(data, norm), 8, 4, n_win,
                                        seed=11, rank=rank, world_size=world)
        assert stream.readers == readers
        stream.start(5)
        padded = False
        for step in range(5, 45):
            stream.stage(step)
            memory.stage(step)
            a, b = memory.sample(torch.tensor(step)), stream.sample()
            for name in ("t_nodes", "x_nodes", "x_windows", "mu", "t_grid", "f_traj"):
                assert torch.equal(getattr(a, name), getattr(b, name)), (step, name)
            padded |= bool((stream.start_idx + 8 + n_win - 1 > data.n_times).any())
        stream.close()
        assert padded or n_win == 1  # the edge padding of the encoder windows was exercised
        assert not reader_threads()


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("srom-stream-reader")]


def test_several_readers_give_the_steps_in_order_however_fast_each_is(tmp_path, monkeypatch):
    """Readers that finish out of order (one is slowed on some steps) still hand the steps
    to the training in order, each with its own windows."""
    data = field_dataset(n_traj=6, n_times=30)
    path = save_sharded(tmp_path / "d.h5", shards_of(data, [6]))
    norm = Normalization.fit(data)
    with StreamingDataset(path, prefetch=4, readers=4) as source:
        stream = StreamingWindowSampler(source, norm, *device_fields(data, norm), 8, 4, 1, seed=2)
        memory = in_memory_sampler(data, norm, 8, 4, 1, seed=2)
        fill = stream._fill

        def uneven(slot, step, *args):
            if step % 3 == 0:
                time.sleep(0.02)  # the next steps' readers overtake this one
            fill(slot, step, *args)

        monkeypatch.setattr(stream, "_fill", uneven)
        stream.start(0)
        assert len(reader_threads()) == 4
        for step in range(24):
            stream.stage(step)
            memory.stage(step)
            assert torch.equal(stream.sample().x_nodes, memory.sample(torch.tensor(step)).x_nodes)
        with pytest.raises(RuntimeError, match="the reader is at step 24, the training at 30"):
            stream.stage(30)
        stream.close()
        stream.close()  # idempotent
        assert not reader_threads()


def test_the_reader_count_is_checked_and_defaults_to_a_share_of_the_cores(tmp_path,
                                                                         monkeypatch):
    path = save_sharded(tmp_path / "d.h5", shards_of(field_dataset(), [5]))
    for bad in (0, 17, True, 1.5):
        with pytest.raises(ValueError, match="readers must be an integer from 1 to 16"):
            StreamingDataset(path, readers=bad)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, expected in ((None, 1), (2, 1), (8, 2), (16, 4), (128, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert default_readers() == expected, cores
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # 2 training processes share 16 cores
    assert default_readers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert default_readers() == 1
    with StreamingDataset(path) as source:
        assert source.readers == 1  # 16 cores (patched) between 8 processes
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with StreamingDataset(path, prefetch=2) as source:  # no more readers than slots
        norm = Normalization.fit(data := field_dataset())
        stream = StreamingWindowSampler(source, norm, *device_fields(data, norm), 8, 4, 1)
        assert source.readers == 4 and stream.readers == 2 and stream.prefetch == 2


def test_streaming_statistics_match_the_in_memory_ones(tmp_path):
    data = field_dataset(n_traj=6, n_times=40)
    path = save_sharded(tmp_path / "d.h5", shards_of(data, [6]))
    with StreamingDataset(path, max_host_bytes=2**14) as source:  # blocks of a few rows
        assert source._rows_per_block() < data.n_times
        for per_component in (False, True):
            a = Normalization.fit(data, per_component=per_component)
            b = Normalization.fit(source, per_component=per_component)
            for key, value in a.to_dict().items():
                np.testing.assert_allclose(b.to_dict()[key], value, rtol=1e-12, atol=1e-14)
        assert source.summary()["x_range"] == pytest.approx(data.summary()["x_range"])


def test_fit_on_a_streaming_dataset_trains_exactly_as_in_memory(tmp_path):
    data = duffing_dataset(4, n_times=41)
    path = save_sharded(tmp_path / "duffing.h5", shards_of(data, [1, 3]))
    params = dict(latent_dim=2, steps=30, window=16, windows_per_step=2, drift_hidden=(16,),
                  log_every=10, seed=3, normalize=False, substeps=1)
    a = StochasticROM(**params).fit(load_dataset(path))
    with StreamingDataset(path, readers=2) as source:
        b = StochasticROM(**params).fit(source)
    assert b.training_["streaming"]["prefetch"] >= 1
    assert b.training_["streaming"]["readers"] == 2
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["loss"] for h in a.training_["history"]] == [h["loss"] for h in b.training_["history"]]
    assert not reader_threads()


class _StopAt(NullCallback):
    """Asks the training to stop (or fails) at the first log at or after ``step``."""

    def __init__(self, step: int, flag: StopFlag | None = None):
        self.step, self.flag = step, flag

    def on_log(self, step, metrics):
        assert reader_threads()  # the readers are at work meanwhile
        if step >= self.step:
            if self.flag is None:
                raise RuntimeError("a callback failed")
            self.flag.set()


@pytest.mark.parametrize("how", ["stop flag", "time budget", "callback error"])
def test_no_reader_thread_outlives_a_training_that_ends_early(tmp_path, how):
    data = duffing_dataset(3, n_times=41)
    path = save_sharded(tmp_path / "duffing.h5", shards_of(data, [3]))
    model = StochasticROM(latent_dim=2, steps=400, window=8, windows_per_step=2,
                          drift_hidden=(8,), log_every=2, normalize=False, substeps=1)
    with StreamingDataset(path, readers=3) as source:
        if how == "stop flag":
            flag = StopFlag()
            model.fit(source, callback=_StopAt(6, flag), stop_flag=flag)
            assert model.training_["status"] == "stopped" and model.training_["steps"] < 400
        elif how == "time budget":
            model.fit(source, max_seconds=1e-3, callback=_StopAt(10**6))
            assert model.training_["status"] == "budget"
        else:
            with pytest.raises(RuntimeError, match="a callback failed"):
                model.fit(source, callback=_StopAt(4))
        assert not reader_threads()


# ------------------------------------------------------------------ writing
def test_save_sharded_round_trips_and_refuses_mismatched_shards(tmp_path):
    data = duffing_dataset(5, n_times=21)
    path = save_sharded(tmp_path / "s.h5", shards_of(data, [2, 2, 1]))
    back = load_dataset(path)
    for name in ("t", "x", "mu", "f"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    assert back.param_names == data.param_names and back.system == "duffing"
    assert [s["n"] for s in back.attrs["shards"]] == [2, 2, 1]
    other = duffing_dataset(2, n_times=11)
    with pytest.raises(DatasetError, match="does not match the first"):
        save_sharded(tmp_path / "bad.h5", iter([data, other]))
    assert not (tmp_path / "bad.h5").exists()


# ------------------------------------------------------------------ bad files
def test_a_truncated_file_is_a_clear_error(tmp_path):
    data = field_dataset(n_traj=4, n_times=200)
    path = save_sharded(tmp_path / "t.h5", shards_of(data, [4]))
    blob = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="cut.h5"):
        StreamingDataset(cut)
    with pytest.raises(DatasetError, match="no such dataset file"):
        StreamingDataset(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        StreamingDataset(tmp_path / "junk.h5")


def test_nan_states_end_the_training_with_a_clear_error(tmp_path):
    data = duffing_dataset(3, n_times=41)
    path = save_sharded(tmp_path / "nan.h5", shards_of(data, [3]))
    with h5py.File(path, "r+") as h5:
        h5["x"][:, 5:38] = np.nan  # every window touches it
    with StreamingDataset(path, readers=3) as source:
        with pytest.raises(DatasetError, match="NaN or inf in trajectory"):
            StochasticROM(latent_dim=2, steps=5, window=8, windows_per_step=2,
                          drift_hidden=(8,), normalize=False, substeps=1).fit(source)
        assert not reader_threads()  # the training's error stopped every reader
        with pytest.raises(DatasetError, match="NaN or inf"):  # the normalization pass
            Normalization.fit(source)


def test_links_and_oversized_states_are_refused(tmp_path):
    target = tmp_path / "target.h5"
    save_sharded(target, shards_of(duffing_dataset(2, n_times=11), [2]))
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as h5:
        h5["t"] = np.linspace(0, 1, 11)
        h5["x"] = h5py.ExternalLink(str(target), "x")
    with pytest.raises(DatasetError, match="ExternalLink"):
        StreamingDataset(linked)
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as h5:
        h5["t"] = np.linspace(0, 1, 11)
        h5.create_dataset("x", shape=(10**10, 11, 100), dtype="f8", chunks=(1, 11, 100))
    with pytest.raises(DatasetError, match="streaming limit"):
        StreamingDataset(big)


def test_one_step_larger_than_the_cap_is_refused(tmp_path):
    data = field_dataset()
    path = save_sharded(tmp_path / "d.h5", shards_of(data, [5]))
    norm = Normalization.fit(data)
    with StreamingDataset(path, max_host_bytes=4096) as source:
        with pytest.raises(ValueError, match="over the cap"):
            StreamingWindowSampler(source, norm, *device_fields(data, norm), 8, 64, 1)


# ------------------------------------------------------------------ memory
_MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    import torch
    from engine.data import Normalization
    from engine.streaming import StreamingDataset, StreamingWindowSampler
    torch.set_num_threads(1)
    path, cap = sys.argv[1], int(sys.argv[2])
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    source = StreamingDataset(path, prefetch=8, max_host_bytes=cap)
    n, t = source.n_trajectories, source.n_times
    ident = Normalization.fit(source, enabled=False)
    fields = (torch.as_tensor(source.t, dtype=torch.float32), torch.zeros(n, 0), torch.zeros(n, t, 0))
    sampler = StreamingWindowSampler(source, ident, *fields, 64, 16, 1, seed=0)
    sampler.start(0)
    for _ in range(3):
        sampler.stage(); sampler.sample()
    base = peak()
    norm = Normalization.fit(source)  # one pass over the whole file
    snapshots = 0
    for _ in range(400):
        sampler.stage(); sampler.sample(); snapshots += 16 * 64
    sampler.close()
    print(json.dumps({"grown": peak() - base, "host_bytes": sampler.host_bytes,
                      "prefetch": sampler.prefetch,
                      "bytes_streamed": snapshots * 256 * 8 + n * t * 256 * 8}))
""")


def test_host_memory_stays_bounded_while_streaming_a_file_far_larger_than_the_cap(tmp_path):
    cap = 16 * 2**20
    rng = np.random.default_rng(0)
    path = tmp_path / "large.h5"
    n, t, s = 24, 2000, 256  # 94 MiB of float64 states: about 6x the cap
    with h5py.File(path, "w") as h5:
        h5["t"] = np.arange(t) * 0.01
        x = h5.create_dataset("x", shape=(n, t, s), dtype="f8", chunks=(1, 256, s))
        for i in range(n):
            x[i] = rng.normal(size=(t, s))
    file_bytes = path.stat().st_size
    assert file_bytes > 5 * cap
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), str(cap)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["host_bytes"] <= cap and report["prefetch"] >= 2
    assert report["bytes_streamed"] > 2 * file_bytes  # the whole file, then windows
    # the peak resident memory grew by less than the cap (plus allocator slack) while
    # more than twice the file went through
    assert report["grown"] < cap + 8 * 2**20, report


# ------------------------------------------------------------------ command line
def test_generate_in_shards_then_train_streaming_from_the_command_line(tmp_path, capsys):
    from engine import load_model
    from engine.cli import main

    data = tmp_path / "osc.h5"
    assert main(["generate", "oscillator", "--n", "5", "--shards", "2", "--set", "n_t=41",
                 "--out", str(data)]) == 0
    back = load_dataset(data)
    assert back.n_trajectories == 5 and [s["n"] for s in back.attrs["shards"]] == [3, 2]
    out = tmp_path / "model"
    assert main(["train", str(data), "--stream", "--prefetch", "2", "--readers", "2",
                 "--out", str(out),
                 "--steps", "20", "--window", "8", "--windows-per-step", "2",
                 "--latent-dim", "2", "--device", "cpu", "--set", "hidden=[16]",
                 "--set", "drift_hidden=[16]", "--set", "substeps=1"]) == 0
    assert load_model(out).training_["streaming"]["prefetch"] == 2
    assert load_model(out).training_["streaming"]["readers"] == 2
    assert main(["train", str(data), "--stream", "--readers", "0", "--out",
                 str(tmp_path / "m0"), "--steps", "2"]) == 2
    assert main(["generate", "oscillator", "--n", "2", "--shards", "3", "--out",
                 str(tmp_path / "x.h5")]) == 2
    assert main(["generate", "oscillator", "--n", "2", "--shards", "2", "--out",
                 str(tmp_path / "x.npz")]) == 2
    assert main(["train", str(tmp_path / "x.npz"), "--stream", "--out", str(tmp_path / "m2"),
                 "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "--shards must be between 1 and --n" in err and "chunked HDF5" in err
    assert "--readers must be between 1 and 16, got 0" in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streaming_feeds_the_cuda_graph_the_in_memory_batches(tmp_path):
    """On CUDA the reader fills pinned slots and the step, captured once as a graph, reads
    fixed device buffers that are refilled before each replay."""
    data = duffing_dataset(8, n_times=101)
    path = save_sharded(tmp_path / "duffing.h5", shards_of(data, [3, 5]))
    params = dict(latent_dim=2, steps=200, window=32, windows_per_step=8, n_win=2,
                  drift_hidden=(32,), log_every=50, seed=0, normalize=False, substeps=1,
                  device="cuda", cuda_graph=True)
    a = StochasticROM(**params).fit(load_dataset(path))
    with StreamingDataset(path, prefetch=3) as source:
        b = StochasticROM(**params).fit(source)
    assert a.training_["cuda_graph"] and b.training_["cuda_graph"]
    assert b.training_["streaming"]["prefetch"] == 3
    la = [h["loss"] for h in a.training_["history"]]
    lb = [h["loss"] for h in b.training_["history"]]
    np.testing.assert_allclose(lb, la, rtol=1e-4, atol=1e-5)
