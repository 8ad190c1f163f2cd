"""Regenerate the pretrained models under ``pretrained/`` and their cards.

Two phases, so that training can run on a GPU machine without plotting packages:

    python scripts/pretrained.py train [--only burgers,oscillator] [--out pretrained]
    python scripts/pretrained.py cards [--out pretrained]

``train`` generates each system's train/val/test data with ``srom generate``, trains with
``srom train`` (the project's own command), and scores the held-out test split with
``srom evaluate --json`` into ``<system>/eval.json``. ``cards`` writes ``card.md`` and
``training_curve.png`` from what ``train`` left (nothing is typed by hand).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One entry per shipped model: data (preset and sizes), training hyperparameters.
SPECS: dict[str, dict] = {
    "burgers": {
        "title": "Forced viscous Burgers 1-D (physically consistent default preset)",
        "generate": {"preset": "default", "n": {"train": 100, "val": 10, "test": 10}},
        "train": ["--latent-dim", "4", "--steps", "20000", "--window", "64",
                  "--windows-per-step", "4", "--lr", "2e-3", "--set", "lr_decay_steps=2000"],
    },
    "oscillator": {
        "title": "Forced, noisy Duffing oscillator (classroom system)",
        "generate": {"preset": None, "n": {"train": 128, "val": 16, "test": 16}},
        "train": ["--steps", "10000", "--window", "32", "--windows-per-step", "16", "--lr", "3e-3",
                  "--set", "drift_hidden=[64,64]", "--set", "decoder_log_var_init=-7",
                  "--set", "lr_decay_steps=2000"],
    },
    "burgers_paper": {
        "system": "burgers",
        "title": "Forced viscous Burgers 1-D, the ROM paper's set-up (reproduction)",
        "generate": {"preset": "paper", "n": {"train": 100, "val": 10, "test": 10}},
        "train": ["--latent-dim", "4", "--steps", "30000", "--window", "64",
                  "--windows-per-step", "2", "--lr", "1e-3", "--set", "lr_decay_steps=3000"],
    },
    "heat": {
        "title": "Stochastic heat equation with forcing (Gaussian oracle)",
        "generate": {"preset": None, "n": {"train": 64, "val": 8, "test": 8}},
        "train": ["--latent-dim", "4", "--steps", "10000", "--window", "64",
                  "--windows-per-step", "4", "--lr", "2e-3", "--set", "lr_decay_steps=2000"],
    },
}


def srom(*args: str) -> str:
    cmd = [sys.executable, "-m", "engine.cli", *args]
    print("$ srom " + " ".join(args), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE)
    if result.returncode != 0:
        raise SystemExit(f"srom {args[0]} failed with status {result.returncode}")
    return result.stdout


def train(names: list[str], out: Path) -> None:
    for name in names:
        spec = SPECS[name]
        target = out / name
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for split, n in spec["generate"]["n"].items():
                files[split] = Path(tmp) / f"{split}.npz"
                preset = spec["generate"]["preset"]
                srom("generate", spec.get("system", name), "--n", str(n), "--split", split, "--seed", "0",
                     "--out", str(files[split]), *(["--preset", preset] if preset else []))
            start = time.time()
            srom("train", str(files["train"]), "--out", str(target), "--val", str(files["val"]),
                 "--seed", "0", *spec["train"])
            wall = time.time() - start
            metrics = json.loads(srom("evaluate", str(target), str(files["test"]), "--json",
                                      "--n-samples", "128"))
        (target / "checkpoint.safetensors").unlink(missing_ok=True)
        record = {"system": spec.get("system", name), "name": name, "test": metrics, "train_wall_seconds": wall,
                  "generate": spec["generate"], "train_args": spec["train"],
                  "host": platform.node(), "python": platform.python_version()}
        (target / "eval.json").write_text(json.dumps(record, indent=2))


def cards(names: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in names:
        target = out / name
        if not (target / "eval.json").is_file():
            print(f"skip {name}: no eval.json (run the train phase)")
            continue
        config = json.loads((target / "config.json").read_text())
        record = json.loads((target / "eval.json").read_text())
        history = config["training"]["history"]
        steps = [h["step"] for h in history]
        fig, ax = plt.subplots(1, 2, figsize=(9, 3), constrained_layout=True)
        ax[0].plot(steps, [-h["loss"] for h in history], label="ELBO (per datum and dim.)")
        ax[0].plot(steps, [h["ell"] for h in history], label="expected log-likelihood", alpha=0.7)
        ax[0].set_xlabel("step")
        ax[0].legend(fontsize=8)
        ax[1].semilogy(steps, [max(h["residual"], 1e-12) for h in history], label="path-KL residual")
        ax[1].plot(steps, [h["beta"] for h in history], label="β (KL weight)")
        ax[1].set_xlabel("step")
        ax[1].legend(fontsize=8)
        fig.suptitle(f"{name}: training curves")
        fig.savefig(target / "training_curve.png", dpi=90)
        plt.close(fig)
        test, params, train = record["test"], config["params"], config["training"]
        ranges = "\n".join(f"| {n} | [{lo:.4g}, {hi:.4g}] |" for n, (lo, hi) in
                           zip(config["param_names"], config["param_ranges"]))
        size_mb = (target / "model.safetensors").stat().st_size / 2**20
        lines = [
            f"# {SPECS[name]['title']}", "",
            "Generated by `python scripts/pretrained.py train` and `cards`; every number below "
            "is read from `config.json` and `eval.json`.", "",
            "## Data", "",
            f"`srom generate {record['system']}` with preset `{record['generate']['preset'] or 'default'}`, seed 0: "
            + ", ".join(f"{n} {s} trajectories" for s, n in record["generate"]["n"].items())
            + f"; {train['n_times']} snapshots on t ∈ [{config['t_range'][0]:.4g}, {config['t_range'][1]:.4g}],"
            f" state shape {tuple(config['state_shape'])}.", "",
            "## Model and training", "",
            f"- latent dimension {config['latent_dim']}, architecture `{config['architecture']}`, "
            f"drift `{params['drift']}`, window {params['window']} × {params['windows_per_step']} per step",
            f"- `srom train` arguments: `{' '.join(record['train_args'])}`",
            f"- {train['steps']} steps in {train['seconds']:.0f} s of training "
            f"({record['train_wall_seconds']:.0f} s wall with set-up) on {train['device_name']}"
            f" ({'CUDA graph' if train.get('cuda_graph') else 'eager'}), status `{train['status']}`",
            f"- weights: {size_mb:.2f} MB", "",
            "## Held-out test metrics", "",
            "Protocol: encode the first snapshot of each test trajectory, predict its whole time "
            "grid with its μ and forcing (128 paths), score the predictive mean and samples.", "",
            "| metric | value |", "|---|---|",
            *[f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in test.items()],
            "", "## Known limits", "",
            "Trained parameter ranges (predictions outside them extrapolate and warn):", "",
            "| parameter | trained range |", "|---|---|", ranges, "",
            f"Forcing channels: {', '.join(config['forcing_names']) or 'none'}; times beyond "
            f"t = {config['t_range'][1]:.4g} were never seen in training.", "",
            "![training curves](training_curve.png)", "",
        ]
        (target / "card.md").write_text("\n".join(lines))
        print(f"wrote {target / 'card.md'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["train", "cards"])
    parser.add_argument("--only", help="comma-separated systems (default: all)")
    parser.add_argument("--out", default=str(ROOT / "pretrained"))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SPECS)
    unknown = set(names) - set(SPECS)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; known: {sorted(SPECS)}")
    (train if args.phase == "train" else cards)(names, Path(args.out))


if __name__ == "__main__":
    main()
