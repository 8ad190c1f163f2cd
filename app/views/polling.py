"""Where the dashboard's background work comes back to the page: a served session (``panel
serve``) or a notebook (JupyterLab, the dashboard shown in a cell).

Served, a periodic poll runs on the session's document and results are scheduled on its
event loop. In a notebook there is no session document, but the kernel runs an asyncio event
loop on its main thread (where the cell ran): a poll is an asyncio task on it (what Panel's
``PeriodicCallback`` does there), and results from worker threads are scheduled on it with
``call_soon_threadsafe``; the comm then carries the changes to the page. Elsewhere (a script,
a test) neither exists: ``None``, and the callers poll or wait themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import panel as pn

__all__ = ["running_loop", "start_polling", "loop_dispatcher"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio event loop running in this thread (a Jupyter kernel's, while a cell
    runs), or ``None``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if loop.is_running() else None


def _served() -> bool:
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


def start_polling(callback: Callable[[], None], period_ms: int) -> Any:
    """Call ``callback`` every ``period_ms`` on the page's thread, served or in a notebook.

    The poll is a background ``PeriodicCallback`` (it does not mark the page busy, whose
    header spinner would then never stop). Call ``.stop()`` on it when the view goes away.

    Returns:
        The started ``panel.io.callbacks.PeriodicCallback``, or ``None`` where nothing would
        run it (no session and no event loop: scripts and tests call ``callback`` themselves).
    """
    if not (_served() or running_loop() is not None):
        return None
    from panel.io.callbacks import PeriodicCallback

    periodic = PeriodicCallback(callback=callback, period=int(period_ms), background=True)
    periodic.start()
    return periodic


def loop_dispatcher() -> Callable[[Callable[[], None]], None] | None:
    """A thread-safe function that runs a callable on the event loop running in this thread
    (a notebook kernel's), or ``None`` when no loop runs here; see the module docstring."""
    loop = running_loop()
    if loop is None:
        return None

    def dispatch(fn: Callable[[], None]) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    return dispatch
