"""Data-parallel training on the CPU with the gloo backend (engine/distributed.py).

Two processes train the same small model as one process does, at the same global batch:
the windows of every step are the same by construction (engine/windows.py), only the
Monte-Carlo noise differs, so the results must agree statistically; the parameters must be
identical on both ranks; a 2-rank checkpoint must resume on 1 rank.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from problems import duffing_dataset

from engine import StochasticROM
from engine.distributed import DistributedContext, current_context, noise_seed, shutdown
from engine.train import read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
STEPS = 150


def params(seed: int, **kw) -> dict:
    out = dict(latent_dim=2, steps=STEPS, window=12, windows_per_step=4, hidden=(16,),
               drift_hidden=(16,), kernel_hidden=(8,), log_every=25, seed=seed, substeps=1,
               lr=3e-3, kl_transition=50, device="cpu", cuda_graph=False)
    out.update(kw)
    return out


def data():
    return duffing_dataset(4, n_times=41)


def final_loss(model) -> float:
    """The mean loss over the last 50 steps (two logs)."""
    return float(np.mean([h["loss"] for h in model.training_["history"][-2:]]))


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    done = False
    try:
        dataset = data()
        for seed in SEEDS:
            ckpt = Path(out_dir) / f"ckpt{seed}.safetensors"
            model = StochasticROM(**params(seed)).fit(dataset, checkpoint=ckpt)
            torch.save({"state": model.module_.state_dict(), "loss": final_loss(model),
                        "history": model.training_["history"],
                        "world_size": model.training_["world_size"]},
                       Path(out_dir) / f"seed{seed}_rank{rank}.pt")
        # streamed from disk on both ranks: the normalization pass on rank 0 only, and the
        # same training as from memory
        from engine.streaming import StreamingDataset

        states = {}
        for name, normalize in (("stream", False), ("memory", False), ("stream_norm", True)):
            source = (StreamingDataset(Path(out_dir) / "data.h5") if name.startswith("stream")
                      else dataset)
            model = StochasticROM(**params(0, steps=40, normalize=normalize)).fit(source)
            states[name] = model.module_.state_dict()
        torch.save(states, Path(out_dir) / f"streamed_rank{rank}.pt")
        # the CUDA-graph path's gradient averaging (one all_reduce), run eagerly here
        os.environ["SROM_GRAD_SYNC"] = "all_reduce"
        model = StochasticROM(**params(0, steps=40, normalize=False)).fit(dataset)
        del os.environ["SROM_GRAD_SYNC"]
        torch.save(model.module_.state_dict(), Path(out_dir) / f"all_reduce_rank{rank}.pt")
        done = True
    finally:
        # what torchrun users get: a barrier (no rank tears the group down while another
        # still uses it), garbage collected, then the group destroyed
        shutdown(wait=done)
    if done:
        (Path(out_dir) / f"finished_rank{rank}").touch()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    from engine.streaming import save_sharded

    save_sharded(out / "data.h5", iter([data()]))
    try:
        mp.spawn(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    except mp.ProcessExitedException as error:
        # A rank that wrote everything and left the group can still be killed by a signal in
        # the interpreter's finalisation (gloo's threads: pytorch/pytorch#179291); the results
        # are complete, so report it instead of failing every test of the module.
        if not all((out / f"finished_rank{r}").exists() for r in (0, 1)):
            raise
        warnings.warn(f"a rank died after finishing its work: {error}", RuntimeWarning,
                      stacklevel=2)
    return out


@pytest.fixture(scope="module")
def one_rank():
    torch.manual_seed(0)
    return {seed: StochasticROM(**params(seed)).fit(data()) for seed in SEEDS}


def test_the_parameters_are_identical_on_every_rank(two_ranks):
    for seed in SEEDS:
        a = torch.load(two_ranks / f"seed{seed}_rank0.pt")
        b = torch.load(two_ranks / f"seed{seed}_rank1.pt")
        assert a["world_size"] == 2
        assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        # the metrics are the means over the ranks (only the clocks differ)
        assert ([{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
                == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]])


def test_two_ranks_stream_from_disk_as_from_memory(two_ranks):
    a, b = (torch.load(two_ranks / f"streamed_rank{r}.pt") for r in (0, 1))
    for states in (a, b):
        assert all(torch.equal(states["stream"][k], v) for k, v in states["memory"].items())
    assert all(torch.equal(a["stream_norm"][k], v) for k, v in b["stream_norm"].items())


def test_the_graph_paths_all_reduce_averages_gradients_as_ddp_does(two_ranks):
    """Halving is exact in floating point: the explicit all_reduce (CUDA-graph path) and
    DistributedDataParallel's buckets give the very same parameters."""
    ddp = torch.load(two_ranks / "streamed_rank0.pt")["memory"]
    for rank in (0, 1):
        explicit = torch.load(two_ranks / f"all_reduce_rank{rank}.pt")
        assert all(torch.equal(explicit[k], v) for k, v in ddp.items())


