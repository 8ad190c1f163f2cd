"""The dashboard's GUI-free session state (app/state/explore.py), catalog and simulator cache.

A tiny Burgers model (small preset, 30 training steps) is trained once per test process and
shared with the other app tests through :func:`tiny_model_dir`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from app.state import catalog, simulate
from app.state.explore import BANDS, QUANTILE_LEVELS, ExploreState, forcing_fields
from engine.sensitivity import model_system

_TRAINED: dict[str, Path] = {}
_TRAIN_LOCK = threading.Lock()


def train_tiny_model(root: Path, system: str = "burgers") -> Path:
    """Train (once per process and system) a tiny model of ``system``'s small preset under
    ``root/<system>-tiny``; a few seconds on a CPU."""
    with _TRAIN_LOCK:
        if system not in _TRAINED:
            from engine import StochasticROM
            from engine.systems import generate

            data = generate(system, n=4 if system == "burgers" else 2, preset="small", seed=0)
            model = StochasticROM(latent_dim=3, steps=30, window=min(16, data.n_times),
                                  windows_per_step=2, device="cpu", log_every=10, seed=0)
            model.fit(data)
            _TRAINED[system] = model.save(Path(root) / f"{system}-tiny")
        return _TRAINED[system]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A directory holding one model directory, ``burgers-tiny``."""
    return train_tiny_model(tmp_path_factory.mktemp("srom-models")).parent


@pytest.fixture
def state(tiny_model_dir) -> ExploreState:
    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreState(models=entries, n_paths=16)


# ------------------------------------------------------------------ catalog
def test_discovery_finds_models_and_skips_broken_ones(tiny_model_dir, tmp_path, monkeypatch):
    broken = tmp_path / "nested" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path))
    assert catalog.user_models_dir() == tmp_path
    assert catalog.discover_models([("user", tmp_path)]) == []
    entries = catalog.discover_models([("user", tiny_model_dir), ("user", tmp_path),
                                       ("user", tmp_path / "missing")])
    assert [e.system for e in entries] == ["burgers"]
    assert entries[0].label.startswith("burgers — ")


def test_default_model_prefers_pretrained_burgers():
    e = catalog.ModelEntry
    entries = [e("/a", "a", "heat", "user"), e("/b", "b", "heat", "pretrained"),
               e("/c", "c", "burgers", "user"), e("/d", "d", "burgers", "pretrained")]
    assert catalog.default_model(entries).path == "/d"
    assert catalog.default_model(entries[:3]).path == "/c"
    assert catalog.default_model(entries[:2]).path == "/b"
    assert catalog.default_model([]) is None


def test_models_are_loaded_once_and_matched_to_their_simulator(tiny_model_dir):
    path = tiny_model_dir / "burgers-tiny"
    first, second = catalog.load_cached(path), catalog.load_cached(str(path))
    assert first is second
    system = model_system(first)
    assert system is not None and system.preset == "small"
    assert system.state_shape == tuple(first.state_shape_)


