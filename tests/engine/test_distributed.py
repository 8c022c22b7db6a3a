"""Many scenes and large scenes in blocks on Dask: same bits as one process, faults, cancel.

Two local worker processes (one thread each) serve the module. The shipped model on crops
of the bundled scene checks bit-identity; the hand-built linear model (known answer)
makes the fault tests fast.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, REPO, SHIPPED_MODEL, read_raster, write_raster
from linear_model import band1_values, write_linear_model
from osgeo import gdal

from engine.cli import main
from engine.data.raster import category_names
from engine.errors import CancelledError, InputDataError
from engine.infer.classify import TiledClassifier
from engine.infer.distributed import classify_many, expand_inputs, plan_blocks
from engine.infer.model import OnnxClassifier
from engine.infer.outputs import remove_stale_staging
from engine.infer.windows import tile_raster
from engine.system import available_cores

distributed = pytest.importorskip("distributed")

CLASSES = 4
LAYERS = ("classes", "confidence", "probabilities")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> Path:
    return write_linear_model(tmp_path_factory.mktemp("linear") / "linear.onnx", CLASSES)


def expected(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, CLASSES + 1, (rows, cols))


def known_scene(path: Path, classes: np.ndarray) -> Path:
    """A 2-band raster on which the linear model must answer ``classes``."""
    band1 = band1_values(classes, CLASSES)
    return write_raster(path, np.stack([band1, np.zeros_like(band1)]))


def crop(path: Path, col: int, row: int, width: int, height: int) -> Path:
    gdal.Translate(str(path), str(BUNDLED_SCENE), srcWin=[col, row, width, height])
    return path


def single(model: Path, raster: Path, folder: Path, tile_size: int | None = None) -> Path:
    """Today's single-process path, writing the three layers into ``folder``."""
    folder.mkdir()
    stem = folder / raster.stem
    TiledClassifier(OnnxClassifier(model), tile_size=tile_size).classify(
        raster,
        f"{stem}_classes.tif",
        confidence=f"{stem}_confidence.tif",
        probabilities=f"{stem}_probabilities.tif",
    )
    return folder


def assert_same_files(a: Path, b: Path, stem: str) -> None:
    for layer in LAYERS:
        left, right = a / f"{stem}_{layer}.tif", b / f"{stem}_{layer}.tif"
        np.testing.assert_array_equal(read_raster(left), read_raster(right), err_msg=layer)
        ds_left, ds_right = gdal.Open(str(left)), gdal.Open(str(right))
        assert ds_left.GetMetadata() == ds_right.GetMetadata()
        band_left, band_right = ds_left.GetRasterBand(1), ds_right.GetRasterBand(1)
        assert band_left.DataType == band_right.DataType
        assert band_left.GetNoDataValue() == band_right.GetNoDataValue()
        assert ds_left.GetGeoTransform() == ds_right.GetGeoTransform()
    assert (a / f"{stem}_classes.qml").read_text() == (b / f"{stem}_classes.qml").read_text()
    left, right = (class_legend(x / f"{stem}_classes.tif") for x in (a, b))
    assert left == right and left[0][0] == "Corn-notill"


