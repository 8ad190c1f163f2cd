"""The Explore tab's progress bar and Cancel button for a long simulator run.

The simulator work of a prediction (:class:`app.state.simulation_run.SimulationRun`: a spin-up for
the initial state, the truth for "Compare with the simulator") runs on the session's worker
thread. A periodic callback of the session reads its progress (a few microseconds when
nothing runs) and, once a simulation has taken longer than ``show_after_s``, shows a row:
a bar of the share of the horizon simulated (an animated, indeterminate bar for a simulator
that does not report), a line with the share and the seconds so far, and Cancel. Cancel
stops the simulation at its next progress report (:meth:`ExploreState.cancel_simulation`):
the prediction is then shown without the truth and "Compare with the simulator" is cleared.

The row appears only for runs of a second or more: showing and hiding it makes the page lay
itself out again (0.2-0.5 s on 2 cores), which a slider move must not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn

from app.state.explore import ExploreState
from app.state.simulation_run import describe
from app.views.controls import label
from app.views.polling import start_polling

__all__ = ["SimulationProgress"]


class SimulationProgress:
    """Progress of the session's simulator run, and its Cancel button.

    Args:
        state: the session's state (its ``simulation`` is read).
        on_cancel: called on the session's thread after a cancel (the view unticks its
            "Compare with the simulator" box).
        show_after_s: seconds a simulation runs before the row appears.
        poll_ms: period of the session's poll (served sessions only; tests call
            :meth:`poll`).
    """

    def __init__(self, state: ExploreState, on_cancel: Callable[[], None] | None = None,
                 show_after_s: float = 1.0, poll_ms: int = 400):
        self.state = state
        self.on_cancel = on_cancel
        self.show_after_s = float(show_after_s)
        self.bar = pn.indicators.Progress(value=-1, max=100, active=True, width=220,
                                          height=20, margin=(12, 8, 0, 8), bar_color="primary")
        self.text = pn.pane.Markdown("", sizing_mode="stretch_width", height=36,
                                     styles={"font-size": "12px"},
                                     stylesheets=[":host p { margin: 2px 0; }"])
        self.button = pn.widgets.Button(**label("Cancel simulation"), color="warning",
                                        width=150, height=32, margin=(4, 2))
        self.button.on_click(lambda event: self.cancel())
        self.panel = pn.Row(self.bar, self.text, self.button, visible=False,
                            sizing_mode="stretch_width", height=44)
        self._shown: tuple[Any, ...] | None = None
        # served or in a notebook (app.views.polling); None in scripts and tests
        self._periodic: Any = start_polling(self.poll, poll_ms)
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # served: clean up at the end
            pn.state.on_session_destroyed(self._on_session_destroyed)

    def poll(self) -> None:
        """Show the running simulation's progress, or hide the row (sends nothing while
        nothing changed)."""
        run = self.state.simulation
        progress = run.progress() if run is not None and run.cancelled is None else None
        if progress is None or progress.elapsed_s < self.show_after_s:
            if self.panel.visible:
                self.panel.visible = False
                self._shown = None
            return
        value = -1 if progress.fraction is None else int(round(100 * progress.fraction))
        text = describe(progress)
        if self._shown == (value, text):
            return
        with pn.io.hold():
            self.bar.param.update(value=value, active=progress.fraction is None)
            self.text.object = text
            self.button.disabled = False
            if not self.panel.visible:
                self.panel.visible = True
        self._shown = (value, text)

    def cancel(self) -> None:
        """Stop the running simulation (it ends at its next progress report)."""
        self.state.cancel_simulation()
        with pn.io.hold():
            self.button.disabled = True
            self.text.object = "Cancelling the simulation …"
            if self.on_cancel is not None:
                self.on_cancel()
        self._shown = None

    def _on_session_destroyed(self, session_context: Any) -> None:
        if self._periodic is not None:
            try:
                self._periodic.stop()
            except Exception:  # noqa: BLE001 - the document may already be gone
                pass
        self.state.cancel_simulation("stopped: the session was closed", untick=False)