# -------------------------------------------------------------------- state
def test_serving_device_follows_the_environment(monkeypatch):
    monkeypatch.delenv(catalog.ENV_DEVICE, raising=False)
    assert catalog.serving_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(catalog.ENV_DEVICE, "CPU ")
    assert catalog.serving_device() == "cpu"
    monkeypatch.setenv(catalog.ENV_DEVICE, "gpu")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        catalog.serving_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(catalog.ENV_DEVICE, "cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            catalog.serving_device()


def test_a_bad_serving_device_is_an_error_message_not_a_crash(tiny_model_dir, monkeypatch):
    monkeypatch.setenv(catalog.ENV_DEVICE, "tpu")
    catalog.clear_cache()
    s = ExploreState(models=catalog.discover_models([("user", tiny_model_dir)]),
                     background=False)
    assert s.model is None and "SROM_DEVICE" in s.error


def test_state_predicts_on_load_with_bands_and_a_few_paths(state):
    r = state.result
    assert state.error == "" and r is not None
    n_x = state.model.state_shape_[0]
    assert r.mean.shape == r.std.shape == (r.t.size, n_x)
    assert r.quantiles.shape == (len(QUANTILE_LEVELS), r.t.size, n_x)
    assert r.samples.shape == (state.n_keep, r.t.size, n_x)
    assert r.latent_mean.shape == (r.t.size, 3) and r.latent_samples.shape[0] == state.n_keep
    for lo, hi in BANDS:  # nested and ordered
        assert np.all(r.quantile(lo) <= r.quantile(0.5) + 1e-6)
        assert np.all(r.quantile(0.5) <= r.quantile(hi) + 1e-6)
    assert np.all(r.quantile(0.025) <= r.quantile(0.1) + 1e-6)
    lo, hi = state.mu_specs[0].trained
    assert lo <= state.mu["nu"] <= hi and state.warning == ""


def test_changing_mu_updates_the_prediction(state):
    before = state.result
    lo, hi = state.mu_specs[0].trained
    state.set_mu("nu", lo + 0.9 * (hi - lo))
    after = state.result
    assert after is not before
    assert after.mu[0] == pytest.approx(lo + 0.9 * (hi - lo))
    assert not np.allclose(after.mean, before.mean)


def test_mu_outside_the_trained_range_warns_but_predicts(state):
    lo, hi = state.mu_specs[0].trained
    state.set_mu("nu", hi + 0.5 * (hi - lo))
    assert "extrapolating" in state.warning and "nu" in state.warning
    assert state.error == ""
    assert state.result.mu[0] == pytest.approx(hi + 0.5 * (hi - lo))
    state.set_mu("nu", 0.5 * (lo + hi))
    assert state.warning == ""


def test_bad_inputs_become_error_messages_and_the_state_survives(state):
    good = state.result
    state.forcing_family = "ramp"
    assert "not seen in training" in state.warning
    state.forcing_params = {"start": 1.0, "end": 0.5, "change": 1.0, "offset": 0.0}
    assert "end must be greater than start" in state.error
    assert state.result is not good  # the ramp prediction before the bad edit is kept
    kept = state.result
    state.set_mu("nu", -1.0)
    assert "nu" in state.error and state.result is kept
    state.param.update(forcing_family="sine", mu={"nu": 0.07})
    assert state.error == "" and state.result is not kept


def test_engine_exceptions_are_caught(state, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("device on fire")

    monkeypatch.setattr(state.model, "predict", boom)
    state.seed = 3
    assert state.error == "RuntimeError: device on fire"
    monkeypatch.undo()
    state.seed = 4
    assert state.error == ""


def test_batched_changes_predict_once(state, monkeypatch):
    calls = []
    original = state.compute
    monkeypatch.setattr(state, "compute", lambda: calls.append(1) or original())
    state.param.update(n_paths=8, seed=5, mu={"nu": 0.06})
    assert len(calls) == 1 and state.result.mu[0] == pytest.approx(0.06)


def test_truth_overlay_is_cached_and_scored(state):
    simulate.clear_cache()
    state.show_truth = True
    r = state.result
    assert r.truth.shape == r.mean.shape
    assert r.rel_error.shape == r.t.shape and np.all(np.isfinite(r.rel_error))
    assert 0.0 <= r.coverage <= 1.0 and r.inside_band.shape == r.t.shape
    misses = simulate.cache_info()["misses"]
    state.n_paths = 8  # same μ and forcing: the simulator is not run again
    assert simulate.cache_info()["misses"] == misses
    assert np.array_equal(state.result.truth, r.truth)
    # a truth for the model's own grid matches the simulator's first state
    np.testing.assert_allclose(r.truth[0], simulate.initial_state(
        state.system, r.mu, state.forcing(), float(r.t[0]), state.model.dt_))


def test_horizon_and_frames(state):
    t_end = state.model.t_range_[1]
    state.param.update(horizon=2 * t_end, max_frames=21)
    t = state.result.t
    assert t.size <= 21 and t[-1] == pytest.approx(2 * t_end, rel=0.06)
    assert "beyond the trained time range" in state.warning
    state.horizon = -1.0
    assert "horizon" in state.error
    state.horizon = 1e4 * t_end  # bounded work: refused with a reason, nothing computed
    assert "too far" in state.error
    from app.state import explore as state_module

    state.param.update(horizon=2 * t_end, n_paths=2048)
    steps = (state.result.t.size - 1) * state.time_grid()[1]  # integration steps per path
    assert state.error == ""
    old = state_module.MAX_PATH_STEPS
    try:
        state_module.MAX_PATH_STEPS = steps * 2047  # one path fewer than asked
        state.seed = state.seed + 1
        assert "path steps" in state.error and "lower the horizon" in state.error
    finally:
        state_module.MAX_PATH_STEPS = old


def test_forcing_fields_follow_the_trained_ranges():
    fields = {f.name: f for f in forcing_fields("sine", {"amplitude": (1.0, 2.0), "offset": 0.5})}
    assert fields["amplitude"].default == pytest.approx(1.5)
    assert fields["amplitude"].bounds[0] < 1.0 and fields["amplitude"].bounds[1] > 2.0
    assert fields["offset"].default == 0.5
    assert fields["phase"].bounds == pytest.approx((0.0, 2 * np.pi))
    kinds = {f.name: f.kind for f in forcing_fields("smooth_random")}
    assert kinds["seed"] == "int" and kinds["length_scale"] == "float"
    assert {f.kind for f in forcing_fields("sum_of_sines")} >= {"list"}


def test_missing_models_and_corrupt_files_do_not_raise(tmp_path, tiny_model_dir):
    empty = ExploreState(models=[])
    assert empty.model is None and empty.result is None
    empty.refresh()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"kind": "srom.StochasticROM"}))
    state = ExploreState(models=[], model_path=str(bad))
    assert "Could not load the model" in state.error and state.model is None
    state.model_path = str(tiny_model_dir / "burgers-tiny")
    assert state.error == "" and state.result is not None


