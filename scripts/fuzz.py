"""Fuzz everything a user hands the engine, for longer than CI does (issue 15, item 6).

Runs the properties of ``tests/test_properties.py`` (the strategies of
``tests/fuzz_strategies.py``, the checks of ``tests/fuzz_checks.py``) with many more
examples and fresh random seeds, and counts, per target, the cases tried, the outcomes
(the engine's own error types, exit codes, successes) and the contract breaks. A break does
not stop the run: it is recorded with its input and the run goes on. Results go to
``benchmarks/results/fuzz.json`` and ``fuzz.md``::

    python scripts/fuzz.py --cases 1500 --seconds 300

The exit status is 1 if any case broke the contract, else 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fuzz_checks as fc  # noqa: E402
import fuzz_strategies as fs  # noqa: E402
import hypothesis  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MAX_RECORDED_FAILURES = 5


@dataclass(frozen=True)
class Target:
    """One property: a strategy of inputs, the check that runs one of them, and what the
    property says (for the report)."""

    name: str
    strategy: st.SearchStrategy
    check: Callable[[fc.FuzzFiles, Path, Any], str]
    about: str


_RESUME_CASES = st.tuples(st.one_of(st.just([]), fs.config_edits()), fs.tensor_edits(),
                          st.one_of(st.just([]), fs.byte_mutations()))
TARGETS = [
    Target("dataset: arbitrary bytes (.npz)", fs.arbitrary_file_bytes(),
           lambda f, w, data: fc.check_dataset_bytes(data, ".npz", w),
           "`load_dataset` of arbitrary bytes returns a valid Dataset or raises DatasetError"),
    Target("dataset: arbitrary bytes (.h5)", fs.arbitrary_file_bytes(),
           lambda f, w, data: fc.check_dataset_bytes(data, ".h5", w), "the same for HDF5"),
    Target("dataset: mutated valid file (.npz)", fs.byte_mutations(),
           lambda f, w, edits: fc.check_mutated_dataset(f, ".npz", edits, w),
           "the same for a saved dataset with bytes flipped, set, inserted, deleted or cut"),
    Target("dataset: mutated valid file (.h5)", fs.byte_mutations(),
           lambda f, w, edits: fc.check_mutated_dataset(f, ".h5", edits, w), "the same for HDF5"),
    Target("dataset: arbitrary arrays (.npz)", fs.npz_member_sets(),
           lambda f, w, members: fc.check_npz_members(members, w),
           "the same for files of arrays of every dtype and shape (and nasty JSON attrs) under "
           "the field names"),
    Target("dataset: arbitrary arrays (.h5)", fs.h5_member_sets(),
           lambda f, w, members: fc.check_h5_members(members, w), "the same for HDF5"),
    Target("dataset: round trip (.npz)", fs.datasets(),
           lambda f, w, fields: fc.check_round_trip(fields, ".npz", w),
           "a valid dataset saves and loads back exactly (values, dtypes, names, attrs)"),
    Target("dataset: round trip (.h5)", fs.datasets(),
           lambda f, w, fields: fc.check_round_trip(fields, ".h5", w), "the same for HDF5"),
    Target("model: config.json of arbitrary text or JSON", fs.config_texts(),
           lambda f, w, text: fc.check_model_config_text(f, text, w),
           "`load_model` loads or raises ModelFileError, quickly"),
    Target("model: edited real config.json", fs.config_edits(),
           lambda f, w, edits: fc.check_model_config(f, fs.apply_config_edits(f.config, edits),
                                                     w),
           "the same for a real config with values replaced by other types, huge, negative "
           "or nested junk, or deleted; a model that loads predicts or raises ValueError"),
    Target("checkpoint: srom train --resume of an edited checkpoint", _RESUME_CASES,
           lambda f, w, case: fc.check_checkpoint(f, *case, w),
           "resuming trains on or raises a ValueError (CheckpointError)"),
    Target("forcing: make_forcing", fs.forcing_cases(),
           lambda f, w, case: fc.check_make_forcing(*case),
           "gives a forcing, finite on a small grid and equal after to_dict/from_dict, or "
           "raises ValueError"),
    Target("forcing: Forcing.from_dict", fs.forcing_dicts(),
           lambda f, w, d: fc.check_forcing_from_dict(d), "the same for any dict or value"),
    Target("forcing: srom predict --forcing text", fs.forcing_text_cases(),
           lambda f, w, case: fc.check_forcing_text(*case),
           "gives a finite (T, F) array or raises UserError or ValueError"),
    Target("cli: srom command lines", fs.cli_argvs(),
           lambda f, w, argv: fc.check_cli(argv, f, w),
           "`engine.cli.main` returns 0, 1, 2 or 130 and prints no traceback"),
]


@dataclass
class TargetResult:
    """What one target's run measured."""

    name: str
    cases: int = 0
    seconds: float = 0.0
    slowest_case_seconds: float = 0.0
    slowest_case_input: str = ""
    outcomes: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    failure_count: int = 0
    stopped_by: str = "cases"

    def to_dict(self) -> dict:
        return {"cases": self.cases, "failures": self.failure_count,
                "outcomes": dict(self.outcomes.most_common()),
                "exception_types": sorted(k for k in self.outcomes if k.isidentifier()
                                          and k[0].isupper()),
                "seconds": round(self.seconds, 2),
                "slowest_case_seconds": round(self.slowest_case_seconds, 3),
                "slowest_case_input": self.slowest_case_input,
                "stopped_by": self.stopped_by, "failure_examples": self.failures}


