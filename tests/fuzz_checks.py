"""The properties that every user input must satisfy, one ``check_*`` function per target.

Each check runs one case and returns an *outcome label* (``"loaded"``, ``"DatasetError"``,
``"exit 2"``, ...) or raises :class:`PropertyViolation` when the engine breaks its
contract: an exception of another type, a case slower than :data:`HANG_SECONDS`, a result
that is not what the contract promises, a traceback on the command line's stderr. The
checks are shared by ``tests/test_properties.py`` (hypothesis, fast) and
``scripts/fuzz.py`` (hypothesis, long run that counts outcomes).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_strategies import apply_config_edits, apply_mutations, apply_tensor_edits

from engine import ModelFileError, load_model
from engine.data import Dataset, DatasetError, load_dataset
from engine.forcing import Forcing, make_forcing
from engine.io import hyperparameters

__all__ = [
    "PropertyViolation", "HANG_SECONDS", "T_GRID", "FuzzFiles", "make_fuzz_files", "run_case",
    "check_dataset_bytes", "check_npz_members", "check_h5_members", "check_mutated_dataset",
    "check_round_trip", "check_model_config", "check_model_config_text", "check_checkpoint",
    "check_make_forcing", "check_forcing_from_dict", "check_forcing_text", "check_cli",
]

#: a single case slower than this counts as a hang (the inputs are all small)
HANG_SECONDS = 30.0
#: the small time grid forcings are evaluated on
T_GRID = np.linspace(-5.0, 50.0, 12)
EXIT_CODES = (0, 1, 2, 130)


class PropertyViolation(AssertionError):
    """The engine broke its contract on an input (the message says how)."""


def run_case(call: Callable[[], Any], allowed: tuple[type[BaseException], ...]) -> tuple[str, Any]:
    """Run ``call``; return ``(label, result)``: ``("ok", result)`` or ``(name of an allowed
    exception, None)``.

    Raises:
        PropertyViolation: any other exception, or the call took over :data:`HANG_SECONDS`.
    """
    start = time.perf_counter()
    try:
        label, result = "ok", call()
    except PropertyViolation:
        raise
    except allowed as exc:
        label, result = type(exc).__name__, None
    except Exception as exc:
        raise PropertyViolation(f"unexpected {type(exc).__name__}: {str(exc)[:300]}") from exc
    seconds = time.perf_counter() - start
    if seconds > HANG_SECONDS:
        raise PropertyViolation(f"took {seconds:.1f} s (over {HANG_SECONDS} s): a hang")
    return label, result


# ----------------------------------------------------------------- fixtures
@dataclass
class FuzzFiles:
    """A tiny dataset and model in a scratch folder, built once per run.

    Attributes:
        root: the folder.
        data, data_h5: a 3-trajectory forced Duffing dataset (21 times, μ and f) as .npz/.h5.
        model: a tiny model trained on it (3 steps).
        checkpoint: the checkpoint that training wrote.
        config: the model's parsed ``config.json``.
        npz_bytes, h5_bytes: the bytes of ``data`` and ``data_h5``.
    """

    root: Path
    data: Path
    data_h5: Path
    model: Path
    checkpoint: Path
    config: dict
    npz_bytes: bytes
    h5_bytes: bytes

    def __repr__(self) -> str:  # short: hypothesis prints it with every failing example
        return f"FuzzFiles({str(self.root)!r})"


def make_fuzz_files(root: Path) -> FuzzFiles:
    """Write the dataset and train the tiny model under ``root`` (about a second)."""
    from problems import duffing_dataset

    from engine import StochasticROM

    root.mkdir(parents=True, exist_ok=True)
    dataset = duffing_dataset(3, n_times=21, seed=0)
    dataset.attrs = {"note": "fuzz fixture", "values": [1, 2.5]}
    data, data_h5 = dataset.save(root / "data.npz"), dataset.save(root / "data.h5")
    checkpoint = root / "checkpoint.safetensors"
    model = StochasticROM(steps=3, window=8, log_every=3, latent_dim=2, drift_hidden=[8],
                          hidden=[8], device="cpu").fit(dataset, checkpoint=checkpoint)
    model.save(root / "model")
    (root / "junk.bin").write_bytes(bytes(range(256)))
    config = json.loads((root / "model" / "config.json").read_text())
    return FuzzFiles(root, data, data_h5, root / "model", checkpoint, config, data.read_bytes(),
                     data_h5.read_bytes())


# ------------------------------------------------------------------ datasets
def _check_dataset_file(path: Path) -> str:
    """``load_dataset(path)`` returns a valid :class:`Dataset` or raises ``DatasetError``."""
    label, dataset = run_case(lambda: load_dataset(path), (DatasetError,))
    if dataset is not None:
        if not isinstance(dataset, Dataset):
            raise PropertyViolation(f"load_dataset returned a {type(dataset).__name__}")
        if not (np.all(np.diff(dataset.t) > 0) and np.all(np.isfinite(dataset.x))
                and dataset.x.shape[:2] == (dataset.n_trajectories, dataset.n_times)):
            raise PropertyViolation(f"load_dataset returned an invalid dataset: {dataset!r}")
        label = "loaded"
    return label


def check_dataset_bytes(data: bytes, suffix: str, workdir: Path) -> str:
    """Arbitrary ``data`` written to a ``suffix`` (``.npz``/``.h5``) file loads or raises
    ``DatasetError``."""
    path = workdir / f"arbitrary{suffix}"
    path.write_bytes(data)
    return _check_dataset_file(path)


def check_npz_members(members: dict[str, np.ndarray], workdir: Path) -> str:
    """An ``.npz`` of arbitrary arrays (any dtype, shape, name) loads or raises
    ``DatasetError``."""
    path = workdir / "members.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(name + ".npy", buffer.getvalue())
    return _check_dataset_file(path)


def check_h5_members(members: dict[str, np.ndarray], workdir: Path) -> str:
    """An HDF5 file of arbitrary arrays as datasets, the ``system`` and ``attrs``
    attributes set to arrays too, loads or raises ``DatasetError``."""
    import h5py

    path = workdir / "members.h5"
    with h5py.File(path, "w", libver="latest") as h5:  # latest: attributes over 64 KB
        for name, array in members.items():
            if name in ("system", "attrs"):
                h5.attrs[name] = array
            else:
                h5.create_dataset(name, data=array)
    return _check_dataset_file(path)


def check_mutated_dataset(files: FuzzFiles, suffix: str, edits: list, workdir: Path) -> str:
    """A valid dataset file with bytes flipped, set, inserted, deleted or cut loads or raises
    ``DatasetError``."""
    valid = files.npz_bytes if suffix == ".npz" else files.h5_bytes
    return check_dataset_bytes(apply_mutations(valid, edits), suffix, workdir)


def check_round_trip(fields: dict[str, Any], suffix: str, workdir: Path) -> str:
    """A valid dataset saved with ``Dataset.save`` loads back exactly: the arrays (values and
    dtypes), the names, ``system`` and ``attrs``."""
    try:
        dataset = Dataset(**{k: (v.copy() if isinstance(v, np.ndarray) else v)
                             for k, v in fields.items()})
    except DatasetError as exc:
        raise PropertyViolation(f"a valid dataset was refused: {exc}") from exc
    path = workdir / f"roundtrip{suffix}"
    _, loaded = run_case(lambda: (dataset.save(path), load_dataset(path))[1], ())
    for name in ("t", "x", "mu", "f"):
        a, b = getattr(dataset, name), getattr(loaded, name)
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            raise PropertyViolation(f"field '{name}' changed: {a!r} -> {b!r}")
    for name in ("param_names", "forcing_names", "system"):
        if getattr(dataset, name) != getattr(loaded, name):
            raise PropertyViolation(f"field '{name}' changed: {getattr(dataset, name)!r} -> "
                                    f"{getattr(loaded, name)!r}")
    if json.dumps(dataset.attrs, sort_keys=True) != json.dumps(loaded.attrs, sort_keys=True):
        raise PropertyViolation(f"attrs changed: {dataset.attrs!r} -> {loaded.attrs!r}")
    return "round trip"


# -------------------------------------------------------------------- models
def check_model_config(files: FuzzFiles, config: Any, workdir: Path) -> str:
    """A model directory whose ``config.json`` holds ``config`` (any JSON) loads or raises
    ``ModelFileError``, quickly."""
    return check_model_config_text(files, json.dumps(config), workdir)


def check_model_config_text(files: FuzzFiles, text: str, workdir: Path) -> str:
    """The same for any text in ``config.json``."""
    directory = workdir / "config-model"
    if not directory.is_dir():
        shutil.copytree(files.model, directory)
    (directory / "config.json").write_text(text, encoding="utf-8")
    label, model = run_case(lambda: load_model(directory, device="cpu"), (ModelFileError,))
    return label if model is None else _check_loaded_model(model)


def _check_loaded_model(model: Any) -> str:
    """A model that loaded predicts a few steps, or refuses with a ``ValueError``: loading
    must not let through a config that breaks later."""
    t = np.linspace(model.t_range_[0], model.t_range_[1], 4)

    def predict() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # extrapolation, overflow in a junk model
            return model.predict(np.zeros(model.state_shape_), np.zeros(model.n_params_), t,
                                 np.zeros((t.size, model.n_forcing_)), n_samples=2, seed=0,
                                 substeps=1)

    label, prediction = run_case(predict, (ValueError,))
    return "model (predicts)" if prediction is not None else f"model ({label} on predict)"


def check_checkpoint(files: FuzzFiles, record_edits: list, tensor_edits: list,
                     byte_edits: list, workdir: Path) -> str:
    """Resuming from the fixture's checkpoint with its record edited, tensors dropped,
    reshaped or added, and bytes mutated, trains on or raises a ``ValueError``
    (``CheckpointError`` above all)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from engine import StochasticROM

    with safe_open(str(files.checkpoint), "pt") as handle:
        meta = dict(handle.metadata())
    record = apply_config_edits(json.loads(meta["srom_checkpoint"]), record_edits)
    path = workdir / "resume.safetensors"
    save_file(apply_tensor_edits(load_file(str(files.checkpoint)), tensor_edits), str(path),
              {**meta, "srom_checkpoint": json.dumps(record)})
    if byte_edits:
        path.write_bytes(apply_mutations(path.read_bytes(), byte_edits))
    model = StochasticROM(**{**hyperparameters(files.config).to_params(), "steps": 4, "substeps": 1,
                             "device": "cpu"})
    dataset = load_dataset(files.data)

    def resume() -> StochasticROM:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a junk state may diverge: that is an outcome
            return model.fit(dataset, resume_from=path)

    label, fitted = run_case(resume, (ValueError,))
    return "trained" if fitted is not None else label


