"""An exponential moving average of the parameters during training (what ``fit`` returns).

With a learning rate still well above zero at the end of a schedule, the last parameters
are one draw from the optimiser's noise around a good region, and rollouts magnify that
noise: the default Lotka–Volterra training (4 000 steps) scored a validation RMSE between
0.0136 and 0.046 over seeds 0–5 with its last parameters, and between 0.0140 and 0.0155
with their average over a time constant of 500 steps (``docs/attempts/lv_defaults.md``).
On forced Burgers (6 000 steps, ``benchmarks/iterate_average.py``) the validation rollouts of
the last iterate went up and down along training (0.050 → 0.061 → 0.091 over the last 1 000
steps of one seed), those of the average fell at every score on both seeds, and the test
error of the selected parameters was 0.033 against 0.042-0.043.
Averaging the iterates (Polyak–Ruppert, here exponentially weighted so that the average
follows the slow drift of the variances) removes that noise without slowing the
optimisation itself, which a decaying learning rate did.

The average lags the parameters by about its time constant, which costs accuracy where
they still trend at the end of a short schedule (an Ornstein–Uhlenbeck fit of 1 000 steps at
lr 1e-2: the drift's rate 0.94-0.97 from the last parameters, 0.85-0.87 from their average
over 125 steps). ``StochasticROM`` therefore averages by default only the trainings whose
length it chose from the data's size (where it was measured); a schedule given by the user
is averaged when ``average_steps`` asks for it.

The average starts as a running mean (weight ``1/k`` at the ``k``-th update) and becomes an
exponential average once ``1/k`` falls below ``1/time_constant``, so a short training is not
pulled towards its initial parameters. :meth:`ParameterAverage.update` is a few ``_foreach``
kernels on device tensors (no host read-back), so it is captured in the training step's CUDA
graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

__all__ = ["ParameterAverage", "default_time_constant", "MAX_TIME_CONSTANT"]

#: the longest time constant chosen by default (steps)
MAX_TIME_CONSTANT = 500
#: the default time constant is at most this share of the training
SHARE_OF_TRAINING = 1 / 8


def default_time_constant(steps: int) -> int:
    """Steps of the default average of a training of ``steps`` steps:
    ``min(MAX_TIME_CONSTANT, steps × SHARE_OF_TRAINING)``, at least 1 (no averaging)."""
    return int(max(1, min(MAX_TIME_CONSTANT, int(steps * SHARE_OF_TRAINING))))


class ParameterAverage:
    """The average of ``params`` over the training steps.

    Args:
        params: the trained parameters (on one device).
        time_constant: steps of the exponential average (``>= 1``; 1 follows the parameters).
        capturable: update with device-side arithmetic only (a CUDA-graph step); otherwise
            the weight is computed on the host and one ``_foreach_lerp_`` does the update
            (a quarter of the time on a CPU: ~20 µs for the 35 k parameters of the
            Lotka–Volterra model).
    """

    def __init__(self, params: Sequence[torch.Tensor], time_constant: int,
                 capturable: bool = False):
        if int(time_constant) < 1:
            raise ValueError(f"time_constant must be a positive number of steps, got "
                             f"{time_constant!r}")
        self.params = [p.detach() for p in params]
        self.time_constant, self.capturable = int(time_constant), bool(capturable)
        self.average = [p.clone() for p in self.params]
        device = self.params[0].device if self.params else torch.device("cpu")
        #: updates averaged so far (a tensor, so that a captured graph advances it)
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self._updates = 0  # the host's copy of ``count`` (host updates only)
        self._min_weight = 1.0 / self.time_constant

    def update(self) -> None:
        """Fold the current parameters in."""
        if not self.params:
            return
        if not self.capturable:
            self._updates += 1
            weight = max(1.0 / self._updates, self._min_weight)
            torch._foreach_lerp_(self.average, self.params, weight)
            self.count.fill_(self._updates)
            return
        self.count += 1
        weight_t = torch.clamp(1.0 / self.count, min=self._min_weight)
        difference = torch._foreach_sub(self.params, self.average)
        torch._foreach_mul_(difference, weight_t.to(self.average[0].dtype))
        torch._foreach_add_(self.average, difference)

    def restart(self) -> None:
        """Start again from the current parameters."""
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                avg.copy_(p)
        self.count.zero_()
        self._updates = 0

    def _swap(self) -> None:
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                held = p.detach().clone()
                p.copy_(avg)
                avg.copy_(held)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the parameters hold the average (the training's own parameters
        come back afterwards)."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def copy_to_params(self) -> None:
        """Write the average into the parameters (the end of training)."""
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                p.copy_(avg)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``{"count", "0", "1", ...}``: what a checkpoint keeps."""
        return {"count": self.count.detach().clone(),
                **{str(i): avg.detach().clone() for i, avg in enumerate(self.average)}}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_tensors`' output.

        Raises:
            ValueError: a tensor is missing or has another shape.
        """
        if set(tensors) != {"count", *map(str, range(len(self.average)))}:
            raise ValueError("the parameter average does not match this model's parameters")
        with torch.no_grad():
            for i, avg in enumerate(self.average):
                value = tensors[str(i)]
                if tuple(value.shape) != tuple(avg.shape):
                    raise ValueError(f"parameter average {i} has shape {tuple(value.shape)}, "
                                     f"expected {tuple(avg.shape)}")
                avg.copy_(value)
            self.count.copy_(tensors["count"].reshape(()))
        self._updates = int(self.count.item())
