"""The served entry point: ``panel serve app/main.py`` (or ``srom serve``).

One template per browser session: a header, the Explore controls in the sidebar and four
tabs: Explore, Sensitivity, Train and About. Models are discovered under ``pretrained/`` and ``~/.srom/models``
(``$SROM_MODELS_DIR``) and shared between sessions (see :mod:`app.state.catalog`). All resources
(Bokeh, Panel, the template, KaTeX) are served by the Panel server itself.

Environment:
    SROM_MODELS_DIR: the user's models directory (default ``~/.srom/models``).
    SROM_TORCH_THREADS: torch threads of the server process (default 1: the server shares
        a small CPU with the browser and other sessions).
    SROM_DEVICE: where the models predict: ``auto`` (default: the GPU when there is one),
        ``cpu`` or ``cuda``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `panel serve app/main.py` from a plain checkout
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import panel as pn  # noqa: E402
import torch  # noqa: E402
from bokeh.document import Document  # noqa: E402

from app.state import url_state  # noqa: E402
from app.state.explore import ExploreState  # noqa: E402
from app.state.safe_text import md  # noqa: E402
from app.views.about import about_panel  # noqa: E402
from app.views.controls import release_at_session_end  # noqa: E402
from app.views.explore import ExploreView, session_dispatcher  # noqa: E402
from app.views.idle_painter import pause_idle_file_dropper  # noqa: E402
from app.views.lazy_tabs import lazy_tabs  # noqa: E402
from app.views.presentation import presentation_toggle  # noqa: E402
from app.views.sensitivity import SensitivityView  # noqa: E402
from app.views.training import TrainingView  # noqa: E402

__all__ = ["create_app", "build_page"]

TITLE = "srom — stochastic reduced-order models"


def _limit_threads() -> None:
    threads = int(os.environ.get("SROM_TORCH_THREADS", "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, threads))


def create_app(state: ExploreState | None = None) -> pn.template.BootstrapTemplate:
    """Build one session's dashboard (call once per session)."""
    _limit_threads()
    url_notes: list[str] = []
    query: dict[str, str] = {}
    if state is None:  # a shared URL's model, μ, forcing, horizon, paths (checked, bounded)
        # the first prediction runs on the shared prediction threads from the start: the page
        # is sent at once with "predicting…" and filled in when it lands (a cylinder model
        # predicted for ~50 s on a CPU before the page was sent; issue 17). A closed
        # session's prediction is cancelled (ExploreView) and its state then released.
        query = url_state.session_query(pn.state.session_args)
        state, url_notes = url_state.state_from_url(query, background=True,
                                                    dispatch=session_dispatcher())
    view = ExploreView(state=state)
    model = state.model
    if query and model is not None:  # the probe is the view's (checked, bounded)
        probe, notes = url_state.probe_from_url(query, int(np.prod(model.state_shape_)))
        if probe is not None:
            view.set_probe(probe)
        url_notes += notes
    # the Train tab's view exists from the start (its poll refreshes the Explore tab's model
    # picker when any session saves a model); like the Sensitivity and About tabs, its
    # widgets and figures reach the page when the tab is first opened (app.views.lazy_tabs)
    training = TrainingView(explore=view)
    tabs = lazy_tabs(("Explore", view.main),
                     ("Sensitivity", lambda: SensitivityView(view.state)),
                     ("Train", lambda: training), ("About", lambda: about_panel(view.state)),
                     sizing_mode="stretch_width")
    # BootstrapTemplate: every resource it needs is bundled with Panel and served locally
    # (FastListTemplate's design fetches a Google font).
    template = pn.template.BootstrapTemplate(
        title=TITLE, sidebar=[_url_alert(url_notes), view.controls], main=[tabs],
        sidebar_width=340,
        # no template spinner: Panel drives every session's spinner from one server-wide
        # busy flag, so each callback of any session sent a message to every open page
        # (O(N²) traffic with N pages; the Explore view has its own per-session label)
        busy_indicator=None,
        header_background="#0b3d91")
    # for tests and scripts: an attribute of our own on Panel's template
    template.explore_view = view  # type: ignore[attr-defined]
    # else a closed session's page stays in Panel's jscallback registry, and with it the
    # session's state, worker and document (see app.views.controls.release_js_callbacks); the
    # parts, not the template: a template's select() fails on its BrowserInfo (Panel 1.9)
    presenting = presentation_toggle(view, template)  # hides the sidebar, taller plots
    release_at_session_end(view.controls, tabs, presenting)
    doc = pn.state.curdoc
    if (doc is not None and doc.session_context is not None and pn.state.location is not None
            and view.state is not None):  # (always set: a ClassSelector reads as optional)
        url_state.bind(view.state, pn.state.location, pn.state.onload,  # URL follows view
                       probe=view.probe_widget)
    return template


def _url_alert(notes: list[str]) -> pn.pane.Alert:
    """What a shared URL asked for and did not get (hidden when there is nothing)."""
    return pn.pane.Alert("<br>".join(md(n) for n in notes), alert_type="warning",
                         visible=bool(notes), sizing_mode="stretch_width")


pn.extension("katex", "filedropper", sizing_mode="stretch_width", notifications=False)


#: the browser's title of the served page
PAGE_TITLE = "srom dashboard"


def build_page(doc: Document) -> pn.template.BaseTemplate | pn.viewable.Viewable:
    """Build one session's page (:func:`create_app`) and attach it to ``doc``, the
    session's Bokeh document; a page that fails to build shows the failure instead of a blank
    page. What the server does for each new session (``benchmarks/ui_page_cost.py`` times it
    outside a server: ``doc`` without a session context).
    """
    app: pn.template.BaseTemplate | pn.viewable.Viewable
    try:
        app = create_app()
    except Exception as exc:  # noqa: BLE001 - show the failure instead of a blank page
        import traceback

        app = pn.Column(pn.pane.Alert(f"**The dashboard failed to start:** {md(exc)}",
                                      alert_type="danger"),
                        pn.pane.Markdown(f"```\n{traceback.format_exc()}\n```"))
    # the document's index of models frozen while the page's ~500 models are added: each
    # JS callback Panel attaches otherwise walks the whole document again (9 walks, 0.7 s
    # of the server's event loop per new page on 2 cores, benchmarks/ui_page_cost.py)
    pause_idle_file_dropper(doc)  # FilePond's 60 Hz loop only once a drop box exists
    with doc.models.freeze():
        if doc.session_context is not None:
            app.servable(title=PAGE_TITLE)
        else:  # what servable does in a session, less its logging set-up
            app.server_doc(doc, title=PAGE_TITLE, location=True)
    return app


def _serve() -> None:
    doc = pn.state.curdoc
    if doc is not None:
        build_page(doc)


if __name__.startswith("bokeh"):
    _serve()
