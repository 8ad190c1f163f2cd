"""HoloViews elements of a :class:`~engine.prediction.Prediction`, for notebooks.

Each function returns a composable HoloViews object (``+`` lays out, ``*`` overlays,
``.opts`` styles), labelled with the names and units the prediction carries::

    import holoviews as hv; hv.extension("bokeh")
    pred = model.predict(x0, mu=[0.07], t=t, f=f, quantiles=[0.025, 0.1, 0.25, 0.75, 0.9, 0.975])
    bands(pred, index=250) + latent_phase(pred) + field(pred)

Needs ``holoviews`` (``pip install holoviews``; its Bokeh backend is loaded when no
``hv.extension`` was); the rest of the engine does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.prediction import Prediction

if TYPE_CHECKING:
    from engine.sensitivity import GridResult, SweepResult, TornadoResult

__all__ = ["BAND_LEVELS", "bands", "interval_bands", "sample_paths", "field", "latent_phase", "sweep", "grid",
           "tornado", "tornado_ends"]

#: central interval levels drawn by :func:`bands` (the dashboard draws the same three)
BAND_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def _hv():
    try:
        import holoviews as hv
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("engine.plotting needs holoviews: pip install holoviews") from exc
    if not hv.Store.renderers:  # styles need a backend; a notebook's hv.extension() loads one
        import holoviews.plotting.bokeh  # noqa: F401
    return hv


def _component(pred: Prediction, values: np.ndarray, index: int | Sequence[int]) -> np.ndarray:
    """``values (..., *S)`` at one state entry ``index`` (a flat index into the state, or
    one index per state axis): ``(...)``."""
    shape = pred.mean.shape[2:]
    flat = np.ravel_multi_index(tuple(np.atleast_1d(index)), shape) if np.ndim(index) else int(np.asarray(index))
    if not 0 <= flat < int(np.prod(shape)):
        raise ValueError(f"index {index!r} is outside the state of shape {shape}")
    return values.reshape(*values.shape[:-len(shape)], -1)[..., flat]


def _check_case(pred: Prediction, case: int) -> None:
    if not 0 <= case < pred.n_cases:
        raise ValueError(f"case must be in 0..{pred.n_cases - 1}, got {case}")


def bands(pred: Prediction, case: int = 0, index: int | Sequence[int] = 0,
          levels: Sequence[float] = BAND_LEVELS, label: str = "state"):
    """Predictive mean and central intervals of one state entry over time.

    Args:
        case: which case of the prediction.
        index: the state entry (flat index, or one index per state axis).
        levels: central interval probabilities (each band spans its (1 − p)/2 and
            (1 + p)/2 quantiles); the prediction needs samples or these quantiles.

    Returns:
        ``hv.Overlay`` of one ``hv.Area`` per band (widest first) and the mean ``hv.Curve``.
    """
    _check_case(pred, case)
    intervals = []
    for level in sorted(levels, reverse=True):
        if not 0 < level < 1:
            raise ValueError(f"band levels must lie in (0, 1), got {level}")
        lo_hi = pred.quantiles([(1 - level) / 2, (1 + level) / 2])
        intervals.append((_component(pred, lo_hi[0], index)[case],
                          _component(pred, lo_hi[1], index)[case]))
    mean = _component(pred, pred.mean, index)[case]
    return interval_bands(pred.t, mean, intervals,
                          [f"{100 * p:g} % band" for p in sorted(levels, reverse=True)],
                          label=label).opts(title=_title(pred, case))


def interval_bands(t: np.ndarray, mean: np.ndarray,
                   intervals: Sequence[tuple[np.ndarray, np.ndarray]],
                   labels: Sequence[str] | None = None, samples: np.ndarray | None = None,
                   truth: np.ndarray | None = None, label: str = "state"):
    """One quantity over time from arrays: nested bands, sample paths, the mean and a
    reference (what :func:`bands` draws for a prediction).

    Args:
        t: ``(T,)`` times; mean: ``(T,)``.
        intervals: widest first, each ``(lo (T,), hi (T,))``.
        labels: one legend entry per interval (default ``band 1``, ...).
        samples: ``(k, T)`` sample paths, drawn as one ``hv.Curve`` with a NaN between
            paths (``k`` may be 0).
        truth: ``(T,)`` a reference (e.g. the simulator's), dashed.
        label: the quantity's name (the value axis).

    Returns:
        ``hv.Overlay`` of one ``hv.Area`` per interval, then the ``hv.Curve`` s of the
        samples (if given), the mean and the truth (if given), labelled ``sample paths``,
        ``mean`` and ``truth``.
    """
    hv = _hv()
    t = np.asarray(t, dtype=np.float64)
    if np.shape(mean) != t.shape:
        raise ValueError(f"mean must have the shape of t {t.shape}, got {np.shape(mean)}")
    names = list(labels) if labels is not None else [f"band {k + 1}" for k in range(len(intervals))]
    if len(names) != len(intervals):
        raise ValueError(f"{len(intervals)} intervals but {len(names)} labels")
    overlay = []
    for (lo, hi), name in zip(intervals, names):
        if np.shape(lo) != t.shape or np.shape(hi) != t.shape:
            raise ValueError(f"each interval's bounds must have the shape of t {t.shape}")
        overlay.append(hv.Area((t, lo, hi), kdims="time", vdims=[label, f"{label}_high"],
                               label=name).opts(alpha=0.25))
    if samples is not None:
        # one curve broken by NaN between paths: a third of an hv.Path's cost to draw
        paths = np.asarray(samples, dtype=np.float64).reshape(-1, t.size)
        gap = np.full((paths.shape[0], 1), np.nan)
        xs = np.hstack([np.broadcast_to(t, paths.shape), gap]).ravel()
        ys = np.hstack([paths, gap]).ravel()
        overlay.append(hv.Curve((xs, ys), "time", label, label="sample paths").opts(alpha=0.45))
    overlay.append(hv.Curve((t, mean), "time", label, label="mean"))
    if truth is not None:
        if np.shape(truth) != t.shape:
            raise ValueError(f"truth must have the shape of t {t.shape}, got {np.shape(truth)}")
        overlay.append(hv.Curve((t, truth), "time", label, label="truth").opts(
            color="black", line_dash="dashed"))
    return hv.Overlay(overlay)


def sample_paths(pred: Prediction, case: int = 0, index: int | Sequence[int] = 0,
                 n: int = 10, label: str = "state"):
    """Up to ``n`` sample paths of one state entry (``hv.Overlay`` of ``hv.Curve``)."""
    hv = _hv()
    _check_case(pred, case)
    if pred.samples is None:
        raise ValueError("this prediction kept no samples: predict(..., return_samples=True)")
    paths = _component(pred, pred.samples, index)[case]  # (n_paths, T)
    curves = [hv.Curve((pred.t, p), "time", label).opts(alpha=0.5) for p in paths[:n]]
    return hv.Overlay(curves).opts(title=_title(pred, case))


def field(pred: Prediction, case: int = 0, time_index: int | None = None, channel: int = 0,
          statistic: str = "mean"):
    """A field of the prediction as an image.

    1-D fields: the whole space–time map (``hv.Image`` over x and time). 2-D fields: the
    map of ``channel`` at ``time_index`` (default the last time) with equal aspect.

    Args:
        statistic: ``mean`` or ``std``.
    """
    hv = _hv()
    _check_case(pred, case)
    if statistic not in ("mean", "std"):
        raise ValueError(f"statistic must be 'mean' or 'std', got {statistic!r}")
    values = getattr(pred, statistic)[case]  # (T, *S)
    shape = values.shape[1:]
    t = np.asarray(pred.t, dtype=np.float64)
    if len(shape) == 1:
        x = np.asarray(pred.grid.get("x", np.arange(shape[0])), dtype=np.float64)
        if x.size != shape[0]:
            x = np.arange(shape[0], dtype=np.float64)
        return hv.QuadMesh((x, t, values), kdims=["x", "time"], vdims=statistic).opts(
            title=_title(pred, case), colorbar=True)
    if len(shape) != 3:
        raise ValueError(f"field plots need a 1-D or a (channel, y, x) state, got {shape}")
    k = t.size - 1 if time_index is None else int(time_index)
    if not 0 <= k < t.size:
        raise ValueError(f"time_index must be in 0..{t.size - 1}, got {time_index}")
    if not 0 <= channel < shape[0]:
        raise ValueError(f"channel must be in 0..{shape[0] - 1}, got {channel}")
    ny, nx = shape[1:]
    x = np.asarray(pred.grid.get("x", np.arange(nx)), dtype=np.float64)
    y = np.asarray(pred.grid.get("y", np.arange(ny)), dtype=np.float64)
    if x.size != nx or y.size != ny:
        x, y = np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64)
    return hv.QuadMesh((x, y, values[k, channel]), kdims=["x", "y"], vdims=statistic).opts(
        title=f"{_title(pred, case)}, t = {t[k]:.4g}", colorbar=True, data_aspect=1)


def latent_phase(pred: Prediction, case: int = 0, dims: tuple[int, int] = (0, 1), n: int = 20):
    """Latent phase portrait: up to ``n`` latent sample paths in the plane of ``dims``."""
    hv = _hv()
    _check_case(pred, case)
    d = pred.latent.shape[-1]
    i, j = dims
    if d < 2 or not (0 <= i < d and 0 <= j < d and i != j):
        raise ValueError(f"dims must be two different latent axes of 0..{d - 1}, got {dims}")
    paths = [np.column_stack([p[:, i], p[:, j]]) for p in pred.latent[case, :n]]
    return hv.Path(paths, kdims=[f"z{i + 1}", f"z{j + 1}"]).opts(
        title=f"latent paths, {_title(pred, case)}", alpha=0.6)


def sweep(result: SweepResult, outer: tuple[float, float] = (0.05, 0.95),
          inner: tuple[float, float] = (0.25, 0.75), context: bool = True):
    """A 1-D sensitivity sweep (:func:`engine.sensitivity.sweep_1d`): the statistic's 5–95 %
    and 25–75 % ranges over the sample paths, its mean, and ± 2 Monte-Carlo standard errors
    of the mean.

    Args:
        context: also shade the input's trained range (``hv.VSpan``) and mark its nominal
            value (``hv.VLine``), drawn first.

    Returns:
        ``hv.Overlay`` of (with ``context``) an ``hv.VSpan`` and an ``hv.VLine``, then two
        ``hv.Area``, an ``hv.ErrorBars``, the mean ``hv.Curve`` and its ``hv.Scatter``.
    """
    hv = _hv()
    x, name, label = np.asarray(result.values), result.input.label, result.label
    overlay = []
    if context:
        lo, hi = (float(v) for v in result.input.trained)
        overlay += [hv.VSpan(lo, hi, label="trained range").opts(color="#2ca02c", alpha=0.07),
                    hv.VLine(float(result.input.nominal), label="nominal").opts(
                        color="#d62728", line_dash="dotted", line_width=2)]
    overlay += [hv.Area((x, result.quantile(lo), result.quantile(hi)), name,
                        [label, f"{label}_high"], label=f"{100 * (hi - lo):g} % of paths"
                        ).opts(alpha=0.2 if k == 0 else 0.35)
                for k, (lo, hi) in enumerate((outer, inner))]
    overlay.append(hv.ErrorBars((x, result.mean, 2 * result.stderr), name,
                                [label, "2 standard errors"]))
    overlay.append(hv.Curve((x, result.mean), name, label, label="mean"))
    overlay.append(hv.Scatter((x, result.mean), name, label, label="mean").opts(size=6))
    return hv.Overlay(overlay).opts(title=f"{label} against {name}")


def grid(result: GridResult, statistic: str = "mean"):
    """A 2-D sensitivity grid (:func:`engine.sensitivity.sweep_2d`): the statistic's
    ``mean`` or ``std`` over the sample paths at each pair of input values, as an
    ``hv.QuadMesh`` over (first input, second input) with a colour bar."""
    hv = _hv()
    if statistic not in ("mean", "std"):
        raise ValueError(f"statistic must be 'mean' or 'std', got {statistic!r}")
    (a, b), (va, vb) = result.inputs, result.values
    values = np.asarray(getattr(result, statistic), dtype=np.float64)  # (n_a, n_b)
    return hv.QuadMesh((np.asarray(va, np.float64), np.asarray(vb, np.float64), values.T),
                       kdims=[a.label, b.label], vdims=f"{statistic} of {result.label}").opts(
        title=f"{statistic.capitalize()} of {result.label}", colorbar=True)


def tornado(result: TornadoResult):
    """A tornado ranking (:func:`engine.sensitivity.rank_inputs`): each input's swing
    ``|high − low|`` of the statistic's mean over its trained range, largest first, with
    ± 2 Monte-Carlo standard errors.

    Returns:
        ``hv.Overlay`` of horizontal ``hv.Bars`` and ``hv.ErrorBars``.
    """
    hv = _hv()
    names = [inp.label for inp in result.inputs][::-1]  # largest at the top
    swing, se = result.swing[::-1], result.swing_se[::-1]
    bars = hv.Bars((names, swing), "input", "swing").opts(invert_axes=True)
    errors = hv.ErrorBars((names, swing, 2 * np.nan_to_num(se)), "input",
                          ["swing", "2 standard errors"]).opts(invert_axes=True)
    return (bars * errors).opts(title=f"{result.label}: swing over each input's trained range")


def tornado_ends(result: TornadoResult):
    """The classic tornado chart of a ranking (:func:`engine.sensitivity.rank_inputs`): per
    input, a bar from the statistic's mean at nominal inputs to its mean with the input at
    the low end (first colour) and at the high end (second colour) of its trained range;
    the largest swing on top, a vertical line at the nominal value. Hovering a bar shows
    the input's value there.

    Returns:
        ``hv.Overlay`` of two ``hv.Rectangles`` (low ends, high ends; rows in ranking
        order; vdims: the statistic there, the input's value, the swing and the input's
        label) and an ``hv.VLine``; the y axis names the inputs.
    """
    hv = _hv()
    k = len(result.inputs)
    y = np.arange(k)[::-1].astype(np.float64)  # the first (largest swing) at the top
    nominal = float(result.nominal)
    swing = np.asarray(result.swing, dtype=np.float64)
    names = np.array([inp.label for inp in result.inputs], dtype=object)
    ticks = [(float(y[i]), name) for i, name in enumerate(names)]
    layers = []
    for end, values, color in (("low", result.low, "#1f77b4"), ("high", result.high, "#ff7f0e")):
        values = np.asarray(values, dtype=np.float64)
        at = np.array([inp.trained[0 if end == "low" else 1] for inp in result.inputs],
                      dtype=np.float64)
        rects = (np.minimum(values, nominal), y - 0.3, np.maximum(values, nominal), y + 0.3,
                 values, at, swing, names)
        layers.append(hv.Rectangles(rects, vdims=[result.label, "input value", "swing", "input"],
                                    label=f"input at the {end} end").opts(
            color=color, alpha=0.8, line_alpha=0, tools=["hover"]))
    layers.append(hv.VLine(nominal, label="nominal").opts(color="black", line_width=1.5))
    return hv.Overlay(layers).opts(
        title="Which input matters most", yticks=ticks, xlabel=result.label, ylabel="",
        ylim=(-0.6, k - 0.4))


def _title(pred: Prediction, case: int) -> str:
    """``system: μ = …`` for the case (names and values of its parameters)."""
    names = pred.param_names or [f"mu{k + 1}" for k in range(pred.mu.shape[1])]
    mu = ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, np.asarray(pred.mu)[case]))
    head = pred.system or "prediction"
    return f"{head}: {mu}" if mu else head
