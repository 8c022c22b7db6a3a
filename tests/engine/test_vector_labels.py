"""Training labels from polygons and points: burnt onto the image's grid, validation carved
by whole polygons, and the command line that trains from a vector layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import GEOTRANSFORM, REPO, synthetic_cube, write_raster
from osgeo import ogr, osr

from engine.data.validation import carve_validation
from engine.data.vector_labels import rasterise_labels, read_class_styles
from engine.errors import InputDataError

X0, DX, _, Y0, _, DY = GEOTRANSFORM


def _box(col0: int, row0: int, col1: int, row1: int) -> ogr.Geometry:
    """A polygon covering the pixels [row0, row1) x [col0, col1) of the test grid."""
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for c, r in ((col0, row0), (col1, row0), (col1, row1), (col0, row1), (col0, row0)):
        ring.AddPoint_2D(X0 + c * DX, Y0 + r * DY)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def write_vector(path, features, kind=ogr.OFTInteger, epsg=32633, field="cls"):
    """A GeoPackage layer of (value, geometry) features in ``epsg``."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", srs, ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn(field, kind))
    for value, geometry in features:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(field, value)
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    ds = None
    return path


@pytest.fixture()
def image(tmp_path):
    return write_raster(tmp_path / "image.tif", np.zeros((2, 10, 12), np.int16))


def test_polygons_and_points_label_the_pixels_they_cover(image, tmp_path):
    point = ogr.Geometry(ogr.wkbPoint)
    point.AddPoint_2D(X0 + 9.5 * DX, Y0 + 7.5 * DY)  # centre of row 7, column 9
    vector = write_vector(
        tmp_path / "v.gpkg", [(2, _box(1, 1, 4, 3)), (5, _box(3, 2, 6, 5)), (3, point)]
    )
    burnt = rasterise_labels(vector, image, "cls")
    expected = np.zeros((10, 12), np.int32)
    expected[1:3, 1:4] = 2
    expected[2:5, 3:6] = 5  # the later feature wins where they overlap
    expected[7, 9] = 3
    np.testing.assert_array_equal(burnt.labels, expected)
    regions = np.zeros((10, 12), np.int64)
    regions[1:3, 1:4] = 1
    regions[2:5, 3:6] = 2
    regions[7, 9] = 3
    np.testing.assert_array_equal(burnt.regions, regions)
    # integer values are the class ids; absent ids get a name and colour too
    assert sorted(burnt.classes) == [1, 2, 3, 4, 5] and burnt.classes[5][0] == "Class 5"


def test_another_crs_is_reprojected_onto_the_grid(image, tmp_path):
    box = _box(2, 2, 5, 6)
    to_wgs84 = osr.CoordinateTransformation(
        _srs(32633), _srs(4326)
    )  # the same square, stored in longitude/latitude
    box.Transform(to_wgs84)
    burnt = rasterise_labels(write_vector(tmp_path / "w.gpkg", [(1, box)], epsg=4326), image, "cls")
    assert set(zip(*np.nonzero(burnt.labels), strict=True)) == {
        (r, c) for r in range(2, 6) for c in range(2, 5)
    }


def _srs(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def test_text_values_become_names_in_the_style_order_then_alphabetically(image, tmp_path):
    vector = write_vector(
        tmp_path / "t.gpkg",
        [("water", _box(0, 0, 2, 2)), ("crop", _box(4, 0, 6, 2)), ("forest", _box(8, 0, 10, 2))],
        kind=ogr.OFTString,
    )
    plain = rasterise_labels(vector, image, "cls")
    assert [plain.classes[i][0] for i in (1, 2, 3)] == ["crop", "forest", "water"]
    assert plain.labels[0, 0] == 3 and plain.labels[0, 4] == 1
    table = tmp_path / "styles.csv"
    table.write_text("value,name,colour\nwater,Open water,#0000ff\n")
    styled = rasterise_labels(vector, image, "cls", styles=read_class_styles(table))
    assert styled.classes[1] == ("Open water", "#0000ff") and styled.labels[0, 0] == 1
    assert [styled.classes[i][0] for i in (2, 3)] == ["crop", "forest"]


def test_refusals_are_one_line(image, tmp_path):
    vector = write_vector(tmp_path / "f.gpkg", [(1.5, _box(0, 0, 2, 2))], kind=ogr.OFTReal)
    with pytest.raises(InputDataError, match="not a class value"):
        rasterise_labels(vector, image, "cls")
    with pytest.raises(InputDataError, match=r"no field 'crop' \(fields: cls\)"):
        rasterise_labels(vector, image, "crop")
    far = write_vector(tmp_path / "far.gpkg", [(1, _box(100, 100, 102, 102))])
    with pytest.raises(InputDataError, match="covers a pixel centre"):
        rasterise_labels(far, image, "cls")


def test_validation_is_carved_by_whole_polygons_per_class():
    """Two classes of adjacent 2x2 fields: 8-connected regions would be one per class, and
    carving would have to keep each class whole; by polygon a share of fields moves."""
    labels = np.zeros((8, 16), np.int32)
    regions = np.zeros((8, 16), np.int64)
    rid = 0
    for r in range(0, 8, 2):
        for c in range(0, 16, 2):
            rid += 1
            labels[r : r + 2, c : c + 2] = 1 if c < 8 else 2
            regions[r : r + 2, c : c + 2] = rid
    by_region = carve_validation([labels], 0.25, seed=3, regions=[regions])
    train, validation = by_region.train[0], by_region.validation[0]
    for i in range(1, rid + 1):
        sides = {bool(train[regions == i].any()), bool(validation[regions == i].any())}
        assert sides != {True}  # never on both sides
    for value in (1, 2):  # stratified: a quarter of each class's 16 fields
        assert (validation == value).sum() == 4 * 4
    np.testing.assert_array_equal(train + validation, labels)
    connected = carve_validation([labels], 0.25, seed=3)
    assert not connected.validation[0].any() and connected.single_region_classes == [1, 2]


def _cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_trains_from_polygons_with_json_progress(tmp_path):
    cube, classes = synthetic_cube(rows=24, cols=30, seed=1)
    write_raster(tmp_path / "scene.tif", cube)
    fields = []
    for r in range(0, 24, 4):
        for c in range(0, 30, 5):
            fields.append((f"class {classes[r, c]}", _box(c + 1, r + 1, c + 4, r + 3)))
    write_vector(tmp_path / "fields.gpkg", fields, kind=ogr.OFTString)
    (tmp_path / "classes.csv").write_text("class 2,meadow,#00ff00\n")
    done = _cli(
        [
            "train",
            "--raster",
            "scene.tif",
            "--train-vector",
            "fields.gpkg",
            "--class-field",
            "cls",
            "--classes",
            "classes.csv",
            "--max-steps",
            "3",
            "--batch-size",
            "16",
            "--output-dir",
            "run",
            "--progress-json",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["fraction"] == 1.0 and events[-1]["loss"] > 0
    assert "whole polygons" in done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["num_classes"] == 3
    ckpt_classes = [c["name"] for c in _checkpoint_classes(tmp_path / "run")]
    assert ckpt_classes == ["meadow", "class 1", "class 3"]
    refused = _cli(["train", "--raster", "scene.tif", "--train-vector", "fields.gpkg"], tmp_path)
    assert refused.returncode != 0 and "needs --class-field" in refused.stderr


def _checkpoint_classes(run):
    import torch

    return torch.load(run / "checkpoint.pt", weights_only=True)["classes"]
