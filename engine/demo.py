"""``srom demo``: simulate a forced oscillator, train a stochastic ROM, predict, score.

Writes into the output directory: ``train.npz``, ``test.npz`` (datasets), ``model/``
(the trained model), ``prediction.npz`` (mean, quantiles and samples of the first test
case) and, when matplotlib is installed, ``prediction.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.model import StochasticROM
from engine.progress import TqdmCallback

__all__ = ["run_demo"]


def run_demo(out: Path, steps: int = 1500, device: str = "auto", system: str = "oscillator") -> dict:
    """Run the demo end to end and return the held-out metrics."""
    from engine import systems

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"srom demo: simulating '{system}' (32 training and 8 test trajectories)", file=sys.stderr)
    train = systems.generate(system, n=32, split="train", seed=0)
    test = systems.generate(system, n=8, split="test", seed=0)
    train.save(out / "train.npz")
    test.save(out / "test.npz")
    model = StochasticROM(steps=steps, lr=3e-3, window=32, windows_per_step=8,
                          drift_hidden=(64, 64), decoder_log_var_init=-7.0, log_every=50,
                          device=device, seed=0)
    model.fit(train, callback=TqdmCallback(desc="srom demo: training"))
    metrics = model.evaluate(test, n_samples=64)
    model.save(out / "model", metrics=metrics)
    pred = model.predict(test.x[0, 0], test.mu[0], test.t, test.f[0], n_samples=64, seed=0)
    pred.to_npz(out / "prediction.npz")
    print(json.dumps(metrics, indent=2))
    picture = _plot(pred, test, out / "prediction.png")
    print(f"srom demo: trained {model.training_['steps']} steps in "
          f"{model.training_['seconds']:.0f} s; wrote {out}/"
          + (f" (see {picture.name})" if picture else ""), file=sys.stderr)
    return metrics


def _plot(pred, test, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), constrained_layout=True)
    q = pred.quantiles([0.025, 0.1, 0.25, 0.75, 0.9, 0.975])
    for k, ax in enumerate(axes):
        for (lo, hi), alpha in zip(((0, 5), (1, 4), (2, 3)), (0.15, 0.25, 0.35)):
            ax.fill_between(pred.t, q[lo, 0, :, k], q[hi, 0, :, k], color="C0", alpha=alpha, lw=0)
        for s in range(3):
            ax.plot(pred.t, pred.samples[0, s, :, k], color="C0", lw=0.6, alpha=0.6)
        ax.plot(pred.t, pred.mean[0, :, k], color="C0", lw=2, label="predictive mean")
        ax.plot(test.t, test.x[0, :, k], "k--", lw=1.2, label="simulator")
        ax.set_xlabel("t")
        ax.set_title(["position x(t)", "velocity x'(t)"][k] if pred.mean.shape[-1] == 2 else f"x{k}")
    axes[0].legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    run_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "srom-demo"))
