"""Run inside QGIS Desktop (``qgis --code``): the dock classifies the bundled scene, the
Processing dialog pre-trains, then the dock's Train tab trains a model from polygons.

Opens the Indian Pines demo scene, clicks the plugin's toolbar button, runs the dock with
the shipped model, waits for the styled layers and saves a window screenshot; then opens
``factoformer:pretrain`` in its Processing dialog with the default branch and a small step
budget, runs it as a user would (the Run button's slot) and saves a screenshot of the
dialog; then adds the training split as polygons, trains one epoch in the Train tab from
that pretraining run, checks that the new model records it and became the dock's model,
and saves a last screenshot. Quits with exit code 0 only when every check passed. Driven
by ``scripts/desktop_check.sh``.
"""

import json
import os
from pathlib import Path

import processing
from osgeo import gdal, ogr
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QToolBar
from qgis.utils import iface, plugins

OUT = Path(os.environ["FACTOFORMER_DESKTOP_OUT"])
SCENE = Path(os.environ["FACTOFORMER_REPO"]) / "resources/indian_pines/indian_pines.tif"
TRAIN_LABELS = SCENE.with_name("indian_pines_train.tif")
TIMEOUT_S = 180
TRAIN_TIMEOUT_S = 300
PRETRAIN_STEPS = 40  # per branch: enough for a loss history, small enough for a check
PRETRAIN_RUN = OUT / "pretraining"
failures: list[str] = []
log = (OUT / "desktop_check.log").open("w")


def check(ok: bool, what: str) -> None:
    log.write(f"{'ok  ' if ok else 'FAIL'} {what}\n")
    log.flush()
    if not ok:
        failures.append(what)


def start() -> None:
    plugin = plugins.get("factoformer")
    check(plugin is not None, "plugin loaded by QGIS Desktop")
    if plugin is None:
        finish()
        return
    toolbar_actions = [a for tb in iface.mainWindow().findChildren(QToolBar) for a in tb.actions()]
    check(plugin.action in toolbar_actions, "toolbar button present")
    dock = plugin.dock
    check(plugin.action.isChecked() == dock.isVisible(), "toolbar button state = dock shown")
    for _ in range(2):  # a fresh profile may start with the dock shown: click until it opens
        was_visible = dock.isVisible()
        plugin.action.trigger()
        check(dock.isVisible() != was_visible, "toolbar button shows/hides the dock")
        if dock.isVisible():
            break
    model = dock.model_info.text()
    check(dock.run_button.isEnabled(), f"dock accepts the scene and the shipped model: {model}")
    dock.output_widget.setFilePath(str(OUT / "indian_pines_classes.tif"))
    dock.confidence_check.setChecked(True)
    dock.run_button.click()
    wait_for_layers(dock, 0)


def wait_for_layers(dock, waited: int) -> None:
    names = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    if len(names) < 3 and waited < TIMEOUT_S:
        QTimer.singleShot(1000, lambda: wait_for_layers(dock, waited + 1))
        return
    check(len(names) == 3, f"layers after the run: {sorted(names)}")
    check(dock.status.text().startswith("Classified"), f"dock status: {dock.status.text()}")
    land_cover = names.get("indian_pines land cover")
    if land_cover is not None:
        renderer = land_cover.renderer()
        classes = renderer.classes() if renderer.type() == "paletted" else []
        check(len(classes) == 16, f"land cover layer: {renderer.type()}, {len(classes)} classes")
    iface.mapCanvas().zoomToFullExtent()
    QTimer.singleShot(3000, lambda: pretrain(dock))


def pretrain(dock) -> None:
    """Screenshot the classification, then pre-train in the Processing dialog."""
    iface.mainWindow().grab().save(str(OUT / "qgis_desktop.png"))
    scene = QgsProject.instance().mapLayersByName("indian_pines")[0]
    parameters = {"INPUT": [scene], "OUTPUT": str(PRETRAIN_RUN), "MAX_STEPS": PRETRAIN_STEPS}
    dialog = processing.createAlgorithmDialog("factoformer:pretrain", parameters)
    check(dialog is not None, "Processing opens the pretrain dialog")
    if dialog is None:
        finish()
        return
    dialog.show()
    dialog.runAlgorithm()
    wait_for_pretraining(dock, dialog, 0)


