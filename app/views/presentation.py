"""Presentation mode: one toggle in the header hides the side controls, asks the browser for
full screen and makes the Explore figures taller, for a lecture hall's projector.

The page side runs in the browser alone (a CSS class on the page's body; the template's
sidebar is plain page markup), so hiding and showing the sidebar costs no round trip; the
figures' heights are set on the server (:meth:`app.views.explore.ExploreView.present`), once per
toggle.
"""

from __future__ import annotations

from typing import Any

import panel as pn
from panel.template.base import BasicTemplate

from app.views.controls import label

__all__ = ["PRESENT_CLASS", "PRESENT_CSS", "presentation_toggle"]

#: the class on ``document.body`` while presenting
PRESENT_CLASS = "srom-presenting"

PRESENT_CSS = f"""
body.{PRESENT_CLASS} #sidebar, body.{PRESENT_CLASS} #sidebar-toggle {{ display: none !important; }}
body.{PRESENT_CLASS} #main {{ max-width: 100% !important; }}
"""

# Full screen is asked for inside the click (browsers allow it only there) and may be
# refused (an iframe, a headless browser): the page is then presented in the window.
_TOGGLE_JS = f"""
const on = source.active;
document.body.classList.toggle('{PRESENT_CLASS}', on);
try {{
  if (on && document.fullscreenEnabled && !document.fullscreenElement) {{
    document.documentElement.requestFullscreen().catch(() => {{}});
  }} else if (!on && document.fullscreenElement) {{
    document.exitFullscreen().catch(() => {{}});
  }}
}} catch (err) {{}}
window.dispatchEvent(new Event('resize'));
"""


def presentation_toggle(view: Any, template: BasicTemplate) -> pn.widgets.Toggle:
    """A header toggle for presentation mode on ``template``, which calls
    ``view.present(on)`` (an ``ExploreView``); its stylesheet is added to ``template``.

    Hand the toggle to :func:`app.views.controls.release_at_session_end` with the page's other
    parts: it carries a JavaScript callback.
    """
    toggle = pn.widgets.Toggle(**label("⛶ Presentation mode"), value=False, width=180,
                               margin=(8, 10))
    toggle.jscallback(value=_TOGGLE_JS)
    toggle.param.watch(lambda event: view.present(bool(event.new)), "value")
    template.config.raw_css.append(PRESENT_CSS)
    header = template.header
    if header is None:  # never for Panel's templates (their header is an empty list)
        raise TypeError("presentation_toggle needs a template with a header")
    header.append(toggle)
    return toggle
