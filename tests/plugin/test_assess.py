"""factoformer:assess through processing.run: a label raster and a polygon GeoPackage."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import BUNDLED_SCENE, BUNDLED_TEST, read_raster
from osgeo import gdal, ogr

from engine.infer.classify import classify_raster
from engine.metrics import classification_metrics

ALG = "factoformer:assess"
WINDOW = [32, 80, 32, 32]  # 924 test pixels of the bundled scene


@pytest.fixture(scope="module")
def crop(tmp_path_factory, shipped_model):
    """A classified 32x32 crop of the bundled scene, its test labels and their polygons."""
    folder = tmp_path_factory.mktemp("assess")
    scene, labels = folder / "scene.tif", folder / "test_labels.tif"
    gdal.Translate(str(scene), str(BUNDLED_SCENE), srcWin=WINDOW)
    gdal.Translate(str(labels), str(BUNDLED_TEST), srcWin=WINDOW)
    classes = folder / "classes.tif"
    classify_raster(scene, shipped_model, classes)
    return classes, labels, polygonise(labels, folder / "reference.gpkg")


def polygonise(labels, path):
    """The labelled pixels of ``labels`` as polygons with an integer field ``crop``."""
    src = gdal.Open(str(labels))
    band = src.GetRasterBand(1)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", src.GetSpatialRef(), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)  # the band as its own mask: 0 = unlabelled
    ds = None
    return path


@pytest.fixture()
def run(processing_plugin):
    import processing

    return processing.run


def test_label_raster_report_equals_engine_metrics(crop, run, tmp_path):
    classes, labels, _ = crop
    out = tmp_path / "report.html"
    results = run(ALG, {"INPUT": str(classes), "REFERENCE": str(labels), "OUTPUT": str(out)})
    metrics = classification_metrics(read_raster(labels), read_raster(classes), 16)
    assert metrics.total == 924
    assert results["OA"] == metrics.overall_accuracy
    assert results["AA"] == pytest.approx(metrics.average_accuracy, abs=1e-12)
    assert results["KAPPA"] == pytest.approx(metrics.kappa, abs=1e-12)
    assert results["OUTPUT"] == str(out)
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["overall_accuracy"] == metrics.overall_accuracy
    assert figures["pixel_area_ha"] is None and figures["area_note"] == "not projected"
    assert "Corn" in out.read_text() and out.with_suffix(".csv").exists()


def test_polygon_reference_gives_the_same_report(crop, run, tmp_path):
    classes, labels, polygons = crop
    out = tmp_path / "report.html"
    results = run(
        ALG,
        {
            "INPUT": str(classes),
            "REFERENCE": str(polygons),
            "CLASS_FIELD": "crop",
            "OUTPUT": str(out),
        },
    )
    metrics = classification_metrics(read_raster(labels), read_raster(classes), 16)
    assert results["OA"] == metrics.overall_accuracy
    assert json.loads(out.with_suffix(".json").read_text())["reference_pixels"] == 924


def test_report_is_an_html_output_and_errors_are_one_line(crop, run, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingException

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg.outputDefinition("OUTPUT").type() == "outputHtml"  # opens from the results panel
    classes, _, polygons = crop
    out = tmp_path / "report.html"
    with pytest.raises(QgsProcessingException, match="needs its class field"):
        run(ALG, {"INPUT": str(classes), "REFERENCE": str(polygons), "OUTPUT": str(out)})
    shifted = tmp_path / "shifted.tif"
    gdal.Translate(str(shifted), str(BUNDLED_TEST), srcWin=[WINDOW[0] + 1, *WINDOW[1:]])
    with pytest.raises(QgsProcessingException, match="not on the class map's grid") as err:
        run(ALG, {"INPUT": str(classes), "REFERENCE": str(shifted), "OUTPUT": str(out)})
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("report.*"))


def test_an_engine_that_cannot_be_imported_is_one_line_with_what_to_install(
    crop, run, plugin_module, monkeypatch, tmp_path
):
    from qgis.core import QgsProcessingException

    classes, labels, _ = crop
    monkeypatch.setitem(sys.modules, f"{plugin_module.__name__}.engine.assessment", None)
    params = {"INPUT": str(classes), "REFERENCE": str(labels), "OUTPUT": str(tmp_path / "r.html")}
    with pytest.raises(QgsProcessingException) as caught:
        run(ALG, params)
    message = str(caught.value)
    assert message.startswith("the FactoFormer engine cannot start: ")
    assert message.endswith("python3 -m pip install 'numpy<2'") and "\n" not in message
    assert not (tmp_path / "r.html").exists()
