"""Every change a user's action makes to the page's Bokeh models happens under
``pn.io.hold()``.

In a served page Panel may run a widget's or a button's callback *without* the Bokeh
document lock (when other changes of that session are still queued, it schedules the
callback as an unlocked next-tick callback). A Bokeh model changed directly in such a
callback raises ``RuntimeError: _pending_writes should be non-None …`` in the server and the
change never reaches the page (seen in CI: the pin button while a prediction was pending).
Panel's own widgets guard themselves; our raw ``ColumnDataSource`` writes must run under
``pn.io.hold()``, which collects the events and dispatches them safely. These tests make a
document that records every model change made while it is not held."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from test_app_state import tiny_model_dir  # noqa: F401 - shared fixture

from app.state import catalog
from app.state.explore import ExploreState

pn = pytest.importorskip("panel")

from bokeh.document import Document  # noqa: E402
from panel.io.state import set_curdoc  # noqa: E402

#: Bokeh models that Panel's widgets, panes and layouts make and update themselves (safely)
PANEL_MANAGED = ("panel.", "bokeh.models.widgets", "bokeh.models.layouts", "bokeh.models.dom",
                 "bokeh.models.ui")


def _ours(model) -> bool:
    """A model of a figure (its sources, renderers, legend, ranges, colour mappers), which
    the dashboard changes itself, not through Panel."""
    return not type(model).__module__.startswith(PANEL_MANAGED)


@contextmanager
def strict_document(viewable):
    """Render ``viewable`` into a new document; yields the list of ``(model, attribute)``
    changed outside a hold while the block runs (as the session's current document)."""
    doc = Document()
    doc.add_root(pn.panel(viewable).get_root(doc))
    unheld: list[tuple[str, str]] = []
    notify = doc.callbacks.notify_change

    def checked(model, attr, *args, **kwargs):
        if doc.callbacks.hold_value is None and _ours(model):
            unheld.append((type(model).__name__, attr))
        return notify(model, attr, *args, **kwargs)

    doc.callbacks.notify_change = checked
    with set_curdoc(doc):
        yield unheld


@pytest.fixture
def view(tiny_model_dir):  # noqa: F811
    from app.views.explore import ExploreView

    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=16), background=False)


def test_the_harness_sees_a_raw_bokeh_write_outside_a_hold(view):
    with strict_document(view) as unheld:
        view._plots["qoi"].source.data = dict(view._plots["qoi"].source.data)
    assert ("ColumnDataSource", "data") in unheld
    with strict_document(view) as unheld, pn.io.hold():
        view._plots["qoi"].source.data = dict(view._plots["qoi"].source.data)
    assert unheld == []


def test_pin_and_clear_change_the_page_under_a_hold(view):
    with strict_document(view) as unheld:
        view._pinning._pin_button.clicks += 1
        assert view._pinning.pin is not None
        view._pinning._clear_button.clicks += 1
        assert view._pinning.pin is None
    assert unheld == []


def test_probe_and_phase_axes_change_the_page_under_a_hold(view):
    with strict_document(view) as unheld:
        view._pinning._pin_button.clicks += 1
        view._probe.value = view.probe_index() + 1
        view._phase_j.value = 0
        view._phase_i.value = 1
    assert unheld == []


def test_a_new_prediction_and_a_model_reload_change_the_page_under_a_hold(view):
    s = view.state
    with strict_document(view) as unheld:
        view._pinning._pin_button.clicks += 1
        lo, hi = s.mu_specs[0].trained
        s.set_mu("nu", hi if s.mu["nu"] != hi else lo)
        s.load(s.model_path)
    assert unheld == []


def test_the_field_maps_probe_moves_under_a_hold():
    from bokeh.events import Tap
    from test_app_field_maps import _maps, _result

    maps, probe, frame, _ = _maps()
    maps.show(_result())
    fig = maps.plots["std"].figure
    with strict_document(maps.panel) as unheld:
        probe.value = probe.value + 1  # the probe slider beside the probe plot
        fig._trigger_event(Tap(fig, x=1.1, y=0.34))  # a click on a map
        maps.row.value = 1  # typed in the row input
        maps.channel.value = 2
        frame.value = 1
    assert unheld == []