# --------------------------------------------------------------- background
def test_background_computes_and_applies_only_the_newest_request(state, monkeypatch):
    import app.state.explore as state_module

    original, computed = state_module.predict_request, []
    started, release = threading.Event(), threading.Event()

    def slow(req, n_paths=None, cancel=None):
        computed.append(round(float(req.mu[0]), 6))
        if len(computed) == 1:
            started.set()
            assert release.wait(30)
        return original(req, n_paths)  # not cancelled: a stale result must still not land

    monkeypatch.setattr(state_module, "predict_request", slow)
    delivered, results = [], []
    state.param.update(background=True, preview_paths=0)
    state.dispatch = delivered.append  # a stand-in for the session's event loop
    state.param.watch(lambda e: results.append(e.new), "result")
    state.set_mu("nu", 0.06)
    assert started.wait(30) and state.busy
    state.set_mu("nu", 0.07)  # waits behind the running one ...
    state.set_mu("nu", 0.08)  # ... and is replaced: a burst costs two predictions, not three
    release.set()
    assert state.wait(60)
    assert computed == [0.06, 0.08]
    assert len(delivered) == 2 and results == [] and state.busy  # nothing lands off-thread
    for apply in delivered:
        apply()
    assert len(results) == 1 and results[0].mu[0] == pytest.approx(0.08)  # 0.06 was stale
    assert not state.busy and state.error == "" and results[0].n_paths == state.n_paths


def test_a_running_prediction_stops_when_superseded_or_when_its_session_closes(state,
                                                                               monkeypatch):
    """The model call of a stale request ends at its next cancel check (it would run for
    minutes here); the newest request is predicted and applied; a cancel (a closed
    session) stops the running one and leaves the worker idle with nothing delivered."""
    from engine.cancellation import check_cancelled

    model, original = state.model, state.model.predict
    entered, stopped = threading.Event(), []

    def endless(*args, cancel=None, **kwargs):  # stands in for a long decoder
        if kwargs.get("seed") == 0:  # the newest request (seed 0) predicts normally
            return original(*args, cancel=cancel, **kwargs)
        entered.set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                check_cancelled(cancel, "a chunk of the stand-in")
            except Exception:
                stopped.append(kwargs["seed"])
                raise
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(model, "predict", endless)
    results = []
    state.param.update(background=True, preview_paths=0)
    state.param.watch(lambda e: results.append(e.new), "result")
    state.seed = 1
    assert entered.wait(30)
    state.seed = 0  # newer inputs: the running prediction stops, this one is shown
    assert state.wait(60) and stopped == [1]
    assert [r.inputs["seed"] for r in results] == [0] and state.error == ""
    entered.clear()
    state.seed = 2
    assert entered.wait(30)
    state.worker.cancel()  # what a closed session does (ExploreView)
    assert state.wait(60) and stopped == [1, 2]
    assert [r.inputs["seed"] for r in results] == [0] and state.error == ""


