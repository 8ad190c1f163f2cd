"""Training defaults that follow from the data's size, not from the system.

Two rules, used when the user leaves them open:

**Steps** (``StochasticROM(steps=None)``, the default): a training step decodes
``windows_per_step × min(window, n_times)`` snapshots of ``state_size`` values. When that
is at most :data:`CHEAP_STEP_VALUES` (a state of a few numbers, such as a predator–prey
pair or a Lorenz triple), a step costs milliseconds on a CPU core and its accuracy is
limited by the optimisation, not by the data: the encoder's and the dispersion's
log-variances start far from their fitted values and move by at most about ``lr`` per
Adam step, so :data:`CHEAP_STEPS` steps are run. Otherwise (fields, images, wide states),
:data:`DEFAULT_STEPS`, so that the default training of a large data set stays as long as
before. The count of trajectories never raises the number of steps: more data means
different windows per step, not a longer run.

Measured on the paper's Lotka–Volterra set-up (one trajectory of 500 snapshots,
``docs/attempts/lv_defaults.md``): with the last iterate, 2000 steps gave validation RMSE
0.054 / 0.032 / 0.024 (seeds 0/1/2) and a dispersion still at its initial 0.1; 4000 steps
0.016 / 0.015 / 0.023 (dispersion 0.055–0.067), but 0.0123–0.0416 over seeds 0–5. A
learning rate decayed to lr/10 over the run did worse (0.044 / 0.025 / 0.020 at 4000
steps): it slows exactly the variances that need to move, so ``lr_decay_steps`` keeps its
fixed default. What a default training returns is the average of its iterates
(:mod:`engine.param_average`, time constant steps/8), which removes the seed lottery: with
it, calibrated, 3000 steps give 0.0118–0.0122 over seeds 0–5, as good as 4000, in about
20 s on the 2-core CPU.

**CPU threads** (``srom train`` on a CPU): a cheap step's tensors are too small to split
between threads, and on a shared 2-core machine the extra thread only waits for the busy
core: 1000 Lotka–Volterra steps took 25 s with one thread and 171 s with two (load 5–7).
The command therefore trains cheap steps with one intra-op thread unless
``OMP_NUM_THREADS`` says otherwise (a process-wide setting, so the library leaves it to
the program that owns the process).

**Calibration data** (:func:`calibration_split`): without a validation set, the
uncertainty scale is fitted on the last :data:`CALIBRATION_SHARE` of a few training
trajectories, predicted from the snapshot where that part starts. Those snapshots were
trained on, so the forecast error there is a little smaller than on new data; the share
matches a forecast of about a third of the trained span.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.data import Dataset

__all__ = ["CHEAP_STEP_VALUES", "CHEAP_STEPS", "DEFAULT_STEPS", "CALIBRATION_SHARE",
           "is_cheap_step", "default_steps", "calibration_split"]

#: decoded values per step up to which a step counts as cheap
CHEAP_STEP_VALUES = 4096
#: steps of a default training with cheap steps (with the parameter average)
CHEAP_STEPS = 3000
#: steps of any other default training
DEFAULT_STEPS = 2000
#: share of each trajectory's end used to calibrate without a validation set
CALIBRATION_SHARE = 0.3
#: at most this many decoded values in one calibration trial (trajectories × samples ×
#: snapshots × state); larger data are not calibrated by default (``srom calibrate`` can)
MAX_CALIBRATION_VALUES = 2**25


def is_cheap_step(state_shape: Sequence[int], n_times: int, window: int,
                  windows_per_step: int) -> bool:
    """Whether one training step decodes at most :data:`CHEAP_STEP_VALUES` values.

    Args:
        state_shape: the shape ``S`` of one snapshot.
        n_times: snapshots per trajectory.
        window: snapshots per training window (``B``; clipped to ``n_times``).
        windows_per_step: windows per step (``W``).

    Returns:
        ``W × min(B, n_times) × prod(S) <= CHEAP_STEP_VALUES``.
    """
    for name, value in (("n_times", n_times), ("window", window),
                        ("windows_per_step", windows_per_step)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    values = int(windows_per_step) * min(int(window), int(n_times)) * math.prod(state_shape)
    return values <= CHEAP_STEP_VALUES


def default_steps(state_shape: Sequence[int], n_times: int, window: int,
                  windows_per_step: int) -> int:
    """:data:`CHEAP_STEPS` when :func:`is_cheap_step` (same arguments), else
    :data:`DEFAULT_STEPS` (module docstring)."""
    cheap = is_cheap_step(state_shape, n_times, window, windows_per_step)
    return CHEAP_STEPS if cheap else DEFAULT_STEPS


def calibration_split(dataset: Dataset, n_samples: int = 64, share: float = CALIBRATION_SHARE,
                      max_trajectories: int = 4, min_snapshots: int = 8) -> Dataset | None:
    """The held-out-in-time part of ``dataset`` that calibrates a model without validation.

    The last ``share`` of the snapshots (at least ``min_snapshots``) of the first
    trajectories, as many as keep one calibration trial under
    :data:`MAX_CALIBRATION_VALUES` decoded values and at most ``max_trajectories``.

    Args:
        dataset: the training data, ``x`` of shape ``(N, T, *S)``.
        n_samples: sample paths per trajectory of a calibration trial.
        share: the share of each trajectory's snapshots, in (0, 1).
        max_trajectories: the most trajectories used.
        min_snapshots: the fewest snapshots of the part (else ``None``).

    Returns:
        A :class:`Dataset` of ``(n, T', *S)`` snapshots, or ``None`` when the trajectories
        are too short or one trajectory's trial alone is over the value limit.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if n_samples < 1 or max_trajectories < 1:
        raise ValueError("n_samples and max_trajectories must be positive integers")
    n_tail = max(int(min_snapshots), int(round(share * dataset.n_times)))
    if n_tail >= dataset.n_times:
        return None
    per_trajectory = n_samples * n_tail * math.prod(dataset.state_shape)
    n = min(dataset.n_trajectories, int(max_trajectories), MAX_CALIBRATION_VALUES // per_trajectory)
    if n < 1:
        return None
    return dataset.subset(slice(0, n)).time_slice(dataset.n_times - n_tail)
