"""The ``srom`` command: generate data, train, predict, evaluate, sensitivity, demo.

User mistakes print one line ``srom: error: …`` and exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from engine.solvers import METHODS

__all__ = ["main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in the command line or its inputs (printed without traceback)."""


#: options that count something: at least 1 wherever they are given
_COUNT_OPTIONS = {"latent_dim", "steps", "window", "windows_per_step", "n_win", "n_quad",
                  "n_samples", "log_every", "val_samples", "select_every", "select_samples",
                  "select_substeps", "n", "n_times", "substeps", "max_substeps", "n_forecasts"}


def _check_counts(args: argparse.Namespace) -> None:
    """One clear line for a count below 1 (``--n-samples 0``) or a seed outside what the
    random generators take (``--seed -1``), before any work starts."""
    for name in sorted(_COUNT_OPTIONS):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**63:
        raise UserError(f"--seed must be in 0..2**63 - 1, got {seed}")


def _parse_value(text: str):
    """A JSON value, or the text itself where it is not JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UserError(f"the value '{text[:40]}...' is nested too deeply") from None
    except ValueError:  # not JSON, or an integer of over 4300 digits
        return text


def _parse_floats(text: str, option: str) -> list[float]:
    """Comma-separated finite numbers (``--scales 1,10,100``)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(np.isfinite(values)):
        raise UserError(f"{option} expects comma-separated numbers, got '{text[:80]}'")
    return values


