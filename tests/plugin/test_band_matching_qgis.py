"""BAND_MATCHING through processing.run and the dock's band-plan line (real QGIS)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import edit_model_metadata, read_raster, write_raster
from linear_model import band1_values, write_linear_model
from qgis.core import QgsApplication, QgsProcessingException, QgsProject, QgsRasterLayer

MODEL_NM = [452.3, 501.1, 549.6]  # EnMAP-like centres
GRID_NM = [440.0 + 20 * i for i in range(7)]  # another sampling: 440 .. 560 nm
CLASSES = 4
RESAMPLE = 2  # index of "resample" in the algorithm's options


@pytest.fixture
def scene(tmp_path):
    """A model on MODEL_NM, a raster on GRID_NM and the class map it must give."""
    linear = write_linear_model(tmp_path / "linear.onnx", CLASSES, num_bands=3)

    def edit(values):
        values["bands"]["wavelengths_nm"] = MODEL_NM

    model = edit_model_metadata(linear, tmp_path / "enmap.onnx", edit)
    classes = (np.arange(6 * 7).reshape(6, 7) % CLASSES + 1).astype(np.int64)
    value = band1_values(classes, CLASSES)
    cube = np.full((7, 6, 7), 0.25, dtype=np.float32)
    cube[0] = value - 0.1 * 0.615 / 0.385  # 452.3 nm = 0.385 * (440) + 0.615 * (460)
    cube[1] = value + 0.1
    raster = write_raster(tmp_path / "coarse.tif", cube, wavelengths_nm=GRID_NM)
    return model, raster, classes


def test_processing_run_resamples_when_asked(processing_plugin, scene, tmp_path):
    import processing

    model, raster, classes = scene
    out = tmp_path / "map.tif"
    params = {"INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out)}
    with pytest.raises(QgsProcessingException, match=r"452.3, 549.6 nm; band matching 'resample'"):
        processing.run("factoformer:classify", params)
    assert not out.exists()
    processing.run("factoformer:classify", {**params, "BAND_MATCHING": RESAMPLE})
    np.testing.assert_array_equal(read_raster(out), classes)


def test_dock_states_the_band_plan_and_runs_it(
    plugin_module, qgis_iface, qgis_processing, scene, tmp_path
):
    model, raster, classes = scene
    layer = QgsRasterLayer(str(raster), "coarse")
    QgsProject.instance().addMapLayer(layer)
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    try:
        dock.model_widget.setFilePath(str(model))
        dock.layer_combo.setLayer(layer)
        assert not dock.check_inputs()  # select: 452.3 and 549.6 nm are missing
        assert "452.3, 549.6 nm" in dock.model_info.text()
        dock.matching_combo.setCurrentText("resample")
        assert dock.check_inputs() and dock.run_button.isEnabled()
        assert "Resamples 7 → 3 bands." in dock.model_info.text()
        out = tmp_path / "dock_map.tif"
        dock.output_widget.setFilePath(str(out))
        dock.run()
        deadline = time.monotonic() + 60
        while dock.task is not None and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.05)
        assert dock.task is None, dock.status.text()
        np.testing.assert_array_equal(read_raster(out), classes)
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()
