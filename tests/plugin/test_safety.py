"""The algorithm through processing.run: unforeseen failures, GDAL names, protected inputs."""

from __future__ import annotations

import importlib
import zipfile

import numpy as np
import pytest
from helpers import read_raster, write_raster
from linear_model import band1_values, write_linear_model
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsRasterLayer

ALG = "factoformer:classify"


def _run(params):
    import processing

    return processing.run(ALG, params)


@pytest.fixture()
def known(tmp_path):
    """A 2-band scene, the hand-built model that must answer ``classes`` on it."""
    classes = np.arange(9 * 11).reshape(9, 11) % 3 + 1
    band1 = band1_values(classes, 3)
    scene = write_raster(tmp_path / "data.tif", np.stack([band1, np.zeros_like(band1)]))
    return scene, write_linear_model(tmp_path / "linear.onnx", 3), classes


def test_any_engine_exception_becomes_one_line(
    processing_plugin, plugin_module, known, monkeypatch
):
    scene, model, _ = known
    classify = importlib.import_module(f"{plugin_module.__name__}.engine.infer.classify")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\n  a second line")

    monkeypatch.setattr(classify.TiledClassifier, "classify", broken)
    out = scene.with_name("out.tif")
    with pytest.raises(QgsProcessingException) as exc:
        _run({"INPUT": str(scene), "MODEL": str(model), "OUTPUT": str(out)})
    assert str(exc.value) == "FactoFormer failed: division by zero (ZeroDivisionError)"
    assert not out.exists()


def test_vsizip_input_reaches_gdal_unchanged(processing_plugin, known, tmp_path):
    scene, model, classes = known
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(scene, "inside/scene.tif")
    # QGIS 3.22 resolves a layer parameter given as text only for plain files, so the
    # zipped raster comes as a layer, as when it is opened in QGIS Desktop
    layer = QgsRasterLayer(f"/vsizip/{archive}/inside/scene.tif", "zipped", "gdal")
    assert layer.isValid() and layer.source().startswith("/vsizip//")
    out = tmp_path / "from_zip.tif"
    results = _run({"INPUT": layer, "MODEL": str(model), "OUTPUT": str(out)})
    assert results["CLASSIFIED_PIXELS"] == classes.size
    assert np.array_equal(read_raster(out), classes)


def test_a_vrt_source_is_never_overwritten(processing_plugin, known, tmp_path):
    scene, model, _ = known
    vrt = tmp_path / "scene.vrt"
    gdal.Translate(str(vrt), str(scene), format="VRT")
    before = scene.read_bytes()
    with pytest.raises(QgsProcessingException, match="overwrite an input file: data.tif"):
        _run({"INPUT": str(vrt), "MODEL": str(model), "OUTPUT": str(scene)})
    assert scene.read_bytes() == before
