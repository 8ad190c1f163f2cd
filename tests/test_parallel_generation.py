"""Trajectories solved in worker processes are the same numbers as in one process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.cli import main as srom
from engine.data import load_dataset
from engine.systems.parallel import JOBS_ENV, generation_jobs, map_trajectories


def test_srom_generate_with_jobs_gives_the_serial_data(tmp_path, monkeypatch):
    monkeypatch.delenv(JOBS_ENV, raising=False)
    args = ["generate", "burgers", "--preset", "paper", "--n", "4", "--split", "val",
            "--set", "n_t=41", "--set", "n_x=64"]
    assert srom([*args, "--out", str(tmp_path / "serial.npz")]) == 0
    assert srom([*args, "--jobs", "2", "--out", str(tmp_path / "parallel.npz")]) == 0
    serial, parallel = (load_dataset(tmp_path / f"{k}.npz") for k in ("serial", "parallel"))
    assert np.array_equal(serial.x, parallel.x)
    assert np.array_equal(serial.mu, parallel.mu)


def test_jobs_are_bounded_and_validated(monkeypatch):
    monkeypatch.setenv(JOBS_ENV, "100000")
    assert generation_jobs() == (os.cpu_count() or 1)  # bounded by the CPU count
    monkeypatch.setenv(JOBS_ENV, "1")
    assert generation_jobs() == 1
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv(JOBS_ENV, bad)
        with pytest.raises(ValueError, match=JOBS_ENV):
            generation_jobs()
    monkeypatch.setenv(JOBS_ENV, "1")
    assert map_trajectories(pow, [(2, 3), (3, 2)]) == [8, 9]


def test_srom_generate_refuses_a_bad_jobs_count(tmp_path, capsys):
    code = srom(["generate", "burgers", "--n", "2", "--jobs", "0", "--out", str(tmp_path / "x.npz")])
    assert code != 0
    assert "--jobs" in capsys.readouterr().err
