"""Plugin lifecycle, packaging, dock: real QGIS, headless."""

from __future__ import annotations

import configparser
import time
import zipfile

import pytest
from helpers import BUNDLED_SCENE, REPO
from osgeo import gdal
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QDockWidget

REQUIRED_METADATA = (
    "name",
    "qgisMinimumVersion",
    "description",
    "version",
    "author",
    "email",
    "about",
    "repository",
    "tracker",
)


def test_metadata_has_required_fields_and_processing_provider():
    parser = configparser.ConfigParser()
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    assert all(general.get(key) for key in REQUIRED_METADATA)
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    import engine

    assert general["version"] == engine.__version__


def test_zip_holds_plugin_engine_and_shipped_model(plugin_zip):
    names = set(zipfile.ZipFile(plugin_zip).namelist())
    for required in (
        "metadata.txt",
        "__init__.py",
        "plugin.py",
        "provider.py",
        "dock.py",
        "algorithms/classify.py",
        "algorithms/assess.py",
        "engine/assessment.py",
        "engine/infer/classify.py",
        "engine/metadata.py",
        "models/factoformer_indian_pines.onnx",
        "icons/factoformer.svg",
        "LICENSE",
    ):
        assert f"factoformer/{required}" in names, required
    assert not any("__pycache__" in n for n in names)


def test_headless_load_registers_and_unload_removes_the_provider(plugin_module, qgis_processing):
    registry = QgsApplication.processingRegistry()
    plugin = plugin_module.classFactory(None)
    plugin.initProcessing()
    plugin.initGui()  # qgis_process never calls it, but a headless GUI call must not fail
    assert registry.providerById("factoformer") is not None
    algorithm = registry.algorithmById("factoformer:classify")
    assert algorithm is not None and algorithm.displayName() == "Classify hyperspectral raster"
    for param in algorithm.parameterDefinitions():
        assert param.help(), f"{param.name()} has no help text"
    plugin.unload()
    assert registry.providerById("factoformer") is None


def test_gui_adds_a_toolbar_action_and_a_dock(plugin_module, qgis_iface, qgis_processing):
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    assert isinstance(plugin.dock, QDockWidget)
    assert plugin.action.isCheckable()
    plugin.action.setChecked(True)
    assert plugin.dock.isVisibleTo(qgis_iface.mainWindow()) or plugin.dock.isVisible()
    plugin.unload()
    assert plugin.dock is None and plugin.action is None
    assert QgsApplication.processingRegistry().providerById("factoformer") is None


@pytest.fixture()
def ip_crop_layer(tmp_path):
    path = tmp_path / "ip_crop.tif"
    gdal.Translate(str(path), str(BUNDLED_SCENE), srcWin=[0, 0, 40, 30])
    layer = QgsRasterLayer(str(path), "Indian Pines crop")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeAllMapLayers()


def test_dock_checks_bands_and_classifies_in_the_background(
    plugin_module, qgis_iface, qgis_processing, ip_crop_layer, tmp_path, shipped_model
):
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    try:
        dock.layer_combo.setLayer(ip_crop_layer)
        assert dock.check_inputs() and dock.run_button.isEnabled()
        assert "factoformer-indian-pines: 200 bands, 16 classes" in dock.model_info.text()
        output = tmp_path / "dock_map.tif"
        dock.output_widget.setFilePath(str(output))
        dock.confidence_check.setChecked(True)
        dock.run()
        deadline = time.monotonic() + 120
        while dock.task is not None and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.05)
        assert dock.task is None, dock.status.text()
        layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
        result = layers["Indian Pines crop land cover"]
        assert result.source() == str(output)
        assert result.renderer().type() == "paletted"
        assert len(result.renderer().classes()) == 16
        assert "Indian Pines crop confidence" in layers
        assert (tmp_path / "dock_map_confidence.tif").exists()
        assert dock.progress.value() == 100
    finally:
        plugin.unload()


def test_dock_refuses_a_layer_with_the_wrong_band_count(
    plugin_module, qgis_iface, qgis_processing, tmp_path
):
    import numpy as np
    from helpers import write_raster

    path = write_raster(tmp_path / "ten.tif", np.ones((10, 20, 20), dtype=np.int16))
    layer = QgsRasterLayer(str(path), "ten bands")
    QgsProject.instance().addMapLayer(layer)
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    try:
        plugin.dock.layer_combo.setLayer(layer)
        assert not plugin.dock.check_inputs()
        assert not plugin.dock.run_button.isEnabled()
        assert "expects 200 bands but ten.tif has 10" in plugin.dock.model_info.text()
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()