# ------------------------------------------------------------------- forcing
def _check_forcing(forcing: Forcing) -> str:
    """A built forcing is finite on :data:`T_GRID` and survives ``to_dict``/``from_dict``."""
    values = forcing(T_GRID)
    if (values.shape != T_GRID.shape or values.dtype != np.float64
            or not np.all(np.isfinite(values))):
        raise PropertyViolation(f"{forcing!r} gives {values!r} on {T_GRID}")
    again = Forcing.from_dict(forcing.to_dict())
    if again != forcing or not np.array_equal(again(T_GRID), values):
        raise PropertyViolation(f"{forcing!r} does not survive to_dict/from_dict: {again!r}")
    return forcing.family


def check_make_forcing(family: Any, params: dict[str, Any]) -> str:
    """``make_forcing(family, **params)`` gives a finite forcing or raises ``ValueError``."""
    label, forcing = run_case(lambda: make_forcing(family, **params), (ValueError,))
    if forcing is None:
        return label
    if not isinstance(forcing, Forcing):
        raise PropertyViolation(f"make_forcing returned {forcing!r}")
    return _check_forcing(forcing)


def check_forcing_from_dict(d: Any) -> str:
    """``Forcing.from_dict(d)`` gives a finite forcing or raises ``ValueError``."""
    label, forcing = run_case(lambda: Forcing.from_dict(d), (ValueError,))
    return label if forcing is None else _check_forcing(forcing)


