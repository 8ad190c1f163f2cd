"""Downloads of a prediction: the arrays (npz), the plotted quantity (CSV), a figure (PNG).

GUI-free: every function takes an :class:`app.state.explore.ExploreResult` and returns ``bytes``
(the dashboard wraps them in ``pn.widgets.FileDownload`` buttons; scripts write them to
files). What was predicted — model, μ, forcing, paths, seed — travels with every export as
the JSON of ``result.inputs``.

The PNG is drawn with matplotlib's Agg canvas from the result's arrays, not captured from the
browser: Bokeh's own ``export_png`` needs Selenium and a web driver, which a server does not
have. Only the object-oriented matplotlib API is used (no ``pyplot`` state), so exports from
several sessions at once do not interfere.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.state.explore import BANDS, ExploreResult

__all__ = ["EXPORT_LEVELS", "field_kind", "description", "title", "prediction_npz", "qoi_csv",
           "prediction_png"]

#: quantile levels written to the npz and CSV files
#: (every drawn band's ends, so an export rebuilds each band on screen, and the median)
EXPORT_LEVELS: tuple[float, ...] = tuple(sorted({q for band in BANDS for q in band} | {0.5}))
_BLUE = "#1f77b4"


def field_kind(state_shape: Sequence[int], has_grid: bool = False) -> str:
    """``vector`` (a few components), ``field1d`` (values on a line) or ``field2d``; the
    dashboard's rule: a 1-D state is a field if it has a spatial grid or more than 8 values."""
    shape = tuple(state_shape)
    if len(shape) == 1:
        return "field1d" if (has_grid or shape[0] > 8) else "vector"
    return "field2d"


def _flat(a: np.ndarray, n_lead: int) -> np.ndarray:
    """``(..., T, *S) -> (..., T, |S|)`` with ``n_lead`` = len(S)."""
    return a.reshape(*a.shape[: a.ndim - n_lead], -1)


def description(result: ExploreResult, extra: dict[str, Any] | None = None) -> str:
    """The JSON that describes ``result``: its inputs (model, μ, forcing, paths, seed),
    the quantile levels, whether it is a preview, plus ``extra``."""
    info = {**result.inputs, "n_paths": int(result.n_paths), "preview": bool(result.preview),
            "quantile_levels": list(EXPORT_LEVELS), "n_sample_paths_kept": len(result.samples),
            **(extra or {})}
    return json.dumps(info, default=float)


def title(result: ExploreResult) -> str:
    """What was predicted, in one line: the system, μ by name and value, each forcing
    channel's family and parameters, the paths (for a figure's title)."""
    inputs = result.inputs
    parts = [str(inputs.get("system") or "custom data")]
    mu = inputs.get("mu") or {}
    if mu:
        parts.append("μ: " + ", ".join(f"{name} = {float(value):.4g}" for name, value in mu.items()))
    for name, spec in (inputs.get("forcing") or {}).items():
        spec = dict(spec)
        family = spec.pop("family", "?")
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in spec.items())
        parts.append(f"{name}: {family}({values})")
    parts.append(f"{int(result.n_paths)} paths")
    return " · ".join(parts)


def prediction_npz(result: ExploreResult, extra: dict[str, Any] | None = None) -> bytes:
    """A compressed ``.npz`` of the prediction (load with ``np.load``; no pickles).

    Arrays (T output times, S the state shape, L = 7 levels, k kept paths, d latent size):
    ``t (T,)``, ``mean``/``std (T, *S)``, ``quantile_levels (L,)`` = 2.5/5/25/50/75/95/97.5 %,
    ``quantiles (L, T, *S)``, ``samples (k, T, *S)`` (the paths the dashboard draws; the
    statistics use all ``n_paths``), ``latent_mean (T, d)``, ``latent_quantiles (L, T, d)``,
    ``latent_samples (k, T, d)``, ``mu (P,)``, ``param_names (P,)``, ``forcing (T, F)``,
    ``forcing_names (F,)``, ``description`` (a JSON string: model, μ, forcing families and
    parameters, paths, seed; see :func:`description`) and, with the simulator on,
    ``truth (T, *S)``, ``rel_error (T,)``, ``inside_band (T,)``.
    """
    mu_names = list(result.inputs.get("mu", {}))
    forcing_names = list(result.inputs.get("forcing", {}))
    # Any: numpy's stub for savez's keywords also names allow_pickle (a bool)
    arrays: dict[str, Any] = {
        "t": result.t, "mean": result.mean, "std": result.std,
        "quantile_levels": np.asarray(EXPORT_LEVELS),
        "quantiles": np.stack([result.quantile(q) for q in EXPORT_LEVELS]),
        "samples": result.samples, "latent_mean": result.latent_mean,
        "latent_quantiles": np.stack([result.latent_quantile(q) for q in EXPORT_LEVELS]),
        "latent_samples": result.latent_samples, "mu": result.mu,
        "param_names": np.asarray(mu_names, dtype=str), "forcing": result.forcing,
        "forcing_names": np.asarray(forcing_names, dtype=str),
        "description": np.asarray(description(result, extra)),
    }
    if result.truth is not None:
        arrays.update(truth=result.truth, rel_error=result.rel_error,
                      inside_band=result.inside_band)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def qoi_csv(result: ExploreResult, probe: int) -> bytes:
    """A plain CSV of the quantity the dashboard plots over time: the state at flat index
    ``probe`` (a component of a vector state, a grid point of a 1-D field, a pixel of the
    flattened 2-D field, channels first) — not a spatial mean, whose quantiles cannot be
    derived from pointwise ones.

    The header ``t,mean,std,q05,q10,q25,q50,q75,q90,q95`` (plus ``truth`` with the simulator
    on) and one row per output time, nothing else, so that spreadsheets and
    ``np.genfromtxt(..., delimiter=",", names=True)`` read it as is; what was predicted is in
    the npz's ``description``.

    Args:
        result: the prediction; probe: the flat state index.
    """
    n_lead = result.mean.ndim - 1
    mean = _flat(result.mean, n_lead)
    if not 0 <= probe < mean.shape[-1]:
        raise ValueError(f"probe must be a flat state index in [0, {mean.shape[-1] - 1}], "
                         f"got {probe}")
    columns = {"t": result.t, "mean": mean[:, probe], "std": _flat(result.std, n_lead)[:, probe]}
    for q in EXPORT_LEVELS:
        percent = 100 * q  # q05, q25, …; q02_5 and q97_5 where the level is not whole
        name = (f"q{round(percent):02d}" if abs(percent - round(percent)) < 1e-9
                else "q" + f"{percent:04.1f}".replace(".", "_"))
        columns[name] = _flat(result.quantile(q), n_lead)[:, probe]
    if result.truth is not None:
        columns["truth"] = _flat(result.truth, n_lead)[:, probe]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([f"{v:.9g}" for v in row])
    return text.getvalue().encode("utf-8")


