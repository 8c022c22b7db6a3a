"""Input semantics through QGIS: physical values, GDAL masks, warnings (qgis_process, dock)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, edit_model_metadata, read_raster, write_raster, write_scaled
from osgeo import gdal
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from test_qgis_process import _qgis_process, qgis_env  # noqa: F401 (fixture)

from engine.infer.classify import classify_raster

ALG = "factoformer:classify"
MISSING = [(0, 0), (3, 30), (20, 19), (21, 19), (40, 37)]


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """(folder, raw int16 values) of a 41 x 38 crop of the bundled Indian Pines scene."""
    folder = tmp_path_factory.mktemp("inputs")
    path = folder / "crop.tif"
    gdal.Translate(str(path), str(BUNDLED_SCENE), srcWin=[107, 0, 38, 41])
    return folder, read_raster(path)


@pytest.fixture(scope="module")
def physical_model(crop, shipped_model):
    """The shipped model with metadata saying its statistics are physical values."""

    def physical(values):
        values["schema_version"] = 2
        values["normalization"]["values"] = "physical"

    return edit_model_metadata(shipped_model, crop[0] / "physical.onnx", physical)


def _run(env, *params):
    proc = _qgis_process(env, "--json", "run", ALG, "--", *params)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    return json.loads(proc.stdout), proc.stderr


def test_qgis_process_classifies_physical_values(qgis_env, crop, physical_model, tmp_path):  # noqa: F811
    folder, raw = crop
    plain = write_raster(tmp_path / "raw.tif", raw, georeferenced=False)
    scaled = write_scaled(tmp_path / "x2.tif", raw, 2, georeferenced=False)
    assert (read_raster(scaled) == 2 * raw).all()
    maps = []
    for name, path in (("a", plain), ("b", scaled)):
        out, prob = tmp_path / f"{name}.tif", tmp_path / f"{name}_prob.tif"
        _run(qgis_env, f"INPUT={path}", f"MODEL={physical_model}", f"OUTPUT={out}")
        _run(
            qgis_env,
            f"INPUT={path}",
            f"MODEL={physical_model}",
            f"OUTPUT={tmp_path / (name + '_2.tif')}",
            f"PROBABILITIES={prob}",
        )
        maps.append((read_raster(out), read_raster(prob)))
    (a, pa), (b, pb) = maps
    assert (a > 0).all() and np.array_equal(a, b) and np.array_equal(pa, pb)


def test_qgis_process_honours_an_internal_gdal_mask(qgis_env, crop, shipped_model, tmp_path):  # noqa: F811
    _, raw = crop
    path = write_raster(tmp_path / "masked.tif", raw, georeferenced=False)
    ds = gdal.Open(str(path), gdal.GA_Update)
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    try:
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    mask = np.full(raw.shape[1:], 255, dtype=np.uint8)
    for r, c in MISSING:
        mask[r, c] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    assert not list(tmp_path.glob("*.msk"))
    out = tmp_path / "classes.tif"
    result, _ = _run(qgis_env, f"INPUT={path}", f"OUTPUT={out}")
    assert result["results"]["NODATA_PIXELS"] == len(MISSING)
    classes = read_raster(out)
    assert all(classes[r, c] == 0 for r, c in MISSING) and (classes > 0).sum() == 41 * 38 - 5
    classify_raster(path, shipped_model, tmp_path / "engine.tif")
    assert np.array_equal(classes, read_raster(tmp_path / "engine.tif"))


def test_qgis_process_logs_out_of_range_warning(qgis_env, crop, tmp_path):  # noqa: F811
    _, raw = crop
    byte = write_raster(tmp_path / "byte.tif", (raw // 40).astype(np.uint8), georeferenced=False)
    proc = _qgis_process(
        qgis_env, "run", ALG, "--", f"INPUT={byte}", f"OUTPUT={tmp_path / 'out.tif'}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "far outside" in line]
    assert len(lines) == 1
    assert "Warning: 100% of the 1558 valid pixels of byte.tif" in lines[0]
    assert "training 955 to 9604" in lines[0]


def test_dock_shows_the_warning(plugin_module, qgis_iface, qgis_processing, crop, tmp_path):
    _, raw = crop
    byte = write_raster(tmp_path / "byte.tif", (raw // 40).astype(np.uint8), georeferenced=False)
    layer = QgsRasterLayer(str(byte), "byte crop")
    QgsProject.instance().addMapLayer(layer)
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    try:
        dock.layer_combo.setLayer(layer)
        assert dock.check_inputs()
        dock.output_widget.setFilePath(str(tmp_path / "dock.tif"))
        dock.run()
        deadline = time.monotonic() + 120
        while dock.task is not None and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.05)
        assert dock.task is None and dock.progress.value() == 100, dock.status.text()
        status = dock.status.text()
        assert "Warning: 100% of the 1558 valid pixels" in status and "Classified" in status
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()


def test_dock_accepts_an_alpha_band_and_refuses_a_needed_bad_band(
    plugin_module, qgis_iface, qgis_processing, crop, tmp_path
):
    _, raw = crop
    alpha = np.full((1, *raw.shape[1:]), 255, dtype=np.int16)
    rgba = write_raster(tmp_path / "alpha.tif", np.concatenate([raw, alpha]))
    ds = gdal.Open(str(rgba), gdal.GA_Update)
    ds.GetRasterBand(201).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    envi = write_raster(tmp_path / "bad.bsq", raw, driver="ENVI")
    header = envi.with_suffix(".hdr")
    header.write_text(header.read_text() + "bbl = {" + ", ".join(["1"] * 199 + ["0"]) + "}\n")
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    try:
        for path, ok in ((rgba, True), (envi, False)):
            layer = QgsRasterLayer(str(path), path.stem)
            QgsProject.instance().addMapLayer(layer)
            dock.layer_combo.setLayer(layer)
            assert dock.check_inputs() is ok
        assert "band 200 (Band 200) of bad.bsq is flagged bad" in dock.model_info.text()
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()
