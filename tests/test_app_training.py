"""The Train tab without a server: the shared worker and its queue (app/state/worker.py), the
jobs (app/state/training_job.py), the session state (app/state/training.py), uploads (app/state/upload.py)
and the view's wiring (app/views/training.py). Trainings are tiny (oscillator, small preset,
small networks)."""

from __future__ import annotations

import ast
import io
import os
import pickle
import resource
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from app.state import catalog
from app.state.safe_text import md
from app.state.training import TrainingState, check_model_name, ordinal
from app.state.training_job import JobSpec, auto_log_every, qoi_index
from app.state.upload import UploadError, read_upload
from app.state.worker import TrainingWorker
from engine.model import ExtrapolationWarning

#: small networks: a step costs a few milliseconds on one CPU thread
FAST = {"hidden": (16, 16), "drift_hidden": (16, 16), "kernel_hidden": (8, 8), "n_quad": 4,
        "windows_per_step": 2, "window": 16}
TINY = dict(system="oscillator", preset="small", n_trajectories=3, latent_dim=2, device="cpu",
            options=FAST)


def _wait(state: TrainingState, until, timeout: float = 30.0) -> None:
    """Poll like the view's periodic callback until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out; status {state.status}: {state.message}"
        time.sleep(0.02)
        state.poll()


@pytest.fixture(scope="module")
def worker():
    w = TrainingWorker()
    yield w
    w.shutdown()


@pytest.fixture(scope="module")
def trained(worker) -> TrainingState:
    """A session state that trained a tiny oscillator model for 30 steps."""
    state = TrainingState(worker=worker, steps=30, validate_every=10, **TINY)
    assert state.start()
    _wait(state, lambda: not state.active)
    return state


@pytest.fixture
def models_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _dataset_bytes(n: int = 3) -> bytes:
    from engine.systems import generate

    d = generate("oscillator", n=n, preset="small", seed=1)
    return _npz(t=d.t, x=d.x, mu=d.mu, f=d.f, param_names=np.asarray(d.param_names),
                forcing_names=np.asarray(d.forcing_names), system=np.asarray(d.system))


# ------------------------------------------------------------------ training
def test_a_tiny_training_runs_to_completion(trained):
    s = trained
    assert s.status == "completed" and s.error == "" and s.warning == ""
    assert s.step == s.total_steps == 30 and s.queue_position is None
    assert len(s.history) == 30 // auto_log_every(30)
    assert [m["step"] for m in s.history] == sorted(m["step"] for m in s.history)
    assert {"loss", "ell", "residual", "kl", "beta", "seconds"} <= set(s.history[-1])
    assert all(np.isfinite(m["loss"]) for m in s.history)
    v = s.validation
    assert v is not None and v.step == 30 and v.source == "held-out test trajectory"
    assert v.mean.shape == v.truth.shape == v.t.shape and len(v.bands) == 3
    assert np.all(v.bands[0][0] <= v.bands[2][0] + 1e-9)  # the 95 % band holds the 50 % one
    assert np.isfinite(v.rel_l2) and {"rel_l2_mean", "coverage_90"} <= set(s.metrics)
    assert s.model.training_["status"] == "completed" and s.can_save


def test_stop_ends_early_and_keeps_a_usable_model(worker, models_dir):
    state = TrainingState(worker=worker, steps=100_000, **TINY)
    state.start()
    _wait(state, lambda: state.status == "running")
    state.stop()
    _wait(state, lambda: not state.active)
    assert state.status == "stopped" and "the model trained so far is kept" in state.message
    m = state.model
    assert m is not None and 0 < m.training_["steps"] < 100_000
    mu = [0.5 * (lo + hi) for lo, hi in m.param_ranges_]
    pred = m.predict(np.zeros(2), mu, np.linspace(0, 1, 11), np.zeros((11, 1)), n_samples=4,
                     seed=0)
    assert np.all(np.isfinite(pred.mean))
    assert state.save("stopped-early") and (models_dir / "stopped-early" / "config.json").is_file()


def hold_until_stopped(job):
    """A stand-in for a long training: runs until stopped (10 s at most)."""
    job.status = "running"
    job.emit("start", total=10, start=0)
    deadline = time.monotonic() + 10
    while not job.stop_flag.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)
    job.finish("stopped", "stopped at step 0 on request")


def test_two_more_sessions_are_told_their_place_in_the_queue():
    worker = TrainingWorker(runner=hold_until_stopped)
    a, b, c = (TrainingState(worker=worker, owner=o, **TINY) for o in "abc")
    try:
        a.start()
        _wait(a, lambda: a.status == "running")
        b.start()
        c.start()
        assert (b.queue_position, b.message) == (1, "queued: 1st in line")
        assert (c.queue_position, c.message) == (2, "queued: 2nd in line")
        assert b.error == "" and not a.start() and "already" in a.error  # one job a session
        b.stop()  # a queued job is cancelled at once
        assert b.status == "cancelled" and worker.position(b.job) is None
        c.poll()
        assert (c.queue_position, c.message) == (1, "queued: 1st in line")
        pytest.importorskip("panel")  # the view's clean-up when its session closes
        from app.views.training import TrainingView

        TrainingView(state=c)._on_session_destroyed(None)
        _wait(c, lambda: c.status == "cancelled")
        a.close()  # a running job is stopped
        _wait(a, lambda: not a.active)
        assert a.status == "stopped" and worker.wait_idle(5)
    finally:
        worker.shutdown()
    assert ordinal(3) == "3rd" and ordinal(11) == "11th" and ordinal(22) == "22nd"


def test_the_admins_caps_bound_the_queue_and_each_training(monkeypatch):
    monkeypatch.setenv("SROM_MAX_QUEUED_TRAININGS", "1")
    monkeypatch.setenv("SROM_MAX_TRAINING_STEPS", "500")
    monkeypatch.setenv("SROM_MAX_GENERATED_TRAJECTORIES", "20")
    worker = TrainingWorker(runner=hold_until_stopped)
    a, b, c = (TrainingState(worker=worker, owner=o, **{**TINY, "steps": 100}) for o in "abc")
    try:
        assert a.start()
        _wait(a, lambda: a.status == "running")
        assert b.start() and b.queue_position == 1  # the one place in the queue
        assert not c.start() and "training queue is full (1 waiting)" in c.error
        c.param.update(steps=501)
        assert not c.start() and "over this server's limit of 500" in c.error
        c.param.update(steps=100, n_trajectories=21)
        assert not c.start() and "limit of 20 generated" in c.error
    finally:
        worker.shutdown()


@pytest.mark.filterwarnings("ignore:the loss became non-finite:RuntimeWarning")
def test_failures_and_nan_stops_become_messages(worker):
    state = TrainingState(worker=worker, source="upload", **TINY)
    assert not state.start() and "no uploaded dataset" in state.error
    # bad hyperparameters are refused before a job is queued (engine.config's checks)
    state.param.update(source="simulator", steps=10, options={**FAST, "window": 1})
    assert not state.start() and "window must be at least 2" in state.error
    assert state.status == "idle" and state.job is None
    state.param.update(options={**FAST, "lr": 1e6})  # the loss turns NaN at once
    state.start()
    _wait(state, lambda: not state.active)
    assert state.status == "diverged" and "NaN" in state.warning and state.error == ""
    # the parameters of the last finite step are kept (none when it diverged at once)
    assert state.model is None or state.model.training_["steps"] < 10
    fresh = TrainingState(worker=worker, **TINY)
    assert not fresh.save("nothing") and "no trained model" in fresh.error


# ---------------------------------------------------------------------- save
def test_save_under_a_safe_name_lists_the_model_in_the_catalog(trained, models_dir):
    before = catalog.generation()
    for bad in ("", "../evil", "a/b", ".hidden", "x" * 65, "spaces are bad", "é"):
        assert not trained.save(bad) and "Could not save" in trained.error
    assert not models_dir.exists() and catalog.generation() == before
    assert trained.save(" osc-tiny ")
    assert trained.error == "" and catalog.generation() == before + 1
    entries = catalog.discover_models([("user", catalog.user_models_dir())])
    assert [(e.system, Path(e.path).name) for e in entries] == [("oscillator", "osc-tiny")]
    loaded = catalog.load_cached(entries[0].path)
    assert loaded.metrics_["rel_l2_mean"] == pytest.approx(trained.metrics["rel_l2_mean"])
    assert not trained.save("osc-tiny") and "already exists" in trained.error
    assert check_model_name("v1.2_b-3") == "v1.2_b-3"


def test_the_view_shows_progress_and_refreshes_the_explore_picker(trained, models_dir):
    pn = pytest.importorskip("panel")
    from app.views.training import TrainingView, format_duration

    class Explore:  # the parts of ExploreView the Train tab refreshes
        def __init__(self):
            from app.state.explore import ExploreState

            self.state = ExploreState(models=[])
            self._model_select = pn.widgets.Select(options={})

        def offer_models(self, entries):  # as ExploreView.offer_models, labels aside
            self._model_select.options = {e.label: e.path for e in entries}

    explore = Explore()
    view = TrainingView(explore=explore, state=trained)
    pn.panel(view).get_root()
    assert len(view.curves) == len(trained.history)
    assert view._progress.value == view._progress.max == 30
    assert "completed" in view._status.object and not view._save.disabled
    assert len(view.validation_plot.source.data["t"]) == trained.validation.t.size
    view._name.value = "from-the-view"
    view._save.clicks += 1
    view.poll()
    assert any(p.endswith("from-the-view") for p in explore._model_select.options.values())
    assert explore.state.models[-1].path.endswith("from-the-view")
    dropper = view._dropper
    view._dropper.value = {"broken.npz": b"not an archive"}
    # the message is shown as text (escaped for Markdown: the upload is user-given)
    assert view._upload_error.visible and md("not an .npz archive") in view._upload_error.object
    # the refused file does not stay in the dropper as a green "Upload complete"
    assert view._dropper is not dropper and dropper.value == {} and view._dropper.value == {}
    assert view._dropper in view.controls.objects and dropper not in view.controls.objects
    assert format_duration(75) == "1 min 15 s"


# -------------------------------------------------------------------- upload
def test_upload_accepts_a_valid_npz_and_trains_on_it(worker):
    data = _dataset_bytes(3)
    upload = read_upload("mine.npz", data)
    assert upload.dataset.n_trajectories == 3 and upload.dataset.state_shape == (2,)
    text = upload.summary_markdown()
    assert "3 trajectories" in text and "delta" in text and "forcing channels: f" in text
    state = TrainingState(worker=worker, steps=4, validate_every=1, **TINY)
    assert state.add_upload("mine.npz", data)
    assert state.source == "upload" and state.n_trajectories == 2 and state.upload_error == ""
    with warnings.catch_warnings(record=True) as caught:  # filters are process-wide
        warnings.simplefilter("always")
        assert state.start()
        _wait(state, lambda: not state.active)
    assert state.status == "completed", state.error
    assert state.validation.source.startswith("last trajectory of the file")
    m = state.model
    assert m.training_["n_trajectories"] == 2
    # the held-out μ lies outside the trained range, yet the worker's previews warn nobody
    # (a warning raised on the worker's thread would land in a session's prediction)
    held_out = upload.dataset.mu[-1]
    assert any(not lo <= v <= hi for v, (lo, hi) in zip(held_out, m.param_ranges_))
    assert not [w for w in caught if issubclass(w.category, ExtrapolationWarning)]


@pytest.mark.parametrize("name, data, reason", [
    ("broken.npz", b"\x00garbage", "not an .npz archive"),
    ("pickle.npz", pickle.dumps({"x": 1}), "not an .npz archive"),
    ("objects.npz", _npz(t=np.arange(3.0), x=np.array([{"a": 1}] * 3, dtype=object)),
     "pickled Python objects"),
    ("no_x.npz", _npz(t=np.arange(3.0)), "missing required field 'x'"),
    ("bad_t.npz", _npz(t=np.array([0.0, 2.0, 1.0]), x=np.zeros((1, 3, 2))), "field 't'"),
    ("broken.h5", b"not hdf5", "not a readable HDF5"),
    ("data.csv", b"1,2", "unsupported file type"),
    ("empty.npz", b"", "empty"),
], ids=lambda v: v if isinstance(v, str) and "." in v else "")
def test_upload_rejects_bad_files_with_a_reason(name, data, reason):
    with pytest.raises(UploadError, match=reason) as info:
        read_upload(name, data)
    assert "/tmp" not in str(info.value) and name in str(info.value)


def test_upload_limits_and_a_refused_file_keeps_the_last_good_one(worker, monkeypatch):
    good = _dataset_bytes(2)
    with pytest.raises(UploadError, match="over the 0 MB limit"):
        read_upload("big.npz", good, max_mb=0)
    state = TrainingState(worker=worker, **TINY)
    assert state.add_upload("good.npz", good) and state.upload.name == "good.npz"
    monkeypatch.setenv("SROM_MAX_UPLOAD_MB", "0")  # not positive: the default applies
    assert not state.add_upload("../../etc/evil.npz", b"PK\x03\x04junk")
    assert state.upload.name == "good.npz" and "evil.npz" in state.upload_error
    assert "../" not in state.upload_error


# ---------------------------------------------------------------------- misc
def test_gui_free_modules_import_no_gui_library():
    # static, so an import inside a function counts too (tests/test_layering.py imports them)
    root = Path(__file__).resolve().parents[1] / "app" / "state"
    names = sorted(path.name for path in root.glob("*.py"))
    assert {"worker.py", "training_job.py", "training.py", "upload.py", "explore.py"} <= set(names)
    for name in names:
        tree = ast.parse((root / name).read_text())
        imported = {alias.name for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not {m.split(".")[0] for m in imported} & {"panel", "bokeh", "holoviews"}, name
        assert not [m for m in imported if m == "app.views" or m.startswith("app.views.")], name


def test_qoi_index_and_log_spacing():
    assert qoi_index((2,)) == (0, "state component 1")
    assert qoi_index((64,))[0] == 16 and qoi_index((2, 40))[0] == 10
    assert qoi_index((2, 8, 10))[0] == 4 * 10 + 5
    assert auto_log_every(30) == 1 and auto_log_every(10_000) == 50
    assert JobSpec().describe().startswith("oscillator (small)")
    assert threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------- uploads off the event loop
def _zip_bomb() -> bytes:
    """A 0.4 MB .npz that decodes to 400 MB of zeros (a valid dataset otherwise)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, t=np.linspace(0, 1, 1000), x=np.zeros((4, 1000, 12500)))
    return buf.getvalue()


