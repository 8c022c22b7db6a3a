"""Accuracy assessment: hand-computed figures, Olofsson et al. 2014's example, reports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import GEOTRANSFORM, REPO, write_raster
from osgeo import gdal, ogr, osr

from engine.assessment import assess, stratified_estimate
from engine.assessment_report import write_report
from engine.errors import InputDataError, OutputError
from engine.metrics import classification_metrics

# (map, reference) pairs of the labelled pixels: map\ref  A  B  C
#                                               A       5  1  0
#                                               B       2  3  1
#                                               C       0  0  4   + one C left without class
PAIRS = [(1, 1)] * 5 + [(1, 2)] + [(2, 1)] * 2 + [(2, 2)] * 3 + [(2, 3)] + [(3, 3)] * 4
PAIRS += [(0, 3)]


def _hand_case(tmp_path, names=True):
    """A 5x8 map and reference holding PAIRS; the other 23 pixels: map 1 (10) and 2 (13)."""
    pairs = np.array(PAIRS + [(1, 0)] * 10 + [(2, 0)] * 13, dtype=np.uint8)
    classes = pairs[:, 0].reshape(5, 8)
    reference = pairs[:, 1].reshape(5, 8)
    map_path = write_raster(tmp_path / "classes.tif", classes)
    if names:
        ds = gdal.Open(str(map_path), gdal.GA_Update)
        band = ds.GetRasterBand(1)
        table = gdal.ColorTable()
        for v, rgb in enumerate([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            table.SetColorEntry(v, (*rgb, 255))
        band.SetRasterColorTable(table)  # first: GTiff drops PAM names set before it
        band.SetRasterCategoryNames(["No data", "Corn", "Grass", "Woods"])
        band = ds = None
    return map_path, write_raster(tmp_path / "reference.tif", reference), classes, reference


def test_hand_computed_confusion_figures(tmp_path):
    map_path, ref_path, classes, reference = _hand_case(tmp_path)
    a = assess(map_path, ref_path)
    assert a.values == (1, 2, 3) and a.names == ("Corn", "Grass", "Woods")
    assert a.colors == ("#ff0000", "#00ff00", "#0000ff")
    assert a.counts.tolist() == [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    assert a.unclassified.tolist() == [0, 0, 1]
    assert a.total == 17
    assert a.overall_accuracy == pytest.approx(12 / 17)
    # producer's: diagonal / reference totals (7, 4, 6, the unclassified C included)
    assert a.producers_accuracy == pytest.approx([5 / 7, 3 / 4, 4 / 6])
    assert a.users_accuracy == pytest.approx([5 / 6, 3 / 6, 4 / 4])
    assert a.average_accuracy == pytest.approx((5 / 7 + 3 / 4 + 4 / 6) / 3)
    # kappa: p_e = (6*7 + 6*4 + 4*6) / 17^2 = 90/289 -> (204 - 90) / (289 - 90)
    assert a.kappa == pytest.approx(114 / 199)
    # F1 = 2 n_ii / (row total + column total)
    assert a.f1 == pytest.approx([10 / 13, 6 / 10, 8 / 10])
    assert a.mapped.tolist() == [16, 19, 4]
    assert a.pixel_area_ha == pytest.approx(0.09)  # 30 m x 30 m in EPSG:32633
    assert a.mapped_area_ha == pytest.approx([1.44, 1.71, 0.36])
    # the same pixels through engine.metrics
    m = classification_metrics(reference, classes, 3)
    assert a.overall_accuracy == m.overall_accuracy
    assert a.kappa == pytest.approx(m.kappa, abs=1e-12)
    assert a.average_accuracy == pytest.approx(m.average_accuracy, abs=1e-12)


def test_area_adjusted_figures_by_hand(tmp_path):
    map_path, ref_path, _, _ = _hand_case(tmp_path)
    s = assess(map_path, ref_path).stratified
    w = np.array([16, 19, 4]) / 39  # mapped proportions
    p = np.array([[5 / 6, 1 / 6, 0], [2 / 6, 3 / 6, 1 / 6], [0, 0, 1]]) * w[:, None]
    assert s.proportions == pytest.approx(p)
    assert s.overall_accuracy == pytest.approx(w[0] * 5 / 6 + w[1] * 3 / 6 + w[2])
    assert s.producers_accuracy[0] == pytest.approx(w[0] * 5 / 6 / (w[0] * 5 / 6 + w[1] * 2 / 6))
    assert s.area_proportion[2] == pytest.approx(w[1] / 6 + w[2])


def test_olofsson_2014_worked_example():
    """Olofsson et al. 2014 (RSE 148), section 5: 30 m pixels, four strata."""
    counts = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    mapped = np.array([200_000, 150_000, 3_200_000, 6_450_000])
    s = stratified_estimate(counts, mapped)
    hectares = mapped.sum() * 0.09
    # published: deforestation 21,158 ha +- 6,158 ha, UA 0.88 +- 0.07, PA 0.75 +- 0.21; OA 0.95
    assert s.area_proportion[0] * hectares == pytest.approx(21_158, abs=1)
    assert s.area_proportion_ci[0] * hectares == pytest.approx(6_158, abs=1)
    assert round(s.overall_accuracy, 2) == 0.95
    assert round(s.users_accuracy[0], 2) == 0.88 and round(s.users_accuracy_ci[0], 2) == 0.07
    assert round(s.producers_accuracy[0], 2) == 0.75
    assert round(s.producers_accuracy_ci[0], 2) == 0.21
    # the same by hand: W = (0.02, 0.015, 0.32, 0.645)
    p_11, p_21, p_31, p_41 = 0.02 * 66 / 75, 0.0, 0.32 * 1 / 165, 0.645 * 2 / 325
    assert s.producers_accuracy[0] == pytest.approx(p_11 / (p_11 + p_21 + p_31 + p_41))
    oa = 0.02 * 66 / 75 + 0.015 * 55 / 75 + 0.32 * 153 / 165 + 0.645 * 313 / 325
    assert s.overall_accuracy == pytest.approx(oa)
    var_oa = sum(
        w**2 * u * (1 - u) / (n - 1)
        for w, u, n in [
            (0.02, 66 / 75, 75),
            (0.015, 55 / 75, 75),
            (0.32, 153 / 165, 165),
            (0.645, 313 / 325, 325),
        ]
    )
    assert s.overall_accuracy_ci == pytest.approx(1.96 * var_oa**0.5, rel=1e-4)
    # eq. 7 for the PA of deforestation, mapped pixel counts N_i. for the weights
    n_j = p_11 + p_21 + p_31 + p_41  # estimated deforestation proportion
    pa = p_11 / n_j
    own = 0.02**2 * (66 / 75) * (9 / 75) / 74
    others = 0.32**2 * (1 / 165) * (164 / 165) / 164 + 0.645**2 * (2 / 325) * (323 / 325) / 324
    var_pa = ((1 - pa) ** 2 * own + pa**2 * others) / n_j**2
    assert s.producers_accuracy_ci[0] == pytest.approx(1.96 * var_pa**0.5, rel=1e-4)


def test_reports_are_complete_and_self_contained(tmp_path):
    map_path, ref_path, _, _ = _hand_case(tmp_path)
    html, csv_path, json_path = write_report(assess(map_path, ref_path), tmp_path / "r.html")
    text = html.read_text(encoding="utf-8")
    assert "Corn" in text and "How to read this" in text and "#ff0000" in text
    assert "http" not in text.replace("http://www.w3", "") and "<script" not in text
    figures = json.loads(json_path.read_text())
    assert figures["overall_accuracy"] == pytest.approx(12 / 17)
    assert figures["classes"][0]["mapped_area_ha"] == pytest.approx(1.44)
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "map \\ reference,Corn,Grass,Woods,total"
    assert rows[1] == "Corn,5,1,0,6"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["classes.tif", "classes.tif.aux.xml", "reference.tif", "r.html", "r.csv", "r.json"]
    )


def test_report_never_replaces_an_input(tmp_path):
    map_path, ref_path, _, _ = _hand_case(tmp_path)
    vector = tmp_path / "reference.json"  # e.g. a GeoJSON reference beside the report
    vector.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(OutputError, match="overwrite an input file: reference.json"):
        write_report(assess(map_path, ref_path), tmp_path / "reference.html", [vector])
    assert vector.read_text().startswith('{"type"')
    assert not (tmp_path / "reference.html").exists()


def test_grid_must_match_within_half_a_pixel(tmp_path):
    map_path, ref_path, _, reference = _hand_case(tmp_path)
    ds = gdal.Open(str(ref_path), gdal.GA_Update)
    ds.SetGeoTransform((GEOTRANSFORM[0] + 10, *GEOTRANSFORM[1:]))  # a third of a pixel
    ds = None
    assert assess(map_path, ref_path).total == 17
    ds = gdal.Open(str(ref_path), gdal.GA_Update)
    ds.SetGeoTransform((GEOTRANSFORM[0] + 30, *GEOTRANSFORM[1:]))
    ds = None
    with pytest.raises(InputDataError, match="not on the class map's grid"):
        assess(map_path, ref_path)
    other = write_raster(tmp_path / "other.tif", reference)
    ds = gdal.Open(str(other), gdal.GA_Update)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32634)
    ds.SetProjection(srs.ExportToWkt())
    ds = None
    with pytest.raises(InputDataError, match="different CRS"):
        assess(map_path, other)


def _pixel_polygons(path, reference, field_type, value_of):
    """One square polygon per labelled pixel of ``reference`` (EPSG:32633)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("reference", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("cls", field_type))
    x0, dx, _, y0, _, dy = GEOTRANSFORM
    for r, c in zip(*np.nonzero(reference), strict=True):
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in [(c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1), (c, r)]:
            ring.AddPoint_2D(x0 + x * dx, y0 + y * dy)
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(ring)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("cls", value_of(int(reference[r, c])))
        feature.SetGeometry(poly)
        layer.CreateFeature(feature)
    ds = None
    return path


