"""Text panes on the slider's hot path send only their new text (app.views.controls.TextHTML,
TextMarkdown): the same text as Panel's panes, without re-sending stylesheet models, which
made Bokeh walk the whole session document at every update (issue 15, load)."""

from __future__ import annotations

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.model import Model

from app.views.controls import TextHTML, TextMarkdown


@pytest.mark.parametrize("quick, stock, text", [
    (TextHTML, pn.pane.HTML, "<b>μ = 0.3</b> <img src=x onerror=alert(1)>"),
    (TextMarkdown, pn.pane.Markdown, "**computing** <script>x</script> & more"),
])
def test_a_text_update_sends_the_same_text_and_nothing_else(quick, stock, text, monkeypatch):
    doc = Document()
    fast, slow = quick("start", styles={"color": "#555"}), stock("start", styles={"color": "#555"})
    fast_model, slow_model = fast.get_root(doc), slow.get_root(doc)
    changed: list[tuple[str, str]] = []
    trigger = Model.trigger

    def traced(self, attr, old, new, hint=None, setter=None):
        changed.append((type(self).__name__, attr))
        return trigger(self, attr, old, new, hint, setter)

    monkeypatch.setattr(Model, "trigger", traced)
    recomputes: list[int] = []
    recompute = type(doc.models).recompute
    monkeypatch.setattr(type(doc.models), "recompute",
                        lambda self: recomputes.append(1) or recompute(self))
    fast.object = text
    assert changed == [("HTML", "text")]
    assert recomputes == []
    slow.object = text
    assert fast_model.text == slow_model.text
    fast.visible = False  # other properties still update
    assert fast_model.visible is False
