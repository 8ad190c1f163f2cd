"""Identical truth simulations requested at the same time run once (app.state.simulate)."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("param")

from app.state import simulate  # noqa: E402
from engine.systems.progress import SimulationCancelled, report_progress, reporting  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_cache():
    simulate.clear_cache()
    yield
    simulate.clear_cache()


class SlowSimulation:
    """A stand-in simulator: reports 100 steps of ``step_s`` each and counts its runs."""

    def __init__(self, step_s: float = 0.004):
        self.step_s, self.runs, self.started = step_s, 0, threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> np.ndarray:
        with self._lock:
            self.runs += 1
        self.started.set()
        for k in range(100):
            time.sleep(self.step_s)
            report_progress(k + 1, 100)
        return np.arange(5.0)


def run_in_thread(target, *args):
    box: dict = {}

    def body():
        try:
            box["value"] = target(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread, box


def leader_then_follower(lead, follow, started: threading.Event, then: threading.Event):
    """Run ``lead`` until it has started simulating, then ``follow`` beside it; set ``then``
    once the follower waits; returns both results (``{"value"}`` or ``{"error"}``)."""
    leader, leader_box = run_in_thread(lead)
    assert started.wait(5)
    follower, follower_box = run_in_thread(follow)
    time.sleep(0.1)
    then.set()
    leader.join(10)
    follower.join(10)
    return leader_box, follower_box


def test_identical_requests_share_one_simulation():
    sim = SlowSimulation()
    threads = [run_in_thread(simulate._cached, ("truth", 1), sim) for _ in range(4)]
    for thread, _ in threads:
        thread.join(10)
    values = [box["value"] for _, box in threads]
    assert sim.runs == 1
    assert all(v is values[0] for v in values)
    info = simulate.cache_info()
    assert info["misses"] == 1 and info["shared"] == 3 and info["size"] == 1
    # a different key is a different simulation
    simulate._cached(("truth", 2), sim)
    assert sim.runs == 2


def test_a_waiting_request_sees_the_progress_and_can_cancel_its_wait():
    sim = SlowSimulation(step_s=0.01)
    leader, leader_box = run_in_thread(simulate._cached, ("truth", 1), sim)
    assert sim.started.wait(5)
    seen = []

    def follower_reporter(done, total, phase):
        seen.append(done / total)
        if len(seen) >= 3:
            raise SimulationCancelled("the follower's user pressed stop")

    def follow():
        with reporting(follower_reporter):
            return simulate._cached(("truth", 1), sim)

    follower, follower_box = run_in_thread(follow)
    follower.join(10)
    leader.join(10)
    assert isinstance(follower_box.get("error"), SimulationCancelled)
    assert len(seen) == 3 and all(0 < f <= 1 for f in seen) and seen == sorted(seen)
    assert np.array_equal(leader_box["value"], np.arange(5.0)) and sim.runs == 1


def test_a_cancelled_simulation_is_taken_over_by_a_waiting_request():
    sim = SlowSimulation(step_s=0.01)
    stop = threading.Event()

    def leader_reporter(done, total, phase):
        if stop.is_set():
            raise SimulationCancelled("the first user pressed stop")

    def lead():
        with reporting(leader_reporter):
            return simulate._cached(("truth", 1), sim)

    leader_box, follower_box = leader_then_follower(
        lead, lambda: simulate._cached(("truth", 1), sim), sim.started, stop)
    assert isinstance(leader_box.get("error"), SimulationCancelled)
    assert np.array_equal(follower_box["value"], np.arange(5.0))
    assert sim.runs == 2 and simulate.cache_info()["size"] == 1


def test_a_failed_simulation_fails_its_waiters_and_is_not_cached():
    started, release = threading.Event(), threading.Event()

    def broken():
        started.set()
        release.wait(5)
        raise ValueError("the solver diverged")

    leader_box, follower_box = leader_then_follower(
        lambda: simulate._cached(("truth", 1), broken),
        lambda: simulate._cached(("truth", 1), broken), started, release)
    assert isinstance(leader_box.get("error"), ValueError)
    assert isinstance(follower_box.get("error"), ValueError)
    assert simulate.cache_info()["size"] == 0
    assert np.array_equal(simulate._cached(("truth", 1), lambda: np.ones(2)), np.ones(2))
