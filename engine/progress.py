"""Progress reporting and cancellation, shared by the CLI, the plugin and the tests."""

from __future__ import annotations

import logging
import sys
import time
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
    TTY) a line is written every 10 %.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._finished = False
        self._suffix = ""

    def set_progress(self, fraction: float, suffix: str | None = None) -> None:
        if self._finished:
            return
        if suffix is not None:
            self._suffix = suffix
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if self.interactive:
            if fraction < 1.0 and now - self._last_draw < 0.2:
                return
        elif int(fraction * 10) == self._last_decile:
            return
        self._last_draw, self._last_decile = now, int(fraction * 10)
        self._finished = fraction >= 1.0
        filled = int(round(self.width * fraction))
        elapsed = now - self.start
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s eta {eta:6.1f}s"
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