def run_target(target: Target, files: fc.FuzzFiles, workdir: Path, cases: int,
               seconds: float, seed: int) -> TargetResult:
    """Run ``target`` on up to ``cases`` inputs within ``seconds``; never raises for a
    contract break (it is recorded)."""
    result = TargetResult(target.name)
    deadline = time.perf_counter() + seconds

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis.seed(seed)
    @given(example=target.strategy)
    def one_case(example: Any) -> None:
        if time.perf_counter() > deadline:
            result.stopped_by = "time budget"
            return
        start = time.perf_counter()
        try:
            label = target.check(files, workdir, example)
        except Exception as exc:  # a PropertyViolation, or a check that broke itself
            label = "CONTRACT BREAK"
            result.failure_count += 1
            if len(result.failures) < MAX_RECORDED_FAILURES:
                message = str(exc) if isinstance(exc, fc.PropertyViolation) else (
                    f"the check itself failed: {type(exc).__name__}: {exc}")
                result.failures.append({"message": message[:1000],
                                        "input": repr(example)[:1000]})
        elapsed = time.perf_counter() - start
        result.cases += 1
        result.outcomes[label] += 1
        if elapsed > result.slowest_case_seconds:
            result.slowest_case_seconds, result.slowest_case_input = elapsed, repr(example)[:300]

    start = time.perf_counter()
    try:
        one_case()
    except Exception as exc:  # the run itself broke (a strategy error): record, go on
        result.failure_count += 1
        result.failures.append({"message": f"the fuzz run stopped: {type(exc).__name__}: "
                                           f"{str(exc)[:800]}", "input": ""})
    result.seconds = time.perf_counter() - start
    return result


def versions() -> dict[str, str]:
    import h5py
    import torch

    return {"python": platform.python_version(), "hypothesis": hypothesis.__version__,
            "numpy": np.__version__, "torch": torch.__version__, "h5py": h5py.__version__,
            "platform": platform.platform()}


def write_markdown(report: dict, path: Path) -> None:
    """The report as a table, one row per target."""
    v = report["versions"]
    lines = [
        "# Fuzzing the engine's inputs (issue 15, item 6)", "",
        f"`{report['command']}` on {report['date']}: {report['total']['cases']} cases in "
        f"{report['total']['seconds']:.0f} s, **{report['total']['failures']} contract "
        f"breaks**. Seed {report['seed']}; Python {v['python']}, hypothesis "
        f"{v['hypothesis']}, numpy {v['numpy']}, torch {v['torch']}, h5py {v['h5py']} on "
        f"{v['platform']}.", "",
        "A case passes when the engine either works or fails with its own error type "
        "(`DatasetError`, `ModelFileError`, `ValueError`, `UserError`; for the command line an "
        f"exit status in 0, 1, 2, 130 and no traceback) within {report['hang_seconds']:.0f} s. "
        "Outcomes count what the cases did.", "",
        "| target | cases | failures | outcomes | seconds | slowest case (s) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, t in report["targets"].items():
        outcomes = ", ".join(f"{k} {n}" for k, n in t["outcomes"].items()).replace("|", "/")
        lines.append(f"| {name} | {t['cases']} | {t['failures']} | {outcomes} | "
                     f"{t['seconds']:.1f} | {t['slowest_case_seconds']:.2f} |")
    lines += ["", "## What each target checks", ""]
    lines += [f"- {name}: {t['about']}" for name, t in report["targets"].items()]
    broken = {n: t for n, t in report["targets"].items() if t["failure_examples"]}
    if broken:
        lines += ["", "## Contract breaks", ""]
        for name, t in broken.items():
            for example in t["failure_examples"]:
                lines.append(f"- {name}: {example['message'][:300]} (input "
                             f"`{example['input'][:200]}`)")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000,
                        help="cases in total, shared among the targets (default 2000)")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="time budget in total; a target gets what the ones before left")
    parser.add_argument("--seed", type=int, default=None, help="default: a fresh one")
    parser.add_argument("--only", default="",
                        help="comma-separated words: run the targets whose name holds one")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for fuzz.json/md")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    words = [w.strip() for w in args.only.split(",") if w.strip()] or [""]
    targets = [t for t in TARGETS if any(w in t.name for w in words)]
    command = "python scripts/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv)
    start, results = time.perf_counter(), {}
    with tempfile.TemporaryDirectory(prefix="srom-fuzz-") as tmp:
        files = fc.make_fuzz_files(Path(tmp) / "files")
        for i, target in enumerate(targets):
            left = args.seconds - (time.perf_counter() - start)
            budget = max(left / (len(targets) - i), 0.0)
            cases = max(1, round(args.cases / len(targets)))
            workdir = Path(tmp) / f"work{i}"
            workdir.mkdir()
            result = run_target(target, files, workdir, cases, budget, seed + i)
            results[target.name] = {"about": target.about, **result.to_dict()}
            print(f"{target.name}: {result.cases} cases, {result.failure_count} failures, "
                  f"{result.seconds:.1f} s", file=sys.stderr, flush=True)
    report = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": seed, "cases_requested": args.cases, "budget_seconds": args.seconds,
        "hang_seconds": fc.HANG_SECONDS, "versions": versions(),
        "total": {"cases": sum(r["cases"] for r in results.values()),
                  "failures": sum(r["failures"] for r in results.values()),
                  "seconds": round(time.perf_counter() - start, 1)},
        "targets": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "fuzz.md")
    print(f"fuzz: {report['total']['cases']} cases, {report['total']['failures']} failures; "
          f"wrote {args.out / 'fuzz.json'} and fuzz.md", file=sys.stderr)
    return 1 if report["total"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