def wait_for_pretraining(dock, dialog, waited: int) -> None:
    if dialog.feedback is not None and waited < TRAIN_TIMEOUT_S:  # None once it completed
        QTimer.singleShot(1000, lambda: wait_for_pretraining(dock, dialog, waited + 1))
        return
    dialog.grab().save(str(OUT / "qgis_desktop_pretrain.png"))
    record = PRETRAIN_RUN / "pixel" / "pretraining.json"
    steps = json.loads(record.read_text()).get("steps") if record.is_file() else None
    check(steps == PRETRAIN_STEPS, f"pretrain dialog pre-trained the pixel branch: {steps} steps")
    check(not (PRETRAIN_RUN / "band").exists(), "the default branch is pixel only")
    dialog.close()
    train(dock)


def train(dock) -> None:
    """Train one epoch from polygons in the Train tab, from the pretraining run."""
    fields = QgsVectorLayer(f"{polygonise(OUT / 'fields.gpkg')}|layername=fields", "fields")
    QgsProject.instance().addMapLayer(fields)
    panel = dock.train_panel
    dock.tabs.setCurrentWidget(panel)
    panel.raster_combo.setLayer(QgsProject.instance().mapLayersByName("indian_pines")[0])
    panel.training_combo.setLayer(fields)
    panel.field_combo.setField("crop")
    panel.epochs_spin.setValue(1)
    panel.pretrained_widget.setFilePath(str(PRETRAIN_RUN))
    panel.output_widget.setFilePath(str(OUT / "desktop_model.onnx"))
    check(panel.run_button.isEnabled(), f"Train tab accepts its inputs: {panel.status.text()}")
    panel.run_button.click()
    wait_for_model(dock, 0)


def polygonise(path: Path) -> Path:
    """The training split's labelled pixels as polygons with an integer field ``crop``."""
    src = gdal.Open(str(TRAIN_LABELS))
    band = src.GetRasterBand(1)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", src.GetSpatialRef(), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)
    ds = None
    return path


def wait_for_model(dock, waited: int) -> None:
    panel = dock.train_panel
    if panel.task is not None and waited < TRAIN_TIMEOUT_S:
        QTimer.singleShot(1000, lambda: wait_for_model(dock, waited + 1))
        return
    model = OUT / "desktop_model.onnx"
    check(model.is_file(), f"Train tab wrote the model: {panel.status.text()}")
    check(panel.status.text().startswith("Trained"), "Train tab says what it trained")
    check(dock.model_widget.filePath() == str(model), "the new model is the dock's model")
    check(bool(panel.curve.points), f"loss curve drawn ({panel.loss_label.text()})")
    branches = pretrained_branches(model) if model.is_file() else None
    check(branches == ["pixel"], f"the model records its pre-trained branches: {branches}")
    QTimer.singleShot(1000, finish)


def pretrained_branches(model: Path) -> list[str] | None:
    """The branches the model's metadata says were pre-trained (None: not pre-trained),
    read by the engine the plugin bundles, as the dock reads a model."""
    from factoformer.engine.infer.model import OnnxClassifier

    pretraining = OnnxClassifier(model).metadata.training.get("pretraining")
    return sorted(pretraining["branches"]) if pretraining else None


def finish() -> None:
    iface.mainWindow().grab().save(str(OUT / "qgis_desktop_train.png"))
    check(not failures, "all checks passed")
    QgsProject.instance().removeAllMapLayers()  # 3.22 crashes on exit with a vector layer active
    log.close()
    QApplication.exit(1 if failures else 0)


QgsProject.instance().addMapLayer(QgsRasterLayer(str(SCENE), "indian_pines"))
iface.mainWindow().resize(1280, 800)
QTimer.singleShot(3000, start)  # let QGIS finish starting, as a user would