def class_legend(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(name, colour) of each class value of a class map, from 1."""
    names = category_names(path)
    ds = gdal.Open(str(path))
    table = ds.GetRasterBand(1).GetColorTable()
    return [(names[v], table.GetColorEntry(v)) for v in range(1, len(names))]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_blocks_are_whole_tiles_covering_the_raster_once():
    blocks = plan_blocks(45, 37, 8, 20)  # 20 px -> blocks of 2x2 tiles of 8
    assert [(b.col_off, b.row_off) for b in blocks[:4]] == [(0, 0), (16, 0), (32, 0), (0, 16)]
    cover = np.zeros((37, 45), dtype=int)
    for block in blocks:
        cover[block.slices()] += 1
        assert block.col_off % 8 == 0 and block.row_off % 8 == 0
    assert (cover == 1).all()
    tiles = {(t.col_off, t.row_off) for t in tile_raster(45, 37, 8)}
    assert len(tiles) == 6 * 5 and len(blocks) == 3 * 3
    assert plan_blocks(45, 37, 8, 4) == list(tile_raster(45, 37, 8))  # at least one tile


def test_bundled_scene_in_blocks_on_two_workers_equals_one_process(cluster, tmp_path):
    scene = crop(tmp_path / "ip.tif", 60, 70, 26, 22)
    reference = single(SHIPPED_MODEL, scene, tmp_path / "single", tile_size=8)
    out = tmp_path / "many"
    out.mkdir()
    report = classify_many(
        [str(scene)],
        SHIPPED_MODEL,
        out,
        confidence=True,
        probabilities=True,
        scheduler=cluster.scheduler_address,
        tile_size=8,
        block_size=16,  # 2 x 2 tiles: 2 x 2 blocks, on both workers
    )
    assert report.failures == [] and report.blocks == 4 and report.workers == 2
    assert_same_files(reference, out, "ip")
    # the class of a pixel does not depend on the tiling either: one window for all
    whole = single(SHIPPED_MODEL, scene, tmp_path / "whole")
    np.testing.assert_array_equal(
        read_raster(whole / "ip_classes.tif"), read_raster(out / "ip_classes.tif")
    )
    assert hidden(out) == []


def test_three_scenes_at_once(cluster, tmp_path):
    scenes = [crop(tmp_path / f"s{i}.tif", 30 * i, 20 * i, 14 + i, 12) for i in range(3)]
    out = tmp_path / "many"
    out.mkdir()
    report = classify_many(
        [str(tmp_path / "s*.tif")],
        SHIPPED_MODEL,
        out,
        confidence=True,
        probabilities=True,
        scheduler=cluster.scheduler_address,
    )
    assert sorted(s.class_map.name for s in report.scenes) == [
        f"s{i}_classes.tif" for i in range(3)
    ]
    for scene in scenes:
        reference = single(SHIPPED_MODEL, scene, tmp_path / f"ref-{scene.stem}")
        assert_same_files(reference, out, scene.stem)


def test_bad_inputs_are_reported_by_name_and_the_others_finish(cluster, linear, tmp_path):
    for i in range(2):
        known_scene(tmp_path / f"good{i}.tif", expected(20, 24, i))
    write_raster(tmp_path / "one_band.tif", np.zeros((1, 10, 10), np.float32))
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    listing = tmp_path / "list.txt"
    listing.write_text("# scenes\ngood0.tif\none_band.tif\n\nbroken.tif\ngood1.tif\n")
    out = tmp_path / "out"
    out.mkdir()
    report = classify_many(
        [f"@{listing}"], linear, out, scheduler=cluster.scheduler_address, tile_size=8, block_size=8
    )
    assert [Path(f.input).name for f in report.failures] == ["one_band.tif", "broken.tif"]
    assert "expects 2 bands but one_band.tif has 1" in report.failures[0].reason
    assert all("\n" not in f.reason for f in report.failures)
    for i in range(2):
        got = read_raster(out / f"good{i}_classes.tif")
        np.testing.assert_array_equal(got, expected(20, 24, i))
    # one ONNX Runtime session per worker for this model, cores shared by the 2 workers
    with distributed.Client(cluster) as client:
        cached = [x for w in client.run(cached_sessions).values() for x in w]
    mine = [threads for model, tile, threads in cached if (model, tile) == (str(linear), 8)]
    assert 1 <= len(mine) <= 2 and set(mine) == {max(1, available_cores() // 2)}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"good{i}_classes{ext}" for i in range(2) for ext in (".tif", ".tif.aux.xml", ".qml")]
    )


def cached_sessions() -> list[tuple[str, int, int]]:
    """(model, tile size, ONNX Runtime calls in flight) of each classifier this worker keeps."""
    from engine.infer.distributed import _CLASSIFIERS

    return [(spec.model, spec.tile_size, c.model.workers) for spec, c in _CLASSIFIERS.items()]


class KillOnceAfterABlock(distributed.WorkerPlugin):
    """Kills the first worker process to finish a block, once across all workers."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "memory" and "classify_block" in str(key) and self._claim_the_kill():
            os._exit(1)

    def _claim_the_kill(self) -> bool:
        """True for exactly one worker: the marker is created atomically (two may race)."""
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True


def test_a_killed_worker_loses_no_finished_block(cluster, linear, tmp_path):
    truth = expected(40, 48)
    scene = known_scene(tmp_path / "scene.tif", truth)
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "killed"
    with distributed.Client(cluster) as client:
        client.register_plugin(KillOnceAfterABlock(str(marker)), name="kill-once")
        try:
            report = classify_many(
                [str(scene)],
                linear,
                out,
                confidence=True,
                scheduler=cluster.scheduler_address,
                tile_size=8,
                block_size=8,  # 30 blocks
            )
        finally:
            client.unregister_worker_plugin("kill-once")
    assert marker.exists()  # a worker died after finishing a block
    assert report.failures == [] and report.blocks == 30
    assert report.reused_blocks == 1  # its block was saved, found again, not recomputed
    np.testing.assert_array_equal(read_raster(out / "scene_classes.tif"), truth)
    assert (read_raster(out / "scene_confidence.tif") > 0).all()
    assert hidden(out) == []


class CancelAfterProgress:
    def __init__(self) -> None:
        self.calls = 0

    def set_progress(self, fraction: float) -> None:
        self.calls += 1

    def is_cancelled(self) -> bool:
        return self.calls >= 2


def _cancel(cluster, linear, tmp_path, feedback) -> tuple[Path, list[np.ndarray]]:
    """Classify three scenes into a folder holding a user's file, cancelled by ``feedback``."""
    truths = [expected(40, 48, i) for i in range(3)]
    scenes = [known_scene(tmp_path / f"s{i}.tif", t) for i, t in enumerate(truths)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "s0_classes.tif").write_bytes(b"previous result")
    with pytest.raises(CancelledError):
        classify_many(
            [str(s) for s in scenes],
            linear,
            out,
            scheduler=cluster.scheduler_address,
            feedback=feedback,
            tile_size=8,
            block_size=8,  # 30 blocks a scene
        )
    return out, truths


def test_cancel_before_any_block_writes_nothing(cluster, linear, tmp_path):
    cancelled = CancelAfterProgress()
    cancelled.calls = 2  # cancelled from the first check on
    out, _ = _cancel(cluster, linear, tmp_path, cancelled)
    assert sorted(p.name for p in out.iterdir()) == ["s0_classes.tif"]
    assert (out / "s0_classes.tif").read_bytes() == b"previous result"


def test_cancel_mid_run_leaves_only_whole_scenes(cluster, linear, tmp_path):
    """A scene whose last block arrived before the cancel is finished and stays (whole and
    right); every other scene leaves nothing, and the user's file is kept unless its own
    scene finished."""
    out, truths = _cancel(cluster, linear, tmp_path, CancelAfterProgress())
    assert hidden(out) == []
    for i, truth in enumerate(truths):
        classes = out / f"s{i}_classes.tif"
        finished = (out / f"s{i}_classes.qml").exists()
        if finished:
            np.testing.assert_array_equal(read_raster(classes), truth)
        elif i == 0:
            assert classes.read_bytes() == b"previous result"
        else:
            assert not classes.exists()
        extras = {p.name for p in out.glob(f"s{i}_*")} - {classes.name}
        assert extras == ({f"s{i}_classes.qml", f"s{i}_classes.tif.aux.xml"} if finished else set())


def test_inputs_from_globs_and_lists(tmp_path):
    for name in ("b.tif", "a.tif", "c.vrt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("c.vrt\n/vsizip//x.zip/y.tif\n# a comment\n")
    got = expand_inputs(
        [str(tmp_path / "*.tif"), f"@{tmp_path / 'list.txt'}", str(tmp_path / "a.tif")]
    )
    assert got == [str(tmp_path / n) for n in ("a.tif", "b.tif", "c.vrt")] + [
        "/vsizip//x.zip/y.tif"
    ]
    with pytest.raises(InputDataError, match=r"no file matches .*\*\.hdr"):
        expand_inputs([str(tmp_path / "*.hdr")])


def test_cli_many_scenes_on_a_local_cluster(linear, tmp_path, capsys):
    truths = [expected(12, 14, i) for i in range(2)]
    for i, truth in enumerate(truths):
        known_scene(tmp_path / f"s{i}.tif", truth)
    (tmp_path / "bad.tif").write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "classify",
            str(tmp_path / "*.tif"),
            "--model",
            str(linear),
            "--output-dir",
            str(out),
            "--confidence",
            "--workers",
            "2",
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "Dask local cluster: 2 workers" in captured.err
    assert f"error: {tmp_path / 'bad.tif'}:" in captured.err
    assert "2 of 3 scenes classified on 2 Dask workers" in captured.out
    for i, truth in enumerate(truths):
        np.testing.assert_array_equal(read_raster(out / f"s{i}_classes.tif"), truth)
        assert (out / f"s{i}_confidence.tif").exists()


def test_cli_refuses_several_inputs_without_an_output_dir(linear, tmp_path, capsys):
    for i in range(2):
        known_scene(tmp_path / f"s{i}.tif", expected(8, 8, i))
    assert main(["classify", str(tmp_path / "*.tif"), "--output", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err
    assert "2 inputs need --output-dir" in err and err.count("\n") == 1


def test_block_folders_of_a_killed_run_are_removed_by_the_next(tmp_path):
    code = (
        "import os, sys; from pathlib import Path; from engine.infer.outputs import StagedFolder;"
        "f = StagedFolder(Path(sys.argv[1]) / 'scene_classes.tif');"
        "(f.path / 'b000000.npz').write_bytes(b'x'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO)
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".scene_classes.") and left.name.endswith(".blocks")
    foreign = tmp_path / ".other.999999-0badc0de.blocks"  # right name, no marker: not ours
    foreign.mkdir()
    remove_stale_staging(tmp_path)
    assert list(tmp_path.iterdir()) == [foreign]
