"""Tabs whose hidden tabs are put on the page when they are first opened.

Every new session's page is built on the server's event loop, which all sessions share; the
Bokeh models of tabs nobody has opened yet (Sensitivity, Train and About: about 300 of the
page's 840 models) made each new page slower to build and to send
(``benchmarks/ui_page_cost.py``). Panel's ``Tabs(dynamic=True)`` defers them too, but takes
a tab's models out of the document again each time another tab is picked, so switching back
to Explore re-sent its ~500 models; here a tab, once opened, stays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn

__all__ = ["lazy_tabs"]


def lazy_tabs(first: tuple[str, Any], *later: tuple[str, Callable[[], Any]],
              **params: Any) -> pn.Tabs:
    """A ``pn.Tabs`` showing ``first``; each of ``later`` is built and put on the page on the
    tab's first activation.

    Args:
        first: (title, content) of the tab shown at first (anything ``pn.panel`` shows).
        later: (title, build) of the other tabs; ``build()`` returns the tab's content and is
            called once, on the session's thread, when the tab is first picked.
        params: more arguments of ``pn.Tabs`` (e.g. ``sizing_mode``).

    Returns:
        The tabs; the holder of tab ``i`` (``i >= 1``) is ``tabs[i]``, an empty
        ``pn.Column`` until then.
    """
    holders = [pn.Column(sizing_mode="stretch_width", margin=0) for _ in later]
    builders: dict[int, Callable[[], Any]] = {
        i + 1: build for i, (_, build) in enumerate(later)}
    tabs = pn.Tabs(first, *((title, holder) for (title, _), holder in zip(later, holders)),
                   **params)

    def open_tab(index: int) -> None:
        build = builders.pop(index, None)
        if build is not None:
            holders[index - 1][:] = [build()]

    tabs.param.watch(lambda event: open_tab(int(event.new)), "active")
    tabs.open_tab = open_tab  # type: ignore[attr-defined]  # for tests and scripts
    return tabs
