"""The dock's Train tab: raster + labelled polygons (+ a pretraining run) -> a model.

It runs the Processing algorithm ``factoformer:train`` in a QGIS task, so the result is
what the toolbox and ``qgis_process`` produce; the algorithm trains in a separate Python
process. Progress, the running loss (number and curve) and Cancel are shown here; a
finished model is announced with :attr:`TrainPanel.modelTrained`.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMapLayerProxyModel,
    QgsProcessingAlgRunnerTask,
    QgsProcessingFeedback,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QPointF, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QPainter, QPen, QPolygonF
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QLabel,
    QSpinBox,
    QWidget,
)

from .algorithm_runner import AlgorithmRunner, tab_layout
from .algorithms.pretrained_runs import MODELS as PRETRAINABLE
from .algorithms.train import MODEL_TYPES, RECIPE_BATCH

ALGORITHM_ID = "factoformer:train"


class LossFeedback(QgsProcessingFeedback):
    """Processing feedback that also passes on the training loss (from the worker thread
    to the panel, through a queued signal)."""

    lossReported = pyqtSignal(str, float, float)  # noqa: N815 (Qt naming)

    def report_loss(self, label: str, fraction: float, loss: float) -> None:
        self.lossReported.emit(label, fraction, loss)


class LossCurve(QWidget):
    """The training loss against progress, as a polyline scaled to the widget."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[float, float]] = []
        self.setMinimumHeight(70)

    def clear(self) -> None:
        self.points = []
        self.update()

    def add(self, fraction: float, loss: float) -> None:
        self.points.append((fraction, loss))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        painter.setPen(QPen(QColor("#bbbbbb")))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        if len(self.points) < 2:
            return
        losses = [loss for _, loss in self.points]
        low, high = min(losses), max(losses)
        span = high - low or 1.0
        width, height = self.width() - 8, self.height() - 8
        line = QPolygonF(
            [QPointF(4 + width * f, 4 + height * (high - loss) / span) for f, loss in self.points]
        )
        painter.setPen(QPen(QColor("#2b83ba"), 2))
        painter.drawPolyline(line)


