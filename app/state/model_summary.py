"""What the model picker tells about each model: a short description and its held-out
accuracy, with a warning on weak models.

GUI-free. Read from the files of a model directory: the first heading of ``card.md`` (the
description), the ``metrics`` of ``config.json`` (else the ``test`` and ``ensemble``
scores of ``eval.json``). Every file is untrusted: read with a size bound, numbers kept only
when finite, text stripped of control characters and shortened; callers still escape the
text for the pane that shows it (:func:`app.state.safe_text.md`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.io import CONFIG_NAME

__all__ = ["Accuracy", "ModelSummary", "accuracy_of", "read_summary", "picker_label",
           "clean_text", "WEAK_ERROR", "WEAK_COVERAGE_90", "CARD_NAME", "EVAL_NAME", "MAX_DESCRIPTION"]

CARD_NAME = "card.md"
EVAL_NAME = "eval.json"
#: bytes read of a card or an eval file at most (a card's heading is on its first line)
MAX_READ_BYTES = 1 << 20
#: characters of a description at most
MAX_DESCRIPTION = 120

#: A model whose scale-free held-out error (the error of the predictive mean over the
#: horizon, divided by the truth's RMS size; or the relative L2 error) is above this is
#: *weak*. 0.3 is the threshold the project's chaotic scores already use for a valid
#: forecast (``vpt_threshold``: a forecast counts as valid while its normalised RMSE stays
#: under 0.3), so a model above it on average would not count as a valid forecast on
#: average. It splits the shipped models where they are far apart: Burgers, cylinder,
#: reaction-diffusion, Lotka-Volterra, predator-prey and the oscillators score 0.02-0.24;
#: the pendulum video scores 1.04 and heat 0.37 against the truth's exact mean (a perfect
#: model scores 0.17 there).
WEAK_ERROR = 0.3

#: A model whose 90 % band holds the held-out truth less often than this is *weak* too: it
#: then misses 2.5 times as often as it claims (25 % against 10 %); smaller deficits are
#: within the sampling error of the few held-out trajectories a card is scored on (the
#: shipped models hold it 0.82-0.96 of the time).
WEAK_COVERAGE_90 = 0.75

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")


@dataclass(frozen=True)
class Accuracy:
    """A model's held-out accuracy, as the picker shows it.

    Attributes:
        score: the scale-free error of the predictive mean (lower is better), or ``None``
            where the model has none (chaotic truths, RMSE only, not scored).
        short: a few words for the picker, e.g. ``"error 1.8 %"``.
        text: one sentence saying what was measured.
        weak: whether the model is weak (see :data:`WEAK_ERROR`, :data:`WEAK_COVERAGE_90`).
        reason: why it is weak; empty when it is not.
    """

    score: float | None
    short: str
    text: str
    weak: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ModelSummary:
    """A model's description (plain text, not yet escaped) and its :class:`Accuracy`."""

    description: str
    accuracy: Accuracy


