"""Run, Cancel, a progress bar and a status line for one Processing algorithm at a time.

The dock's tabs use it to run their algorithm in a QGIS background task
(``QgsProcessingAlgRunnerTask``), so a tab keeps only its inputs and what it does with
the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

ERROR_STYLE = "<span style='color:#c0392b'>{}</span>"


def tab_layout(rows: Iterable[tuple[str, QWidget]], runner: QWidget) -> QVBoxLayout:
    """A tab's layout: a form of ``(label, widget)`` rows above ``runner``."""
    form = QFormLayout()
    for label, widget in rows:
        form.addRow(label, widget)
    layout = QVBoxLayout()
    layout.addLayout(form)
    layout.addWidget(runner)
    layout.addStretch(1)
    return layout


class AlgorithmRunner(QWidget):
    """Buttons, progress and status of a tab that runs one algorithm in the background.

    The tab connects :attr:`run_button` to its own ``run``, which calls :meth:`start`;
    :attr:`completed` reports ``(ok, results, last log line)``. On failure the status
    already shows the last log line in the error style; on success the tab writes it.
    """

    completed = pyqtSignal(bool, object, str)

    def __init__(self, run_text: str, extra: Sequence[QWidget] = ()) -> None:
        """``extra`` widgets are shown between the progress bar and the status line."""
        super().__init__()
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.context: QgsProcessingContext | None = None
        self.feedback: QgsProcessingFeedback | None = None
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        for widget in extra:
            layout.addWidget(widget)
        layout.addWidget(self.status)
        self.setLayout(layout)
        self.cancel_button.clicked.connect(self.cancel)

    def start(
        self,
        algorithm_id: str,
        params: dict[str, Any],
        feedback: QgsProcessingFeedback,
        status: str,
    ) -> None:
        """Run ``algorithm_id`` with ``params`` as a background task, showing ``status``."""
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = feedback
        feedback.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task = QgsProcessingAlgRunnerTask(algorithm, params, self.context, feedback)
        self.task.executed.connect(self._finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(status)
        QgsApplication.taskManager().addTask(self.task)

    def log(self) -> list[str]:
        """The lines the last run logged."""
        return self.feedback.textLog().strip().splitlines() if self.feedback else []

    def _finished(self, ok: bool, results: dict[str, Any]) -> None:
        log = self.log()
        self.task = None
        self.cancel_button.setEnabled(False)
        if ok:
            self.progress.setValue(100)
        else:
            self.status.setText(ERROR_STYLE.format(log[-1] if log else "Failed"))
        self.completed.emit(ok, results, log[-1] if log else "")

    def cancel(self) -> None:
        """Ask the running algorithm to stop."""
        if self.feedback is not None:
            self.feedback.cancel()

    def shutdown(self) -> None:
        """Cancel a running task and wait for it, before the plugin unloads."""
        if self.task is not None:
            self.cancel()
            self.task.waitForFinished(10000)
