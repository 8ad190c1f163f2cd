"""Observation models p(x | z): what the decoder's output means, in training and prediction.

Two likelihoods, chosen by ``StochasticROM(likelihood=...)``:

- ``gaussian`` (default): the decoder gives the mean of ``N(x; x̂, diag σ²)`` in normalized
  units, with the learned log-normal variance σ² of :class:`engine.priors.LogNormalVariance`.
- ``bernoulli``: for binary data such as thresholded video frames (the amortized
  reparametrization paper's pendulum): the decoder gives logits ℓ and
  ``p(x | z) = Π sigmoid(ℓ)^x (1 − sigmoid(ℓ))^(1−x)``. States must lie in [0, 1] and are
  not normalized; the decoder variance is unused (its KL does not enter the ELBO).

Predictions average over latent paths: the predictive mean of a pixel is the mean over
paths of its probability ``p̄``, and with observation noise its variance is that of a
Bernoulli mixture, ``p̄ (1 − p̄)``; without, the variance of the probabilities over paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.elbo import gaussian_log_likelihood

__all__ = ["LIKELIHOODS", "log_likelihood", "predictive_moments", "observations"]

LIKELIHOODS = ("gaussian", "bernoulli")


def log_likelihood(kind: str, x: torch.Tensor, decoded: torch.Tensor,
                   decoder_var: torch.Tensor | None, event_dims: int) -> torch.Tensor:
    """``log p(x | z)`` summed over the last ``event_dims`` axes.

    Args:
        kind: one of :data:`LIKELIHOODS`.
        x: observations, broadcastable to ``decoded`` (normalized units; 0/1 for Bernoulli).
        decoded: the decoder's output ``(..., *S)``: means (Gaussian) or logits (Bernoulli).
        decoder_var: σ² broadcastable to ``*S`` (Gaussian only).
    """
    if kind == "bernoulli":
        log_density = -F.binary_cross_entropy_with_logits(decoded, x.expand_as(decoded),
                                                          reduction="none")
        return log_density.flatten(-event_dims).sum(-1) if event_dims else log_density
    if decoder_var is None:
        raise ValueError("the Gaussian likelihood needs decoder_var (σ²), got None")
    return gaussian_log_likelihood(x, decoded, decoder_var, event_dims)


def predictive_moments(kind: str, decoded: torch.Tensor, decoder_var: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance over the paths axis (1) of ``decoded`` ``(B, n, T, *S)``.

    Args:
        decoder_var: the observation noise to include (Gaussian: σ², added; Bernoulli: any
            tensor, meaning "include the coin flip"); ``None`` for the latent spread alone.

    Returns:
        ``(mean, var)``, each ``(B, T, *S)``, in the decoder's units (probabilities for
        Bernoulli).
    """
    values = torch.sigmoid(decoded) if kind == "bernoulli" else decoded
    mean = values.mean(1)
    if kind == "bernoulli" and decoder_var is not None:
        return mean, mean * (1 - mean)
    # from the deviations from the first path (a shift within the spread, so no loss of
    # precision): the same values as ``values.var(1, unbiased=False)`` up to rounding, and
    # exactly 0 where the paths agree (a deterministic prediction), but ~4x quicker on a CPU
    # for a reduction over a middle axis (48 paths x 301 times x 128 points, one thread)
    deviation = values - values[:, :1]
    var = (deviation.square().mean(1) - deviation.mean(1).square()).clamp_(min=0)
    if decoder_var is not None:
        var = var + decoder_var
    return mean, var


def observations(kind: str, decoded: torch.Tensor, decoder_var: torch.Tensor | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Sample paths of the observed state from decoded paths (same shape).

    With ``decoder_var`` (observation noise on): Gaussian adds ``N(0, σ²)`` noise, Bernoulli
    draws 0/1 pixels. Without: the decoded means (probabilities for Bernoulli).
    """
    if kind == "bernoulli":
        probabilities = torch.sigmoid(decoded)
        if decoder_var is None:
            return probabilities
        return torch.bernoulli(probabilities, generator=generator)
    if decoder_var is None:
        return decoded
    noise = torch.randn(decoded.shape, generator=generator, dtype=decoded.dtype,
                        device=decoded.device)
    return decoded + decoder_var.sqrt() * noise
