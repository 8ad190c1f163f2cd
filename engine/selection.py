"""Model selection on held-out data during training (early stopping without stopping).

A learned SDE can fit every training window and still drift away over a long rollout (a
latent limit cycle whose radial stability the windows barely constrain, say). The windows'
ELBO does not see this; a rollout on validation data does. :class:`ValidationSelector`
scores the model every ``every`` steps with the papers' protocol (encode the first
snapshot, predict the whole validation horizon, relative L2 error of the predictive mean)
with the accurate integrator predictions use, and keeps a copy of the parameters with the
best score, which ``fit`` restores at the end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from engine.config import is_integer
from engine.data import Dataset
from engine.progress import NullCallback
from engine.solvers.step_check import choose_substeps

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["ValidationSelector"]


class ValidationSelector(NullCallback):
    """Scores a model on validation data during training and remembers the best state.

    Args:
        model: the :class:`~engine.model.StochasticROM` being fitted (its ``module_`` is
            read and, by :meth:`restore_best`, written).
        dataset: validation trajectories (never the test split).
        every: score at the first metric log at least ``every`` steps after the last
            score, and at the end of training.
        n_samples: sample paths per trajectory (a few suffice for the mean's error).
        seed: seed of the validation predictions (the same draws each time, so that
            scores differ only through the parameters).
        substeps: integrate every score with this many substeps per output step instead of
            running the step check before each score (which integrates the horizon at 1, 2,
            4, … substeps: ~4x the cost of the score itself). The model's own ``substeps``,
            when set, wins. ``None``: the check.
    """

    #: the largest substep count the check tries while training (predictions: 64)
    MAX_SUBSTEPS = 16
    #: the largest fixed substep count a selection may be given
    MAX_FIXED_SUBSTEPS = 256

    def __init__(self, model: StochasticROM, dataset: Dataset, every: int,
                 n_samples: int = 16, seed: int = 0, substeps: int | None = None):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        if substeps is not None and not (is_integer(substeps)
                                         and 1 <= substeps <= self.MAX_FIXED_SUBSTEPS):
            raise ValueError(f"substeps must be an integer in 1..{self.MAX_FIXED_SUBSTEPS}, "
                             f"got {substeps!r}")
        self.fixed_substeps = substeps
        self.model, self.dataset = model, dataset
        self.every, self.n_samples, self.seed = int(every), int(n_samples), int(seed)
        self.best_score = math.inf
        self.best_step: int | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._last_scored: int | None = None
        self.scores: list[tuple[int, float]] = []
        self.substeps: list[int] = []  # of the integration each score used

    def score(self, step: int) -> float:
        """Validation relative L2 error of the current parameters (``inf`` if not finite),
        integrated as accurately as predictions will be: when the model's substeps are left
        to the step check and no fixed count was given, the check runs first on the
        validation data (at most ``MAX_SUBSTEPS`` here), so that a model is never selected
        for what a coarse integration happens to do."""
        substeps = self.model.substeps if self.model.substeps is not None else self.fixed_substeps
        if substeps is None:
            substeps = choose_substeps(self.model, self.dataset, self.model.integrator,
                                       max_substeps=self.MAX_SUBSTEPS)["substeps"]
        self.substeps.append(int(substeps))
        value = float(self.model.evaluate(self.dataset, n_samples=self.n_samples,
                                          seed=self.seed, substeps=substeps,
                                          paper_protocol=False)["rel_l2_mean"])
        value = value if math.isfinite(value) else math.inf
        self.scores.append((step, value))
        self._last_scored = step
        if value < self.best_score:
            self.best_score, self.best_step = value, step
            self._best_state = {k: v.detach().clone()
                                for k, v in self.model.module_.state_dict().items()}
        return value

    def on_start(self, total_steps: int, start_step: int) -> None:
        self._last_scored = start_step

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self._last_scored is None or step - self._last_scored >= self.every:
            # the metrics dict is the trainer's history entry: the score lands in the curve
            metrics["val_rel_l2"] = self.score(step)

    def on_end(self, step: int, status: str, message: str) -> None:
        if status != "diverged" and step != self._last_scored:
            self.score(step)

    def restore_best(self) -> bool:
        """Load the best parameters into the model; ``False`` if nothing was scored finite."""
        if self._best_state is None:
            return False
        self.model.module_.load_state_dict(self._best_state)
        return True

    # ------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The best parameters so far and every score, for a checkpoint: a resumed training
        keeps selecting against them (``engine.train.CheckpointState``)."""
        record = {"best_step": self.best_step,
                  "best_score": None if math.isinf(self.best_score) else self.best_score,
                  "scores": [[s, None if math.isinf(v) else v] for s, v in self.scores],
                  "substeps": list(self.substeps)}
        return dict(self._best_state or {}), record

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor], record) -> None:
        """Restore :meth:`checkpoint_state` (from a file: every field checked)."""
        from engine.train import CheckpointError

        def number(v, optional=True) -> bool:
            return ((v is None and optional) or (isinstance(v, (int, float))
                                                 and not isinstance(v, bool) and math.isfinite(v)))

        def step_count(v) -> bool:
            return is_integer(v) and 0 <= v <= 2**62

        if not isinstance(record, dict):
            raise CheckpointError("checkpoint: the model selection's record is not an object")
        scores, substeps = record.get("scores"), record.get("substeps")
        best_step, best_score = record.get("best_step"), record.get("best_score")
        if not (isinstance(scores, list) and all(
                isinstance(p, list) and len(p) == 2 and step_count(p[0]) and number(p[1])
                for p in scores)):
            raise CheckpointError("checkpoint: the model selection's scores must be "
                                  "[step, score or null] pairs")
        if not (isinstance(substeps, list) and all(is_integer(n) and n >= 1 for n in substeps)):
            raise CheckpointError("checkpoint: the model selection's substeps must be counts")
        if not ((best_step is None and best_score is None and not tensors)
                or (step_count(best_step) and number(best_score, optional=False))):
            raise CheckpointError("checkpoint: the model selection's best step and score "
                                  "must be a step and a finite number (or both null)")
        if tensors:
            expected = self.model.module_.state_dict()
            if set(tensors) != set(expected) or any(
                    tuple(tensors[k].shape) != tuple(v.shape) for k, v in expected.items()):
                raise CheckpointError("checkpoint: the model selection's best parameters do "
                                      "not fit this model")
            device = next(iter(expected.values())).device
            self._best_state = {k: v.to(device=device, dtype=expected[k].dtype)
                                for k, v in tensors.items()}
        self.best_step = best_step
        self.best_score = math.inf if best_score is None else float(best_score)
        self.scores = [(int(s), math.inf if v is None else float(v)) for s, v in scores]
        self.substeps = [int(n) for n in substeps]

    def summary(self) -> dict:
        """``best_step``, ``best_val_rel_l2``, ``every``, ``n_samples``, all ``scores`` and
        the ``substeps`` each score integrated with."""
        return {"best_step": self.best_step,
                "best_val_rel_l2": None if math.isinf(self.best_score) else self.best_score,
                "every": self.every, "n_samples": self.n_samples, "substeps": self.substeps,
                "scores": [[s, None if math.isinf(v) else v] for s, v in self.scores]}