def check_forcing_text(spec: str, n_forcing: int) -> str:
    """``srom predict --forcing`` text gives a finite (T, F) array or raises ``UserError`` /
    ``ValueError``."""
    from engine.cli import UserError, _forcing_values

    label, values = run_case(lambda: _forcing_values(spec, T_GRID, n_forcing),
                             (UserError, ValueError))
    if values is None:
        return label
    if values.shape != (T_GRID.size, n_forcing) or not np.all(np.isfinite(values)):
        raise PropertyViolation(f"--forcing {spec!r} gave {values!r}")
    return "forcing"


# ----------------------------------------------------------------------- CLI
def _fill_paths(argv: list[str], files: FuzzFiles, case: Path) -> list[str]:
    """The placeholders of :func:`fuzz_strategies.cli_argvs` replaced by real paths (the
    model copied into the case folder: tune-step and calibrate rewrite it)."""
    shutil.copytree(files.model, case / "model")
    (case / "out").mkdir()
    places = {"{data_h5}": files.data_h5, "{data}": files.data, "{model}": case / "model",
              "{out}": case / "out", "{missing_dir}": case / "no" / "such", "{missing}":
              case / "missing.npz", "{junk_file}": files.root / "junk.bin",
              "{existing}": case / "existing.npz"}
    (case / "existing.npz").write_bytes(b"a file that is in the way")
    filled = []
    for arg in argv:
        for key, value in places.items():
            arg = arg.replace(key, str(value))
        filled.append(arg)
    return filled


def check_cli(argv: list[str], files: FuzzFiles, workdir: Path) -> str:
    """``engine.cli.main(argv)`` returns 0, 1, 2 or 130, never raises, and never prints a
    Python traceback; the label is ``exit N``."""
    from engine.cli import main

    case = workdir / "cli-case"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    argv = _fill_paths(argv, files, case)
    out, err = io.StringIO(), io.StringIO()

    def run() -> Any:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return main(argv)
            except SystemExit as exc:  # a raised exit is a contract break too: report it
                raise PropertyViolation(f"main raised SystemExit({exc.code!r})") from exc

    try:
        label, code = run_case(run, ())
    except PropertyViolation as exc:
        raise PropertyViolation(f"srom {argv}: {exc}") from exc
    stderr = err.getvalue()
    if "Traceback (most recent call last)" in stderr:
        raise PropertyViolation(f"srom {argv} printed a traceback:\n{stderr[-2000:]}")
    if type(code) is not int or code not in EXIT_CODES:
        raise PropertyViolation(f"srom {argv} returned {code!r}; stderr: {stderr[-500:]}")
    return f"exit {code}"
