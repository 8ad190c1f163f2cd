"""Bokeh figures of the Train tab: live ELBO curves and β, fed by one streaming source.

Like :mod:`app.views.plots`, figures are built once; new progress reports are *streamed* into the
existing ``ColumnDataSource`` (only the new rows travel to the browser). Call the methods
on the session's thread only (the view's periodic callback), under ``pn.io.hold()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bokeh.models import ColumnDataSource, LinearAxis, Range1d

# annotations from their own module: bokeh.models re-exports them, but not to type checkers
from bokeh.models.annotations import Legend, LegendItem, Title
from bokeh.models.renderers import GlyphRenderer
from bokeh.plotting import figure

__all__ = ["TrainingCurves", "TERMS"]

#: the columns streamed per progress report (keys of the engine's metrics)
TERMS = ("step", "loss", "ell", "residual", "kl", "beta")


def _figure(title: str, y_label: str, height: int, **kw):
    fig = figure(title=title, height=height, sizing_mode="stretch_width",
                 tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right",
                 x_axis_label="step", y_axis_label=y_label, **kw)
    fig.toolbar.logo = None
    if isinstance(fig.title, Title):  # always: figure() makes one from the text
        fig.title.text_font_size = "11pt"
    return fig


def _legend(fig, items: Sequence[tuple[str, GlyphRenderer]]) -> None:
    fig.add_layout(Legend(items=[LegendItem(label=text, renderers=[r]) for text, r in items],
                          orientation="horizontal", click_policy="hide",
                          label_text_font_size="8pt", glyph_width=14, spacing=6, margin=0,
                          padding=2,  # type: ignore[arg-type]  # bokeh's stub: a nested Property
                          border_line_alpha=0), "above")


class TrainingCurves:
    """Two figures over the training step: the loss (−ELBO) and the expected
    log-likelihood with β on a right axis, and the path-KL residual and the KL of the
    global variables on a log scale (all terms are per state entry, normalized units)."""

    def __init__(self, height: int = 260, name: str = "train-curves"):
        self.source = ColumnDataSource({k: [] for k in TERMS}, name=name)
        self.elbo = _figure("Loss (−ELBO), log-likelihood and β", "per state entry", height)
        self.elbo.extra_y_ranges = {"beta": Range1d(start=0.0, end=1.05)}
        self.elbo.add_layout(LinearAxis(y_range_name="beta", axis_label="β (KL weight)"),
                             "right")
        _legend(self.elbo, [
            ("loss", self.elbo.line("step", "loss", source=self.source, color="#0b3d91",
                                    line_width=2)),
            ("expected log-lik.", self.elbo.line("step", "ell", source=self.source,
                                                 color="#2ca02c", line_width=2)),
            ("β", self.elbo.line("step", "beta", source=self.source, color="#7f7f7f",
                                 line_dash="dashed", line_width=2, y_range_name="beta"))])
        self.kl = _figure("Path-KL residual and KL of the globals", "per state entry", height,
                          y_axis_type="log")
        _legend(self.kl, [
            ("path-KL residual", self.kl.line("step", "residual", source=self.source,
                                              color="#d62728", line_width=2)),
            ("KL (globals)", self.kl.line("step", "kl", source=self.source, color="#9467bd",
                                          line_width=2))])

    @property
    def figures(self) -> tuple:
        return self.elbo, self.kl

    def reset(self) -> None:
        """Forget every point (a new training)."""
        self.source.data = {k: [] for k in TERMS}

    def append(self, logs: Sequence[dict]) -> None:
        """Stream new progress reports (the engine's metrics dicts) into the figures."""
        if logs:
            self.source.stream({k: [float(m.get(k, float("nan"))) for m in logs]
                                for k in TERMS})

    def __len__(self) -> int:
        return len(self.source.data["step"])
