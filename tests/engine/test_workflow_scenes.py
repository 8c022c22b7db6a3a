"""scripts/qgis_workflow.py --enmap: the EnMAP tiles as a training mosaic with polygons."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import REPO, SHARED_DATA
from osgeo import gdal

sys.path.insert(0, str(REPO / "scripts"))
import qgis_workflow  # noqa: E402

TILES = SHARED_DATA / "enmap_potsdam_tiles"
# labelled pixels per class of the 14 training tiles (the data set's Summary_train_val.csv)
TRAIN_COUNTS = [402, 704, 847, 1660, 41, 152]


@pytest.mark.skipif(not TILES.is_dir(), reason=f"{TILES} is absent (development checkout only)")
def test_enmap_polygons_cover_exactly_the_training_tiles_labels(tmp_path):
    scene = qgis_workflow.enmap(TILES, tmp_path)
    labels = gdal.Open(str(tmp_path / "enmap_train_labels.vrt"))
    burnt = gdal.Rasterize(
        "",
        str(scene.fields),
        format="MEM",
        outputBounds=_bounds(labels),
        width=labels.RasterXSize,
        height=labels.RasterYSize,
        attribute="crop",
        outputType=gdal.GDT_Int16,
    ).ReadAsArray()
    assert np.bincount(burnt.ravel(), minlength=7)[1:].tolist() == TRAIN_COUNTS
    np.testing.assert_array_equal(burnt, labels.ReadAsArray().astype(np.int16))
    mosaic = gdal.Open(str(scene.train_raster))
    assert mosaic.RasterCount == 224 and mosaic.GetRasterBand(1).GetScale() == pytest.approx(1e-4)
    test, reference = (gdal.Open(str(p)) for p in (scene.test_raster, scene.test_labels))
    assert test.GetGeoTransform() == reference.GetGeoTransform()
    assert (test.RasterXSize, test.RasterYSize) == (reference.RasterXSize, reference.RasterYSize)


def _bounds(ds: gdal.Dataset) -> tuple[float, float, float, float]:
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    return x0, y0 + dy * ds.RasterYSize, x0 + dx * ds.RasterXSize, y0
