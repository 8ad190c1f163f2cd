"""Training progress protocol: start / log / end callbacks and a cooperative stop flag.

The engine reports progress only through these callbacks, so the CLI (a tqdm bar), the
dashboard (a param-backed view) and the tests (a recorder) each plug in their own.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["TrainingCallback", "NullCallback", "TqdmCallback", "RecordingCallback",
           "CallbackList", "StopFlag"]


class TrainingCallback(Protocol):
    def on_start(self, total_steps: int, start_step: int) -> None:
        """Training begins (or resumes at ``start_step``)."""

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """Every ``log_every`` steps: the mean ELBO terms since the last call."""

    def on_end(self, step: int, status: str, message: str) -> None:
        """Training ended with ``status`` in {completed, stopped, diverged, interrupted}."""


class NullCallback:
    def on_start(self, total_steps: int, start_step: int) -> None:
        pass

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_end(self, step: int, status: str, message: str) -> None:
        pass


class RecordingCallback(NullCallback):
    """Keeps every call, for tests and for plotting curves afterwards."""

    def __init__(self) -> None:
        self.started: tuple[int, int] | None = None
        self.logs: list[tuple[int, dict[str, float]]] = []
        self.ended: tuple[int, str, str] | None = None

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.started = (total_steps, start_step)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self.logs.append((step, dict(metrics)))

    def on_end(self, step: int, status: str, message: str) -> None:
        self.ended = (step, status, message)


class TqdmCallback(NullCallback):
    """A tqdm progress bar with the ELBO terms in its postfix."""

    def __init__(self, desc: str = "training", **tqdm_kwargs) -> None:
        self.desc, self.kwargs = desc, tqdm_kwargs
        self.bar = None
        self.last_step = 0

    def on_start(self, total_steps: int, start_step: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, initial=start_step, desc=self.desc, **self.kwargs)
        self.last_step = start_step

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.update(step - self.last_step)
        self.last_step = step
        keys = ("loss", "ell", "residual", "kl", "beta")
        self.bar.set_postfix({k: f"{metrics[k]:.3g}" for k in keys if k in metrics})

    def on_end(self, step: int, status: str, message: str) -> None:
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            self.bar.close()
            self.bar = None


class CallbackList(NullCallback):
    def __init__(self, callbacks) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, total_steps: int, start_step: int) -> None:
        for c in self.callbacks:
            c.on_start(total_steps, start_step)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        for c in self.callbacks:
            c.on_log(step, metrics)

    def on_end(self, step: int, status: str, message: str) -> None:
        for c in self.callbacks:
            c.on_end(step, status, message)


class StopFlag:
    """A thread-safe cooperative stop request, checked between training steps."""

    def __init__(self, event=None) -> None:
        """``event``: an object with ``set``/``clear``/``is_set`` to share (a
        ``multiprocessing`` event, so that a child process sees the request); default a
        new ``threading.Event``."""
        self._event = event if event is not None else threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()
