"""Progress and cancel of a long simulator run in the Explore tab (issue 17, item 2):
app/state/simulation_run.py (GUI-free), the state's cancel, and the progress row
(app/views/simulation_progress.py)."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

import app.state.explore as app_state
from app.state import catalog
from app.state.explore import ExploreState
from app.state.simulation_run import RunProgress, SimulationRun, describe
from engine.systems.progress import SimulationCancelled, report_progress

pn = pytest.importorskip("panel")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_run_records_progress_and_a_cancel_stops_it_at_the_next_report():
    clock = Clock()
    run = SimulationRun(clock=clock)
    assert run.progress() is None
    with run.stage("truth"):
        first = run.progress()
        assert first == RunProgress("truth", "", None, 0.0)  # nothing reported yet
        clock.now += 12.0
        report_progress(43, 100)
        now = run.progress()
        assert now is not None and now.fraction == pytest.approx(0.43)
        assert now.elapsed_s == pytest.approx(12.0) and now.phase == "horizon"
        assert describe(now) == "Simulating the truth: 43 % of the horizon · 12 s"
        run.cancel("cancelled by the user")
        with pytest.raises(SimulationCancelled, match="simulator run was cancelled by the user"):
            report_progress(44, 100)
    assert run.progress() is None and run.stopped_at is not None
    assert run.stopped_at.fraction == pytest.approx(0.44)  # the last step it made
    with pytest.raises(SimulationCancelled):  # a later stage is refused at once
        with run.stage("initial state"):
            pass
    report_progress(1, 2)  # the reporter was removed with the stage


def test_describe_says_when_a_simulator_does_not_report():
    text = describe(RunProgress("initial state", "", None, 7.4))
    assert text.startswith("Simulating the initial state · 7 s so far")
    assert "does not report" in text


class SlowTruth:
    """Stands in for app.state.explore.simulate_truth: reports 200 steps, 10 ms each, and records
    how many it made (the real simulators report the same way; tests/test_simulation_progress
    covers them)."""

    def __init__(self, steps: int = 200):
        self.steps, self.made = steps, 0
        self.started = threading.Event()

    def __call__(self, system, mu, forcings, t, seed=0):
        for i in range(self.steps):
            self.started.set()
            threading.Event().wait(0.01)
            self.made = i + 1
            report_progress(i + 1, self.steps)
        return np.ones((len(t), *system.state_shape))


@pytest.fixture
def state(tiny_model_dir, monkeypatch) -> tuple[ExploreState, SlowTruth]:  # noqa: F811
    slow = SlowTruth()
    monkeypatch.setattr(app_state, "simulate_truth", slow)
    entries = catalog.discover_models([("user", tiny_model_dir)])
    s = ExploreState(models=entries, n_paths=16, background=True, preview_paths=0)
    assert s.wait(60) and s.result is not None and s.error == ""
    return s, slow


def test_cancel_stops_the_truth_and_shows_the_prediction_without_it(state):
    s, slow = state
    s.show_truth = True
    assert slow.started.wait(30)
    s.cancel_simulation()
    assert s.wait(60)
    assert slow.made < slow.steps  # the simulation stopped, not only its result
    assert s.result is not None and s.result.truth is None and s.error == ""
    assert re.search(r"the simulator run was cancelled by the user at \d+ % of the horizon",
                     s.warning), s.warning
    assert s.show_truth is False and not s.busy
    slow.made = 0
    s.set_mu("nu", float(s.mu["nu"]) * 1.01)  # the app goes on, without the simulator
    assert s.wait(60) and s.result.truth is None and slow.made == 0


def test_new_inputs_cancel_a_stale_simulation_but_not_one_that_is_still_wanted(state):
    s, slow = state
    s.show_truth = True
    assert slow.started.wait(30)
    first = s.simulation
    s.n_paths = 24  # the same truth: the run goes on
    assert s.simulation is first and first is not None and first.cancelled is None
    s.set_mu("nu", float(s.mu["nu"]) * 1.01)  # another truth: the old run stops
    assert first.cancelled is not None and "superseded" in first.cancelled
    assert s.simulation is not first
    assert s.wait(60) and s.result.truth is not None and s.error == ""


def test_the_row_shows_progress_after_a_second_and_cancel_unticks(state):
    s, slow = state
    unticked = []
    clock = Clock()
    from app.views.simulation_progress import SimulationProgress

    row = SimulationProgress(s, on_cancel=lambda: unticked.append(True), show_after_s=1.0)
    run = SimulationRun(clock=clock)
    s.simulation = run
    row.poll()
    assert not row.panel.visible  # nothing runs
    with run.stage("truth"):
        row.poll()
        assert not row.panel.visible  # a quick simulation never shows the row
        clock.now += 1.5
        row.poll()
        assert row.panel.visible and row.bar.value == -1 and row.bar.active  # no report yet
        report_progress(30, 100)
        row.poll()
        assert row.bar.value == 30 and not row.bar.active
        assert "30 % of the horizon" in row.text.object
        row.button.clicks += 1  # the user presses Cancel
        assert run.cancelled is not None and unticked == [True]
        with pytest.raises(SimulationCancelled):
            report_progress(31, 100)
    row.poll()
    assert not row.panel.visible
