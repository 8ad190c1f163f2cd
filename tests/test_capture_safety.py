"""What a captured CUDA-graph training step runs must never read a value back to the host.

A read-back (``.item()``, ``int(tensor)``, indexing with a 0-d tensor: all of them run
``aten::_local_scalar_dense``) makes ``torch.cuda.graph`` fail on a GPU, and a failed
capture leaves the CUDA generator in capture state, so every later random draw of the
process fails too. This checks the step's parts on the CPU with a dispatch mode that logs
every operator (the optimizer is left out: on the CPU, Adam reads its step count back,
on CUDA it runs ``capturable=True``).
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import engine.posterior as posterior
import engine.train as train
from engine import StochasticROM
from engine.systems import generate

READ_BACK = "aten._local_scalar_dense"


class OperatorLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_training_step_reads_nothing_back_to_the_host(monkeypatch):
    logged: dict[str, list[str]] = {"sample": [], "loss": []}
    original = train.Trainer._compute_and_update

    def logged_step(self):
        sample, loss = self.sampler.sample, self.loss

        def sample_logged(step):
            with OperatorLog() as log:
                out = sample(step)
            logged["sample"] += log.ops
            return out

        def loss_logged(batch, step):
            with OperatorLog() as log:
                terms = loss(batch, step)
                terms["loss"].backward(retain_graph=True)
            logged["loss"] += log.ops
            return terms

        self.sampler.sample, self.loss = sample_logged, loss_logged
        try:
            original(self)
        finally:
            self.sampler.sample, self.loss = sample, loss

    monkeypatch.setattr(train.Trainer, "_compute_and_update", logged_step)
    # the CPU's own Cholesky shortcut reads the factorization status back; check the
    # operators of the GPU path, which a capture records
    monkeypatch.setattr(posterior, "FACTOR_FIRST_DEVICES", ())
    data = generate("lotka_volterra", n=3, split="train", seed=0)
    StochasticROM(steps=3, log_every=100, latent_dim=2, device="cpu").fit(data)
    assert logged["sample"] and logged["loss"], "the step's parts were not seen"
    for part, ops in logged.items():
        assert not any(op.startswith(READ_BACK) for op in ops), f"{part} reads a value back"


def test_the_window_lookup_of_a_step_tensor_is_capture_safe():
    from engine.windows import DrawTable, rank_slots, seed_key

    table = DrawTable(seed_key(3), rank_slots(4, 0, 1), n_traj=5, n_starts=20, block=8)
    table.prepare(16)
    with OperatorLog() as log:
        traj, start = table.lookup(torch.tensor(19))
    assert not any(op.startswith(READ_BACK) for op in log.ops)
    from engine.windows import window_draws

    expected = window_draws(seed_key(3), torch.tensor(19), rank_slots(4, 0, 1), 5, 20)
    assert torch.equal(traj, expected[0]) and torch.equal(start, expected[1])


def test_the_capturable_parameter_average_reads_nothing_back():
    from engine.param_average import ParameterAverage

    params = [torch.randn(3, 2), torch.randn(4)]
    average = ParameterAverage(params, time_constant=5, capturable=True)
    with OperatorLog() as log:
        for _ in range(3):
            average.update()
    assert log.ops and not any(op.startswith(READ_BACK) for op in log.ops)
    host = ParameterAverage(params, time_constant=5)  # the eager path: no tensor arithmetic
    with OperatorLog() as log:
        host.update()
    assert not any(op.startswith(READ_BACK) for op in log.ops)
