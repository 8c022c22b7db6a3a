"""Tiled ONNX classification: layout independence, no-data, formats, outputs, failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    BUNDLED_SCENE,
    REPO,
    WAVELENGTHS,
    read_raster,
    synthetic_cube,
    unwritable_folder,
    write_raster,
)
from osgeo import gdal

from engine.data.raster import category_names
from engine.errors import (
    BandMismatchError,
    CancelledError,
    InputDataError,
    ModelLoadError,
    ModelMetadataError,
    OutputError,
)
from engine.infer.classify import TiledClassifier, classify_raster
from engine.infer.model import OnnxClassifier


class CancelAfter:
    """Feedback that cancels once progress passes a fraction."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.seen: list[float] = []

    def set_progress(self, fraction: float) -> None:
        self.seen.append(fraction)

    def is_cancelled(self) -> bool:
        return bool(self.seen) and self.seen[-1] >= self.fraction


@pytest.fixture(scope="module")
def ip_crop(tmp_path_factory):
    """A 41 x 38 pixel crop of the bundled Indian Pines cube touching two borders."""
    path = tmp_path_factory.mktemp("crop") / "crop.tif"
    gdal.Translate(str(path), str(BUNDLED_SCENE), srcWin=[107, 0, 38, 41])
    return path


def test_class_map_does_not_depend_on_tile_layout(ip_smoke_model, ip_crop, tmp_path):
    model = OnnxClassifier(ip_smoke_model.onnx)
    outputs = {}
    for tile in (5, 16, 64):  # 64 = one window covering the crop
        out = tmp_path / f"t{tile}.tif"
        prob = tmp_path / f"p{tile}.tif"
        TiledClassifier(model, batch_size=64, tile_size=tile).classify(
            ip_crop, out, probabilities=prob
        )
        outputs[tile] = (read_raster(out), read_raster(prob))
    single_map, single_prob = outputs[64]
    assert (single_map > 0).all()
    for tile in (5, 16):
        assert np.array_equal(outputs[tile][0], single_map)
        assert np.allclose(outputs[tile][1], single_prob, atol=1e-6)


def test_class_map_matches_patchwise_prediction(ip_smoke_model, tmp_path):
    """Whole-scene map at the test pixels = the engine's evaluation of the same model."""
    from engine.data.prepared import PreparedScene
    from engine.evaluation import predict_pixels

    model = OnnxClassifier(ip_smoke_model.onnx)
    out = tmp_path / "ip.tif"
    report = classify_raster(BUNDLED_SCENE, model, out)
    assert report.classified_pixels == 145 * 145 and report.nodata_pixels == 0
    scene = ip_smoke_model.scene
    prepared = PreparedScene.from_scene(scene, 7, model.metadata.normalization)
    rows, cols, _ = scene.pixels(scene.test_labels)
    expected = predict_pixels(model.map_logits, prepared, rows, cols)
    assert np.array_equal(read_raster(out)[rows, cols], expected)


