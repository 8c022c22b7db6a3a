"""What the engine classifies: physical values, missing data, user masks, ranges, scores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    BUNDLED_SCENE,
    GEOTRANSFORM,
    REPO,
    WAVELENGTHS,
    edit_model_metadata,
    read_raster,
    synthetic_cube,
    write_raster,
    write_scaled,
)
from osgeo import gdal, osr

from engine.data.normalization import PHYSICAL, RAW, MinMaxNormalization, StandardNormalization
from engine.data.raster import _to_nm, band_info, open_raster
from engine.data.scenes import load_raster_scene
from engine.errors import BandMismatchError, InferenceError, InputDataError, ModelMetadataError
from engine.infer.classify import TiledClassifier, classify_raster
from engine.infer.inputs import RangeMonitor
from engine.infer.model import OnnxClassifier, softmax


def _classes(raster, model, tmp_path, name, **kwargs):
    out = tmp_path / f"{name}.tif"
    report = classify_raster(raster, model, out, **kwargs)
    return read_raster(out), report


@pytest.fixture(scope="module")
def ip_crop(tmp_path_factory):
    """A 41 x 38 pixel crop of the bundled Indian Pines cube touching two borders."""
    path = tmp_path_factory.mktemp("crop") / "crop.tif"
    gdal.Translate(str(path), str(BUNDLED_SCENE), srcWin=[107, 0, 38, 41])
    return path


@pytest.fixture(scope="module")
def shipped(shipped_model):
    return OnnxClassifier(shipped_model)


# --- physical values (GDAL scale and offset) -------------------------------------------


def test_new_models_state_physical_values(tiny_model, shipped):
    """Schema-2 files say so (schema-1 files read as raw values: test below)."""
    assert OnnxClassifier(tiny_model.onnx).metadata.input_values == PHYSICAL
    assert shipped.metadata.input_values == PHYSICAL


def test_scaled_raster_is_classified_on_physical_values(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    raw = write_raster(tmp_path / "raw.tif", cube, wavelengths_nm=WAVELENGTHS)
    scaled = write_scaled(tmp_path / "x2.tif", cube, 2, -500, wavelengths_nm=WAVELENGTHS)
    stored = write_raster(tmp_path / "stored.tif", read_raster(scaled), wavelengths_nm=WAVELENGTHS)
    a, report_a = _classes(raw, tiny_model.onnx, tmp_path, "a", probabilities=tmp_path / "pa.tif")
    b, report_b = _classes(
        scaled, tiny_model.onnx, tmp_path, "b", probabilities=tmp_path / "pb.tif"
    )
    c, _ = _classes(stored, tiny_model.onnx, tmp_path, "c", probabilities=tmp_path / "pc.tif")
    pa, pb, pc = (read_raster(tmp_path / f"p{x}.tif") for x in "abc")
    assert np.array_equal(a, b) and np.array_equal(pa, pb)
    assert np.abs(pa - pc).max() > 0.01  # the stored numbers alone would give other scores
    assert report_a.warnings == report_b.warnings == []


def test_training_reads_physical_values(tmp_path, synthetic_scene_files):
    cube, _ = synthetic_cube()
    scaled = write_scaled(tmp_path / "x2.tif", cube, 2, 300)
    scene = load_raster_scene(scaled, synthetic_scene_files["train"])
    assert np.array_equal(scene.cube, np.moveaxis(cube, 0, -1).astype(np.float32))
    norm = MinMaxNormalization.fit(np.moveaxis(scene.cube, -1, 0))
    assert norm.values == PHYSICAL
    assert np.array_equal(norm.minimum, cube.min(axis=(1, 2)).astype(np.float32))


def test_raw_model_ignores_scale_and_says_so(tiny_model, tmp_path):
    """A model whose metadata predates physical units is given the stored numbers."""

    def to_schema_1(values):
        values["schema_version"] = 1
        del values["normalization"]["values"]

    old = edit_model_metadata(tiny_model.onnx, tmp_path / "old.onnx", to_schema_1)
    assert OnnxClassifier(old).metadata.input_values == RAW
    cube, _ = synthetic_cube()
    scaled = write_scaled(tmp_path / "x2.tif", cube, 2, 0, wavelengths_nm=WAVELENGTHS)
    stored = write_raster(tmp_path / "stored.tif", cube * 2, wavelengths_nm=WAVELENGTHS)
    a, report = _classes(scaled, old, tmp_path, "a")
    b, _ = _classes(stored, old, tmp_path, "b")
    assert np.array_equal(a, b)
    assert any("trained on raw values" in w for w in report.warnings)


# --- missing data: no-data, GDAL mask bands, alpha, ENVI bad bands ----------------------


def _with_nodata_pixels(cube, pixels):
    marked = cube.copy()
    for r, c in pixels:
        marked[:, r, c] = -9999
    return marked


MISSING = [(0, 0), (5, 7), (5, 8), (12, 20), (23, 29)]


def test_internal_mask_marks_missing_pixels_like_nodata(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    reference = write_raster(
        tmp_path / "nodata.tif",
        _with_nodata_pixels(cube, MISSING),
        nodata=-9999,
        wavelengths_nm=WAVELENGTHS,
    )
    masked = write_raster(tmp_path / "masked.tif", cube, wavelengths_nm=WAVELENGTHS)
    ds = gdal.Open(str(masked), gdal.GA_Update)
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    try:
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    values = np.full(cube.shape[1:], 255, dtype=np.uint8)
    for r, c in MISSING:
        values[r, c] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(values)
    ds = None
    assert not list(tmp_path.glob("*.msk"))  # the mask is inside the GeoTIFF
    a, report_a = _classes(reference, tiny_model.onnx, tmp_path, "a")
    b, report_b = _classes(masked, tiny_model.onnx, tmp_path, "b")
    assert all(b[r, c] == 0 for r, c in MISSING)
    assert report_b.nodata_pixels == len(MISSING)
    assert np.array_equal(a, b)  # missing data is filled the same way as no-data


def test_alpha_band_is_a_mask_not_a_spectral_band(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    reference = write_raster(
        tmp_path / "nodata.tif",
        _with_nodata_pixels(cube, MISSING),
        nodata=-9999,
        wavelengths_nm=WAVELENGTHS,
    )
    alpha = np.full((1, *cube.shape[1:]), 255, dtype=np.int16)
    for r, c in MISSING:
        alpha[0, r, c] = 0
    path = write_raster(tmp_path / "rgba.tif", np.concatenate([cube, alpha]))
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.GetRasterBand(13).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    assert gdal.Open(str(path)).GetRasterBand(13).GetColorInterpretation() == gdal.GCI_AlphaBand
    assert band_info(open_raster(path)).count == 12
    a, _ = _classes(reference, tiny_model.onnx, tmp_path, "a")
    b, report = _classes(path, tiny_model.onnx, tmp_path, "b")
    assert np.array_equal(a, b) and report.nodata_pixels == len(MISSING)


def test_per_band_mask_marks_missing_pixels(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    base = write_raster(tmp_path / "base.tif", cube, wavelengths_nm=WAVELENGTHS)
    band_mask = np.full(cube.shape[1:], 255, dtype=np.uint8)
    band_mask[5, 7] = 0
    mask_path = write_raster(tmp_path / "band3_mask.tif", band_mask)
    vrt = tmp_path / "perband.vrt"
    gdal.Translate(str(vrt), str(base), format="VRT")
    text = vrt.read_text()
    band3 = text.index('<VRTRasterBand dataType="Int16" band="3"')
    end = text.index("</VRTRasterBand>", band3)
    mask_xml = (
        '<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{mask_path}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></MaskBand>"
    )
    vrt.write_text(text[:end] + mask_xml + text[end:])
    ds = gdal.Open(str(vrt))
    assert ds.GetRasterBand(3).GetMaskFlags() == 0  # a per-band mask
    assert ds.GetRasterBand(1).GetMaskFlags() == gdal.GMF_ALL_VALID
    classes, report = _classes(vrt, tiny_model.onnx, tmp_path, "b")
    assert classes[5, 7] == 0 and report.nodata_pixels == 1


def _envi_with_bbl(path: Path, cube: np.ndarray, bbl: list[int]) -> Path:
    write_raster(path, cube, driver="ENVI")
    header = path.with_suffix(".hdr")
    header.write_text(header.read_text() + "bbl = {" + ", ".join(map(str, bbl)) + "}\n")
    return path


def test_envi_bad_bands_are_left_out(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    junk = np.full((1, *cube.shape[1:]), 32000, dtype=np.int16)
    thirteen = np.concatenate([cube[:4], junk, cube[4:]])
    raster = _envi_with_bbl(tmp_path / "bad5.bsq", thirteen, [1] * 4 + [0] + [1] * 8)
    a, _ = _classes(write_raster(tmp_path / "ref.tif", cube), tiny_model.onnx, tmp_path, "a")
    b, _ = _classes(raster, tiny_model.onnx, tmp_path, "b")
    assert np.array_equal(a, b)
    # training reads the same 12 good bands
    train = write_raster(tmp_path / "train.tif", np.ones(cube.shape[1:], dtype=np.uint8))
    scene = load_raster_scene(raster, train)
    assert np.array_equal(scene.cube, np.moveaxis(cube, 0, -1))
    assert scene.band_names[4] == "Band 6"


def test_a_bad_band_the_model_needs_is_refused_by_name(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    raster = _envi_with_bbl(tmp_path / "bad.bsq", cube, [1] * 6 + [0] + [1] * 5)
    with pytest.raises(BandMismatchError) as exc:
        classify_raster(raster, tiny_model.onnx, tmp_path / "out.tif")
    assert str(exc.value) == (
        "band 7 (Band 7) of bad.bsq is flagged bad in its ENVI header (bbl) but model tiny "
        "needs all 12 bands"
    )
    assert not (tmp_path / "out.tif").exists()


def test_complex_raster_is_refused(tiny_model, tmp_path):
    path = tmp_path / "complex.tif"
    gdal.GetDriverByName("GTiff").Create(str(path), 20, 20, 12, gdal.GDT_CInt16).FlushCache()
    with pytest.raises(
        InputDataError, match=r"^band 1 of complex.tif is complex-valued \(CInt16\)"
    ):
        classify_raster(path, tiny_model.onnx, tmp_path / "out.tif")


# --- the user mask: not classified, still context ----------------------------------------


def test_masking_pixels_never_changes_another_pixels_class(shipped, ip_crop, tmp_path):
    rng = np.random.default_rng(3)
    mask = np.ones((41, 38), dtype=np.uint8)
    rows, cols = rng.integers(0, 41, 25), rng.integers(0, 38, 25)
    mask[rows, cols] = 0
    mask_path = write_raster(tmp_path / "mask.tif", mask, georeferenced=False)
    plain, _ = _classes(ip_crop, shipped, tmp_path, "plain", probabilities=tmp_path / "p0.tif")
    masked, report = _classes(
        ip_crop, shipped, tmp_path, "masked", mask=mask_path, probabilities=tmp_path / "p1.tif"
    )
    assert report.nodata_pixels == (mask == 0).sum()
    assert (masked[mask == 0] == 0).all()
    assert np.array_equal(masked[mask == 1], plain[mask == 1])
    keep = np.broadcast_to(mask == 1, (16, 41, 38))
    p0, p1 = read_raster(tmp_path / "p0.tif"), read_raster(tmp_path / "p1.tif")
    assert np.array_equal(p0[keep], p1[keep])
    assert (p1[~keep] == -1).all()


def test_missing_pixels_are_filled_in_their_neighbours_patches(shipped, ip_crop, tmp_path):
    """Contrast with the mask: a pixel whose data is missing is not context."""
    cube = read_raster(ip_crop).astype(np.float32)
    cube[:, 20, 19] = np.nan
    raster = write_raster(tmp_path / "hole.tif", cube, georeferenced=False)
    norm = shipped.metadata.normalization
    expected = norm.apply(read_raster(ip_crop), band_axis=0)
    expected[:, 20, 19] = norm.fill
    padded = np.pad(expected, ((0, 0), (3, 3), (3, 3)), mode="symmetric")
    neighbours = [(r, c) for r in range(17, 24) for c in range(16, 23) if (r, c) != (20, 19)]
    patches = np.stack([padded[:, r : r + 7, c : c + 7] for r, c in neighbours])
    want = softmax(shipped.logits(patches)).argmax(axis=1) + 1
    classes, _ = _classes(raster, shipped, tmp_path, "hole-classes")
    assert classes[20, 19] == 0
    assert [classes[r, c] for r, c in neighbours] == want.tolist()


# --- tiling: no-data and masked pixels in the halos, several batch sizes -----------------


def test_tiling_and_batching_with_missing_and_masked_pixels(shipped, ip_crop, tmp_path):
    """Every layout equals a whole-scene computation built with np.pad (independent oracle)."""
    raw = read_raster(ip_crop).astype(np.float32)
    cube = raw.copy()
    missing = [(4, 4), (4, 5), (15, 16), (16, 15), (31, 10), (0, 37)]  # near 5/16 tile edges
    for r, c in missing:
        cube[:, r, c] = -1
    cube[7, 9, 31] = np.nan
    raster = write_raster(tmp_path / "holes.tif", cube, nodata=-1, georeferenced=False)
    mask = np.ones((41, 38), dtype=np.uint8)
    masked = [(5, 4), (10, 10), (15, 15), (16, 16), (32, 31), (40, 0)]
    for r, c in masked:
        mask[r, c] = 0
    mask_path = write_raster(tmp_path / "mask.tif", mask, georeferenced=False)

    norm = shipped.metadata.normalization
    normalized = norm.apply(raw, band_axis=0)
    gone = missing + [(9, 31)]
    for r, c in gone:
        normalized[:, r, c] = norm.fill
    padded = np.pad(normalized, ((0, 0), (3, 3), (3, 3)), mode="symmetric")
    expected = np.zeros((41, 38), dtype=np.uint16)
    targets = [(r, c) for r in range(41) for c in range(38) if (r, c) not in gone + masked]
    patches = np.stack([padded[:, r : r + 7, c : c + 7] for r, c in targets])
    logits = np.concatenate(
        [shipped.logits(patches[i : i + 256]) for i in range(0, len(targets), 256)]
    )
    for (r, c), value in zip(targets, logits.argmax(axis=1) + 1, strict=True):
        expected[r, c] = value

    for tile, batch in ((5, 1), (16, 7), (64, 64)):
        out = tmp_path / f"t{tile}-b{batch}.tif"
        TiledClassifier(shipped, batch_size=batch, tile_size=tile).classify(
            raster, out, mask=mask_path
        )
        assert np.array_equal(read_raster(out), expected), (tile, batch)


# --- normalisation, wavelengths ----------------------------------------------------------


def test_band_whose_max_equals_its_min_is_only_shifted():
    cube = np.random.default_rng(0).integers(100, 5000, (4, 6, 7)).astype(np.int16)
    cube[2] = 1234
    norm = MinMaxNormalization.fit(cube)
    assert norm.minimum[2] == norm.maximum[2] == 1234 and norm.fill[2] == 0
    out = norm.apply(cube, band_axis=0)
    assert np.isfinite(out).all() and (out[2] == 0).all()
    other = cube.copy()
    other[2] = 1240
    assert (norm.apply(other, band_axis=0)[2] == 6).all()  # (1240 - 1234) / 1
    span0 = float(cube[0].max() - cube[0].min())
    assert np.allclose(out[0], (cube[0] - cube[0].min()) / span0)


def test_wavelength_units_and_tolerance(tiny_model, tmp_path):
    assert _to_nm(0.45, "Micrometers") == pytest.approx(450)
    assert _to_nm(0.45, None) == pytest.approx(450)  # unitless small values are micrometres
    assert _to_nm(450.0, None) == 450.0
    assert _to_nm(450.0, "Nanometers") == 450.0
    cube, _ = synthetic_cube()
    reference, _ = _classes(
        write_raster(tmp_path / "ref.tif", cube), tiny_model.onnx, tmp_path, "r"
    )
    for shift_nm, accepted in ((4.9, True), (-4.9, True), (5.2, False)):
        raster = write_raster(tmp_path / f"s{shift_nm}.bsq", cube, driver="ENVI")
        header = raster.with_suffix(".hdr")
        microns = ", ".join(f"{(w + shift_nm) / 1000:.5f}" for w in WAVELENGTHS)
        header.write_text(
            header.read_text() + f"wavelength units = Micrometers\nwavelength = {{{microns}}}\n"
        )
        assert band_info(open_raster(raster)).wavelengths_nm[0] == pytest.approx(450 + shift_nm)
        if accepted:
            classes, _ = _classes(raster, tiny_model.onnx, tmp_path, f"o{shift_nm}")
            assert np.array_equal(classes, reference)
        else:
            with pytest.raises(BandMismatchError, match="tolerance 5 nm"):
                classify_raster(raster, tiny_model.onnx, tmp_path / "never.tif")


# --- non-finite statistics and scores ----------------------------------------------------


def test_non_finite_statistics_are_refused_on_load(tiny_model, tmp_path):
    def nan_minimum(values):
        values["normalization"]["minimum"][3] = float("nan")

    def inf_maximum(values):
        values["normalization"]["maximum"][0] = float("inf")

    for edit, what in ((nan_minimum, "minimum of band 4"), (inf_maximum, "maximum of band 1")):
        path = edit_model_metadata(tiny_model.onnx, tmp_path / "bad.onnx", edit)
        with pytest.raises(ModelMetadataError, match=f"normalisation {what} is not finite") as exc:
            OnnxClassifier(path)
        assert "\n" not in str(exc.value)


def _model_with_log_scores(tiny_model, path: Path) -> Path:
    """A real ONNX model (tiny's metadata) whose scores are log(mean of bands 1-3 of the patch):
    NaN wherever the normalised input is negative, i.e. below the training minimum."""
    import json

    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["patches"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("Slice", ["mean", "start", "stop", "axis"], ["first"]),
            helper.make_node("Log", ["first"], ["logits"]),
        ],
        "log-scores",
        [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["batch", 12, 7, 7])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor("start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("stop", TensorProto.INT64, [1], [3]),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    tiny = onnx.load(str(tiny_model.onnx))
    for prop in tiny.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    assert json.loads(dict((p.key, p.value) for p in tiny.metadata_props)["bands"])["count"] == 12
    onnx.save(model, str(path))
    return path


def test_non_finite_scores_fail_the_run_instead_of_becoming_class_1(tiny_model, tmp_path):
    model = _model_with_log_scores(tiny_model, tmp_path / "log.onnx")
    cube, _ = synthetic_cube()
    fine, _ = _classes(write_raster(tmp_path / "ok.tif", cube), model, tmp_path, "ok-classes")
    assert (fine > 0).all()
    dark = cube.copy()
    dark[:, 10:17, 20:27] = 0  # below the training minimum: log(negative) = NaN
    raster = write_raster(tmp_path / "dark.tif", dark)
    with pytest.raises(
        InferenceError, match=r"non-finite scores .* for pixel \(\d+, \d+\) of dark"
    ):
        classify_raster(raster, model, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "classify", str(raster), "--model", str(model)]
        + ["--output", str(tmp_path / "out.tif"), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: model tiny gave non-finite scores")
    assert len(proc.stderr.strip().splitlines()) == 1


# --- values far outside the training range ------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["8-bit", "reflectance"],
)
def test_out_of_range_input_is_warned_with_numbers(tiny_model, tmp_path, kind):
    cube, _ = synthetic_cube()
    if kind == "8-bit":
        data = (cube // 20).astype(np.uint8)
    else:
        data = (cube / 10000).astype(np.float32)
    raster = write_raster(tmp_path / f"{kind}.tif", data)
    _, report = _classes(raster, tiny_model.onnx, tmp_path, "o")
    assert len(report.warnings) == 1
    message = report.warnings[0]
    assert message.startswith(f"100% of the 720 valid pixels of {kind}.tif")
    lo, hi = float(data.min()), float(data.max())
    assert f"input values {lo:g} to {hi:g}" in message
    norm = OnnxClassifier(tiny_model.onnx).metadata.normalization
    assert f"training {norm.minimum.min():g} to {norm.maximum.max():g}" in message


@pytest.mark.parametrize("normalization", [MinMaxNormalization, StandardNormalization])
def test_range_check_is_the_same_for_either_normalisation(normalization):
    training = np.random.default_rng(2).uniform(1000, 3000, (6, 10, 10)).astype(np.float32)
    norm = normalization.fit(training)
    for values, far in ((training, 0), (training / 10000, 100), (training * 1.2, 0)):
        monitor = RangeMonitor(norm, "m", "r.tif")
        monitor.add(values, norm.apply(values), np.ones((10, 10), bool))
        assert monitor.counts()[:2] == (100, far)


def test_in_range_input_gives_no_warning_and_cli_prints_warnings(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    _, report = _classes(write_raster(tmp_path / "ok.tif", cube), tiny_model.onnx, tmp_path, "a")
    assert report.warnings == []
    raster = write_raster(tmp_path / "byte.tif", (cube // 20).astype(np.uint8))
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "classify", str(raster), "--model", str(tiny_model.onnx)]
        + ["--output", str(tmp_path / "out.tif"), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if "far outside" in line]
    assert len(warnings) == 1 and "input values" in warnings[0]


# --- the user mask's shape and grid -------------------------------------------------------


def test_mask_must_be_one_band_on_the_rasters_grid(tiny_model, synthetic_scene_files, tmp_path):
    raster = synthetic_scene_files["raster"]
    ones = np.ones((24, 30), dtype=np.uint8)
    two = write_raster(tmp_path / "two.tif", np.stack([ones, ones]))
    with pytest.raises(InputDataError, match="^mask two.tif has 2 bands; a mask needs exactly 1"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "o.tif", mask=two)

    def shifted(name, dx_pixels, epsg=32633):
        path = write_raster(tmp_path / name, ones)
        ds = gdal.Open(str(path), gdal.GA_Update)
        gt = list(GEOTRANSFORM)
        gt[0] += dx_pixels * gt[1]
        ds.SetGeoTransform(gt)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
        ds = None
        return path

    with pytest.raises(InputDataError, match=r"another CRS \(EPSG:32632\) than scene.tif"):
        classify_raster(
            raster, tiny_model.onnx, tmp_path / "o.tif", mask=shifted("c.tif", 0, 32632)
        )
    with pytest.raises(InputDataError, match="not on the grid of scene.tif.*1.0 pixels off"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "o.tif", mask=shifted("s.tif", 1))
    assert not (tmp_path / "o.tif").exists()
    for aligned in (
        shifted("near.tif", 0.3),
        write_raster(tmp_path / "bare.tif", ones, georeferenced=False),
    ):
        report = classify_raster(raster, tiny_model.onnx, tmp_path / "o.tif", mask=aligned)
        assert report.nodata_pixels == 0