def test_the_truth_is_simulated_once_for_a_preview_and_its_refinement(state, monkeypatch):
    """The preview decodes every k-th time; its truth comes from the same simulation of
    the request's whole grid as the full prediction's (one simulator run, not two)."""
    runs = []
    system = state.system
    original = system.simulate
    monkeypatch.setattr(system, "simulate",  # records each run's number of times
                        lambda mu, f, t, **kw: runs.append(len(t)) or original(mu, f, t, **kw))
    simulate.clear_cache()
    seen = []
    state.param.update(background=True, preview_paths=4, preview_above_ms=0.0,
                       preview_frames=5)
    state.param.watch(lambda e: seen.append(e.new), "result")
    state.param.update(n_paths=24, show_truth=True)
    assert state.wait(60)
    preview, full = seen
    assert preview.preview and preview.decode_stride > 1 and not full.preview
    truth_runs = [n for n in runs if n > 2]  # the initial state's run has 2 times
    assert truth_runs == [full.t.size], runs
    keep = np.searchsorted(full.t, preview.t)
    assert np.array_equal(full.t[keep], preview.t)
    assert np.array_equal(preview.truth, full.truth[keep]) and full.truth.shape == full.mean.shape


def test_the_simulation_cache_is_bounded_in_bytes(monkeypatch):
    monkeypatch.setattr(simulate, "_MAX_BYTES", 3 * 800)
    simulate.clear_cache()
    for k in range(5):  # 800 bytes each: the oldest go once three are held
        simulate._cached(("test", k), lambda: np.zeros(100))
    assert simulate.cache_info()["size"] == 3
    simulate._cached(("test", "big"), lambda: np.zeros(1000))  # larger than the bound: kept alone
    assert simulate.cache_info()["size"] == 1
    simulate.clear_cache()


def test_background_preview_then_refinement(state):
    seen = []
    state.param.update(background=True, preview_paths=4)
    state.param.watch(lambda e: seen.append((e.new.n_paths, e.new.preview, state.busy)), "result")
    state.n_paths = 24  # applied in the worker thread (no dispatch): wait for it
    assert state.wait(60)
    assert seen == [(4, True, True), (24, False, False)]
    state.n_paths = 11  # fewer than 3 × 4 paths: no preview
    assert state.wait(60) and seen[-1] == (11, False, False) and len(seen) == 3


def test_no_preview_while_the_full_prediction_is_quick(state):
    """A GPU predicts everything about as fast as a preview: after a full prediction quicker
    than ``preview_above_ms`` the next request goes straight to the full prediction."""
    seen = []
    state.param.update(background=True, preview_paths=4, preview_above_ms=1e9)
    state.param.watch(lambda e: seen.append(e.new.preview) if e.new else None, "result")
    state.n_paths = 24  # the first prediction of the loaded model: no timing yet
    assert state.wait(60) and seen == [True, False] and state.last_full_seconds > 0
    state.n_paths = 32
    assert state.wait(60) and seen == [True, False, False]
    state.preview_above_ms = 0.0  # every full prediction is slower than that
    state.n_paths = 24
    assert state.wait(60) and seen[3:] == [True, False]
    req = state.request()
    assert [r.preview for r, _ in state.predictions(req)] == [True, False]
    state.background = False  # (predicts in place, untimed)
    state.load(state.model_path)
    assert state.last_full_seconds is None  # a newly loaded model is timed again