def test_an_upload_is_read_in_another_process_within_time_and_memory_limits(monkeypatch):
    from app.state.upload import read_upload_isolated

    bomb = _zip_bomb()
    assert len(bomb) < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UploadError, match="bomb.npz.*(memory|MemoryError)"):
        read_upload_isolated("bomb.npz", bomb, memory_mb=150)
    # the decoded 400 MB never touched this process
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024
    with pytest.raises(UploadError, match="longer than 0.01 s"):
        read_upload_isolated("slow.npz", bomb, timeout_s=0.01)
    good = _npz(t=np.linspace(0, 1, 5), x=np.ones((2, 5, 3)), system=np.asarray("<b>x</b>"))
    upload = read_upload_isolated("../evil/good.npz", good)
    assert upload.name == "good.npz" and upload.dataset.system == "<b>x</b>"
    np.testing.assert_array_equal(upload.dataset.x, np.ones((2, 5, 3)))


def test_the_session_checks_an_upload_in_the_background_one_at_a_time(worker, monkeypatch):
    import app.state.training as training

    release = threading.Event()
    real = training.read_upload_isolated

    def slow(name, data):
        release.wait(10)
        return real(name, data)

    monkeypatch.setattr(training, "read_upload_isolated", slow)
    state = TrainingState(worker=worker, **TINY)
    good = _dataset_bytes()
    assert state.add_upload("first.npz", good, wait=False) is None  # returns at once
    assert state.upload_pending == "first.npz" and state.upload is None
    assert not state.poll() or state.upload is None  # nothing to apply yet
    assert state.add_upload("second.npz", good, wait=False) is None
    assert "first.npz is still being checked" in state.upload_error
    release.set()
    for _ in range(100):
        if state.poll() and state.upload is not None:
            break
        time.sleep(0.05)
    assert state.upload.name == "first.npz" and state.upload_pending == ""


