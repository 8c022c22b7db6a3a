"""An int8 model (``python -m engine quantize``) runs unchanged through processing.run and
qgis_process: the same map as the engine gives with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, read_raster
from osgeo import gdal
from test_qgis_process import _qgis_process, qgis_env  # noqa: F401 (module fixture)

from engine.infer.classify import classify_raster

ALG = "factoformer:classify"


@pytest.fixture(scope="module")
def int8_crop(tmp_path_factory, shipped_model):
    """A 32 x 32 crop of the bundled scene, the int8 model and the engine's map with it."""
    from engine.export.precision import quantize_model

    folder = tmp_path_factory.mktemp("int8")
    crop = folder / "crop.tif"
    gdal.Translate(str(crop), str(BUNDLED_SCENE), srcWin=[60, 40, 32, 32])
    model = quantize_model(shipped_model, folder / "int8.onnx")
    classify_raster(crop, model, folder / "engine.tif", confidence=folder / "engine_conf.tif")
    return crop, model, read_raster(folder / "engine.tif"), read_raster(folder / "engine_conf.tif")


def test_processing_run_with_an_int8_model(processing_plugin, int8_crop, tmp_path):
    import processing

    crop, model, classes, confidence = int8_crop
    out, conf = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    results = processing.run(
        ALG, {"INPUT": str(crop), "MODEL": str(model), "OUTPUT": str(out), "CONFIDENCE": str(conf)}
    )
    assert results["CLASSIFIED_PIXELS"] == 32 * 32
    assert np.array_equal(read_raster(out), classes)
    assert np.array_equal(read_raster(conf), confidence)


def test_qgis_process_with_an_int8_model(qgis_env, int8_crop, tmp_path):  # noqa: F811
    crop, model, classes, _ = int8_crop
    out = tmp_path / "classes.tif"
    proc = _qgis_process(
        qgis_env, "--json", "run", ALG, "--", f"INPUT={crop}", f"MODEL={model}", f"OUTPUT={out}"
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout)["results"]["MODEL_ID"] == "factoformer-indian-pines"
    assert np.array_equal(read_raster(out), classes)
    assert out.with_suffix(".qml").exists()