def _parse_sets(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = _parse_value(value)
    return out


# ------------------------------------------------------------------ train
_TRAIN_OPTIONS = {
    "latent_dim": int, "steps": int, "window": int, "windows_per_step": int, "lr": float,
    "device": str, "seed": int, "n_win": int, "architecture": str, "drift": str,
    "physics": str, "quadrature": str, "n_quad": int, "n_samples": int,
    "checkpoint_every": int, "log_every": int, "kl_transition": int, "dtype": str,
}


def _open_training_data(args):
    """The training data: loaded whole, or (``--stream``) left on disk and read ahead."""
    from engine import load_dataset

    if not args.stream:
        return load_dataset(args.data)
    from engine.streaming import StreamingDataset

    if args.prefetch < 1:
        raise UserError(f"--prefetch must be a positive integer, got {args.prefetch}")
    cap = None
    if args.stream_memory_mb is not None:
        if not args.stream_memory_mb > 0:
            raise UserError(f"--stream-memory-mb must be positive, got {args.stream_memory_mb}")
        cap = int(args.stream_memory_mb * 2**20)
    from engine.streaming import MAX_READERS

    if args.readers is not None and not 1 <= args.readers <= MAX_READERS:
        raise UserError(f"--readers must be between 1 and {MAX_READERS}, got {args.readers}")
    return StreamingDataset(args.data, prefetch=args.prefetch, readers=args.readers,
                            max_host_bytes=cap)


def cmd_train(args) -> int:
    """Train; under ``torchrun`` (``WORLD_SIZE`` > 1) as one rank of a data-parallel run."""
    from engine import distributed

    ctx = distributed.init_from_environment(args.device or "auto")
    try:
        code = _train(args, ctx)
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    distributed.shutdown()
    return code


def _train(args, ctx) -> int:
    from engine import StochasticROM, TqdmCallback, load_dataset

    dataset = _open_training_data(args)
    params = {k: getattr(args, k) for k in _TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.periodic:
        params["periodic"] = True
    if args.no_cuda_graph:
        params["cuda_graph"] = False
    params.update(_parse_sets(args.set))
    try:
        model = StochasticROM(**params)
    except TypeError as exc:
        raise UserError(f"bad hyperparameter: {exc}") from exc
    model._check_params()  # bad settings fail now, not after loading or training
    _threads_for_cheap_steps(model, dataset)
    if model.windows_per_step % ctx.world_size:
        raise UserError(f"--windows-per-step {model.windows_per_step} is the global batch and "
                        f"must be a multiple of the {ctx.world_size} ranks")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a directory for the model")
    val_data = load_dataset(args.val) if args.val else None
    if val_data is not None and (val_data.state_shape, val_data.n_params, val_data.n_forcing) != (
            dataset.state_shape, dataset.n_params, dataset.n_forcing):
        raise UserError(f"--val has state shape {val_data.state_shape}, {val_data.n_params} "
                        f"parameters and {val_data.n_forcing} forcing channels; the training "
                        f"data {dataset.state_shape}, {dataset.n_params} and {dataset.n_forcing}")
    if args.select_every is not None and val_data is None:
        raise UserError("--select-every needs --val (the validation data to select on)")
    if args.select_substeps is not None and args.select_every is None:
        raise UserError("--select-substeps needs --select-every (it sets how selection integrates)")
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.safetensors"
    if ctx.is_main:
        ranks = f" on {ctx.world_size} ranks" if ctx.enabled else ""
        print(f"srom: training on {dataset}{ranks}", file=sys.stderr)
    selecting = args.select_every is not None
    model.fit(dataset, callback=TqdmCallback(desc="srom train") if ctx.is_main else None,
              checkpoint=checkpoint, resume_from=args.resume, max_seconds=args.max_seconds,
              validation=val_data if selecting else None, select_every=args.select_every,
              select_samples=args.select_samples, select_substeps=args.select_substeps)
    calibration_data = None
    if ctx.is_main and not args.no_calibrate and model.training_["status"] != "diverged":
        calibration_data = val_data if val_data is not None else _training_tail(dataset)
    if hasattr(dataset, "close"):
        dataset.close()
    if not ctx.is_main:  # the model is the same on every rank: rank 0 saves and reports
        return 0
    training: dict[str, Any] = model.training_  # a JSON-like record of the run
    status = training["status"]
    if selecting and training["selection"]["best_step"] is not None:
        sel = training["selection"]
        print(f"srom: kept the parameters of step {sel['best_step']} (validation rel. L2 "
              f"{sel['best_val_rel_l2']:.4g})", file=sys.stderr)
    if status == "diverged" and (out / "config.json").exists():
        # never over a model already there: the restored parameters go beside it
        out = out.with_name(out.name + "-diverged")
        print(f"srom: the training diverged; the model already in {args.out} is left as it "
              f"was and the last good parameters go to {out}", file=sys.stderr)
    intended = out
    out = _save_or_rescue(model, out, checkpoint)  # saved before anything else can fail
    if calibration_data is not None:
        result = model.calibrate(calibration_data, n_samples=CALIBRATION_SAMPLES, seed=model.seed)
        where = "--val" if calibration_data is val_data else "the end of the training series"
        print(f"srom: uncertainty scale {result['scale']:.3g} fitted on {where} "
              f"({result['n_trajectories']} trajectories; 90% interval coverage "
              f"{result['coverage_before']:.2f} -> {result['coverage_after']:.2f})",
              file=sys.stderr)
        model.save(out)
    elif not args.no_calibrate and status != "diverged":
        print("srom: not calibrated (the trajectories are too short or too large to predict "
              "cheaply); run srom calibrate MODEL VAL", file=sys.stderr)
    metrics = {}
    if val_data is not None and status != "diverged":
        metrics = model.evaluate(val_data, n_samples=args.val_samples)
        model.save(out, metrics=metrics)
    print(f"srom: {training['message']} in {training['seconds']:.1f} s on "
          f"{training['device_name']}; model saved to {out}", file=sys.stderr)
    if metrics:
        print(json.dumps(metrics, indent=2))
    if status == "interrupted":
        print(f"srom: checkpoint at {checkpoint}; continue with --resume {checkpoint}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if status == "diverged" or out != intended:
        return 1
    return 0


def _threads_for_cheap_steps(model, dataset) -> None:
    """One intra-op thread for a CPU training of cheap steps (:mod:`engine.schedule`),
    unless ``OMP_NUM_THREADS`` is set."""
    import torch

    from engine.model import resolve_device
    from engine.schedule import is_cheap_step

    if "OMP_NUM_THREADS" in os.environ or resolve_device(model.device).type != "cpu":
        return
    if is_cheap_step(dataset.state_shape, dataset.n_times, int(model.window),
                     int(model.windows_per_step)):
        torch.set_num_threads(1)


#: sample paths per trajectory of each calibration trial after training
CALIBRATION_SAMPLES = 64


def _training_tail(dataset):
    """Calibration data without a validation set: the end of a few training trajectories
    (:func:`engine.schedule.calibration_split`), read into memory when streamed."""
    from engine.schedule import calibration_split
    from engine.streaming import StreamingDataset

    if isinstance(dataset, StreamingDataset):
        per_case = dataset.n_times * math.prod(dataset.state_shape)
        dataset = dataset.subset(range(max(1, min(dataset.n_trajectories, 4, 2**26 // per_case))))
    return calibration_split(dataset, n_samples=CALIBRATION_SAMPLES)


def _save_or_rescue(model, out: Path, checkpoint: Path) -> Path:
    """Save the trained model to ``out``; if the file system refuses (a full disk, a
    read-only folder), save it to a fresh folder under the temporary directory instead and
    say so; if that fails too, end in one line that names the last checkpoint."""
    try:
        model.save(out)
        return out
    except OSError as exc:
        reason = exc.strerror or str(exc)
    import tempfile

    try:
        rescue = Path(tempfile.mkdtemp(prefix="srom-unsaved-"))
        model.save(rescue)
    except OSError as exc:
        kept = (f"the last checkpoint is {checkpoint}" if checkpoint.is_file()
                else "no checkpoint was written either")
        raise UserError(f"could not save the trained model to {out} ({reason}) nor to a "
                        f"temporary folder ({exc.strerror or exc}); {kept}") from None
    print(f"srom: could not save the model to {out} ({reason}); it was saved to {rescue} "
          "instead: move it where you want it", file=sys.stderr)
    return rescue


# ---------------------------------------------------------------- predict
def _split_outside_brackets(text: str) -> list[str]:
    """``a=1,b=[1,2]`` → ``['a=1', 'b=[1,2]']``: commas inside ``[...]`` stay (a list value)."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise UserError(f"--forcing: unbalanced ']' in '{text[:80]}'")
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth:
        raise UserError(f"--forcing: unbalanced '[' in '{text[:80]}'")
    items.append("".join(current).strip())
    return items


def _forcing_spec(spec: str) -> tuple[str, dict]:
    """One forcing channel's ``family:key=value,...`` → ``(family, kwargs)``."""
    family, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, _split_outside_brackets(rest)):
        if "=" not in item:
            raise UserError(f"--forcing: expected key=value, got '{item[:80]}'")
        key, value = item.split("=", 1)
        kwargs[key.strip()] = _parse_value(value)
    return family.strip(), kwargs


def _forcing_values(spec: str, t: np.ndarray, n_forcing: int) -> np.ndarray:
    """``family:key=value,...`` (one per channel, separated by ';'; a list value in
    brackets, e.g. ``sum_of_sines:amplitudes=[1,0.5],frequencies=[0.2,1]``) → ``(T, F)``."""
    from engine.forcing import make_forcing

    parts = [p for p in spec.split(";") if p.strip()]
    if len(parts) != n_forcing:
        raise UserError(f"--forcing gives {len(parts)} channels, the model has {n_forcing}")
    columns = []
    for part in parts:
        family, kwargs = _forcing_spec(part)
        columns.append(make_forcing(family, **kwargs)(t))
    return np.stack(columns, axis=-1)


def cmd_predict(args) -> int:
    from engine import load_dataset, load_model

    model = load_model(args.model, device=args.device)
    source = args.data or args.x0_from
    if source is None:
        raise UserError("give --data DATA (with --index) or --x0-from DATA")
    dataset = load_dataset(source)
    if not 0 <= args.index < dataset.n_trajectories:
        raise UserError(f"--index {args.index} is outside 0..{dataset.n_trajectories - 1}")
    t = dataset.t
    if args.t_end is not None:
        from engine.model import _check_prediction_size

        n = args.n_times or dataset.n_times
        # before the grid is made: 10¹² output times would be terabytes already
        _check_prediction_size("the sample paths (paths × times × state)",
                               args.n_samples * n * int(np.prod(model.state_shape_)))
        t = np.linspace(dataset.t[0], args.t_end, n)
    mu = dataset.mu[args.index] if args.mu is None else np.asarray(args.mu, dtype=float)
    if args.forcing:
        f = _forcing_values(args.forcing, t, model.n_forcing_)
    elif args.data and t is dataset.t:
        f = dataset.f[args.index]
    elif model.n_forcing_ == 0:
        f = None
    elif t is dataset.t:
        f = dataset.f[args.index]
    else:
        raise UserError("the model needs a forcing on the new time grid: give --forcing")
    x0 = dataset.x[args.index, : model.n_win] if model.n_win > 1 else dataset.x[args.index, 0]
    pred = model.predict(x0, mu, t, f, n_samples=args.n_samples, seed=args.seed,
                         integrator=args.integrator, substeps=args.substeps)
    path = pred.to_npz(args.out)
    samples = "none" if pred.samples is None else pred.samples.shape
    print(f"srom: wrote {path} (mean, std, quantiles, samples {samples})", file=sys.stderr)
    return 0


# --------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from engine import load_dataset, load_model

    if args.ensemble and not 2 <= args.ensemble <= 4096:
        raise UserError(f"--ensemble must be between 2 and 4096, got {args.ensemble}")
    model = load_model(args.model, device=args.device)
    dataset = load_dataset(args.data)
    metrics = model.evaluate(dataset, n_samples=args.n_samples, seed=args.seed,
                             integrator=args.integrator, substeps=args.substeps,
                             paper_protocol=not args.no_paper_protocol)
    if args.ensemble:
        from engine.ensemble_evaluation import describe_scores, evaluate_against_ensemble
        from engine.truth_ensembles import make_truth_ensemble

        try:
            ensemble = make_truth_ensemble(dataset, args.ensemble, seed=args.seed + 1)
        except ValueError as exc:
            raise UserError(f"--ensemble: {exc}") from None
        metrics["ensemble"] = evaluate_against_ensemble(model, ensemble, args.n_samples, args.seed)
        metrics["ensemble"]["description"] = describe_scores(metrics["ensemble"])
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_table(metrics)
    return 0


def _print_table(values: dict, prefix: str = "") -> None:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update({f"{prefix}{key}.{k}": v for k, v in value.items()})
        else:
            flat[prefix + key] = value
    width = max(len(k) for k in flat)
    for key, value in flat.items():
        print(f"{key:<{width}}  {value:.6g}" if isinstance(value, float) else f"{key:<{width}}  {value}")


def _save_and_report(model, args, result: dict, summary: str) -> int:
    """The end of a command that tunes a saved model in place: save it, say what was chosen
    (``srom: <summary>; saved to MODEL``) and, with ``--json``, print the record."""
    model.save(args.model)
    print(f"srom: {summary}; saved to {args.model}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


# -------------------------------------------------------------- tune-step
def cmd_tune_step(args) -> int:
    from engine import load_dataset, load_model

    model = load_model(args.model, device=args.device)
    result = model.tune_integrator(load_dataset(args.data), integrator=args.integrator,
                                   tolerance=args.tolerance, max_substeps=args.max_substeps)
    verdict = "converged" if result["converged"] else "NOT converged (the largest count tried)"
    return _save_and_report(
        model, args, result,
        f"{result['integrator']} with {result['substeps']} substeps per output step, "
        f"{verdict}: halving the step changes the deterministic rollout by "
        f"{result['change']:.3g} against its error {result['error']:.3g} on "
        f"{result['n_trajectories']} trajectories")


# ------------------------------------------------------ tune-assimilation
def cmd_tune_assimilation(args) -> int:
    from engine import load_dataset, load_model

    model = load_model(args.model, device=args.device)
    scales = None if args.scales is None else _parse_floats(args.scales, "--scales")
    result = model.tune_assimilation(load_dataset(args.data), horizon=args.horizon,
                                     scales=scales, n_forecasts=args.n_forecasts,
                                     n_samples=args.n_samples,
                                     standard_errors=args.standard_errors,
                                     seed=args.seed)
    table = ", ".join(f"{s:g}: {r:.4g}" for s, r in zip(result["scales"], result["rmse"]))
    return _save_and_report(
        model, args, result,
        f"assimilation prior scale {result['scale']:g} (forecast RMSE over the next "
        f"{result['horizon']:.4g} time units from {result['n_forecasts']} windows, by scale: "
        f"{table})")


# -------------------------------------------------------------- calibrate
def cmd_calibrate(args) -> int:
    from engine import load_dataset, load_model

    model = load_model(args.model, device=args.device)
    result = model.calibrate(load_dataset(args.data), level=args.level,
                             n_samples=args.n_samples, seed=args.seed, mode=args.mode)
    if args.mode == "lead":
        scales = result["lead_scales"]
        factor = (f"uncertainty scales of the spread about the mean by lead time "
                  f"{min(scales):.4g}..{max(scales):.4g}")
    else:
        what = "" if args.mode == "noise" else " (of the spread about the mean)"
        factor = f"uncertainty scale{what} {result['scale']:.4g}"
    return _save_and_report(
        model, args, result,
        f"{factor}: {args.level:.0%} interval coverage {result['coverage_before']:.3f} -> "
        f"{result['coverage_after']:.3f} on {result['n_trajectories']} trajectories")


# --------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from engine import systems

    overrides = _parse_sets(args.set)
    if args.jobs is not None:
        if not 1 <= args.jobs <= 1024:
            raise ValueError(f"--jobs must be in [1, 1024], got {args.jobs}")
        from engine.systems.parallel import JOBS_ENV

        os.environ[JOBS_ENV] = str(args.jobs)
    if args.shards is not None:
        return _generate_sharded(args, overrides)
    dataset = systems.generate(args.system, n=args.n, split=args.split, seed=args.seed,
                               preset=args.preset, **overrides)
    path = dataset.save(args.out)
    print(f"srom: wrote {path}: {dataset}", file=sys.stderr)
    return 0


def _generate_sharded(args, overrides: dict) -> int:
    """``--shards K``: simulate K groups of trajectories one after the other into one chunked
    HDF5 file (one group in memory at a time), for ``srom train --stream``."""
    from engine import systems
    from engine.streaming import save_sharded

    if not 1 <= args.shards <= args.n:
        raise UserError(f"--shards must be between 1 and --n ({args.n}), got {args.shards}")
    if not args.chunk_kb > 0:
        raise UserError(f"--chunk-kb must be positive, got {args.chunk_kb}")
    if Path(args.out).suffix.lower() not in (".h5", ".hdf5"):
        raise UserError("--shards writes a chunked HDF5 file: give --out NAME.h5")
    sizes = [args.n // args.shards + (k < args.n % args.shards) for k in range(args.shards)]
    # shard k has its own stream, derived from (seed, k)
    seeds = [int(np.random.SeedSequence([args.seed, k]).generate_state(2, np.uint32)[0])
             for k in range(args.shards)]

    def shards():
        for k, (size, seed) in enumerate(zip(sizes, seeds)):
            print(f"srom: shard {k + 1}/{args.shards}: {size} trajectories (seed {seed})",
                  file=sys.stderr)
            yield systems.generate(args.system, n=size, split=args.split, seed=seed,
                                   preset=args.preset, **overrides)

    path = save_sharded(args.out, shards(), chunk_bytes=int(args.chunk_kb * 1024))
    print(f"srom: wrote {path}: {args.n} trajectories in {args.shards} shards", file=sys.stderr)
    return 0


# ------------------------------------------------------------ sensitivity
#: bounds of ``srom sensitivity``'s counts (a run is ``points · paths`` model sample paths)
_SENS_MAX_POINTS, _SENS_MAX_PATHS = 201, 4096


def _mu_options(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not np.isfinite(value):
            raise UserError(f"--mu expects NAME=NUMBER, got '{item[:80]}'")
        out[name.strip()] = value
    return out


def _find_input(inputs: list, wanted: str):
    """The input whose key (``mu:nu``) or name (``nu``) is ``wanted``."""
    hits = [i for i in inputs if wanted in (i.key, i.name)]
    if len(hits) == 1:
        return hits[0]
    keys = ", ".join(i.key for i in inputs) or "none"
    if hits:
        raise UserError(f"--input {wanted!r} is ambiguous: give one of {keys}")
    raise UserError(f"--input {wanted[:80]!r} is not a sweepable input of this model "
                    f"(sweepable: {keys})")


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(v) -> str:
        return f"{v:.5g}" if isinstance(v, float) else str(v)

    body = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[j]) for b in body)) for j, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _write_rows(path: Path, rows: list[dict], meta: dict) -> Path:
    import csv
    import io

    from engine.atomic import atomic_write

    if path.suffix.lower() == ".json":
        text = json.dumps({**meta, "rows": rows}, indent=2, allow_nan=True)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), suffix=path.suffix)


def cmd_sensitivity(args) -> int:
    from engine import load_dataset, load_model
    from engine.sensitivity import (
        STATISTICS,
        Conditions,
        model_system,
        rank_inputs,
        sweep_1d,
        sweep_inputs_for,
    )

    if (args.input is None) == (not args.tornado):
        raise UserError("give --input NAME (a 1-D sweep) or --tornado (rank every input)")
    if not 2 <= args.points <= _SENS_MAX_POINTS:
        raise UserError(f"--points must be in 2..{_SENS_MAX_POINTS}, got {args.points}")
    if not 2 <= args.paths <= _SENS_MAX_PATHS:
        raise UserError(f"--paths must be in 2..{_SENS_MAX_PATHS}, got {args.paths}")
    if args.statistic not in STATISTICS:
        raise UserError(f"--statistic must be one of {list(STATISTICS)}")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out must end in .csv or .json, got '{out.name[:80]}'")
    if args.index is not None and args.x0_from is None:
        raise UserError("--index needs --x0-from DATA")
    model = load_model(args.model, device=args.device)
    system = model_system(model)
    x0 = None
    if args.x0_from is not None:
        data = load_dataset(args.x0_from)
        index = args.index or 0
        if not 0 <= index < data.n_trajectories:
            raise UserError(f"--index {index} is outside 0..{data.n_trajectories - 1}")
        if tuple(data.state_shape) != tuple(model.state_shape_):
            raise UserError(f"--x0-from: states of shape {tuple(data.state_shape)}, the model's "
                            f"are {tuple(model.state_shape_)}")
        x0 = data.x[index, 0] if model.n_win == 1 else data.x[index, : model.n_win]
    family, fparams = _forcing_spec(args.forcing) if args.forcing else (None, None)
    if family is not None and not model.forcing_names_:
        raise UserError("--forcing: this model takes no forcing")
    cond = Conditions.for_model(
        model, system, mu=_mu_options(args.mu), forcing_family=family, forcing_params=fparams,
        horizon=args.horizon, statistic=args.statistic, probe=args.probe, time=args.time,
        n_paths=args.paths, seed=args.seed, x0=x0, model_dir=str(args.model))
    inputs = sweep_inputs_for(cond)
    if not inputs:
        raise UserError("this model has no sweepable input (no μ and no forcing parameter "
                        "with a training range)")
    start = "the simulator" if x0 is None and system is not None else (
        "--x0-from" if x0 is not None else "the model's kept training state")
    print(f"srom: {cond.label()}; {args.paths} paths per case; initial state from {start}",
          file=sys.stderr)
    if args.tornado:
        tornado = rank_inputs(cond, inputs)
        rows = tornado.rows()
        print(f"nominal mean {tornado.nominal:.5g} ± {tornado.nominal_se:.2g} (MC std. error)")
        print(_table(rows, ["input", "low_value", "high_value", "low_mean", "high_mean",
                            "swing", "swing_se"]))
        kind, seconds = "tornado", tornado.seconds
    else:
        result = sweep_1d(cond, _find_input(inputs, args.input), args.points)
        rows = result.rows()
        print(_table(rows, [result.input.name, "mean", "stderr", "q5", "q50", "q95"]))
        kind, seconds = "sweep", result.seconds
    print(f"srom: {len(rows)} rows in {seconds:.1f} s", file=sys.stderr)
    if out is not None:
        meta = {"kind": kind, "model": str(args.model), "statistic": args.statistic,
                "label": cond.label(), "probe": cond.probe, "time": cond.stat_time,
                "n_paths": cond.n_paths, "seed": cond.seed,
                "mu": dict(zip(cond.param_names, map(float, cond.mu))),
                "forcing": {"family": cond.forcing_family, **dict(cond.forcing_params)}}
        print(f"srom: wrote {_write_rows(out, rows, meta)}", file=sys.stderr)
    return 0


def cmd_systems(args) -> int:
    from engine import systems

    for name in systems.list_systems():
        print(name)
    return 0


def cmd_demo(args) -> int:
    from engine.demo import run_demo

    run_demo(Path(args.out), steps=args.steps, device=args.device)
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_command(args, app: Path) -> list[str]:
    """The ``panel serve`` command line of ``srom serve``, after the safety checks.

    By default the dashboard listens on the loopback interface only. Any other address (a
    classroom) needs a password (``--basic-auth``, Panel's basic authentication with a
    random cookie secret unless one is given) or an explicit ``--no-auth``, and the
    host names the browsers will use (``--allow-websocket-origin``).
    """
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    exposed = args.address not in LOOPBACK
    if exposed and not (args.basic_auth or args.no_auth):
        raise UserError(f"--address {args.address} opens the dashboard to the network: give "
                        "--basic-auth PASSWORD_OR_FILE (or --no-auth to serve it to anyone)")
    if exposed and not args.allow_websocket_origin:
        raise UserError("--address other than this machine needs --allow-websocket-origin "
                        "HOST[:PORT], the address the browsers will type (e.g. "
                        f"192.168.1.10:{args.port})")
    # --warm runs the app once at start-up, so the first visitor does not wait for the imports
    cmd = [sys.executable, "-m", "panel", "serve", str(app), "--port", str(args.port),
           "--address", args.address, "--warm"]
    for origin in args.allow_websocket_origin or []:
        cmd += ["--allow-websocket-origin", origin]
    if args.basic_auth:
        import secrets

        cmd += ["--basic-auth", args.basic_auth,
                "--cookie-secret", args.cookie_secret or secrets.token_urlsafe(32)]
    if args.show:
        cmd.append("--show")
    return cmd


def serve_environment(args) -> dict[str, str]:
    """The admin's caps on what visitors may ask for, as the served app reads them
    (``app/state/limits.py``)."""
    env = dict(os.environ)
    for option, name in (("max_queued_trainings", "SROM_MAX_QUEUED_TRAININGS"),
                         ("max_training_steps", "SROM_MAX_TRAINING_STEPS"),
                         ("max_generated_trajectories", "SROM_MAX_GENERATED_TRAJECTORIES")):
        value = getattr(args, option, None)
        if value is not None:
            if value < 1:
                raise UserError(f"--{option.replace('_', '-')} must be a positive integer, got {value}")
            env[name] = str(value)
    return env


def cmd_serve(args) -> int:
    import subprocess

    app = Path(__file__).resolve().parent.parent / "app" / "main.py"
    if not app.is_file():
        raise UserError("the dashboard is not installed in this checkout (app/main.py missing)")
    return subprocess.call(serve_command(args, app), env=serve_environment(args))


# ------------------------------------------------------------------ parser
def _integrator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--integrator", choices=METHODS, default=None,
                   help="SDE scheme (default: the model's, heun for new models)")
    p.add_argument("--substeps", type=int, default=None,
                   help="steps per output interval (default: the model's checked choice)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srom", description="Stochastic reduced-order models: train, predict, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on a dataset file")
    p.add_argument("data", help="training dataset (.npz or .h5)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--val", help="validation dataset: calibrates the uncertainty scale and is "
                   "evaluated after training")
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the uncertainty scale at 1 (by default it is fitted on --val, "
                        "else on the last 30%% of a few training trajectories)")
    p.add_argument("--val-samples", type=int, default=64)
    p.add_argument("--select-every", type=int, default=None, metavar="STEPS",
                   help="score a rollout on --val every STEPS steps and keep the best parameters")
    p.add_argument("--select-samples", type=int, default=16,
                   help="sample paths per validation trajectory when selecting")
    p.add_argument("--select-substeps", type=int, default=None, metavar="N",
                   help="integrate the selection rollouts with N substeps per data step "
                        "(default: the step check before each score, ~4x its cost)")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="wall-clock budget: stop (and save) at the first log after it")
    p.add_argument("--periodic", action="store_true", help="circular padding (periodic domain)")
    p.add_argument("--no-cuda-graph", action="store_true")
    p.add_argument("--stream", action="store_true",
                   help="leave the states of DATA (HDF5) on disk and read each step's windows "
                        "ahead (datasets larger than memory; same batches as in memory)")
    p.add_argument("--prefetch", type=int, default=4, help="steps read ahead with --stream")
    p.add_argument("--readers", type=int, default=None,
                   help="reader threads of --stream (default: a quarter of the CPU cores per "
                        "process on this node, 1 to 4)")
    p.add_argument("--stream-memory-mb", type=float, default=None,
                   help="host memory cap of --stream (default $SROM_STREAM_HOST_BYTES or 512)")
    for name, kind in _TRAIN_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other hyperparameter (JSON value), e.g. --set hidden=[64,64]")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict from a trained model")
    p.add_argument("model", help="model directory")
    p.add_argument("--data", help="dataset whose trajectory --index gives x0, μ, f and t")
    p.add_argument("--x0-from", help="dataset that gives x0 (and defaults for μ, f, t)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--mu", type=float, nargs="+", help="parameter values")
    p.add_argument("--forcing", help="e.g. 'sine:amplitude=1,frequency=2' or "
                   "'sum_of_sines:amplitudes=[1,0.5],frequencies=[0.2,1]' (';' between channels)")
    p.add_argument("--t-end", type=float, help="predict up to this time")
    p.add_argument("--n-times", type=int, help="number of output times with --t-end")
    p.add_argument("--n-samples", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    _integrator_options(p)
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a model on test trajectories")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--n-samples", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    _integrator_options(p)
    p.add_argument("--no-paper-protocol", action="store_true",
                   help="skip the papers' protocol score (32 paths x 64 decoder samples)")
    p.add_argument("--ensemble", type=int, default=0, metavar="R",
                   help="also score against R truth realisations of each case, regenerated "
                        "with the simulator that made DATA (stochastic or chaotic systems)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune-step", help="choose the integrator's substeps on validation data")
    p.add_argument("model", help="model directory (updated in place)")
    p.add_argument("data", help="held-out validation dataset")
    p.add_argument("--integrator", choices=METHODS, default=None)
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="allowed change when the step is halved, as a share of the error")
    p.add_argument("--max-substeps", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune_step)

    p = sub.add_parser("tune-assimilation",
                       help="choose the prior scale of the initial-state fit by forecasts")
    p.add_argument("model", help="model directory (updated in place)")
    p.add_argument("data", help="trajectories to forecast from (the training ones do)")
    p.add_argument("--horizon", type=float, default=None,
                   help="time scored after each window (default: 4 x n_win data steps)")
    p.add_argument("--scales", default=None,
                   help="comma-separated prior scales to try (default 1,10,100,1000,10000)")
    p.add_argument("--n-forecasts", type=int, default=24)
    p.add_argument("--n-samples", type=int, default=32)
    p.add_argument("--standard-errors", type=float, default=None,
                   help="keep the smallest scale within this many standard errors of the "
                        "best (paired over the same windows; default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune_assimilation)

    p = sub.add_parser("calibrate", help="fit the uncertainty scale on validation data")
    p.add_argument("model", help="model directory (updated in place)")
    p.add_argument("data", help="held-out validation dataset (not the test set)")
    p.add_argument("--level", type=float, default=0.9, help="central interval to calibrate")
    p.add_argument("--mode", choices=["noise", "spread", "lead"], default="noise",
                   help="scale every noise source of the SDE (default), or the decoded paths' "
                        "spread about their mean, which keeps the mean as it is (lead: by a "
                        "factor fitted per bin of lead time)")
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("generate", help="simulate a built-in system into a dataset file")
    p.add_argument("system")
    p.add_argument("--n", type=int, default=8, help="number of trajectories")
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="solve independent trajectories in N processes where the simulator "
                        "solves them one at a time (the Burgers paper preset's RK45); the data "
                        "are identical (default: SROM_GENERATE_JOBS, else 1)")
    p.add_argument("--shards", type=int, default=None, metavar="K",
                   help="simulate in K shards (one in memory at a time) into one chunked HDF5 "
                        "file for srom train --stream (shard k is seeded from (seed, k))")
    p.add_argument("--chunk-kb", type=float, default=1024,
                   help="HDF5 chunk size of the states with --shards")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("sensitivity", help="sweep one input of a model, or rank every input "
                       "(tornado), by a statistic of its prediction")
    p.add_argument("model", help="model directory")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--input", metavar="NAME",
                      help="the input to sweep over its trained range: a μ name or a forcing "
                           "parameter (mu:NAME or forcing:NAME where both exist)")
    what.add_argument("--tornado", action="store_true",
                      help="each input at both ends of its trained range, sorted by swing")
    p.add_argument("--points", type=int, default=9, help="values of a sweep (2..201)")
    p.add_argument("--statistic", default="probe", help="probe (default), energy, time_mean "
                   "or time_max of each sample path")
    p.add_argument("--probe", type=int, default=None,
                   help="flat state index of the probe (default: a middle point of a field)")
    p.add_argument("--time", type=float, default=None,
                   help="time of the probe and energy statistics (default: the horizon)")
    p.add_argument("--horizon", type=float, default=None,
                   help="last predicted time (default: the end of the trained range)")
    p.add_argument("--paths", type=int, default=32, help="sample paths per case (2..4096)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mu", action="append", metavar="NAME=VALUE",
                   help="a nominal μ value (default: the middle of its trained range)")
    p.add_argument("--forcing", help="the first forcing channel, e.g. 'sine:amplitude=1'")
    p.add_argument("--x0-from", help="dataset whose trajectory --index gives the initial state "
                   "(default: the simulator, else the model's kept training state)")
    p.add_argument("--index", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the table as .csv or .json")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("systems", help="list the built-in systems")
    p.set_defaults(func=cmd_systems)

    p = sub.add_parser("demo", help="generate data, train and predict a built-in example")
    p.add_argument("--out", default="srom-demo")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="open the dashboard (panel serve app/main.py)",
                       description="Serve the dashboard, on this machine only by default. For "
                                   "a classroom: --address 0.0.0.0 --allow-websocket-origin "
                                   "HOST:PORT --basic-auth PASSWORD_OR_FILE.")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default: this machine only)")
    p.add_argument("--allow-websocket-origin", action="append", metavar="HOST[:PORT]",
                   help="a host name browsers use to reach the server (needed off loopback)")
    p.add_argument("--basic-auth", metavar="PASSWORD_OR_FILE",
                   help="a password, or a JSON file of users and passwords (Panel's basic auth)")
    p.add_argument("--cookie-secret", help="secret that signs login cookies (default: random)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve off loopback without a password (anyone who reaches it may use it)")
    p.add_argument("--show", action="store_true")
    p.add_argument("--max-queued-trainings", type=int, default=None, metavar="N",
                   help="trainings that may wait in the queue at once (default 8)")
    p.add_argument("--max-training-steps", type=int, default=None, metavar="N",
                   help="steps of one dashboard training (default 100000)")
    p.add_argument("--max-generated-trajectories", type=int, default=None, metavar="N",
                   help="simulated trajectories one training may ask for (default 1000)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    from engine.data import DatasetError
    from engine.io import ModelFileError
    from engine.train import CheckpointError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage (or --help): return its status
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    try:
        _check_counts(args)
        return int(args.func(args) or 0)
    except (UserError, DatasetError, ModelFileError, CheckpointError, ValueError,
            OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"srom: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("srom: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
