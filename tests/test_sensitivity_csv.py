"""CSV export of sensitivity results (engine/sensitivity.py: rows and to_csv): the text reads
back as the rows, floats exactly; names that look like spreadsheet formulas are defused."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from engine.sensitivity import (
    SUMMARY_LEVELS,
    GridResult,
    SweepInput,
    SweepResult,
    TornadoResult,
    rows_to_csv,
)

NU = SweepInput("mu:nu", "nu", "ν", (0.02, 0.05), 0.035)
AMP = SweepInput("forcing:amplitude", "amplitude", "amplitude", (1.5, 2.5), 2.0)


def _read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_sweep_reads_back_exactly():
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(5, 40))
    r = SweepResult(NU, NU.grid(5), stats, "u(x = 0.5) at t = 1")
    rows = _read(r.to_csv())
    assert list(rows[0]) == ["nu", "mean", "stderr", "std",
                             *(f"q{lv * 100:g}" for lv in SUMMARY_LEVELS)]
    assert [float(row["nu"]) for row in rows] == NU.grid(5).tolist()
    assert [float(row["mean"]) for row in rows] == stats.mean(axis=1).tolist()
    assert float(rows[2]["stderr"]) == pytest.approx(stats[2].std(ddof=1) / np.sqrt(40))


def test_a_grid_has_one_row_per_pair_first_input_slowest():
    stats = np.arange(3 * 4 * 6, dtype=float).reshape(3, 4, 6)
    g = GridResult((NU, AMP), (NU.grid(3), AMP.grid(4)), stats, "energy")
    rows = _read(g.to_csv())
    assert len(rows) == 12
    assert [float(row["nu"]) for row in rows[:4]] == [0.02] * 4
    assert [float(row["amplitude"]) for row in rows[:4]] == AMP.grid(4).tolist()
    assert float(rows[5]["mean"]) == stats[1, 1].mean()


def test_the_ranking_is_largest_swing_first_with_its_rank():
    t = TornadoResult([AMP, NU], low=np.array([1.0, 0.5]), high=np.array([3.0, 0.7]),
                      low_band=np.array([[0.5, 0.4], [1.5, 0.6]]),
                      high_band=np.array([[2.5, 0.6], [3.5, 0.8]]), nominal=1.2,
                      nominal_band=np.array([1.0, 1.4]), label="probe",
                      low_se=np.array([0.1, 0.01]), high_se=np.array([0.1, 0.01]))
    rows = _read(t.to_csv())
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert [row["input"] for row in rows] == ["forcing:amplitude", "mu:nu"]
    assert float(rows[0]["swing"]) == 2.0 and float(rows[1]["swing"]) == pytest.approx(0.2)
    assert float(rows[0]["swing_se"]) == pytest.approx(np.hypot(0.1, 0.1))
    assert rows[0]["nominal_mean"] == "1.2" and rows[0]["low_q95"] == "1.5"


def test_formula_like_names_are_defused_and_numbers_kept():
    evil = SweepInput("mu:=cmd", "=HYPERLINK(\"http://x\")", "evil", (-1.0, 1.0), 0.0)
    r = SweepResult(evil, evil.grid(3), np.zeros((3, 4)), "probe")
    text = r.to_csv()
    header = next(csv.reader(io.StringIO(text)))
    assert header[0] == "'=HYPERLINK(\"http://x\")"
    assert _read(text)[0][header[0]] == "-1.0"  # a negative number is not a formula


def test_rows_must_share_their_columns():
    with pytest.raises(ValueError, match="no rows"):
        rows_to_csv([])
    with pytest.raises(ValueError, match="row 1 has columns"):
        rows_to_csv([{"a": 1.0}, {"b": 2.0}])