# ------------------------------------------------------ trainings in their own process
def test_trainings_run_in_a_child_process_that_may_crash_alone():
    from app.state.training_job import JobSpec
    from app.state.training_process import run_job_in_process

    worker = TrainingWorker(runner=run_job_in_process)
    spec = dict(system="oscillator", preset="small", n_trajectories=3, latent_dim=2, device="cpu")
    try:
        job = worker.submit(JobSpec(**spec, steps=30, validate_every=2))
        assert worker.wait_idle(120)
        kinds = [e.kind for e in job.drain()]
        assert job.status == "completed" and job.model.training_["steps"] == 30
        assert kinds[0] == "status" and "start" in kinds and "validation" in kinds
        assert kinds[-1] == "end" and "rel_l2_mean" in job.metrics

        # a stop request reaches the child, which hands back what it trained
        job = worker.submit(JobSpec(**spec, steps=1_000_000))
        _wait_for(lambda: job.status == "running", 60)
        if hasattr(os, "getpriority"):  # the child trains at a lower priority (issue 15)
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            from app.state.training_process import training_niceness

            expected = min(19, mine + training_niceness())
            assert os.getpriority(os.PRIO_PROCESS, job.process.pid) == expected
        job.stop()
        assert worker.wait_idle(60)
        assert job.status == "stopped" and 0 < job.model.training_["steps"] < 1_000_000

        # a training process killed (as by the out-of-memory killer) ends its job alone
        job = worker.submit(JobSpec(**spec, steps=1_000_000))
        _wait_for(lambda: job.status == "running", 60)
        job.process.kill()
        assert worker.wait_idle(60)
        assert job.status == "failed" and "ended unexpectedly" in job.message
        assert job.model is None
        after = worker.submit(JobSpec(**spec, steps=10))  # the worker goes on
        assert worker.wait_idle(120) and after.status == "completed"
    finally:
        worker.shutdown()


