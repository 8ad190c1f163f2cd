"""Two small panels of the Explore view for engineers: what the selected model costs
(:class:`CostLine`, under the model picker) and "Copy as CLI / Python" (:class:`SnippetCard`).

Thin Panel views over :mod:`app.state.model_cost` and :mod:`app.state.code_snippets`. Neither sends
anything on a slider move that does not concern it: the cost line changes on a model switch
and after the model's first full prediction in the session; the snippets are rebuilt only
while their card is open.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from app.state import catalog, code_snippets, model_cost
from app.views.controls import label

__all__ = ["CostLine", "SnippetCard"]


def _device() -> str:
    try:
        return catalog.serving_device()
    except ValueError:
        return "cpu"


class CostLine:
    """The selected model's cost (weights, measured prediction time here, training run).

    Args:
        state: the session's :class:`app.state.explore.ExploreState`.
    """

    def __init__(self, state: Any):
        self.state = state
        self.pane = pn.pane.Markdown("", sizing_mode="stretch_width",
                                     styles={"font-size": "12px", "color": "#555"},
                                     stylesheets=[":host p { margin: 2px 0; }"])
        self._measured_model: Any = None
        state.param.watch(lambda event: self._on_model(), "model")
        state.param.watch(lambda event: self._on_result(), "result")
        self._on_model()
        self._on_result()  # a state that predicted before the view was built

    def _text(self) -> str:
        import torch

        from app.state.safe_text import md

        s = self.state
        if s.model is None or not s.model_path:
            return ""
        return "**Cost:** " + md(model_cost.cost_text(s.model, s.model_path, _device(),
                                                      torch.get_num_threads()))

    def _on_model(self) -> None:
        self._measured_model = None
        self.pane.object = self._text()

    def _on_result(self) -> None:
        s, r = self.state, self.state.result
        if r is None or r.preview or s.model is None or not s.model_path:
            return
        model_cost.record(s.model_path, _device(), r.seconds, r.n_paths, len(r.t))
        if self._measured_model is not s.model:  # the first of this model: show it
            self._measured_model = s.model
            self.pane.object = self._text()


class SnippetCard:
    """A collapsed card with the ``srom`` command lines and the Python code of the shown
    prediction, each with a copy button.

    Args:
        state: the session's :class:`app.state.explore.ExploreState`.
    """

    def __init__(self, state: Any):
        self.state = state
        w = {"sizing_mode": "stretch_width"}
        # text areas show their value as text: nothing in it is rendered as HTML or Markdown
        self.cli = pn.widgets.TextAreaInput(**label("Command line"), height=120, **w)
        self.python = pn.widgets.TextAreaInput(**label("Python"), height=300, **w)
        buttons = []
        for area, what in ((self.cli, "command line"), (self.python, "Python code")):
            button = pn.widgets.Button(**label(f"Copy the {what}"), width=200)
            button.js_on_click(args={"area": area},
                               code="navigator.clipboard.writeText(area.value)")
            buttons.append(button)
        self.note = pn.pane.Markdown(
            "`srom predict` reads its initial state from a dataset: the command line starts "
            "from a trajectory made by `srom generate` (for a model of your own data: from "
            "your training data). The Python code starts where the dashboard does.",
            styles={"font-size": "12px", "color": "#555"}, **w)
        self.panel = pn.Card(self.note, self.cli, buttons[0], self.python, buttons[1],
                             title="Copy as CLI / Python", collapsed=True, **w)
        self.panel.param.watch(lambda event: self.update(), "collapsed")
        state.param.watch(lambda event: self.update(), "result")

    def update(self) -> None:
        """Rebuild the texts from the shown prediction (only while the card is open)."""
        if self.panel.collapsed:
            return
        s, r = self.state, self.state.result
        if s.model is None or r is None or r.preview:
            return
        info = getattr(s.model, "dataset_info_", None) or {}
        preset = info.get("preset") if isinstance(info, dict) else None
        has_simulator = s.system is not None
        self.cli.value = code_snippets.cli_command(r.inputs, r.t, preset=preset,
                                                   has_simulator=has_simulator)
        self.python.value = code_snippets.python_snippet(
            r.inputs, r.t, has_simulator=has_simulator, case=int(s.case),
            param_names=list(s.model.param_names_))