def test_outputs_are_styled_georeferenced_and_described(
    tiny_model, synthetic_scene_files, tmp_path
):
    out, conf, prob = tmp_path / "map.tif", tmp_path / "conf.tif", tmp_path / "prob.tif"
    classify_raster(synthetic_scene_files["raster"], tiny_model.onnx, out, conf, prob)
    src = gdal.Open(str(synthetic_scene_files["raster"]))
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == src.GetGeoTransform()
    assert ds.GetProjection() == src.GetProjection()
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert category_names(out)[:4] == ["No data", "Class 1", "Class 2", "Class 3"]
    assert band.GetColorTable().GetCount() >= 4
    assert ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
    assert band.GetBlockSize() == [256, 256]
    assert ds.GetMetadataItem("FACTOFORMER_MODEL_ID") == "tiny"
    assert len(json.loads(ds.GetMetadataItem("FACTOFORMER_CLASSES"))) == 3
    qml = out.with_suffix(".qml").read_text()
    assert qml.count("<paletteEntry") == 3 and 'label="Class 2"' in qml
    probs = read_raster(prob)
    assert probs.shape == (3, 24, 30) and np.allclose(probs.sum(axis=0), 1, atol=1e-5)
    pds = gdal.Open(str(prob))
    assert [pds.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == [
        "Class 1",
        "Class 2",
        "Class 3",
    ]
    assert np.allclose(read_raster(conf), probs.max(axis=0))
    classes = read_raster(out)
    assert np.array_equal(classes, probs.argmax(axis=0) + 1)
    assert not list(tmp_path.glob(".*partial*"))


def test_nodata_nan_and_mask_pixels_get_class_zero(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    cube = cube.astype(np.float32)
    cube[:, 2, 3] = -9999  # band no-data value
    cube[5, 4, 4] = np.nan  # one NaN band
    cube[0, 6, 6] = np.inf
    raster = write_raster(tmp_path / "f.tif", cube, nodata=-9999, wavelengths_nm=WAVELENGTHS)
    mask = np.ones((24, 30), dtype=np.uint8)
    mask[10:12, 10:12] = 0
    mask_path = write_raster(tmp_path / "mask.tif", mask)
    out, conf = tmp_path / "out.tif", tmp_path / "conf.tif"
    report = classify_raster(raster, tiny_model.onnx, out, confidence=conf, mask=mask_path)
    classes, confidence = read_raster(out), read_raster(conf)
    invalid = [(2, 3), (4, 4), (6, 6), (10, 10), (10, 11), (11, 10), (11, 11)]
    for r, c in invalid:
        assert classes[r, c] == 0 and confidence[r, c] == -1
    assert report.nodata_pixels == len(invalid)
    assert (classes > 0).sum() == 24 * 30 - len(invalid)
    assert np.isfinite(confidence).all()


def test_all_nodata_raster_is_refused_and_leaves_nothing(tiny_model, tmp_path):
    cube = np.full((12, 20, 20), -1, dtype=np.int16)
    raster = write_raster(tmp_path / "empty.tif", cube, nodata=-1, wavelengths_nm=WAVELENGTHS)
    out = tmp_path / "out.tif"
    with pytest.raises(InputDataError, match="no valid pixel"):
        classify_raster(raster, tiny_model.onnx, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif"]


@pytest.mark.parametrize("fmt", ["envi-bsq", "envi-bil", "envi-bip", "vrt", "uint16", "float32"])
def test_formats_and_types_give_the_same_map(tiny_model, tmp_path, fmt):
    cube, _ = synthetic_cube()
    reference = tmp_path / "ref.tif"
    write_raster(reference, cube, wavelengths_nm=WAVELENGTHS)
    if fmt.startswith("envi"):
        interleave = [f"INTERLEAVE={fmt[-3:].upper()}"]
        raster = tmp_path / "cube.dat"
        write_raster(raster, cube, wavelengths_nm=WAVELENGTHS, driver="ENVI", options=interleave)
    elif fmt == "vrt":
        raster = tmp_path / "cube.vrt"
        gdal.Translate(str(raster), str(reference), format="VRT")
    else:
        raster = write_raster(tmp_path / f"{fmt}.tif", cube.astype(fmt), wavelengths_nm=WAVELENGTHS)
    classify_raster(reference, tiny_model.onnx, tmp_path / "a.tif")
    classify_raster(raster, tiny_model.onnx, tmp_path / "b.tif")
    assert np.array_equal(read_raster(tmp_path / "a.tif"), read_raster(tmp_path / "b.tif"))


def test_envi_header_wavelengths_are_checked(tiny_model, tmp_path):
    cube, _ = synthetic_cube()
    raster = write_raster(tmp_path / "cube.bsq", cube, driver="ENVI")
    header = tmp_path / "cube.hdr"
    shifted = ", ".join(f"{(w + 30) / 1000:.3f}" for w in WAVELENGTHS)
    header.write_text(
        header.read_text() + f"wavelength units = Micrometers\nwavelength = {{{shifted}}}\n"
    )
    with pytest.raises(BandMismatchError, match=r"band 1 of cube.bsq is at 480.0 nm .* 450.0 nm"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_wrong_band_count_is_refused_before_any_work(tiny_model, tmp_path):
    cube, _ = synthetic_cube(bands=10)
    raster = write_raster(tmp_path / "ten.tif", cube)
    with pytest.raises(BandMismatchError, match="expects 12 bands but ten.tif has 10"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "out.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ten.tif"]


def test_raster_smaller_than_the_patch_is_refused(tiny_model, tmp_path):
    cube, _ = synthetic_cube(rows=5, cols=9)
    raster = write_raster(tmp_path / "tiny.tif", cube, wavelengths_nm=WAVELENGTHS)
    with pytest.raises(InputDataError, match="9x5 pixels.*at least 7x7"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "out.tif")


def test_corrupt_and_bare_models_are_refused(synthetic_scene_files, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError):
        classify_raster(synthetic_scene_files["raster"], corrupt, tmp_path / "out.tif")
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "bare",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
    )
    bare = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(bare))
    with pytest.raises(ModelMetadataError, match="no FactoFormer metadata"):
        classify_raster(synthetic_scene_files["raster"], bare, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_unwritable_or_invalid_destinations_are_refused(
    tiny_model, synthetic_scene_files, tmp_path
):
    raster = synthetic_scene_files["raster"]
    (tmp_path / "folder.tif").mkdir()
    with unwritable_folder(tmp_path) as locked:
        with pytest.raises(OutputError, match="not writable"):
            classify_raster(raster, tiny_model.onnx, locked / "out.tif")
    with pytest.raises(OutputError, match="does not exist"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "missing" / "out.tif")
    with pytest.raises(OutputError, match="GeoTIFF"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "out.png")
    with pytest.raises(OutputError, match="overwrite an input"):
        classify_raster(raster, tiny_model.onnx, raster)
    with pytest.raises(OutputError, match="is a folder"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "folder.tif")
    with pytest.raises(OutputError, match="distinct"):
        classify_raster(raster, tiny_model.onnx, tmp_path / "a.tif", confidence=tmp_path / "a.tif")
    assert not [p for p in tmp_path.glob("*.tif") if p.is_file()]


def test_cancel_midway_leaves_no_output_and_keeps_the_old_file(ip_smoke_model, tmp_path):
    out = tmp_path / "map.tif"
    out.write_bytes(b"previous result")
    conf = tmp_path / "conf.tif"
    model = OnnxClassifier(ip_smoke_model.onnx)
    feedback = CancelAfter(0.3)
    with pytest.raises(CancelledError):
        TiledClassifier(model, tile_size=32).classify(BUNDLED_SCENE, out, conf, feedback=feedback)
    assert 0.3 <= feedback.seen[-1] < 0.6  # stopped soon after the request
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


# The engine CLI in a process whose writes past 64 KiB per file fail with EFBIG, like a
# full disk (SIGXFSZ ignored so the write returns an error instead of killing the process).
CLI_WITH_64_KIB_FILES = (
    "import resource, signal, sys; from engine.cli import main; "
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
    "sys.exit(main(sys.argv[1:]))"
)


def test_disk_full_leaves_no_output_and_keeps_the_old_file(tiny_model, tmp_path):
    cube, _ = synthetic_cube(rows=160, cols=160)
    raster = write_raster(tmp_path / "scene.tif", cube)
    results = tmp_path / "results"
    results.mkdir()
    out = results / "map.tif"
    out.write_bytes(b"previous result")
    proc = subprocess.run(
        [sys.executable, "-c", CLI_WITH_64_KIB_FILES, "classify", str(raster)]
        + ["--model", str(tiny_model.onnx)]
        + ["--output", str(out), "--probabilities", str(results / "prob.tif"), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the class map (a few KiB) fits; the probability stack (300 KiB) does not
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot write") and "prob.tif" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in results.iterdir()) == ["map.tif"]


def test_failed_move_restores_every_previous_file(
    tiny_model, synthetic_scene_files, tmp_path, monkeypatch
):
    """If moving the last output into place fails, the outputs already moved are undone."""
    from engine.infer import outputs

    paths = {name: tmp_path / f"{name}.tif" for name in ("map", "conf", "prob")}
    classify_raster(synthetic_scene_files["raster"], tiny_model.onnx, *paths.values())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {"map.tif", "map.qml", "conf.tif", "prob.tif"} <= set(before)

    real_replace = os.replace

    def replace_failing_on_prob(src, dst):
        if Path(dst) == paths["prob"] and ".partial" in Path(src).name:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace_failing_on_prob)
    with pytest.raises(OutputError, match="nothing was changed"):
        classify_raster(synthetic_scene_files["raster"], tiny_model.onnx, *paths.values())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_progress_is_reported_per_tile_and_reaches_one(tiny_model, synthetic_scene_files, tmp_path):
    feedback = CancelAfter(2.0)  # never cancels
    TiledClassifier(OnnxClassifier(tiny_model.onnx), tile_size=8).classify(
        synthetic_scene_files["raster"], tmp_path / "o.tif", feedback=feedback
    )
    assert len(feedback.seen) >= 12  # 4 x 3 tiles
    assert feedback.seen == sorted(feedback.seen) and feedback.seen[-1] == 1.0


def test_existing_output_is_replaced_with_fresh_sidecars(
    tiny_model, synthetic_scene_files, tmp_path
):
    out = tmp_path / "map.tif"
    out.write_bytes(b"old")
    (tmp_path / "map.tif.aux.xml").write_text("<PAMDataset>stale</PAMDataset>")
    classify_raster(synthetic_scene_files["raster"], tiny_model.onnx, out)
    assert category_names(out)[1] == "Class 1"
    assert "stale" not in (tmp_path / "map.tif.aux.xml").read_text()


def test_cli_classify_reports_errors_in_one_line(tiny_model, tmp_path):
    cube, _ = synthetic_cube(bands=10)
    raster = write_raster(tmp_path / "ten.tif", cube)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "classify",
            str(raster),
            "--model",
            str(tiny_model.onnx),
            "--output",
            str(tmp_path / "out.tif"),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: model tiny expects 12 bands but ten.tif has 10"
