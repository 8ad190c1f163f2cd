"""A HoloViews pane that draws one result at a time, updated in place.

:class:`ResultPlot` wraps a function ``result → HoloViews element`` (e.g. one of
:mod:`engine.plotting`) in a ``pn.pane.HoloViews`` of an ``hv.DynamicMap`` fed by an
``hv.streams.Pipe``: the first result builds the Bokeh figure, later ones are sent through
the pipe, so HoloViews refreshes the figure's data sources instead of building a new
figure (``benchmarks/ui_plot_updates.py`` measures both). Every result must draw the same
layers (the overlay's structure is fixed at the first one). Call it on the session's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import holoviews as hv
import panel as pn

__all__ = ["ResultPlot", "named_figure", "named_source"]


class ResultPlot:
    """One result's plot.

    Args:
        draw: ``result → element``; the same layers for every result.
        opts: HoloViews options in the dictionary format (``{"Overlay": {...}, ...}``),
            applied to every element drawn; axes follow each result (``framewise``).
        **pane_params: of the ``pn.pane.HoloViews``.
    """

    def __init__(self, draw: Callable[[Any], Any], opts: dict[str, dict], **pane_params: Any):
        self._draw = draw
        self._opts = opts
        self._pipe = hv.streams.Pipe(data=None)
        self.pane = pn.pane.HoloViews(None, linked_axes=False, **pane_params)
        self.result: Any = None

    def _element(self, data: Any):
        return self._draw(data).opts(self._opts).opts(framewise=True)

    def show(self, result: Any) -> None:
        """Draw ``result`` (a new figure for the first, in place afterwards)."""
        self.result = result
        if self.pane.object is None:
            self._pipe = hv.streams.Pipe(data=result)
            self.pane.object = hv.DynamicMap(self._element, streams=[self._pipe])
        else:
            self._pipe.send(result)

    def element(self):
        """The element drawn for the current result (``None`` before the first)."""
        return None if self.result is None else self._element(self.result)


def named_figure(name: str) -> Callable[[Any, Any], None]:
    """A HoloViews hook that names the Bokeh figure it draws (browser tests find it)."""
    def hook(plot, element) -> None:
        plot.state.name = name
    return hook


def named_source(name: str, label: str | None = None) -> Callable[[Any, Any], None]:
    """A HoloViews hook that names the data source of the element it draws; with
    ``label``, only an element of that label (Bokeh finds no model by a name that several
    models of a document share)."""
    def hook(plot, element) -> None:
        source = plot.handles.get("source")
        if source is not None and (label is None or element.label == label):
            source.name = name
    return hook
