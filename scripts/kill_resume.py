"""Kill-and-resume check: a training killed (SIGKILL) at random moments and resumed from
its checkpoint each time ends with the same weights, bit for bit, as one never killed.

    python scripts/kill_resume.py              # 20 kills, ~3 min on a 2-core CPU
    python scripts/kill_resume.py --kills 5    # a quick look

Trains a small model with ``srom train`` in a child process (checkpoint every
``--checkpoint-every`` steps), kills the child with SIGKILL after a random delay, checks what
the kill left (the checkpoint still loads, no stray temporary file survives a later write)
and restarts it with ``--resume``; after ``--kills`` kills it lets the training finish and
compares every tensor of the final model with an uninterrupted training of the same seed.
Writes ``benchmarks/results/kill_resume.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def _train(data: Path, out: Path, steps: int, every: int, resume: Path | None) -> subprocess.Popen:
    """``srom train`` in a child; its progress bar goes to ``out``.log (a pipe left unread
    would fill and stop the child)."""
    cmd = [sys.executable, "-m", "engine.cli", "train", str(data), "--out", str(out),
           "--steps", str(steps), "--window", "16", "--latent-dim", "2",
           "--set", "drift_hidden=[32,32]", "--set", "log_every=10",
           "--set", f"checkpoint_every={every}", "--seed", "3", "--device", "cpu"]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = open(out.parent / f"{out.name}.log", "a")
    try:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()  # the child keeps its own handle


def _tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    from engine.systems import generate
    from engine.train import read_checkpoint

    rng = random.Random(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="srom-kill-") as tmp:
        tmp = Path(tmp)
        data = generate("oscillator", n=4, split="train", seed=0, preset="small").save(tmp / "d.npz")
        reference = tmp / "reference"
        ref = _train(data, reference, args.steps, args.checkpoint_every, None)
        if ref.wait() != 0:
            raise SystemExit("the reference training failed: "
                             + (tmp / "reference.log").read_text()[-500:])
        ref_seconds = time.perf_counter() - start
        killed = tmp / "killed"
        checkpoint = killed / "checkpoint.safetensors"
        kills, records = 0, []
        while True:
            proc = _train(data, killed, args.steps, args.checkpoint_every,
                          checkpoint if checkpoint.is_file() else None)
            if kills >= args.kills:
                code = proc.wait()
                if code != 0:
                    raise SystemExit("the final resumed training failed: "
                                     + (tmp / "killed.log").read_text()[-500:])
                break
            delay = rng.uniform(2.5, 5.0)  # start-up is ~2 s; then it trains
            try:
                proc.wait(timeout=delay)
                finished_early = True
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                finished_early = False
            if finished_early:  # it ran to the end before the kill: start over on the side
                raise SystemExit("the training finished before a kill: raise --steps")
            kills += 1
            step = None
            if checkpoint.is_file():
                try:
                    step = int(read_checkpoint(checkpoint)[1]["step"])
                except Exception as exc:  # noqa: BLE001 - recorded as a failure
                    step = f"unreadable: {type(exc).__name__}"
            records.append({"kill": kills, "after_s": round(delay, 2), "checkpoint_step": step})
            print(f"kill {kills}: after {delay:.1f} s, checkpoint at step {step}", flush=True)
        a, b = _tensors(reference), _tensors(killed)
        identical = sorted(a) == sorted(b) and all(bool((a[k] == b[k]).all()) for k in a)
        leftovers = [p.name for p in killed.iterdir() if p.name.startswith(".tmp-")]
        resumed_from = json.loads((killed / "config.json").read_text())["training"].get("resumed_from_step")
    readable = sum(isinstance(r["checkpoint_step"], int) for r in records)
    result = {
        "command": "python scripts/kill_resume.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"), "host": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(), "steps": args.steps,
        "checkpoint_every": args.checkpoint_every, "kills": kills, "kill_records": records,
        "checkpoints_readable_after_kill": readable, "bit_identical": identical,
        "final_resumed_from_step": resumed_from, "temporary_files_left": leftovers,
        "reference_seconds": ref_seconds, "seconds": time.perf_counter() - start,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kill_resume.json").write_text(json.dumps(result, indent=1))
    lines = ["# Kill and resume", "", f"Generated by `{result['command']}` on {result['date']} "
             f"({result['host']}); do not edit.", "",
             f"A {args.steps}-step `srom train` (checkpoint every {args.checkpoint_every} steps) was "
             f"killed with SIGKILL {kills} times at random moments and resumed with `--resume` each "
             "time, then compared with an uninterrupted training of the same seed.", "",
             "| check | result |", "|---|---|",
             f"| checkpoint readable after each kill | {readable} / {kills} |",
             f"| final weights bit-identical to the uninterrupted run | {'yes' if identical else 'NO'} |",
             f"| temporary files left in the model folder | {len(leftovers)} |",
             f"| wall time | {result['seconds']:.0f} s |", ""]
    (out / "kill_resume.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
