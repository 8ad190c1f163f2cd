"""The result of :meth:`engine.StochasticROM.predict`: moments, quantiles, sample paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["Prediction", "sample_quantiles", "sorted_quantiles"]


def sample_quantiles(samples: torch.Tensor, levels: np.ndarray, dim: int) -> torch.Tensor:
    """Empirical quantiles (linear interpolation, numpy's default) along ``dim`` by sorting.

    ``torch.quantile`` refuses inputs above 2**24 elements; a sort has no such limit.
    Returns ``(len(levels), *shape without dim)``.
    """
    return sorted_quantiles(torch.sort(samples, dim=dim).values, levels, dim)


def sorted_quantiles(ordered: torch.Tensor, levels: np.ndarray, dim: int) -> torch.Tensor:
    """:func:`sample_quantiles` of samples already sorted along ``dim``."""
    ordered = ordered.movedim(dim, 0)
    n = ordered.shape[0]
    pos = torch.as_tensor(levels, dtype=ordered.dtype, device=ordered.device) * (n - 1)
    lo = pos.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo.to(pos.dtype)).view(-1, *([1] * (ordered.dim() - 1)))
    return ordered[lo] * (1 - w) + ordered[hi] * w


@dataclass
class Prediction:
    """A probabilistic prediction of B cases over T times, in physical units.

    Attributes:
        t: ``(T,)`` times.
        mean: ``(B, T, *S)`` predictive mean (over latent paths and decoder noise).
        std: ``(B, T, *S)`` predictive standard deviation.
        samples: ``(B, n, T, *S)`` sample paths including decoder noise (``None`` when
            not requested).
        latent: ``(B, n, T, d)`` latent sample paths.
        mu: ``(B, P)`` parameters used.
        f: ``(B, T, F)`` forcing used.
    """

    t: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    latent: np.ndarray
    mu: np.ndarray
    f: np.ndarray
    quantile_levels: np.ndarray | None = None
    quantile_values: np.ndarray | None = None

    @property
    def n_cases(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_paths(self) -> int:
        return int(self.latent.shape[1])

    def quantiles(self, qs: Sequence[float] | float) -> np.ndarray:
        """Empirical quantiles over the sample paths: ``(len(qs), B, T, *S)``.

        Raises:
            ValueError: when the prediction was made without samples or a q is outside [0, 1].
        """
        qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        if self.quantile_levels is not None and all(np.any(np.isclose(q, self.quantile_levels)) for q in qs):
            idx = [int(np.argmin(np.abs(self.quantile_levels - q))) for q in qs]
            return self.quantile_values[idx]
        if self.samples is None:
            raise ValueError("this prediction has no samples for these levels; call "
                             "predict(..., return_samples=True) or predict(..., quantiles=levels)")
        if np.any((qs < 0) | (qs > 1)):
            raise ValueError(f"quantiles must lie in [0, 1], got {qs.tolist()}")
        return np.quantile(self.samples, qs, axis=1).astype(self.mean.dtype)

    def latent_quantiles(self, qs: Sequence[float] | float) -> np.ndarray:
        """Quantiles of the latent paths: ``(len(qs), B, T, d)``."""
        qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        return np.quantile(self.latent, qs, axis=1).astype(self.latent.dtype)

    def to_npz(self, path: str | os.PathLike, qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> Path:
        """Write t, mean, std, quantiles (and samples, latent, mu, f) to a ``.npz`` file."""
        path = Path(path)
        arrays = {"t": self.t, "mean": self.mean, "std": self.std, "latent": self.latent,
                  "mu": self.mu, "f": self.f}
        if self.samples is not None:
            arrays["samples"] = self.samples
        if self.samples is not None or self.quantile_levels is not None:
            if self.samples is None:
                qs = self.quantile_levels
            arrays["quantile_levels"] = np.asarray(qs)
            arrays["quantiles"] = self.quantiles(qs)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path
