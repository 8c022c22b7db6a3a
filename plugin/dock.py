"""Dock panel: pick a raster and a model, check that they fit, classify in the background.

The panel runs the Processing algorithm ``factoformer:classify`` in a QGIS task, so the
result is exactly what the toolbox, batch mode and ``qgis_process`` produce.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsMapLayerProxyModel,
    QgsProcessingAlgRunnerTask,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QTabWidget,
    QWidget,
)

from .algorithm_runner import ERROR_STYLE, AlgorithmRunner, tab_layout
from .model_picker import ModelPicker
from .train_panel import TrainPanel

ALGORITHM_ID = "factoformer:classify"
WARNING_PREFIX = "Warning: "  # how the algorithm logs the engine's warnings


def _band_plan(layer: QgsRasterLayer, meta, matching: str) -> tuple[str, str | None]:
    """What the engine will do with the layer's bands, and why they do not fit, or None.

    A GDAL layer is planned as the engine will read it (alpha bands and ENVI bad bands
    left out, wavelengths matched as ``matching`` allows); other layers by band count.
    """
    if layer.providerType() == "gdal":
        from .engine.data.bands import plan_bands
        from .engine.data.raster import band_info, open_raster
        from .engine.errors import EngineError

        try:
            source = layer.source()
            plan = plan_bands(band_info(open_raster(source)), meta, Path(source).name, matching)
        except EngineError as exc:
            return "", str(exc)
        return plan.description.capitalize() + ".", None
    if layer.bandCount() != meta.num_bands:
        return "", f"The layer has {layer.bandCount()} bands; this model needs {meta.num_bands}."
    return "", None


class ClassifyDock(QgsDockWidget):
    """Dock widget that classifies the chosen raster layer with the chosen model."""

    def __init__(self, iface) -> None:
        super().__init__("FactoFormer classification", iface.mainWindow())
        self.iface = iface
        self.setObjectName("FactoFormerClassifyDock")
        self._layer_name = ""
        self._model_cache: dict[str, Any] = {}

        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.model_widget = ModelPicker()
        self.model_card = QLabel()
        self.model_card.setWordWrap(True)
        self.matching_combo = QComboBox()
        self.matching_combo.addItems(["strict", "select", "resample"])  # the algorithm's order
        self.matching_combo.setCurrentIndex(1)
        self.matching_combo.setToolTip(
            "strict: the model's bands exactly; select: pick the model's wavelengths among "
            "more bands; resample: also resample the spectrum"
        )
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif)")
        self.output_widget.lineEdit().setPlaceholderText("[temporary file]")
        self.confidence_check = QCheckBox("Also write a confidence raster")
        self.runner = AlgorithmRunner("Classify")
        self.run_button = self.runner.run_button
        self.progress = self.runner.progress
        self.status = self.runner.status

        rows = [
            ("Raster", self.layer_combo),
            ("Model", self.model_widget),
            ("", self.model_card),
            ("Band matching", self.matching_combo),
            ("", self.model_info),
            ("Class map", self.output_widget),
            ("", self.confidence_check),
        ]
        body = QWidget()
        body.setLayout(tab_layout(rows, self.runner))
        self.train_panel = TrainPanel(iface.messageBar())
        self.train_panel.modelTrained.connect(self.use_model)
        self.tabs = QTabWidget()
        self.tabs.addTab(body, "Classify")
        self.tabs.addTab(self.train_panel, "Train")
        self.setWidget(self.tabs)

        self.layer_combo.layerChanged.connect(self.check_inputs)
        self.model_widget.fileChanged.connect(self.check_inputs)
        self.matching_combo.currentIndexChanged.connect(self.check_inputs)
        self.run_button.clicked.connect(self.run)
        self.runner.completed.connect(self._finished)
        self.check_inputs()

    @property
    def task(self) -> QgsProcessingAlgRunnerTask | None:
        """The running classification task, or None."""
        return self.runner.task

    def _metadata(self, path: str):
        """Model metadata, cached per file; raises the engine's errors."""
        if path not in self._model_cache:
            from .engine.infer.model import OnnxClassifier

            self._model_cache[path] = OnnxClassifier(path).metadata
        return self._model_cache[path]

    def check_inputs(self, *_: Any) -> bool:
        """Describe the model, compare it with the layer, enable Classify when they fit."""
        ok = False
        path = self.model_widget.filePath()
        self.model_card.clear()
        try:
            meta = self._metadata(path)
            from .engine.model_card import card_html
        except ImportError as exc:
            self.model_info.setText(f"The engine cannot start: {exc}")
        except Exception as exc:  # engine errors: bad file, bad metadata
            self.model_info.setText(ERROR_STYLE.format(exc))
        else:
            self.model_card.setText(card_html(meta))
            test = meta.metrics.get("test", {})
            accuracy = f", test OA {100 * test['overall_accuracy']:.1f} %" if test else ""
            text = f"{meta.model_id}: {meta.num_bands} bands, {meta.num_classes} classes{accuracy}"
            layer = self.layer_combo.currentLayer()
            matching = self.matching_combo.currentText()
            plan, problem = _band_plan(layer, meta, matching) if layer else ("", None)
            if layer is None:
                text += "<br>Add a raster layer to the project to classify it."
            elif problem:
                text += "<br>" + ERROR_STYLE.format(problem)
            else:
                text += f"<br>{plan}" if plan else ""
                ok = True
            self.model_info.setText(text)
        self.run_button.setEnabled(ok and self.task is None)
        return ok

    def run(self) -> None:
        """Start the classification as a background task."""
        layer = self.layer_combo.currentLayer()
        if layer is None or not self.check_inputs():
            return
        params = {
            "INPUT": layer.source(),
            "MODEL": self.model_widget.filePath(),
            "BAND_MATCHING": self.matching_combo.currentIndex(),
            "OUTPUT": self.output_widget.filePath() or "TEMPORARY_OUTPUT",
            "CONFIDENCE": "TEMPORARY_OUTPUT" if self.confidence_check.isChecked() else None,
        }
        if params["CONFIDENCE"] and self.output_widget.filePath():
            params["CONFIDENCE"] = str(
                Path(params["OUTPUT"]).with_name(Path(params["OUTPUT"]).stem + "_confidence.tif")
            )
        self._layer_name = layer.name()
        self.runner.start(
            ALGORITHM_ID, params, QgsProcessingFeedback(), f"Classifying {layer.name()}..."
        )

    def _finished(self, ok: bool, results: dict[str, Any], last_line: str) -> None:
        """Add the new layers and say what the run logged (warnings and its last line)."""
        if ok:
            for key, suffix in (("CONFIDENCE", "confidence"), ("OUTPUT", "land cover")):
                if results.get(key):
                    name = f"{self._layer_name} {suffix}"
                    layer = QgsRasterLayer(results[key], name)  # loads the .qml
                    QgsProject.instance().addMapLayer(layer)
            warnings = [line for line in self.runner.log() if line.startswith(WARNING_PREFIX)]
            self.status.setText(
                "".join(f"<span style='color:#b85a20'>{w}</span><br>" for w in warnings)
                + (last_line or "Done")
            )
            self.iface.messageBar().pushMessage(
                "FactoFormer", f"{self._layer_name} classified", level=Qgis.Success, duration=5
            )
        self.check_inputs()

    def use_model(self, path: str) -> None:
        """Make ``path`` (a model just trained) the model to classify with, and a recent one."""
        self._model_cache.pop(path, None)  # a model trained again into the same file
        self.model_widget.setFilePath(path)
        self.check_inputs()

    def shutdown(self) -> None:
        """Cancel running tasks before the plugin unloads."""
        self.train_panel.shutdown()
        self.runner.shutdown()