def test_two_ranks_agree_statistically_with_one_rank_at_the_same_global_batch(two_ranks, one_rank):
    single = np.array([final_loss(one_rank[s]) for s in SEEDS])
    double = np.array([torch.load(two_ranks / f"seed{s}_rank0.pt")["loss"] for s in SEEDS])
    start = one_rank[SEEDS[0]].training_["history"][0]["loss"]
    assert np.all(double < start - 0.5 * (start - single.max()))  # both trained
    # the same windows every step, other noise: each seed's 2-rank loss is within a few
    # spreads of the 1-rank loss across seeds, and the means agree
    spread = max(single.std(ddof=1), double.std(ddof=1), 0.02)
    assert np.all(np.abs(double - single) < 4 * spread), (single, double)
    assert abs(double.mean() - single.mean()) < 3 * spread, (single, double)


def test_a_two_rank_checkpoint_resumes_on_one_rank(two_ranks):
    ckpt = two_ranks / f"ckpt{SEEDS[0]}.safetensors"
    tensors, info = read_checkpoint(ckpt)
    assert info["step"] == STEPS and info["world_size"] == 2
    saved = torch.load(two_ranks / f"seed{SEEDS[0]}_rank0.pt")
    assert all(torch.equal(tensors[f"model.{k}"], v) for k, v in saved["state"].items())
    resumed = StochasticROM(**params(SEEDS[0], steps=STEPS + 50)).fit(data(), resume_from=ckpt)
    assert resumed.training_["resumed_from_step"] == STEPS
    assert resumed.training_["status"] == "completed" and resumed.training_["world_size"] == 1
    assert resumed.training_["history"][:len(saved["history"])] == saved["history"]
    assert final_loss(resumed) < saved["history"][0]["loss"]


def test_a_single_process_has_a_trivial_context_and_distinct_noise_seeds():
    assert current_context() == DistributedContext() and not DistributedContext().enabled
    seeds = {noise_seed(0, r, s) for r in range(4) for s in (0, 10)}
    assert len(seeds) == 8 and all(0 <= s < 2**64 for s in seeds)


def test_srom_train_under_torchrun_writes_one_model(tmp_path):
    """The command line under ``torchrun`` with two gloo ranks: rank 0 saves the model."""
    path = tmp_path / "duffing.npz"
    data().save(path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))

    def train(steps: int, windows: int) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "engine.cli", "train", str(path), "--out",
               str(tmp_path / "model"), "--steps", str(steps), "--window", "12",
               "--windows-per-step", str(windows), "--latent-dim", "2", "--device", "cpu",
               "--log-every", "10", "--set", "hidden=[16]", "--set", "drift_hidden=[16]",
               "--set", "substeps=1"]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=120)

    out = train(30, 4)
    assert out.returncode == 0, out.stderr[:6000]
    assert "on 2 ranks" in out.stderr
    from engine import load_model

    model = load_model(tmp_path / "model")
    assert model.training_["world_size"] == 2 and model.training_["steps"] == 30
    odd = train(2, 3)
    assert odd.returncode != 0 and "multiple of the 2 ranks" in odd.stderr
