"""Cooperative cancellation of a prediction (GUI-free).

A long prediction (a cylinder model's decoder on a CPU: tens of seconds) can be stopped by
its caller: :meth:`engine.StochasticROM.predict` takes ``cancel``, a function without
arguments that returns ``True`` once the result is no longer wanted (a newer request came,
the page was closed). The engine calls it between chunks of work (integration steps,
decoder chunks, the reductions over paths) and raises :class:`PredictionCancelled` there, so
the work really stops; between two checks it runs unchanged, and a prediction that is not
cancelled is the same with or without ``cancel``::

    stop = threading.Event()
    try:
        pred = model.predict(x0, mu, t, cancel=stop.is_set)   # another thread: stop.set()
    except PredictionCancelled:
        ...                                                    # nothing to show

The check must be quick (it may run once per integration step) and thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CancelCheck", "PredictionCancelled", "check_cancelled"]

#: ``cancel() -> bool``: ``True`` once the running prediction should stop
CancelCheck = Callable[[], bool]


class PredictionCancelled(RuntimeError):
    """The prediction was stopped by its ``cancel`` check before it finished."""


def check_cancelled(cancel: CancelCheck | None, where: str) -> None:
    """Raise :class:`PredictionCancelled` if ``cancel`` says so (nothing when ``None``).

    Args:
        cancel: the caller's check, or ``None``.
        where: the stage reached, for the message (``"integration step 12 of 400"``).
    """
    if cancel is not None and cancel():
        raise PredictionCancelled(f"the prediction was cancelled at {where}")