class TrainPanel(QWidget):
    """Train a model on the chosen raster from the chosen labelled layer."""

    modelTrained = pyqtSignal(str)  # noqa: N815 (Qt naming): the new model's path

    def __init__(self, message_bar=None) -> None:
        super().__init__()
        self.message_bar = message_bar

        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.training_combo = QgsMapLayerComboBox()
        self.training_combo.setFilters(
            QgsMapLayerProxyModel.PolygonLayer
            | QgsMapLayerProxyModel.PointLayer
            | QgsMapLayerProxyModel.RasterLayer
        )
        self.field_combo = QgsFieldComboBox()
        self.model_type_combo = QComboBox()
        self.model_type_combo.addItems(MODEL_TYPES)  # MODEL_TYPE's options, in its order
        self.pretrained_widget = QgsFileWidget()
        self.pretrained_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.pretrained_widget.lineEdit().setPlaceholderText("[none: train from scratch]")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 10000)
        self.epochs_spin.setSpecialValueText("default recipe")
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("ONNX models (*.onnx)")
        self.loss_label = QLabel()
        self.curve = LossCurve()
        self.runner = AlgorithmRunner("Train", extra=(self.loss_label, self.curve))
        self.run_button = self.runner.run_button
        self.progress = self.runner.progress
        self.status = self.runner.status

        rows = [
            ("Raster", self.raster_combo),
            ("Training data", self.training_combo),
            ("Class field", self.field_combo),
            ("Model type", self.model_type_combo),
            ("Pre-trained", self.pretrained_widget),
            ("Epochs", self.epochs_spin),
            ("Model", self.output_widget),
        ]
        self.setLayout(tab_layout(rows, self.runner))

        self.training_combo.layerChanged.connect(self._training_changed)
        for signal in (self.raster_combo.layerChanged, self.output_widget.fileChanged):
            signal.connect(self.check_inputs)
        self.field_combo.fieldChanged.connect(self.check_inputs)
        self.model_type_combo.currentTextChanged.connect(self._model_type_changed)
        self.run_button.clicked.connect(self.run)
        self.runner.completed.connect(self._finished)
        self._training_changed(self.training_combo.currentLayer())

    @property
    def task(self) -> QgsProcessingAlgRunnerTask | None:
        """The running training task, or None."""
        return self.runner.task

    def _training_changed(self, layer) -> None:
        vector = layer if isinstance(layer, QgsVectorLayer) else None
        self.field_combo.setLayer(vector)
        self.field_combo.setEnabled(vector is not None)
        if vector is not None:
            renderer = vector.renderer()
            attribute = getattr(renderer, "classAttribute", lambda: "")()
            if attribute and vector.fields().indexOf(attribute) >= 0:
                self.field_combo.setField(attribute)  # the field the layer is styled by
        self.check_inputs()

    def _model_type_changed(self, model_type: str) -> None:
        """Offer epochs and a pretraining run only to the types that take them."""
        self.epochs_spin.setEnabled(model_type in RECIPE_BATCH)
        self.pretrained_widget.setEnabled(model_type in PRETRAINABLE)

    def parameters(self) -> dict[str, Any]:
        """The parameters of ``factoformer:train`` chosen in the tab."""
        training = self.training_combo.currentLayer()
        vector = isinstance(training, QgsVectorLayer)
        pretrained = self.pretrained_widget.isEnabled() and self.pretrained_widget.filePath()
        return {
            "INPUT": self.raster_combo.currentLayer(),
            "TRAINING": training,
            "CLASS_FIELD": self.field_combo.currentField() if vector else None,
            "MODEL_TYPE": self.model_type_combo.currentIndex(),
            "PRETRAINED": pretrained or None,
            "EPOCHS": self.epochs_spin.value(),
            "OUTPUT": self.output_widget.filePath(),
        }

    def check_inputs(self, *_: Any) -> bool:
        """Enable Train when a raster, training data (with a class field) and an output
        file are chosen; say what is missing otherwise."""
        missing = []
        if self.raster_combo.currentLayer() is None:
            missing.append("a raster layer")
        training = self.training_combo.currentLayer()
        if training is None:
            missing.append("a polygon/point layer or label raster")
        elif isinstance(training, QgsVectorLayer) and not self.field_combo.currentField():
            missing.append("the class field")
        if not self.output_widget.filePath():
            missing.append("the model file to write")
        if self.task is None and missing:
            self.status.setText(f"Choose {', '.join(missing)}.")
        elif self.task is None and self.status.text().startswith("Choose "):
            self.status.setText("")  # a result or an error stays until the next run
        self.run_button.setEnabled(not missing and self.task is None)
        return not missing

    def run(self) -> None:
        """Start training as a background task."""
        if not self.check_inputs():
            return
        params = self.parameters()
        feedback = LossFeedback()
        feedback.lossReported.connect(self._loss, Qt.QueuedConnection)
        self.curve.clear()
        self.loss_label.setText("")
        status = f"Training on {params['INPUT'].name()}..."
        self.runner.start(ALGORITHM_ID, params, feedback, status)

    def _loss(self, label: str, fraction: float, loss: float) -> None:
        self.loss_label.setText(f"Loss {loss:.4f} ({100 * fraction:.0f} % of {label})")
        self.curve.add(fraction, loss)

    def _finished(self, ok: bool, results: dict[str, Any], _last_line: str) -> None:
        """Say what was trained, and announce the new model."""
        if not ok:
            self.check_inputs()
            return
        oa = results.get("VALIDATION_OA")
        accuracy = f"; validation OA {100 * oa:.1f} %" if isinstance(oa, float) else ""
        self.status.setText(f"Trained {results['OUTPUT']}{accuracy}. It is now the dock's model.")
        if self.message_bar is not None:
            from qgis.core import Qgis

            self.message_bar.pushMessage(
                "FactoFormer", f"model {results['MODEL_ID']} trained", level=Qgis.Success
            )
        self.modelTrained.emit(results["OUTPUT"])
        self.check_inputs()

    def shutdown(self) -> None:
        """Cancel a running task before the plugin unloads."""
        self.runner.shutdown()