def _number(values: Mapping[str, Any], key: str) -> float | None:
    """``values[key]`` as a finite float, else ``None`` (a file may hold anything)."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _percent(value: float) -> str:
    return f"{100 * value:.2g} %" if value < 0.1 else f"{100 * value:.0f} %"


def accuracy_of(metrics: Mapping[str, Any] | None) -> Accuracy:
    """The accuracy that fits the model's held-out scores.

    In this order: the valid prediction time for a chaotic truth (weak when shorter than
    holding the first snapshot gives: no better than doing nothing); the error against the
    mean of the truth's realisations for a random truth; the error scaled by the truth's RMS
    size; the relative L2 error when it is meaningful (under 10: it blows up where the truth
    passes zero); the RMSE in state units (no scale, so no verdict); else "not scored".
    A 90 % coverage under :data:`WEAK_COVERAGE_90` makes any of them weak.

    Args:
        metrics: the scores (``model.metrics_``, ``config.json``'s ``metrics``), with an
            optional ``ensemble`` mapping; anything else counts as none.
    """
    metrics = metrics if isinstance(metrics, Mapping) else {}
    ens = metrics.get("ensemble")
    ens = ens if isinstance(ens, Mapping) else {}
    reasons = []
    coverage = _number(ens, "coverage_90")
    if coverage is None:
        coverage = _number(metrics, "coverage_90")
    cov_text = f", 90 % band holds the truth {_percent(coverage)} of the time" \
        if coverage is not None else ""
    if coverage is not None and coverage < WEAK_COVERAGE_90:
        reasons.append(f"its 90 % band holds the truth only {_percent(coverage)} of the time")

    score: float | None = None
    valid = _number(ens, "valid_lyapunov_times")
    error = _number(ens, "rel_l2_vs_ensemble_mean")
    if valid is not None:
        persistence = _number(ens, "persistence_valid_lyapunov_times")
        short = f"valid {valid:.2g} Lyapunov times"
        text = (f"chaotic truth: the forecast follows the true path for {valid:.2g} Lyapunov "
                "times" + (f" (holding the first snapshot: {persistence:.2g})"
                           if persistence is not None else "") + cov_text)
        if persistence is not None and valid < persistence:
            reasons.append("its forecast leaves the true path sooner than holding the first "
                           "snapshot does")
    elif error is not None:
        score = error
        short = f"error {_percent(error)}"
        text = (f"held-out error {error:.3g} against the mean of the truth's realisations "
                f"(random truth){cov_text}")
    elif (scaled := _number(metrics, "scaled_l2_mean")) is not None:
        score = scaled
        short = f"error {_percent(scaled)}"
        text = f"held-out error {scaled:.3g} of the truth's RMS size over the horizon{cov_text}"
    elif (rel := _number(metrics, "rel_l2_mean")) is not None and rel < 10:
        score = rel
        short = f"error {_percent(rel)}"
        text = f"held-out relative L2 error {rel:.3g}{cov_text}"
    elif (rmse := _number(metrics, "rmse")) is not None:
        short = f"RMSE {rmse:.2g}"
        text = (f"held-out RMSE {rmse:.3g} in state units (no scale-free score){cov_text}")
    else:
        return Accuracy(None, "not scored", "not scored on held-out data", bool(reasons),
                        "; ".join(reasons))
    if score is not None and score > WEAK_ERROR:
        reasons.insert(0, f"its held-out error {score:.3g} is above {WEAK_ERROR:g} of the "
                          "truth's size")
    return Accuracy(score, short, text, bool(reasons), "; ".join(reasons))


def clean_text(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """``text`` on one line, without control or direction-override characters, at most
    ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(_CONTROL.sub(" ", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _read_text(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_READ_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None


def _read_json(path: Path) -> dict:
    text = _read_text(path)
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _card_heading(text: str | None) -> str:
    """The first Markdown heading of a card, without its ``#`` marks."""
    for line in (text or "").splitlines()[:50]:
        if line.startswith("#"):
            return clean_text(line.lstrip("#"))
    return ""


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def read_summary(directory: str | Path) -> ModelSummary:
    """The :class:`ModelSummary` of a model directory; never raises (missing or broken files
    give "not scored" and a description built from the config).

    Cached per directory and modification times of its three files.
    """
    path = Path(directory)
    stamp = tuple(_mtime(path / name) for name in (CONFIG_NAME, CARD_NAME, EVAL_NAME))
    return _summary(str(path), stamp)


@functools.lru_cache(maxsize=256)
def _summary(directory: str, stamp: tuple[int, ...]) -> ModelSummary:
    path = Path(directory)
    config = _read_json(path / CONFIG_NAME)
    metrics = config.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        scores = _read_json(path / EVAL_NAME)
        test = scores.get("test")
        metrics = dict(test) if isinstance(test, dict) else {}
        if isinstance(scores.get("ensemble"), dict):
            metrics["ensemble"] = scores["ensemble"]
    description = _card_heading(_read_text(path / CARD_NAME))
    if not description:
        system = config.get("system")
        latent = config.get("latent_dim")
        what = f"a model of {clean_text(system, 60)}" if isinstance(system, str) and system \
            else "a model of your own data"
        description = what + (f", latent dimension {latent}"
                              if isinstance(latent, int) and not isinstance(latent, bool) else "")
    return ModelSummary(description=description, accuracy=accuracy_of(metrics))


def picker_label(label: str, summary: ModelSummary) -> str:
    """The picker's text of a model: its catalog ``label``, its accuracy in a few words and
    a warning sign on a weak model. Plain text (a select's options are not markup)."""
    weak = " · ⚠ weak" if summary.accuracy.weak else ""
    return f"{label} · {summary.accuracy.short}{weak}"
