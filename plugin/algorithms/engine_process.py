"""The bridge between Processing algorithms and the engine's training process.

:func:`training_python` finds the interpreter and checks for PyTorch;
:func:`run_engine_command` runs one engine command, shows its progress and loss in the
feedback and turns its failures and a cancel into one-line QgsProcessingExceptions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from .. import engine
from ..runner import Cancelled, Progress, RunnerError, check_torch, find_python, run_engine

ENGINE_ROOT = Path(engine.__file__).resolve().parent.parent  # the folder holding engine/
CANCELLED = "Cancelled by the user; no output was written."
# Processing dialogs and qgis_process log every progress text as a line: one every
# 10 s keeps a 45-minute pretraining to a few hundred lines (the loss curve and the
# per-epoch lines get every report).
PROGRESS_TEXT_INTERVAL_S = 10.0


def training_python() -> list[str]:
    """The interpreter to train with; refuses with the install hint when it lacks torch."""
    try:
        python = find_python()
        check_torch(python)
    except RunnerError as exc:
        raise QgsProcessingException(str(exc)) from None
    return python


def thread_arguments() -> list[str]:
    """``--threads N`` when OMP_NUM_THREADS is set (else the engine uses every core)."""
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    return ["--threads", threads] if threads.isdigit() and int(threads) > 0 else []


class _Relay:
    """Shows one command's progress in a span of the feedback's bar, with its loss: as
    progress text at most every ``text_interval`` seconds, and one line per epoch."""

    def __init__(
        self,
        feedback: QgsProcessingFeedback,
        start: float,
        end: float,
        stages: Sequence[str],
        text_interval: float = PROGRESS_TEXT_INTERVAL_S,
    ) -> None:
        self.feedback, self.start, self.end, self.stages = feedback, start, end, list(stages)
        self.epoch: tuple[str, int | None, float | None] | None = None
        self.text_interval = text_interval
        self._last_text = -float("inf")

    def progress(self, p: Progress) -> None:
        done = p.fraction
        if p.label in self.stages:  # consecutive stages share the span
            done = (self.stages.index(p.label) + p.fraction) / len(self.stages)
        self.feedback.setProgress(self.start + (self.end - self.start) * done)
        if p.loss is None:
            return
        if time.monotonic() - self._last_text >= self.text_interval:
            self._last_text = time.monotonic()
            self.feedback.setProgressText(
                f"{p.label}: epoch {p.epoch}/{p.epochs}, loss {p.loss:.4f}"
            )
        report = getattr(self.feedback, "report_loss", None)  # the dock's feedback draws a curve
        if callable(report):
            report(p.label, p.fraction, p.loss)
        if self.epoch is not None and self.epoch[:2] != (p.label, p.epoch):
            self._log_epoch()
        self.epoch = (p.label, p.epoch, p.loss)

    def line(self, text: str) -> None:
        if text.startswith("warning:"):
            self.feedback.pushWarning(f"Warning: {text[len('warning:') :].strip()}")
        elif not text.startswith("error:"):
            self.feedback.pushInfo(text)

    def finish(self) -> None:
        if self.epoch is not None:
            self._log_epoch()

    def _log_epoch(self) -> None:
        label, epoch, loss = self.epoch  # type: ignore[misc]
        self.feedback.pushInfo(f"{label}: epoch {epoch} loss {loss:.4f}")


def run_engine_command(
    python: Sequence[str],
    args: Sequence[str],
    feedback: QgsProcessingFeedback,
    span: tuple[float, float] = (0.0, 100.0),
    stages: Sequence[str] = (),
) -> list[str]:
    """Run ``python -m engine ARGS``; returns its log lines.

    The progress bar moves through ``span``; ``stages`` names the progress labels of
    consecutive parts (e.g. two pretraining branches), which then share it.

    Raises:
        QgsProcessingException: on failure (the engine's error line) or cancel.
    """
    relay = _Relay(feedback, *span, stages)
    try:
        lines = run_engine(
            python, ENGINE_ROOT, args, relay.progress, relay.line, feedback.isCanceled
        )
    except Cancelled:
        raise QgsProcessingException(CANCELLED) from None
    except RunnerError as exc:
        raise QgsProcessingException(str(exc)) from None
    relay.finish()
    return lines
