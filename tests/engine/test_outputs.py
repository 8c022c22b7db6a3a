"""Outputs never clobber what a run reads, never collide, and never leave debris behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, read_raster, write_raster
from linear_model import band1_values, write_linear_model
from osgeo import gdal

from engine.data.raster import category_names
from engine.errors import InputDataError, ModelMetadataError, OutputError
from engine.infer import outputs, preflight
from engine.infer.classify import TiledClassifier, classify_raster
from engine.infer.model import OnnxClassifier
from engine.infer.windows import tile_size_for_budget

ROWS, COLS = 10, 12
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and symlinks")


def expected_classes(rows: int = ROWS, cols: int = COLS, num_classes: int = 3) -> np.ndarray:
    return (np.arange(rows * cols).reshape(rows, cols) % num_classes + 1).astype(np.int64)


def known_scene(path: Path, classes: np.ndarray, num_classes: int = 3, **kwargs) -> Path:
    """A 2-band raster on which the linear model must answer ``classes``."""
    band1 = band1_values(classes, num_classes)
    return write_raster(path, np.stack([band1, np.zeros_like(band1)]), **kwargs)


@pytest.fixture(scope="module")
def linear3(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("linear") / "linear3.onnx", 3)


@pytest.fixture()
def scene(tmp_path) -> Path:
    return known_scene(tmp_path / "data.tif", expected_classes())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --- never overwrite what a run reads ---------------------------------------------------


def test_vrt_sources_are_never_overwritten(linear3, scene, tmp_path):
    vrt = tmp_path / "scene.vrt"
    gdal.Translate(str(vrt), str(scene), format="VRT")
    outer = tmp_path / "outer.vrt"  # a VRT whose source is the VRT above
    outer.write_text(vrt.read_text().replace("data.tif", "scene.vrt"))
    assert "scene.vrt" in outer.read_text()
    before = snapshot(tmp_path)
    for raster in (vrt, outer):
        with pytest.raises(OutputError, match=r"overwrite an input file: data.tif, read by input"):
            classify_raster(raster, linear3, tmp_path / "data.tif")
    # scene.tif would write scene.qml, the style QGIS loads for the nested scene.vrt
    with pytest.raises(OutputError, match=r"scene.qml, the QGIS style of input outer.vrt"):
        classify_raster(outer, linear3, tmp_path / "x.tif", confidence=tmp_path / "scene.tif")
    assert snapshot(tmp_path) == before
    # the same VRT classifies fine into a fresh name
    classify_raster(outer, linear3, tmp_path / "classes.tif")
    assert np.array_equal(read_raster(tmp_path / "classes.tif"), expected_classes())


@POSIX
def test_inputs_are_recognised_through_dots_symlinks_and_hard_links(linear3, scene, tmp_path):
    (tmp_path / "sub").mkdir()
    mask = write_raster(tmp_path / "mask.tif", np.ones((ROWS, COLS), np.uint8))
    (tmp_path / "link.tif").symlink_to(scene)
    os.link(scene, tmp_path / "hard.tif")
    os.link(linear3, tmp_path / "model_alias.tif")
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    before = snapshot(tmp_path)
    cases = {
        "sub/../data.tif": "read by input data.tif",
        "link.tif": "read by input data.tif",
        "hard.tif": "read by input data.tif",
        "alias/data.tif": "read by input data.tif",
        "alias/mask.tif": "read by mask mask.tif",
        "model_alias.tif": "the model",
    }
    for output, role in cases.items():
        with pytest.raises(OutputError, match=role):
            classify_raster(scene, linear3, tmp_path / output, mask=mask)
    assert snapshot(tmp_path) == before


def test_an_output_never_replaces_the_style_of_an_input(linear3, tmp_path):
    scene = known_scene(tmp_path / "scene.tif", expected_classes())
    user_style = tmp_path / "scene.qml"
    user_style.write_text("<qgis>the user's own style</qgis>")
    with pytest.raises(OutputError, match=r"scene.qml, the QGIS style of input scene.tif"):
        classify_raster(scene, linear3, tmp_path / "scene.tiff")
    assert user_style.read_text() == "<qgis>the user's own style</qgis>"
    # ENVI: cube.tif beside cube.bsq would style the ENVI layer with the class palette
    envi = known_scene(tmp_path / "cube.bsq", expected_classes(), driver="ENVI")
    with pytest.raises(OutputError, match=r"cube.qml, the QGIS style of input cube.bsq"):
        classify_raster(envi, linear3, tmp_path / "cube.tif")
    assert not (tmp_path / "cube.qml").exists() and not (tmp_path / "scene.tiff").exists()


def test_outputs_are_distinct_after_resolving_paths_and_sidecars(linear3, scene, tmp_path):
    (tmp_path / "sub").mkdir()
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(OutputError, match=r"confidence out.tif and class map out.tif.*distinct"):
        classify_raster(scene, linear3, out, confidence=tmp_path / "sub" / ".." / "out.tif")
    # a.tif and a.tiff would share a.qml: the class map's style would be deleted
    with pytest.raises(OutputError, match=r"would both write a.qml"):
        classify_raster(scene, linear3, tmp_path / "a.tif", probabilities=tmp_path / "a.tiff")
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tif", "out.tif", "sub"]


# --- interrupted runs ---------------------------------------------------------------------


def _slow_cli_run(tmp_path: Path, model: Path) -> tuple[subprocess.Popen, Path, Path]:
    """The engine CLI classifying a 300 x 300 raster one pixel per ONNX Runtime call."""
    raster = known_scene(tmp_path / "big.tif", expected_classes(300, 300))
    results = tmp_path / "results"
    results.mkdir()
    out = results / "map.tif"
    out.write_bytes(b"previous result")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "classify", str(raster), "--model", str(model)]
        + ["--output", str(out), "--probabilities", str(results / "prob.tif")]
        + ["--batch-size", "1", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, results, out


def _wait_for_staging(proc: subprocess.Popen, folder: Path) -> list[Path]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        staged = sorted(folder.glob(".*.partial.tif"))
        if len(staged) == 2:  # class map and probabilities
            time.sleep(0.5)  # the run is now writing pixels
            return staged
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the run never staged its outputs: {proc.communicate()}")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _forged_staging(folder: Path, pid: int, token: str, marker_token: str | None) -> Path:
    """A file named like our staging, with our marker (for ``marker_token``) or none."""
    path = write_raster(folder / f".map.{pid}-{token}.partial.tif", np.zeros((4, 4), np.uint8))
    if marker_token is not None:
        ds = gdal.Open(str(path), gdal.GA_Update)
        ds.SetMetadataItem(
            outputs.STAGING_KEY, outputs._marker(pid, marker_token), outputs.STAGING_DOMAIN
        )
        ds = None
    return path


@POSIX
def test_sigkilled_run_leaves_staging_that_the_next_run_removes(linear3, tmp_path):
    proc, results, out = _slow_cli_run(tmp_path, linear3)
    staged = _wait_for_staging(proc, results)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert all(p.exists() for p in staged) and out.read_bytes() == b"previous result"
    dead, sleeper = (
        _dead_pid(),
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
    )
    try:
        forged_dead = _forged_staging(results, dead, "0000aaaa", "0000aaaa")
        keep = [
            _forged_staging(results, dead, "1111bbbb", None),  # no marker inside
            _forged_staging(results, dead, "2222cccc", "3333dddd"),  # another run's marker
            _forged_staging(results, sleeper.pid, "4444eeee", "4444eeee"),  # still running
        ]
        shutil.copy(staged[1], results / ".map.partial.tif")  # our content, not our name
        keep.append(results / ".map.partial.tif")
        (results / "notes.partial.tif").write_bytes(b"mine")
        classify_raster(tmp_path / "big.tif", linear3, results / "other.tif")
        assert not any(p.exists() for p in staged) and not forged_dead.exists()
        assert all(p.exists() for p in keep)
        assert (results / "notes.partial.tif").read_bytes() == b"mine"
        assert out.read_bytes() == b"previous result"
    finally:
        sleeper.kill()
        sleeper.wait()


@POSIX
def test_sigterm_cleans_up_like_ctrl_c(linear3, tmp_path):
    proc, results, out = _slow_cli_run(tmp_path, linear3)
    _wait_for_staging(proc, results)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert stderr.strip() == "error: stopped by SIGTERM"
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in results.iterdir()) == ["map.tif"]


def test_interrupt_during_the_final_moves_restores_every_previous_file(
    linear3, scene, tmp_path, monkeypatch
):
    paths = [tmp_path / f"{name}.tif" for name in ("map", "conf", "prob")]
    for path in paths:
        path.write_bytes(b"previous " + path.name.encode())
    real_replace = os.replace

    def interrupted_on_prob(src, dst):
        if Path(dst) == paths[2] and ".partial" in Path(src).name:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", interrupted_on_prob)
    with pytest.raises(KeyboardInterrupt):
        classify_raster(scene, linear3, *paths)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix == ".tif"} == {
        "data.tif": scene.read_bytes(),
        **{p.name: b"previous " + p.name.encode() for p in paths},
    }
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- before any work ----------------------------------------------------------------------

DiskUsage = namedtuple("DiskUsage", "total used free")


def test_a_full_destination_is_refused_before_any_work(linear3, scene, tmp_path, monkeypatch):
    sizes = preflight.output_sizes(
        {"class_map": tmp_path / "a.tif", "probabilities": tmp_path / "p.tif"}, 1000, 2000, 300
    )
    mib = 1 << 20
    assert sizes == {  # uncompressed pixels + 1 %, plus 1 MiB per file
        tmp_path / "a.tif": int(1000 * 2000 * 2 * 1.01) + mib,
        tmp_path / "p.tif": int(1000 * 2000 * 4 * 300 * 1.01) + mib,
    }
    need = sum(
        preflight.output_sizes(
            {"class_map": tmp_path / "o.tif", "confidence": tmp_path / "c.tif"}, COLS, ROWS, 3
        ).values()
    )
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _: DiskUsage(10**9, 0, need - 1))
    with pytest.raises(OutputError, match=r"not enough free space in .*: the outputs need up to"):
        classify_raster(scene, linear3, tmp_path / "o.tif", confidence=tmp_path / "c.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tif"]
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _: DiskUsage(10**9, 0, need))
    classify_raster(scene, linear3, tmp_path / "o.tif", confidence=tmp_path / "c.tif")


def test_size_estimate_bounds_the_real_files(tmp_path):
    model = write_linear_model(tmp_path / "m.onnx", 20)
    rng = np.random.default_rng(0)
    classes = rng.integers(1, 21, (64, 64))
    raster = known_scene(tmp_path / "noise.tif", classes, num_classes=20)
    paths = {k: tmp_path / f"{k}.tif" for k in ("class_map", "confidence", "probabilities")}
    classify_raster(raster, model, *paths.values())
    estimate = preflight.output_sizes(paths, 64, 64, 20)
    for path in paths.values():
        assert 0 < path.stat().st_size <= estimate[path]


class Recorder:
    """Feedback that records warnings and progress in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def set_progress(self, fraction: float) -> None:
        self.events.append(("progress", fraction))

    def is_cancelled(self) -> bool:
        return False

    def push_warning(self, message: str) -> None:
        self.events.append(("warning", message))