def test_vector_reference_with_values_or_names(tmp_path):
    map_path, ref_path, _, reference = _hand_case(tmp_path)
    expected = assess(map_path, ref_path).counts.tolist()
    numbers = _pixel_polygons(tmp_path / "n.gpkg", reference, ogr.OFTInteger, int)
    assert assess(map_path, numbers, "cls").counts.tolist() == expected
    names = ["", "corn", "Grass", "WOODS"]
    texts = _pixel_polygons(tmp_path / "t.gpkg", reference, ogr.OFTString, names.__getitem__)
    assert assess(map_path, texts, "cls").counts.tolist() == expected
    wrong = _pixel_polygons(tmp_path / "w.gpkg", reference, ogr.OFTString, lambda v: "Maize")
    with pytest.raises(InputDataError, match="'Maize' is not a class name"):
        assess(map_path, wrong, "cls")
    with pytest.raises(InputDataError, match="no field 'kind'"):
        assess(map_path, numbers, "kind")


def test_points_in_another_crs_and_numbers_as_text(tmp_path):
    """Points in WGS 84 land in the pixel under them; "2" in a text field is class 2."""
    map_path, ref_path, _, reference = _hand_case(tmp_path)
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32633)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "p.gpkg"))
    layer = ds.CreateLayer("points", wgs84, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("cls", ogr.OFTString))
    x0, dx, _, y0, _, dy = GEOTRANSFORM
    for r, c in zip(*np.nonzero(reference), strict=True):
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(x0 + (c + 0.5) * dx, y0 + (r + 0.5) * dy)
        point.Transform(to_wgs84)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("cls", str(int(reference[r, c])))
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    ds = None
    points = assess(map_path, tmp_path / "p.gpkg", "cls")
    assert points.counts.tolist() == assess(map_path, ref_path).counts.tolist()


def test_cli_writes_the_report(tmp_path):
    map_path, ref_path, _, _ = _hand_case(tmp_path)
    out = tmp_path / "report.html"
    args = [str(map_path), "--reference", str(ref_path), "--output", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "assess", *args], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "OA 70.59" in proc.stdout  # 12 / 17
    assert json.loads(out.with_suffix(".json").read_text())["reference_pixels"] == 17
    bad = [str(map_path), "--reference", str(tmp_path / "none.tif"), "--output", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "assess", *bad], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
