"""The shared prediction scheduler (app/state/scheduler.py): latest only, first results before
refinements, round robin across sessions, one job per model at a time, idle threads exit."""

from __future__ import annotations

import threading
import time

import pytest

from app.state.scheduler import FairWorker, PredictionScheduler


def _blocked(scheduler: PredictionScheduler) -> tuple[FairWorker, threading.Event, threading.Event]:
    """A worker whose job holds the scheduler's only thread until ``release`` is set."""
    started, release = threading.Event(), threading.Event()
    blocker = FairWorker(scheduler=scheduler)

    def hold(_generation: int) -> None:
        started.set()
        assert release.wait(30)

    blocker.submit(hold)
    assert started.wait(10)
    return blocker, started, release


def test_a_superseded_request_is_never_computed():
    scheduler = PredictionScheduler(threads=1)
    blocker, _, release = _blocked(scheduler)
    computed: list[int] = []
    worker = FairWorker(scheduler=scheduler)
    for value in (1, 2, 3):
        worker.submit(lambda g, v=value: computed.append(v))
    assert worker.busy
    release.set()
    assert worker.wait(10) and blocker.wait(10)
    assert computed == [3]


def test_sessions_are_served_in_turn_even_when_one_keeps_asking():
    scheduler = PredictionScheduler(threads=1)
    _, _, release = _blocked(scheduler)
    order: list[str] = []
    workers = {name: FairWorker(scheduler=scheduler) for name in "ABC"}

    def job(name: str, left: int):
        def run(_generation: int) -> None:
            order.append(name)
            if left > 1:  # a session that asks again as soon as it is served
                workers[name].submit(job(name, left - 1))
        return run

    workers["A"].submit(job("A", 3))
    workers["B"].submit(job("B", 3))
    workers["C"].submit(job("C", 3))
    workers["A"].submit(job("A", 3))  # a newer value keeps A's place in line
    release.set()
    assert all(w.wait(10) for w in workers.values())
    assert order == list("ABCABCABC")


def test_refinements_wait_behind_every_sessions_first_result():
    scheduler = PredictionScheduler(threads=1)
    _, _, release = _blocked(scheduler)
    order: list[str] = []
    a, b = FairWorker(scheduler=scheduler), FairWorker(scheduler=scheduler)

    def preview_a(generation: int) -> None:
        order.append("A preview")
        a.deliver(generation, lambda: order.append("A applied"),
                  then=lambda g: order.append("A refined"))
        b.submit(lambda g: order.append("B first"))  # another session moves meanwhile

    a.submit(preview_a)
    release.set()
    assert a.wait(10) and b.wait(10)
    assert order == ["A preview", "A applied", "B first", "A refined"]


def test_a_refinement_starts_after_the_owner_applied_the_preview_or_after_the_handoff():
    scheduler = PredictionScheduler(threads=1)
    held: list = []
    started: list[float] = []
    worker = FairWorker(dispatch=held.append, scheduler=scheduler, handoff_s=0.5)
    worker.submit(lambda g: worker.deliver(g, lambda: None,
                                           then=lambda g2: started.append(time.monotonic())))
    time.sleep(0.2)
    assert started == [] and worker.busy  # the owner has not applied the preview yet
    held.pop(0)()  # the session applies it: the refinement may start
    assert worker.wait(10) and len(started) == 1
    # a session that never applies it (closed, stalled) holds it back only handoff_s
    t0 = time.monotonic()
    worker.submit(lambda g: worker.deliver(g, lambda: None,
                                           then=lambda g2: started.append(time.monotonic())))
    assert worker.wait(10) and len(started) == 2
    assert 0.4 <= started[1] - t0 < 5.0


def test_a_newer_submission_drops_the_waiting_refinement():
    scheduler = PredictionScheduler(threads=1)
    held: list = []
    ran: list[str] = []
    worker = FairWorker(dispatch=held.append, scheduler=scheduler, handoff_s=30)
    worker.submit(lambda g: worker.deliver(g, lambda: ran.append("applied 1"),
                                           then=lambda g2: ran.append("refined 1")))
    time.sleep(0.1)
    worker.submit(lambda g: ran.append("first 2"))
    assert worker.wait(10)
    for apply in held:
        apply()  # stale by now: not applied
    time.sleep(0.1)
    assert ran == ["first 2"]