def test_a_long_run_states_its_estimated_time_first(linear3, scene, tmp_path, monkeypatch):
    quick = Recorder()
    classify_raster(scene, linear3, tmp_path / "a.tif", feedback=quick)
    assert not [e for e in quick.events if e[0] == "warning"]
    monkeypatch.setattr(preflight, "CONSERVATIVE_PIXELS_PER_SECOND", 0.01)
    slow = Recorder()
    classify_raster(scene, linear3, tmp_path / "b.tif", feedback=slow)
    kind, message = slow.events[0]
    assert kind == "warning"
    assert message.startswith(f"{ROWS * COLS} pixels to classify: this may take up to about 3.3 h")


def test_the_estimate_of_a_masked_run_says_it_is_an_upper_bound():
    message = preflight.duration_message(10**8, masked=True)
    assert message.startswith(f"{10**8} pixels in the raster; the mask may leave far fewer")
    assert preflight.duration_message(10**8).startswith(f"{10**8} pixels to classify:")


def test_memory_is_checked_before_any_work(linear3, scene, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "available_memory", lambda: 8 << 20)
    with pytest.raises(InputDataError, match=r"not enough memory: this run needs about \d+ MiB"):
        classify_raster(scene, linear3, tmp_path / "a.tif", batch_size=4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tif"]


def test_tiles_shrink_so_per_class_scores_fit_the_budget():
    budget = 256 << 20
    for classes in (3, 300, 65535):
        edge = tile_size_for_budget(200, 3, budget, classes)
        assert 4 * classes * edge**2 + 12 * 200 * (edge + 6) ** 2 <= budget or edge == 16
    assert tile_size_for_budget(200, 3, budget, 65535) < tile_size_for_budget(200, 3, budget)


# --- class maps beyond 255 classes ----------------------------------------------------------


def test_uint16_class_map_above_255_classes(tmp_path):
    model = write_linear_model(tmp_path / "m300.onnx", 300)
    classes = expected_classes(20, 20, 300)  # every class 1..300 appears
    raster = known_scene(tmp_path / "scene.tif", classes, num_classes=300)
    out, prob = tmp_path / "classes.tif", tmp_path / "prob.tif"
    report = classify_raster(raster, model, out, probabilities=prob)
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16
    assert np.array_equal(read_raster(out), classes)
    assert report.class_counts["Class 300"] == 1 and report.classified_pixels == 400
    assert band.GetColorTable().GetCount() >= 301
    assert band.GetColorTable().GetColorEntry(300)[3] == 255
    names = category_names(out)
    assert len(names) == 301 and names[300] == "Class 300"
    assert out.with_suffix(".qml").read_text().count("<paletteEntry") == 300
    pds = gdal.Open(str(prob))
    assert pds.RasterCount == 300
    assert pds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") == "BAND"
    assert np.allclose(pds.ReadAsArray().sum(axis=0), 1, atol=1e-4)


def test_more_classes_than_a_class_map_holds_is_refused(tmp_path):
    model = OnnxClassifier(write_linear_model(tmp_path / "m.onnx", 65536))
    with pytest.raises(ModelMetadataError, match="65536 classes; a class map holds at most 65535"):
        TiledClassifier(model)


# --- every OS -----------------------------------------------------------------------------


def test_inference_without_sched_getaffinity(
    tiny_model, synthetic_scene_files, tmp_path, monkeypatch
):
    """Windows and macOS have no os.sched_getaffinity: the core count falls back to cpu_count."""
    from engine.system import available_cores

    raster = synthetic_scene_files["raster"]
    reference = tmp_path / "reference.tif"
    classify_raster(raster, tiny_model.onnx, reference)
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert available_cores() == 3
    model = OnnxClassifier(tiny_model.onnx)
    assert model.workers == 3
    out, conf = tmp_path / "portable.tif", tmp_path / "conf.tif"
    report = TiledClassifier(model, tile_size=8).classify(raster, out, confidence=conf)
    assert report.classified_pixels == 24 * 30
    assert np.array_equal(read_raster(out), read_raster(reference))
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cores() == 1


def test_gdal_messages_never_reach_stderr(linear3, scene, tmp_path, capfd):
    class WarningFeedback(Recorder):
        def set_progress(self, fraction: float) -> None:
            gdal.Error(gdal.CE_Warning, 1, "a GDAL warning during the run")

    classify_raster(scene, linear3, tmp_path / "a.tif", feedback=WarningFeedback())
    assert "Warning 1" not in capfd.readouterr().err