def prediction_png(result: ExploreResult, probe: int, kind: str | None = None,
                   frame: int | None = None, space: np.ndarray | None = None,
                   title: str | None = None, probe_label: str | None = None,
                   dpi: int = 110) -> bytes:
    """A PNG of the prediction: the quantity at ``probe`` with its 50/80/95 % bands, sample
    paths and the simulator (if on) on top, and below it the mean and std maps (a space–time
    map for 1-D fields, the probe's channel at ``frame`` for 2-D fields) or, for a vector
    state, every component's mean and 90 % band and the latent means.

    Args:
        result: the prediction; probe: the flat state index of the top plot.
        kind: ``vector``, ``field1d`` or ``field2d`` (default: :func:`field_kind`).
        frame: output-time index of a 2-D field's maps (default: the last).
        space: ``(n,)`` coordinates of a 1-D field (default: indices).
        title: the figure's title; probe_label: the top plot's title (default: the index);
        dpi: resolution.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shape = result.mean.shape[1:]
    kind = kind or field_kind(shape)
    n_lead = len(shape)
    t = result.t
    fig = Figure(figsize=(10, 7.2), dpi=dpi)  # fixed margins: a constrained layout doubles the time
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.1, 1), left=0.07, right=0.97, bottom=0.07,
                            top=0.9 if title else 0.94, hspace=0.32, wspace=0.22)
    ax = fig.add_subplot(grid[0, :])
    for (lo, hi), alpha in zip(BANDS, (0.15, 0.2, 0.3)):
        ax.fill_between(t, _flat(result.quantile(lo), n_lead)[:, probe],
                        _flat(result.quantile(hi), n_lead)[:, probe], color=_BLUE, alpha=alpha,
                        lw=0, label=f"{round(100 * (hi - lo))} %")
    for k, path in enumerate(_flat(result.samples, n_lead)[:, :, probe]):
        ax.plot(t, path, color=_BLUE, alpha=0.45, lw=0.8, label="sample paths" if k == 0 else None)
    ax.plot(t, _flat(result.mean, n_lead)[:, probe], color="#0b3d91", lw=2.2, label="mean")
    if result.truth is not None:
        ax.plot(t, _flat(result.truth, n_lead)[:, probe], "k--", lw=1.8, label="simulator")
    ax.set(xlabel="t", ylabel="value")
    ax.set_title(probe_label or f"State at flat index {probe}", loc="left", fontsize=10)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=6, frameon=False)
    left, right = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    if kind == "field1d":
        xs = np.arange(shape[0], dtype=float) if space is None else np.asarray(space, float)
        extent = (t[0], t[-1], xs[0], xs[-1])
        for axis, values, name in ((left, result.mean, "Mean"), (right, result.std, "Std")):
            image = axis.imshow(values.T, origin="lower", aspect="auto", extent=extent,
                                cmap="viridis")
            fig.colorbar(image, ax=axis, pad=0.02)
            axis.set(xlabel="t", ylabel="x", title=f"{name} u(x, t)")
    elif kind == "field2d":
        i = len(t) - 1 if frame is None else int(np.clip(frame, 0, len(t) - 1))
        c = int(probe) // int(np.prod(shape[-2:]))  # the probe's channel, as on screen
        for axis, values, name in ((left, result.mean, "Mean"), (right, result.std, "Std")):
            image = axis.imshow(values[i].reshape(-1, *shape[-2:])[c], origin="lower",
                                cmap="viridis")
            fig.colorbar(image, ax=axis, pad=0.02)
            axis.set(xlabel="x", ylabel="y", title=f"{name} (channel {c + 1}) at t = {t[i]:.3g}")
    else:
        q05, q95 = (_flat(result.quantile(q), n_lead) for q in (0.05, 0.95))
        for j in range(_flat(result.mean, n_lead).shape[-1]):
            left.fill_between(t, q05[:, j], q95[:, j], alpha=0.2, lw=0, color=f"C{j}")
            left.plot(t, _flat(result.mean, n_lead)[:, j], color=f"C{j}", label=f"x{j + 1}")
        left.set(xlabel="t", title="State: mean and 90 % band")
        left.legend(fontsize=8, frameon=False)
        for j in range(result.latent_mean.shape[-1]):
            right.plot(t, result.latent_mean[:, j], color=f"C{j}", label=f"z{j + 1}")
        right.set(xlabel="t", title="Latent means")
        right.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
