"""Progress reporting and cancellation, shared by the CLI, the plugin and the tests."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from .errors import CancelledError

LOGGER = logging.getLogger("engine")


class Feedback(Protocol):
    """What long operations report to and ask of their caller."""

    def set_progress(self, fraction: float) -> None:
        """Report progress in [0, 1]."""

    def is_cancelled(self) -> bool:
        """True once the user asked to stop."""

    # Optional: ``push_warning(message: str) -> None`` reports a problem that does not stop
    # the run (see :func:`warn`); feedback objects without it send warnings to the log.
    # Optional: ``report_loss(epoch: int, epochs: int, loss: float) -> None`` receives the
    # running training loss before each progress report of a training loop.


class SilentFeedback:
    """Feedback that shows no progress and never cancels; warnings go to the ``engine`` log."""

    def set_progress(self, fraction: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        return False

    def push_warning(self, message: str) -> None:
        LOGGER.warning(message)


def warn(feedback: Feedback, message: str) -> None:
    """Report a warning through ``feedback.push_warning``, else the ``engine`` logger."""
    push = getattr(feedback, "push_warning", None)
    if callable(push):
        push(message)
    else:
        LOGGER.warning(message)


def check_cancelled(feedback: Feedback) -> None:
    """Raise :class:`CancelledError` if the caller asked to stop."""
    if feedback.is_cancelled():
        raise CancelledError("cancelled by the user")


class ProgressBar:
    """A text progress bar on stderr; never cancels.

    On a terminal the bar is redrawn in place at most every 0.2 s; in a log file (not a
    TTY) a line is written every 10 % and at least every ``interval`` seconds.

    The time left is estimated from the pace since the first report, so the slow first
    step (start-up) does not inflate it; until the fraction passes ``estimate_after``
    (e.g. the end of the first training epoch, see :meth:`estimate_after`) no estimate is
    shown.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        width: int = 30,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._finished = False
        self._suffix = ""
        self._estimate_after = 0.0
        self._first: tuple[float, float] | None = None  # (time, fraction) of the first report

    def estimate_after(self, fraction: float) -> None:
        """Show the time left only once progress passes ``fraction``."""
        self._estimate_after = fraction

    def eta(self, fraction: float, now: float) -> float | None:
        """Seconds left at the pace since the first report; None while unknown."""
        if self._first is None or fraction <= max(self._first[1], self._estimate_after):
            return None
        since, at = self._first
        return (now - since) / (fraction - at) * (1.0 - fraction)

    def set_progress(self, fraction: float, suffix: str | None = None) -> None:
        if self._finished:
            return
        if suffix is not None:
            self._suffix = suffix
        fraction = min(max(fraction, 0.0), 1.0)
        now = self.clock()
        if self._first is None:
            self._first = (now, fraction)
        if self.interactive:
            if fraction < 1.0 and now - self._last_draw < 0.2:
                return
        elif int(fraction * 10) == self._last_decile and now - self._last_draw < self.interval:
            return
        self._last_draw, self._last_decile = now, int(fraction * 10)
        self._finished = fraction >= 1.0
        filled = int(round(self.width * fraction))
        elapsed = now - self.start
        eta = 0.0 if self._finished else self.eta(fraction, now)
        left = f"eta {eta:6.1f}s" if eta is not None else "eta    ...  "
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s {left}"
        line += f" {self._suffix}" if self._suffix else ""
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if self._finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def is_cancelled(self) -> bool:
        return False

    def push_warning(self, message: str) -> None:
        """Write ``warning: message`` on its own line (below the bar on a terminal)."""
        start = "\n" if self.interactive and self._last_draw and not self._finished else ""
        self.stream.write(f"{start}warning: {message}\n")
        self.stream.flush()


class JsonLinesFeedback:
    """Progress and loss as JSON lines on stdout, for a parent process (the QGIS plugin)
    that shows them; never cancels (the parent stops the process instead).

    Each line is an object ``{"event": "progress", "label", "fraction"}``, with ``epoch``,
    ``epochs`` and ``loss`` (the running mean of the epoch) once a training step reports
    them; ``{"event": "warning", "message"}`` for warnings. Lines are written at most every
    ``interval`` seconds, and always at the end.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stdout
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")
        self._loss: dict[str, float] = {}

    def set_progress(self, fraction: float) -> None:
        now = self.clock()
        if fraction < 1.0 and now - self._last < self.interval:
            return
        self._last = now
        self._emit({"event": "progress", "fraction": min(max(fraction, 0.0), 1.0), **self._loss})

    def report_loss(self, epoch: int, epochs: int, loss: float) -> None:
        """Remember the loss, sent with the next progress line."""
        self._loss = {"epoch": epoch, "epochs": epochs, "loss": loss}

    def is_cancelled(self) -> bool:
        return False

    def push_warning(self, message: str) -> None:
        self._emit({"event": "warning", "message": message})

    def _emit(self, record: dict) -> None:
        self.stream.write(json.dumps({"label": self.label, **record}) + "\n")
        self.stream.flush()