def test_jobs_of_one_model_never_run_at_once_and_other_models_go_on():
    scheduler = PredictionScheduler(threads=2)
    lock = threading.Lock()
    running: dict[str, int] = {"m1": 0, "m2": 0}
    most: dict[str, int] = {"m1": 0, "m2": 0}
    overlap = threading.Event()

    def job(key: str, seconds: float):
        def run(_generation: int) -> None:
            with lock:
                running[key] += 1
                most[key] = max(most[key], running[key])
                if running["m1"] and running["m2"]:
                    overlap.set()
            time.sleep(seconds)
            with lock:
                running[key] -= 1
        return run

    workers = [FairWorker(scheduler=scheduler) for _ in range(4)]
    for w in workers[:3]:
        w.submit(job("m1", 0.15), key="m1")
    workers[3].submit(job("m2", 0.15), key="m2")
    assert all(w.wait(10) for w in workers)
    assert most == {"m1": 1, "m2": 1} and overlap.is_set()


def test_cancel_drops_the_waiting_job_and_idle_threads_exit():
    scheduler = PredictionScheduler(threads=1, idle_s=0.2, name="srom-predict-test")
    _, _, release = _blocked(scheduler)
    ran: list[int] = []
    worker = FairWorker(scheduler=scheduler)
    worker.submit(lambda g: ran.append(g))
    worker.cancel()  # the session closed
    assert not worker.busy
    release.set()
    time.sleep(0.6)
    assert ran == []
    assert not any(t.name == "srom-predict-test" for t in threading.enumerate())
    worker.submit(lambda g: ran.append(g))  # a new job starts a thread again
    assert worker.wait(10) and len(ran) == 1


def test_a_failing_job_does_not_stop_the_scheduler():
    scheduler = PredictionScheduler(threads=1)
    worker = FairWorker(scheduler=scheduler)
    worker.submit(lambda g: 1 / 0)
    assert worker.wait(10)
    ran: list[int] = []
    worker.submit(lambda g: ran.append(g))
    assert worker.wait(10) and ran == [2]


def test_the_pool_size_is_checked():
    with pytest.raises(ValueError, match="threads must be at least 1"):
        PredictionScheduler(threads=0)


def test_a_kept_pool_starts_whole_and_its_thread_count_does_not_move():
    scheduler = PredictionScheduler(threads=2, idle_s=None, name="srom-predict-kept")

    def count() -> int:
        return sum(t.name == "srom-predict-kept" for t in threading.enumerate())

    assert count() == 0
    workers = [FairWorker(scheduler=scheduler) for _ in range(6)]  # six sessions
    for w in workers:
        w.submit(lambda g: time.sleep(0.02))
    assert count() == 2
    assert all(w.wait(10) for w in workers)
    time.sleep(0.2)
    assert count() == 2  # idle, and kept


def test_an_idle_thread_keeps_neither_its_last_job_nor_its_worker():
    """A closed session's state is reachable from its job's closure and its worker: a kept
    pool's idle thread must not hold them until its next job (that left closed sessions
    alive once the first prediction ran in the background, issue 17)."""
    import gc
    import weakref

    class Owner:  # stands in for a session's state, held by its job's closure
        pass

    scheduler = PredictionScheduler(threads=1, idle_s=None)
    owner = Owner()
    worker = FairWorker(scheduler=scheduler)
    worker.submit(lambda g, o=owner: None)
    assert worker.wait(10)
    refs = weakref.ref(owner), weakref.ref(worker)
    del owner, worker
    gc.collect()
    assert [r() for r in refs] == [None, None]
    with scheduler.cond:
        assert scheduler._alive == 1 and not scheduler._ready and not scheduler._running_keys


def test_superseded_tells_a_running_job_that_it_is_stale():
    scheduler = PredictionScheduler(threads=1)
    worker = FairWorker(scheduler=scheduler)
    stale = worker.superseded(worker.submit(lambda g: None))
    assert worker.wait(10) and not stale()
    worker.submit(lambda g: None)  # a newer request
    assert stale()
    fresh = worker.superseded(worker.submit(lambda g: None))
    worker.cancel()  # a closed session
    assert fresh() and worker.wait(10)
