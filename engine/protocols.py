"""The papers' evaluation protocol, so that the reproduction table compares like with like.

rom-visde's post-processing (see ``shared/design/method.md`` §3.7): 32 latent paths from the
encoder, integrated by an adaptive torchsde solver (rtol 1e-3 to 1e-4), 64 decoder samples
per path, and the relative L2 error per time step of the mean over all 2 048 samples.

Here the latent paths are integrated to convergence instead of by torchsde: SRA1 (strong
order 1.5) on half the step that :meth:`StochasticROM.tune_integrator` found converged, so
the integrator's error is below the adaptive solvers' tolerances. The mean of 64 decoder
samples on each of 32 paths is the mean of the decoded paths plus the average of 2 048
independent N(0, σ²_dec) draws, which is drawn exactly as one N(0, σ²_dec / 2 048) draw. The
model is used as trained: no calibration scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.data import Dataset
from engine.metrics import relative_l2

if TYPE_CHECKING:  # pragma: no cover
    from engine.model import StochasticROM

__all__ = ["PAPER_PATHS", "PAPER_DECODER_SAMPLES", "PAPER_INTEGRATOR", "paper_protocol"]

PAPER_PATHS = 32
PAPER_DECODER_SAMPLES = 64
PAPER_INTEGRATOR = "sra1"


def paper_protocol(model: StochasticROM, dataset: Dataset, seed: int = 0,
                   batch_size: int | None = None) -> dict:
    """Relative L2 error per time step of the papers' predictive mean on ``dataset``.

    Returns:
        ``rel_l2_mean`` and ``rel_l2_std`` (over trajectories × time steps), ``n_paths``,
        ``decoder_samples``, ``integrator`` and ``substeps``.
    """
    _, substeps = model.integration_settings()
    substeps *= 2
    rng = np.random.default_rng(seed)
    dec_std = model.decoder_std_ / np.sqrt(PAPER_PATHS * PAPER_DECODER_SAMPLES)
    scale = getattr(model, "uncertainty_scale_", 1.0)
    errors = []
    try:
        model.uncertainty_scale_ = 1.0
        for sl, pred in model.predict_dataset(
                dataset, PAPER_PATHS, seed, batch_size, return_samples=False,
                decoder_noise=False, integrator=PAPER_INTEGRATOR, substeps=substeps):
            mean = pred.mean + dec_std * rng.standard_normal(pred.mean.shape)
            errors.append(relative_l2(mean, dataset.x[sl]))
    finally:
        model.uncertainty_scale_ = scale
    err = np.concatenate(errors)
    return {"rel_l2_mean": float(err.mean()), "rel_l2_std": float(err.std()),
            "n_paths": PAPER_PATHS, "decoder_samples": PAPER_DECODER_SAMPLES,
            "integrator": PAPER_INTEGRATOR, "substeps": int(substeps)}
