"""The parameter average that training returns (engine/param_average.py)."""

import pytest
import torch

from engine.param_average import ParameterAverage, default_time_constant


def test_running_mean_then_exponential_average():
    p = torch.zeros(3)
    avg = ParameterAverage([p], time_constant=4)
    values = [1.0, 2.0, 3.0, 4.0, 10.0, 10.0]
    expected = 0.0
    for k, v in enumerate(values, start=1):
        p.fill_(v)
        avg.update()
        weight = max(1 / k, 1 / 4)  # a running mean until 1/k < 1/4
        expected += weight * (v - expected)
        assert torch.allclose(avg.average[0], torch.full((3,), expected, dtype=torch.float32))
    assert float(avg.count) == len(values)
    # the first four updates give the plain mean
    q = torch.zeros(2)
    mean = ParameterAverage([q], time_constant=100)
    for v in values:
        q.fill_(v)
        mean.update()
    assert torch.allclose(mean.average[0], torch.full((2,), sum(values) / len(values)))


def test_swap_and_copy_keep_the_iterate():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    avg = ParameterAverage([p], time_constant=2)
    with torch.no_grad():
        p.add_(2.0)  # [3, 4]
    avg.update()  # first update: the average is the iterate
    with torch.no_grad():
        p.add_(2.0)  # [5, 6]
    avg.update()  # weight 1/2: [4, 5]
    with avg.swapped_in():
        assert torch.equal(p.detach(), torch.tensor([4.0, 5.0]))
    assert torch.equal(p.detach(), torch.tensor([5.0, 6.0]))
    avg.copy_to_params()
    assert torch.equal(p.detach(), torch.tensor([4.0, 5.0]))


def test_state_round_trip_and_mismatch():
    p = torch.randn(2, 3)
    avg = ParameterAverage([p], time_constant=5)
    avg.update()
    other = ParameterAverage([torch.zeros(2, 3)], time_constant=5)
    other.load_state_tensors(avg.state_tensors())
    assert torch.equal(other.average[0], avg.average[0]) and float(other.count) == 1
    with pytest.raises(ValueError, match="shape"):
        ParameterAverage([torch.zeros(3)], 5).load_state_tensors(
            {"count": torch.zeros(()), "0": torch.zeros(4)})
    with pytest.raises(ValueError, match="does not match"):
        ParameterAverage([torch.zeros(3)], 5).load_state_tensors({"count": torch.zeros(())})
    with pytest.raises(ValueError, match="positive"):
        ParameterAverage([p], 0)


def test_default_time_constant():
    assert default_time_constant(4000) == 500
    assert default_time_constant(80000) == 500
    assert default_time_constant(60) == 7
    assert default_time_constant(5) == 1


def test_host_and_capturable_updates_agree():
    torch.manual_seed(0)
    a, b = torch.zeros(5, 4), torch.zeros(5, 4)
    host, device_side = ParameterAverage([a], 3), ParameterAverage([b], 3, capturable=True)
    for _ in range(10):
        step = torch.randn(5, 4)
        a.add_(step)
        b.add_(step)
        host.update()
        device_side.update()
        assert torch.allclose(host.average[0], device_side.average[0], atol=1e-6)
    assert float(host.count) == float(device_side.count) == 10