def test_a_preview_integrates_on_the_coarsest_step_the_check_found_close(state, monkeypatch):
    """The full prediction uses the model's checked substeps (4 here); its preview the
    fewest whose halving moved the rollout by ≤ 10 % of its error (2 here), and is marked
    as a preview."""
    state.param.update(preview_paths=4, preview_above_ms=0.0)
    state.n_paths = 16
    check = {"integrator": "heun", "substeps": 4,
             "tried": [[1, 0.05, 0.1], [2, 0.009, 0.1], [4, 0.0008, 0.1]]}
    monkeypatch.setattr(state.model, "integration_", check)
    monkeypatch.setattr(state.model, "substeps", None)
    assert state.model.coarse_substeps() == 2
    req = state.request()
    _, stride_substeps = state.time_grid()
    assert req.substeps == stride_substeps and req.substeps % 4 == 0
    plan = state.preview_settings(req)
    assert plan["substeps"] == req.substeps // 2
    calls = []
    real = state.model.predict
    monkeypatch.setattr(state.model, "predict",
                        lambda *a, **k: calls.append(k["substeps"]) or real(*a, **k))
    results = [r for r, _ in state.predictions(req)]
    assert calls == [req.substeps // 2, req.substeps]
    assert [r.preview for r in results] == [True, False]


def test_a_preview_decodes_fewer_times_and_the_refinement_waits_for_it(state, monkeypatch):
    import queue
    import time

    import app.state.explore as state_module

    events, original = [], state_module.predict_request

    def traced(req, n_paths=None, decode_stride=1, substeps=None, cancel=None):
        events.append(("predict", n_paths or req.n_paths, decode_stride))
        return original(req, n_paths, decode_stride, substeps, cancel)

    monkeypatch.setattr(state_module, "predict_request", traced)
    jobs: queue.Queue = queue.Queue()

    def session_thread():  # a stand-in for a busy session event loop
        while (fn := jobs.get()) is not None:
            time.sleep(0.05)
            fn()

    threading.Thread(target=session_thread, daemon=True).start()
    state.param.update(background=True, preview_paths=4, preview_frames=5)
    state.dispatch = jobs.put
    state.param.watch(lambda e: events.append(("applied", e.new.n_paths, e.new.t.size)),
                      "result")
    n_times = state.time_grid()[0].size
    stride = state.preview_stride(n_times)
    assert n_times > 5 and stride > 1
    state.n_paths = 24
    assert state.wait(60)
    done = threading.Event()
    jobs.put(done.set)
    assert done.wait(10)
    jobs.put(None)
    n_kept = len(range(0, n_times, stride)) + ((n_times - 1) % stride != 0)
    # the refinement starts only after the session applied the preview
    assert events == [("predict", 4, stride), ("applied", 4, n_kept), ("predict", 24, 1),
                      ("applied", 24, n_times)]
    assert n_kept <= 5 and not state.busy and state.result.decode_stride == 1


def test_a_preview_applied_after_its_refinement_does_not_replace_it(state):
    """On a loaded server the preview's hand-off can time out, and the session's loop may run
    the two deliveries in either order (seen before the page connected: the final result,
    then the preview, left the page on the preview with the busy mark on for good)."""
    delivered: list = []
    state.param.update(background=True, preview_paths=4, preview_above_ms=0.0)
    state.dispatch = delivered.append  # held: applied below, in the order a test picks
    state.worker.handoff_s = 0.0  # the refinement does not wait for the preview's apply
    state.n_paths = 24
    assert state.wait(60)
    assert len(delivered) == 2
    for apply in reversed(delivered):  # the refinement first, then the late preview
        apply()
    assert state.result.n_paths == 24 and not state.result.preview and not state.busy
    delivered.clear()
    state.n_paths = 25  # the next request: its preview and refinement land as usual
    assert state.wait(60)
    delivered[0]()
    assert state.result.n_paths == 4 and state.busy
    delivered[1]()
    assert state.result.n_paths == 25 and not state.busy


def test_background_bad_input_fails_at_once_and_drops_older_results(state):
    delivered = []
    state.param.update(background=True, preview_paths=0)
    state.dispatch = delivered.append
    good = state.result
    state.set_mu("nu", 0.09)
    assert state.busy
    state.set_mu("nu", -1.0)  # checked on the caller's thread: no worker round trip
    assert "nu" in state.error and not state.busy
    assert state.wait(60)
    for apply in delivered:
        apply()
    assert state.result is good and "nu" in state.error


def test_large_fields_cap_the_sample_paths_and_say_so(state, monkeypatch):
    import app.state.explore as state_module

    assert state_module.path_cap((3, 80, 440), 134) == 18  # a flow-control field
    assert state_module.path_cap((500,), 1001) >= 48  # Burgers keeps the default 48
    assert state_module.path_cap((3, 80, 440), 134, values=1) == 4  # never fewer than 4
    state.n_paths = 24
    state.wait(60)
    per_path = int(np.prod(state.model.state_shape_)) * state.result.t.size
    monkeypatch.setattr(state_module, "PATH_CAP_VALUES", 10 * per_path)
    state.seed = state.seed + 1
    assert state.wait(60)
    assert state.result.n_paths == 10 and not state.result.preview
    assert "large field: 10 sample paths instead of 24" in state.warning
