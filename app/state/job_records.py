"""Dashboard trainings that survive a server restart (GUI-free).

While a served training runs, its folder under :func:`jobs_dir` holds ``job.json`` (what to
train), ``data.npz`` (the uploaded dataset, if any) and ``checkpoint.safetensors`` (written
by the training every ~5 % of its steps). The folder is removed when the training ends. A
folder still there when a server starts belongs to a training that the last server did not
finish (a restart, a crash): :func:`resume_interrupted` queues it again from its checkpoint
(from the start when none was written yet), and saves the result as a model of the user's
models folder, since the session that asked for it is gone. :data:`NOTICES` says what was
done, for the Train tab.

A training of a session that was stopped, or whose process broke, leaves its last checkpoint
in ``kept/`` under :func:`jobs_dir` (:func:`keep_checkpoint`) for the session's *Resume*; the
session removes it when it no longer needs it, and a starting server removes what the
sessions of the last one left there (:func:`clear_kept`).

Environment:
    SROM_JOBS_DIR: the folder of running trainings (default ``~/.srom/jobs``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from app.state.training_job import JobSpec, TrainingJob

__all__ = ["jobs_dir", "record_job", "remove_record", "interrupted_records", "spec_from_record",
           "resume_interrupted", "keep_checkpoint", "discard_kept", "clear_kept", "NOTICES"]

#: what :func:`resume_interrupted` did, newest last (shown in the Train tab)
NOTICES: list[str] = []
_SPEC_FIELDS = ("system", "preset", "n_trajectories", "seed", "dataset_name", "latent_dim",
                "steps", "device", "validate_every", "log_every", "options")


def jobs_dir() -> Path:
    """``$SROM_JOBS_DIR`` if set, else ``~/.srom/jobs``."""
    env = os.environ.get("SROM_JOBS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".srom" / "jobs"


def record_job(spec: JobSpec) -> tuple[JobSpec, Path]:
    """Write the record of a training about to run; returns the spec with its checkpoint
    path set (resuming a record's own checkpoint keeps ``resume_from``) and the folder. The
    checkpoint a spec resumes from is copied in as the record's first one."""
    folder = jobs_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    record = {"spec": {k: getattr(spec, k) for k in _SPEC_FIELDS}, "created": time.time(),
              "has_data": spec.dataset is not None}
    if spec.dataset is not None:
        spec.dataset.save(folder / "data.npz")
    if spec.resume_from and Path(spec.resume_from).is_file():
        # a resumed training cut by a restart goes on from there, not from the start
        shutil.copyfile(spec.resume_from, folder / "checkpoint.safetensors")
    (folder / "job.json").write_text(json.dumps(record, indent=1))
    return dataclasses.replace(spec, checkpoint=str(folder / "checkpoint.safetensors")), folder


def remove_record(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


#: statuses of a session's training whose checkpoint is kept for a resume
RESUMABLE = ("stopped", "failed")


def _kept_dir() -> Path:
    return jobs_dir() / "kept"


def keep_checkpoint(job: TrainingJob, folder: Path) -> Path | None:
    """Move the checkpoint of a session's ended training out of its record ``folder`` (about
    to be removed) into ``kept/``, and tell the session (a ``checkpoint`` event with its path
    and step), when the training was stopped or its process broke and a checkpoint was
    written; else ``None``. A training resumed after a restart has no session: nothing is
    kept."""
    from engine.train import CheckpointError, read_checkpoint

    source = folder / "checkpoint.safetensors"
    if (job.status not in RESUMABLE or getattr(job, "resumed_record", None) is not None
            or not source.is_file()):
        return None
    try:
        step = int(read_checkpoint(source)[1]["step"])
        target = _kept_dir() / f"{uuid.uuid4().hex}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
    except (OSError, CheckpointError, KeyError, TypeError, ValueError) as exc:
        job.emit("warning", message=f"the training cannot be resumed: its checkpoint could not "
                                    f"be kept ({type(exc).__name__})")
        return None
    if step < 1:  # nothing learned yet: resuming would be starting again
        discard_kept(str(target))
        return None
    job.emit("checkpoint", path=str(target), step=step)
    return target


def discard_kept(path: str) -> None:
    """Remove a kept checkpoint (a path :func:`keep_checkpoint` gave; anything else is left
    alone)."""
    target = Path(path)
    if path and target.parent == _kept_dir() and target.suffix == ".safetensors":
        target.unlink(missing_ok=True)


def clear_kept() -> None:
    """Remove the checkpoints that the sessions of a previous server kept (those sessions
    are gone)."""
    shutil.rmtree(_kept_dir(), ignore_errors=True)


def interrupted_records() -> list[Path]:
    """Folders of trainings a previous server left unfinished, oldest first."""
    root = jobs_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "job.json").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def spec_from_record(folder: Path) -> JobSpec:
    """The spec of a recorded training, set to resume from its checkpoint if one exists.

    Raises:
        ValueError: an unreadable record (it is then left for the admin to look at).
    """
    from engine.data import DatasetError, load_dataset

    try:
        record = json.loads((folder / "job.json").read_text())
        fields = {k: record["spec"][k] for k in _SPEC_FIELDS}
        dataset = load_dataset(folder / "data.npz") if record.get("has_data") else None
    except (OSError, KeyError, TypeError, json.JSONDecodeError, DatasetError) as exc:
        raise ValueError(f"unreadable training record {folder.name}: {exc}") from None
    checkpoint = folder / "checkpoint.safetensors"
    return JobSpec(**fields, dataset=dataset,
                   resume_from=str(checkpoint) if checkpoint.is_file() else "")


def _save_orphan(job: TrainingJob, folder: Path) -> None:
    """Wait for a resumed job; save its model among the user's models and say so."""
    from app.state import catalog

    while job.active:
        time.sleep(0.5)
    name = f"resumed-{job.spec.system if job.spec.dataset is None else 'upload'}-{folder.name[:8]}"
    if job.model is None:
        NOTICES.append(f"The resumed training {folder.name[:8]} ended without a model "
                       f"({job.status}: {job.message}).")
        return
    try:
        job.model.save(catalog.user_models_dir() / name, metrics=dict(job.metrics))
    except OSError as exc:
        NOTICES.append(f"The resumed training {folder.name[:8]} finished but could not be "
                       f"saved ({exc.strerror or exc}).")
        return
    catalog.notify_changed()
    NOTICES.append(f"The training interrupted by a server restart finished; it is the model "
                   f"'{name}' in the Explore tab.")


def resume_interrupted(worker) -> int:
    """Queue again every training a previous server left unfinished (see the module doc);
    returns how many were queued. The checkpoints its sessions kept are removed."""
    clear_kept()
    queued = 0
    for folder in interrupted_records():
        try:
            spec = spec_from_record(folder)
        except ValueError as exc:
            NOTICES.append(f"A training interrupted by a server restart could not be resumed: {exc}")
            continue
        where = "from its last checkpoint" if spec.resume_from else "from the start (no checkpoint yet)"
        try:
            job = worker.submit(spec, owner=f"resumed {folder.name[:8]}")
        except RuntimeError as exc:
            NOTICES.append(f"A training interrupted by a server restart could not be queued: {exc}")
            continue
        job.resumed_record = folder  # the runner keeps using this folder
        threading.Thread(target=_save_orphan, args=(job, folder), daemon=True,
                         name="srom-resumed-save").start()
        NOTICES.append(f"A training interrupted by a server restart ({spec.describe()}) was "
                       f"queued again {where}; it will appear in the Explore tab when done.")
        queued += 1
    return queued
