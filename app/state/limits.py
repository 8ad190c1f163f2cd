"""What a served dashboard lets its visitors ask for, set by the admin (GUI-free).

Read from the environment at each use, so that ``srom serve --max-queued-trainings 4 ...``
(which sets them for the server it starts) or a plain ``panel serve`` with the variables set
both apply:

- ``SROM_MAX_QUEUED_TRAININGS`` (default 8): trainings waiting in the server's queue at once
  (each session has at most one queued or running);
- ``SROM_MAX_TRAINING_STEPS`` (default 100 000): steps of one dashboard training;
- ``SROM_MAX_GENERATED_TRAJECTORIES`` (default 1 000): trajectories a training may ask the
  simulator for.
"""

from __future__ import annotations

import os

__all__ = ["max_queued_trainings", "max_training_steps", "max_generated_trajectories", "LIMITS"]

#: environment variable -> default
LIMITS = {"SROM_MAX_QUEUED_TRAININGS": 8, "SROM_MAX_TRAINING_STEPS": 100_000,
          "SROM_MAX_GENERATED_TRAJECTORIES": 1_000}


def _read(name: str) -> int:
    try:
        value = int(os.environ.get(name, LIMITS[name]))
    except ValueError:
        return LIMITS[name]
    return value if value > 0 else LIMITS[name]


def max_queued_trainings() -> int:
    return _read("SROM_MAX_QUEUED_TRAININGS")


def max_training_steps() -> int:
    return _read("SROM_MAX_TRAINING_STEPS")


def max_generated_trajectories() -> int:
    return _read("SROM_MAX_GENERATED_TRAJECTORIES")
