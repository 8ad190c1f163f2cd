"""``srom sensitivity``: a 1-D sweep or a tornado ranking from the command line."""

import csv
import json
from pathlib import Path

import pytest
from problems import duffing_dataset

from engine import StochasticROM
from engine.cli import main

OSCILLATOR = Path(__file__).resolve().parents[1] / "pretrained" / "oscillator"


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    """A tiny model of the user's own data (no built-in simulator), saved, and its data."""
    root = tmp_path_factory.mktemp("sens")
    data = duffing_dataset(6, n_times=21)
    data.save(root / "data.npz")
    StochasticROM(latent_dim=2, steps=4, window=8, windows_per_step=2, drift_hidden=(8,),
                  log_every=4).fit(data).save(root / "model")
    return root


def test_a_sweep_prints_a_table_and_writes_csv(own_model, tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    code = main(["sensitivity", str(own_model / "model"), "--input", "damping", "--points",
                 "4", "--paths", "6", "--forcing", "sine:amplitude=0.5", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "damping" in printed.out.splitlines()[0] and "stderr" in printed.out
    assert "kept training state" in printed.err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and float(rows[0]["damping"]) < float(rows[-1]["damping"])
    assert all(float(r["stderr"]) > 0 for r in rows)


def test_a_tornado_from_the_simulator_writes_json(tmp_path, capsys):
    out = tmp_path / "tornado.json"
    code = main(["sensitivity", str(OSCILLATOR), "--tornado", "--paths", "8",
                 "--statistic", "time_max", "--out", str(out)])
    assert code == 0
    assert "from the simulator" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["kind"] == "tornado" and result["statistic"] == "time_max"
    keys = [r["input"] for r in result["rows"]]
    assert {"mu:delta", "mu:beta"} <= set(keys)
    swings = [r["swing"] for r in result["rows"]]
    assert swings == sorted(swings, reverse=True)
    assert all(r["swing_se"] > 0 for r in result["rows"])


def test_an_initial_state_from_a_dataset(own_model, tmp_path):
    out = tmp_path / "s.json"
    assert main(["sensitivity", str(own_model / "model"), "--input", "mu:damping",
                 "--points", "2", "--paths", "4", "--x0-from", str(own_model / "data.npz"),
                 "--index", "3", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["rows"]) == 2


@pytest.mark.parametrize("extra, message", [
    ([], "give --input NAME"),
    (["--input", "nope"], "not a sweepable input"),
    (["--input", "damping", "--points", "1"], "--points must be in 2..201"),
    (["--input", "damping", "--points", "100000"], "--points must be in 2..201"),
    (["--input", "damping", "--paths", "1"], "--paths must be in 2..4096"),
    (["--input", "damping", "--statistic", "median"], "--statistic must be one of"),
    (["--input", "damping", "--out", "x.txt"], "must end in .csv or .json"),
    (["--input", "damping", "--index", "2"], "--index needs --x0-from"),
    (["--input", "damping", "--mu", "damping"], "--mu expects NAME=NUMBER"),
    (["--input", "damping", "--mu", "damping=nan"], "--mu expects NAME=NUMBER"),
    (["--input", "damping", "--mu", "mass=1"], "unknown μ names"),
    (["--input", "damping", "--probe", "2"], "probe must be a flat state index"),
    (["--input", "damping", "--horizon", "1e9"], "horizon must be in"),
    (["--input", "damping", "--forcing", "wobble:x=1"], "unknown forcing family"),
])
def test_mistakes_are_one_clear_line(own_model, capsys, extra, message):
    code = main(["sensitivity", str(own_model / "model"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_input_and_tornado_exclude_each_other(own_model, capsys):
    assert main(["sensitivity", str(own_model / "model"), "--input", "damping",
                 "--tornado"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_a_model_without_forcing_refuses_one(tmp_path, capsys):
    lv = OSCILLATOR.parent / "lotka_volterra"
    assert main(["sensitivity", str(lv), "--input", "alpha", "--forcing", "sine"]) == 2
    assert "takes no forcing" in capsys.readouterr().err
