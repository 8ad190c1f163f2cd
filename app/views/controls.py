"""Widget builders for the state's inputs: μ sliders with their trained range marked, and
the forcing family's parameter widgets.

Every function returns *new* widgets (never shared between sessions). Sliders report
through ``value_throttled`` (on release, or on Enter in the text box) so that a drag
costs one prediction, not one per pixel.

Widgets with a JavaScript callback (Panel's editable sliders) must be handed to
:func:`release_js_callbacks` when they are dropped or their session ends: Panel keeps the
callback in a process-wide registry that would otherwise hold them, and through their
watchers the whole session, forever.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import panel as pn

from app.state.explore import ForcingField, MuSpec
from app.state.memory import trim_soon

__all__ = ["MuControl", "range_bar_html", "forcing_widget", "nice_step", "label", "label_of",
           "BusyLabel", "release_js_callbacks", "release_at_session_end", "TextHTML",
           "TextMarkdown"]

TRAINED_COLOR = "#2ca02c"
OUTSIDE_COLOR = "#d62728"


def release_js_callbacks(*viewables) -> int:
    """Drop the JavaScript callbacks of ``viewables`` and of everything inside them from
    Panel's process-wide registry; the number of objects released.

    Call it for widgets that are replaced (a model switch) and for a session's whole page
    when the session is destroyed. Panel keeps every ``jscallback`` in
    ``panel.links.Callback.registry``, a ``WeakKeyDictionary`` keyed by the source widget;
    an editable slider registers one on its text box whose ``args`` hold its slider, and the
    slider's watchers lead back to the editable slider and its text box. The value keeps its
    own key alive, so the entry is never collected, and with it the widget's other watchers:
    our callbacks, the session state, its worker and the session's Bokeh document (3.4 MB
    per closed session, measured by ``benchmarks/ui_load.py --soak``). The callbacks already
    attached to rendered Bokeh models are not touched.
    """
    from panel.links import Callback

    released = 0
    for viewable in viewables:
        for obj in viewable.select():
            if Callback.registry.pop(obj, None) is not None:
                released += 1
    return released


def release_at_session_end(*viewables) -> None:
    """In a served session, :func:`release_js_callbacks` of ``viewables`` (the parts of a
    session's page) when the session is destroyed; nothing outside a session.

    Defined here rather than in the served script: Bokeh empties the script's module when
    the session ends, so a callback defined there no longer finds its globals.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return  # pn.state.on_session_destroyed would register it for every future session
    def release(_context) -> None:
        release_js_callbacks(*viewables)
        trim_soon()  # hand the closed session's freed memory back (app.state.memory)

    pn.state.on_session_destroyed(release)


class _TextOnlyUpdates:
    """A pane whose new ``object`` sends only the new text to the page.

    Panel's HTML and Markdown panes send all their properties on each change, stylesheet
    models included; a changed list of models makes Bokeh walk the session's whole document
    again (``DocumentModelManager.recompute``), four times per slider move, on the event
    loop that every session shares: 27 % of that loop's busy time with 5 pages moving
    sliders (py-spy, issue 15 load). Sizes, styles and visibility still update as usual (they are not
    ``object``).
    """

    def _update(self, ref: str, model: Any) -> None:
        props = self._process_param_change({"object": self.object})  # type: ignore[attr-defined]
        model.update(**{k: v for k, v in props.items() if k == "text"})


class TextHTML(_TextOnlyUpdates, pn.pane.HTML):
    """:class:`panel.pane.HTML` for text that changes often (see :class:`_TextOnlyUpdates`)."""


class TextMarkdown(_TextOnlyUpdates, pn.pane.Markdown):
    """:class:`panel.pane.Markdown` for text that changes often (see
    :class:`_TextOnlyUpdates`)."""


class BusyLabel:
    """A "computing…" mark of fixed size whose text alone changes.

    A spinner that is shown and hidden (``visible``/CSS classes) makes the browser lay the
    whole page out again, 0.2–0.5 s per toggle on a 2-core machine (measured by
    ``benchmarks/ui_speed.py``); changing a fixed-size pane's text costs about 1 ms.
    """

    HTML = '<span style="color:#0b3d91;font-size:12px;white-space:nowrap">⏳ computing…</span>'

    def __init__(self, busy: bool = False, **params):
        self.pane = TextHTML(self.HTML if busy else "", width=100, height=20,
                                 sizing_mode="fixed", margin=(10, 4, 0, 8), **params)

    @property
    def value(self) -> bool:
        """Whether it shows busy."""
        return bool(self.pane.object)

    @value.setter
    def value(self, busy: bool) -> None:
        text = self.HTML if busy else ""
        if self.pane.object != text:
            self.pane.object = text


def label(text: str) -> dict[str, str]:
    """The keyword that sets a widget's visible label: ``label`` (Panel >= 1.8, where
    ``name`` is deprecated for this) or ``name`` (older Panel)."""
    return {"label": text} if "label" in pn.widgets.Widget.param else {"name": text}


def label_of(widget) -> str:
    """A widget's visible label (see :func:`label`)."""
    return getattr(widget, "label", None) or widget.name


def nice_step(lo: float, hi: float, n: int = 200) -> float:
    """A round step giving about ``n`` slider positions between ``lo`` and ``hi``."""
    span = abs(hi - lo) or 1.0
    raw = span / n
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def range_bar_html(trained: tuple[float, float], bounds: tuple[float, float], value: float,
                   doc: str = "") -> str:
    """A thin bar: the slider's extent in grey, the trained range in green, the value as a
    tick (red when outside the trained range); ``doc`` is shown before the range text."""
    lo, hi = bounds
    span = (hi - lo) or 1.0

    def pct(v: float) -> float:
        return 100.0 * min(max((v - lo) / span, 0.0), 1.0)

    a, b, v = pct(trained[0]), pct(trained[1]), pct(value)
    inside = trained[0] <= value <= trained[1]
    tick = TRAINED_COLOR if inside else OUTSIDE_COLOR
    text = ("trained " if inside else "<b>extrapolating</b> — trained ") + \
        f"[{_fmt(trained[0])}, {_fmt(trained[1])}]"
    return (
        '<div style="position:relative;height:6px;background:#e6e6e6;border-radius:3px;'
        'margin:0 8px">'
        f'<div style="position:absolute;left:{a:.1f}%;width:{max(b - a, 0.5):.1f}%;height:6px;'
        f'background:{TRAINED_COLOR};opacity:0.55;border-radius:3px"></div>'
        f'<div style="position:absolute;left:calc({v:.1f}% - 1px);top:-3px;width:3px;height:12px;'
        f'background:{tick}"></div></div>'
        f'<div style="font-size:11px;color:{"#555" if inside else OUTSIDE_COLOR};margin:2px 8px 0">'
        f'{doc + " · " if doc else ""}{text}</div>')


class MuControl:
    """One μ parameter: an editable slider (bounds widened around the trained range, typed
    values may go further within physical validity) and its trained-range bar.

    Args:
        spec: the parameter's :class:`app.state.explore.MuSpec`.
        value: the starting value.
        on_change: called with the new value when the user releases the slider or types one.
    """

    def __init__(self, spec: MuSpec, value: float, on_change: Callable[[float], None]):
        self.spec = spec
        unit = "" if spec.unit in ("", "1") else f" [{spec.unit}]"
        lo, hi = spec.bounds
        self.slider = pn.widgets.EditableFloatSlider(
            **label(f"{spec.name}{unit}"), start=lo, end=hi, value=float(value),
            step=nice_step(lo, hi), format="0.[0000]", sizing_mode="stretch_width")
        self.bar = TextHTML(range_bar_html(spec.trained, spec.bounds, value, spec.doc),
                                sizing_mode="stretch_width", margin=(0, 10, 8, 10))
        # the bar follows the release, not every pixel of a drag: each update is a message
        # and a layout of the sidebar while the server is about to predict
        def released(event) -> None:
            self._show(event.new)
            on_change(float(event.new))

        self.slider.param.watch(released, "value_throttled")
        self.panel = pn.Column(self.slider, self.bar, sizing_mode="stretch_width", margin=0)

    def _show(self, value: float | None) -> None:
        if value is not None:
            self.bar.object = range_bar_html(self.spec.trained, self.spec.bounds, float(value),
                                             self.spec.doc)

    def set(self, value: float) -> None:
        """Show ``value`` without reporting it."""
        self.slider.value = float(value)
        self._show(float(value))


def forcing_widget(field: ForcingField, value: Any, on_change: Callable[[Any], None]):
    """The widget of one forcing parameter: a slider for floats, an integer box for ints,
    a list box for lists (``sum_of_sines``)."""
    widget: pn.widgets.Widget
    if field.kind == "float":
        lo, hi = field.bounds or (float(value) - 1.0, float(value) + 1.0)
        lo, hi = min(lo, float(value)), max(hi, float(value))
        widget = pn.widgets.EditableFloatSlider(
            **label(field.name), start=lo, end=hi, value=float(value), step=nice_step(lo, hi, 100),
            format="0.[000]", sizing_mode="stretch_width")
        widget.param.watch(lambda e: on_change(float(e.new)), "value_throttled")
    elif field.kind == "int":
        widget = pn.widgets.IntInput(**label(field.name), value=int(value), start=0,
                                     sizing_mode="stretch_width")
        widget.param.watch(lambda e: on_change(int(e.new)), "value")
    else:
        widget = pn.widgets.LiteralInput(**label(f"{field.name} (list)"), value=list(value),
                                         type=list, sizing_mode="stretch_width")
        widget.param.watch(lambda e: on_change(list(e.new)), "value")
    return widget
