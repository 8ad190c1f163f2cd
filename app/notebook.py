"""The dashboard in a notebook cell (JupyterLab, Jupyter Notebook, VS Code)::

    import panel as pn
    pn.extension("katex", "filedropper")
    from app.notebook import NotebookDashboard
    dashboard = NotebookDashboard()
    dashboard                       # the last expression of the cell shows it

The same tabs as the served page (Explore with its controls beside the plots, Sensitivity,
Train, About), without the page template. Nothing needs ``panel serve``: the predictions of
the Explore and Sensitivity tabs come back on the kernel's event loop, and the Train tab
polls its training on that loop too (:mod:`app.views.polling`), so a training started from the
tab, or from a cell through ``dashboard.train.state``, updates its curves live while the
kernel is idle or awaiting (``await asyncio.sleep(...)``). A cell that blocks the kernel
(``time.sleep``) holds the updates until it ends.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from app.state.explore import ExploreState
from app.views.about import about_panel
from app.views.explore import ExploreView
from app.views.sensitivity import SensitivityView
from app.views.training import TrainingView

__all__ = ["NotebookDashboard"]


class NotebookDashboard(pn.viewable.Viewer):
    """The dashboard's tabs for a notebook; its parts stay reachable from code.

    Attributes:
        explore: the :class:`app.views.explore.ExploreView` (its ``state`` is the session state).
        sensitivity: the :class:`app.views.sensitivity.SensitivityView`.
        train: the :class:`app.views.training.TrainingView` (its ``state`` starts trainings).
    """

    state = param.ClassSelector(class_=ExploreState, default=None, allow_None=True, doc=(
        "The Explore state to show (default: a new one with the discovered models)."))

    def __init__(self, **params: Any):
        super().__init__(**params)
        state = self.state if self.state is not None else ExploreState()
        self.explore = ExploreView(state=state)
        self.sensitivity = SensitivityView(self.explore.state)
        self.train = TrainingView(explore=self.explore)
        self._tabs = pn.Tabs(("Explore", self.explore), ("Sensitivity", self.sensitivity),
                             ("Train", self.train), ("About", about_panel(self.explore.state)),
                             dynamic=False, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._tabs
