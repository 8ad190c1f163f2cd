"""The Train tab's researcher tools (issue 17): training knobs checked by the engine, resume
of a stopped training from its kept checkpoint, and the trained model as a zip download
(app/state/training.py, app/state/training_job.py, app/state/job_records.py, app/state/model_archive.py,
app/views/training.py). Trainings are tiny (oscillator, small preset, small networks)."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from app.state import job_records
from app.state.model_archive import model_zip
from app.state.training import TrainingState
from app.state.training_job import JobSpec, TrainingJob, check_architecture, run_job
from app.state.worker import TrainingWorker, recorded
from engine import load_model

FAST = {"hidden": (16, 16), "drift_hidden": (16, 16), "kernel_hidden": (8, 8), "n_quad": 4,
        "windows_per_step": 2}
TINY = dict(system="oscillator", preset="small", n_trajectories=3, latent_dim=2, device="cpu",
            options=FAST)


def _wait(state: TrainingState, until, timeout: float = 60.0) -> None:
    """Poll like the view's periodic callback until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out; status {state.status}: {state.message}"
        time.sleep(0.02)
        state.poll()


@pytest.fixture
def jobs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SROM_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


@pytest.fixture
def worker(jobs):
    """The served worker's runner on a thread: records, checkpoints, kept checkpoints."""
    w = TrainingWorker(runner=recorded(run_job))
    yield w
    w.shutdown()


# ------------------------------------------------------------------------ knobs
def test_the_knobs_are_bounded_params():
    state = TrainingState(worker=TrainingWorker(), **TINY)
    for name, bad in (("lr", 0.0), ("lr", 2.0), ("window", 1), ("window", 10_000),
                      ("latent_dim", 0), ("architecture", "transformer"), ("steps", 0)):
        with pytest.raises(ValueError):
            setattr(state, name, bad)
    assert (state.lr, state.window, state.architecture) == (1e-3, 64, "auto")


