"""Run inside QGIS Desktop (``qgis --code``): the dock classifies the bundled scene, then
its Train tab trains a model from polygons.

Opens the Indian Pines demo scene, clicks the plugin's toolbar button, runs the dock with
the shipped model, waits for the styled layers and saves a window screenshot; then adds
the training split as polygons, trains one epoch in the Train tab, checks that the new
model became the dock's model and saves a second screenshot. Quits with exit code 0 only
when every check passed. Driven by ``scripts/desktop_check.sh``.
"""

import os
from pathlib import Path

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
    QTimer.singleShot(3000, lambda: train(dock))


def train(dock) -> None:
    """Screenshot the classification, then train one epoch from polygons in the Train tab."""
    iface.mainWindow().grab().save(str(OUT / "qgis_desktop.png"))
    fields = QgsVectorLayer(f"{polygonise(OUT / 'fields.gpkg')}|layername=fields", "fields")
    QgsProject.instance().addMapLayer(fields)
    panel = dock.train_panel
    dock.tabs.setCurrentWidget(panel)
    panel.raster_combo.setLayer(QgsProject.instance().mapLayersByName("indian_pines")[0])
    panel.training_combo.setLayer(fields)
    panel.field_combo.setField("crop")
    panel.epochs_spin.setValue(1)
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
    QTimer.singleShot(1000, finish)


def finish() -> None:
    iface.mainWindow().grab().save(str(OUT / "qgis_desktop_train.png"))
    check(not failures, "all checks passed")
    QgsProject.instance().removeAllMapLayers()  # 3.22 crashes on exit with a vector layer active
    log.close()
    QApplication.exit(1 if failures else 0)


QgsProject.instance().addMapLayer(QgsRasterLayer(str(SCENE), "indian_pines"))
iface.mainWindow().resize(1280, 800)
QTimer.singleShot(3000, start)  # let QGIS finish starting, as a user would
