"""Progress reports and cancellation of simulator runs (engine.systems.progress)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.systems import CylinderSystem, get_system
from engine.systems.progress import SimulationCancelled, report_progress, reporting


class Recorder:
    """Keeps every report; raises SimulationCancelled at report number ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        self.reports: list[tuple[float, float, str]] = []
        self.stop_at = stop_at

    def __call__(self, done: float, total: float, phase: str) -> None:
        self.reports.append((done, total, phase))
        if self.stop_at is not None and len(self.reports) >= self.stop_at:
            raise SimulationCancelled("stopped by the test")


def _horizon(reports: list[tuple[float, float, str]]) -> list[float]:
    return [d / t for d, t, phase in reports if phase == "horizon"]


def test_no_reporter_is_a_no_op_and_the_reporter_is_restored():
    report_progress(1, 2)  # nobody listens: nothing happens
    outer, inner = Recorder(), Recorder()
    with reporting(outer):
        with reporting(inner):
            report_progress(1, 4)
        report_progress(2, 4, "spin-up")
    report_progress(3, 4)
    assert inner.reports == [(1.0, 4.0, "horizon")]
    assert outer.reports == [(2.0, 4.0, "spin-up")]


@pytest.mark.parametrize("name, preset", [("lotka_volterra", None),
                                          ("kuramoto_sivashinsky", None),
                                          ("reaction_diffusion", "small")])
def test_systems_report_a_rising_fraction_of_the_horizon_and_same_numbers(name, preset):
    system = get_system(name, preset=preset) if preset else get_system(name)
    t = system.time_grid()[:12]
    plain = system.simulate(seed=3, t=t)
    rec = Recorder()
    with reporting(rec):
        reported = system.simulate(seed=3, t=t)
    np.testing.assert_array_equal(plain, reported)  # reporting changes no number
    fractions = _horizon(rec.reports)
    assert len(fractions) == t.size - 1
    assert np.all(np.diff(fractions) > 0) and fractions[-1] == pytest.approx(1.0)


def test_a_reporter_that_raises_stops_the_run_at_once():
    system = get_system("lotka_volterra")
    t = system.time_grid()[:30]
    rec = Recorder(stop_at=3)
    with reporting(rec), pytest.raises(SimulationCancelled, match="stopped by the test"):
        system.simulate(seed=0, t=t)
    assert len(rec.reports) == 3  # no report after the cancel: the loop ended there


def test_cylinder_reports_spin_up_then_horizon_across_batches_and_stops():
    kw = dict(lattice_dtype="float64", t_end=0.1, n_t=5, spinup=0.02, batch_size=1)
    system = CylinderSystem.from_preset("small", **kw)
    rec = Recorder()
    with reporting(rec):
        out = system.run([[41.25], [43.75]], [None, None])  # Re not spun up by other tests
    plain = CylinderSystem.from_preset("small", **kw).run([[41.25], [43.75]], [None, None])
    np.testing.assert_array_equal(out["x"], plain["x"])
    phases = [p for _, _, p in rec.reports]
    assert phases[0] == "spin-up" and phases[-1] == "horizon"
    spin = [d / t for d, t, p in rec.reports if p == "spin-up"]
    assert np.all(np.diff(spin[: len(spin) // 2]) > 0) and spin[-1] == pytest.approx(1.0)
    horizon = _horizon(rec.reports)
    assert np.all(np.diff(horizon) > 0) and horizon[-1] == pytest.approx(1.0)
    assert any(0.4 < f <= 0.5 for f in horizon)  # the first of two batches ends half-way

    seen: list[str] = []

    def stop_in_the_time_loop(done: float, total: float, phase: str) -> None:
        seen.append(phase)
        if seen.count("horizon") == 2:
            raise SimulationCancelled("stopped")

    with reporting(stop_in_the_time_loop), pytest.raises(SimulationCancelled):
        CylinderSystem.from_preset("small", **kw).run([[41.0]], [None])
    assert seen.count("horizon") == 2 and seen[-1] == "horizon"  # nothing ran after it