def test_training_niceness_comes_from_the_environment(monkeypatch):
    from app.state.training_process import training_niceness

    monkeypatch.delenv("SROM_TRAINING_NICE", raising=False)
    assert training_niceness() == 19
    for value, expected in (("0", 0), ("5", 5), ("40", 19), ("-3", 0), ("x", 19)):
        monkeypatch.setenv("SROM_TRAINING_NICE", value)
        assert training_niceness() == expected


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --------------------------------------------------------- trainings survive a restart
def test_a_training_cut_by_a_server_restart_is_resumed_and_saved(tmp_path, monkeypatch):
    from app.state import job_records
    from app.state.training_job import JobSpec, TrainingJob, run_job
    from app.state.worker import recorded
    from engine import load_model

    monkeypatch.setenv("SROM_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("SROM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(job_records, "NOTICES", [])
    upload = read_upload("mine.npz", _dataset_bytes(4)).dataset
    spec, folder = job_records.record_job(JobSpec(dataset=upload, dataset_name="mine.npz",
                                                  n_trajectories=3, latent_dim=2, steps=120,
                                                  device="cpu", log_every=10))

    class DiesMidway(TrainingJob):  # the server goes down after a few reports
        def emit(self, kind, **data):
            super().emit(kind, **data)
            if kind == "log" and data["step"] >= 60:
                self.stop_flag.set()

    first = DiesMidway(spec)
    run_job(first)
    assert first.status == "stopped" and (folder / "checkpoint.safetensors").is_file()
    assert job_records.interrupted_records() == [folder]  # no one removed the record

    worker = TrainingWorker(runner=recorded(run_job))  # the next server
    try:
        assert job_records.resume_interrupted(worker) == 1
        assert "queued again from its last checkpoint" in job_records.NOTICES[0]
        assert worker.wait_idle(120)
        _wait_for(lambda: len(job_records.NOTICES) == 2, 30)
    finally:
        worker.shutdown()
    assert "it is the model 'resumed-upload-" in job_records.NOTICES[1]
    (saved,) = list((tmp_path / "models").iterdir())
    model = load_model(saved)
    assert model.training_["steps"] == 120 and model.training_["resumed_from_step"] >= 60
    assert job_records.interrupted_records() == [] and not folder.exists()