@pytest.mark.parametrize("options, expected", [
    ({"lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
    ({"window": 1}, "window must be at least 2 snapshots, got 1"),
    ({"window": 2.5}, "window must be a positive integer, got 2.5"),
    ({"hidden": "wide"}, "hidden must be a list of layer widths"),
    ({"lrr": 0.1}, "unknown hyperparameter(s) 'lrr' (did you mean 'lr'?)"),
    ({"architecture": "conv2d"}, "architecture 'conv2d' needs 2-D fields"),
    ({"architecture": "identity"}, "as many components as the latent dimension (3)"),
])
def test_bad_settings_are_refused_with_one_clear_message(options, expected):
    worker = TrainingWorker()
    state = TrainingState(worker=worker, **{**TINY, "latent_dim": 3,
                                            "options": {**FAST, **options}})
    assert not state.start()
    assert state.error.startswith("invalid training settings: ") and expected in state.error
    assert state.job is None and state.status == "idle" and worker.queue_length() == 0


def test_check_architecture_follows_the_state_shapes():
    check_architecture("conv1d", (64,), 4)
    check_architecture("conv1d", (2, 64), 4)
    check_architecture("conv2d", (3, 16, 88), 4)
    check_architecture("identity", (2,), 2)
    check_architecture("mlp", (3, 16, 88), 4)
    for arch, shape in (("conv1d", (3, 16, 16)), ("conv2d", (64,)), ("identity", (2,)),
                        ("unet", (2,))):
        with pytest.raises(ValueError, match="architecture"):
            check_architecture(arch, shape, 3)


def test_the_knobs_reach_the_trained_model(worker):
    state = TrainingState(worker=worker, steps=20, lr=0.02, window=8, architecture="mlp",
                          **TINY)
    assert state.start(), state.error
    described = state.job.spec.describe()
    assert "architecture mlp" in described and "lr 0.02" in described and "window 8" in described
    _wait(state, lambda: not state.active)
    assert state.status == "completed", state.message
    m = state.model
    assert (m.lr, m.window, m.architecture, m.architecture_) == (0.02, 8, "mlp", "mlp")
    # a window longer than the trajectories is cut to them, not refused
    state.param.update(window=1024, steps=3)
    assert state.start(), state.error
    _wait(state, lambda: not state.active)
    assert state.status == "completed" and state.model.window == state.model.training_["n_times"]


def test_the_view_builds_bounded_widgets_from_the_params():
    pytest.importorskip("panel")
    from app.views.training import TrainingView

    view = TrainingView(state=TrainingState(worker=TrainingWorker(), **TINY))
    assert (view._window.start, view._window.end) == (2, 1024)
    assert (view._lr.start, view._lr.end) == (1e-6, 1.0)
    assert list(view._architecture.options) == ["auto", "mlp", "conv1d", "conv2d", "identity"]
    view._lr.value = 0.005
    view._architecture.value = "mlp"
    assert (view.state.lr, view.state.architecture) == (0.005, "mlp")
    assert view._download.disabled and view._resume.disabled and not view._resume_note.visible


# ----------------------------------------------------------------------- resume
def _stopped(worker, steps: int = 400) -> TrainingState:
    state = TrainingState(worker=worker, steps=steps, **TINY)
    assert state.start(), state.error
    _wait(state, lambda: state.step >= 20)
    state.stop()
    _wait(state, lambda: not state.active)
    assert state.status == "stopped", state.message
    return state


def test_a_stopped_training_resumes_from_its_checkpoint(worker, jobs):
    state = _stopped(worker)
    step = state.resumable_step
    assert step is not None and step == state.model.training_["steps"] and 20 <= step < 400
    (kept,) = (jobs / "kept").iterdir()
    assert [p for p in jobs.iterdir() if p.name != "kept"] == []  # the record is gone
    n_before = len(state.history)

    state.n_trajectories, state.lr = 5, 0.5  # changed since: resume uses the stopped run's
    assert state.resume(), state.error
    assert state.resumable_step is None and state.job.spec.resume_from == str(kept)
    _wait(state, lambda: state.status not in ("queued", "preparing"))
    assert f"(resumed from step {step})" in state.message
    _wait(state, lambda: not state.active, timeout=120)
    assert state.status == "completed", state.message
    info = state.model.training_
    assert info["resumed_from_step"] == step and info["steps"] == 400
    assert info["n_trajectories"] == 3 and state.model.lr == 1e-3
    steps = [h["step"] for h in state.history]
    assert len(steps) > n_before and steps == sorted(set(steps))  # the curves go on
    assert not kept.exists() and list((jobs / "kept").iterdir()) == []
    assert not state.resume() and "no stopped training" in state.error


def test_a_new_training_or_a_closed_session_drops_the_kept_checkpoint(worker, jobs):
    state = _stopped(worker)
    (kept,) = (jobs / "kept").iterdir()
    state.steps = 10
    assert state.start(), state.error
    assert not kept.exists() and state.resumable_step is None
    _wait(state, lambda: not state.active)

    other = _stopped(worker)
    (kept,) = (jobs / "kept").iterdir()
    other.close()
    assert not kept.exists() and other.resumable_step is None


def test_a_broken_training_keeps_its_last_periodic_checkpoint(jobs):
    """A training whose process dies (here: a runner whose training ends at step ~120 and
    then reports the process killed) ends as failed, and the session can resume from the
    last checkpoint it wrote."""
    def breaks_late(job: TrainingJob) -> None:
        class Dies(TrainingJob):
            def emit(self, kind, **data):
                if kind != "end":  # the dead process never reports its end
                    job.emit(kind, **data)
                if kind == "log" and data["step"] >= 120:
                    self.stop_flag.set()

        inner = Dies(job.spec)
        run_job(inner)  # stops at a checkpointed step; the "process" then dies
        job.finish("failed", "the training process ended unexpectedly with exit code -9")

    worker = TrainingWorker(runner=recorded(breaks_late))
    try:
        state = TrainingState(worker=worker, steps=2000, **TINY)
        assert state.start(), state.error
        _wait(state, lambda: not state.active, timeout=120)
        assert state.status == "failed" and state.resumable_step is not None
        assert state.resumable_step >= 100
    finally:
        worker.shutdown()


def test_a_resumed_training_cut_by_a_restart_goes_on_from_its_checkpoint(jobs, tmp_path):
    source = tmp_path / "ck.safetensors"
    source.write_bytes(b"checkpoint bytes")
    spec, folder = job_records.record_job(JobSpec(resume_from=str(source)))
    assert (folder / "checkpoint.safetensors").read_bytes() == b"checkpoint bytes"
    assert job_records.spec_from_record(folder).resume_from == str(folder / "checkpoint.safetensors")


def test_discard_kept_removes_only_kept_checkpoints(jobs, tmp_path):
    other = tmp_path / "model.safetensors"
    other.write_bytes(b"x")
    job_records.discard_kept(str(other))
    job_records.discard_kept("")
    assert other.exists()


# --------------------------------------------------------------------- download
def test_the_model_zip_holds_the_model_folder_and_no_server_path(worker, jobs, tmp_path):
    state = TrainingState(worker=worker, steps=20, **TINY)
    assert not state.can_save
    with pytest.raises(ValueError, match="no trained model"):
        state.model_zip()
    assert state.start(), state.error
    _wait(state, lambda: not state.active)
    state.model_name = "../../etc"  # not a valid name: the default folder name is used
    data = state.model_zip()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert names == ["srom-oscillator-model/config.json", "srom-oscillator-model/model.safetensors",
                     "srom-oscillator-model/initial_states.safetensors"]
    assert archive.testzip() is None
    text = archive.read(names[0]).decode()
    config = json.loads(text)
    assert config["metrics"] == pytest.approx(state.metrics)
    for folder in (str(jobs), tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd()):
        assert folder not in text
    archive.extractall(tmp_path / "unzipped")
    loaded = load_model(tmp_path / "unzipped" / "srom-oscillator-model")
    for key, value in state.model.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[key].cpu(), value.cpu()), key
    assert loaded.initial_states_ is not None

    state.model_name = "mine"
    assert zipfile.ZipFile(io.BytesIO(state.model_zip())).namelist()[0] == "mine/config.json"
    for bad in ("", "../x", "/abs", "a/b", ".hidden", "x" * 65):
        with pytest.raises(ValueError, match="folder name"):
            model_zip(state.model, bad)


def test_the_download_button_gives_the_zip(worker, jobs):
    pytest.importorskip("panel")
    from app.views.training import TrainingView

    state = TrainingState(worker=worker, steps=20, model_name="zipped", **TINY)
    view = TrainingView(state=state)
    assert view._download.disabled and view._download.filename == "zipped.zip"
    with pytest.raises(ValueError):
        view._zip_bytes()
    assert "Could not download the model" in state.error
    assert state.start()
    _wait(state, lambda: not state.active)
    assert not view._download.disabled
    names = zipfile.ZipFile(view._zip_bytes()).namelist()
    assert names[0] == "zipped/config.json"
    state.model_name = "other"
    assert view._download.filename == "other.zip"
    assert np.isfinite(state.metrics["rel_l2_mean"])
