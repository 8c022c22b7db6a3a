"""Training on your own rasters, as a new user meets it: inference of a band subset, the
command line with several tiles, class tables and evaluation with test labels only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    REPO,
    WAVELENGTHS,
    edit_model_metadata,
    enmap_like_items,
    read_raster,
    synthetic_cube,
    write_raster,
    write_tile,
)

from engine.errors import BandMismatchError, ModelMetadataError
from engine.infer.classify import classify_raster
from engine.infer.model import OnnxClassifier
from engine.progress import ProgressBar


def _with_band_list(model, path, numbers, count):
    def edit(values):
        values["bands"]["raster_band_numbers"] = numbers
        values["bands"]["raster_band_count"] = count

    return edit_model_metadata(model, path, edit)


def test_model_reads_the_band_numbers_its_metadata_lists(
    tiny_model, synthetic_scene_files, tmp_path
):
    cube, _ = synthetic_cube()
    junk = np.full((2, *cube.shape[1:]), -32768, np.int16)  # two empty bands, not flagged
    wide = np.concatenate([cube[:2], junk[:1], cube[2:8], junk[1:], cube[8:]])  # 14 bands
    waves = WAVELENGTHS[:2] + [520.0] + WAVELENGTHS[2:8] + [790.0] + WAVELENGTHS[8:]
    raster = write_raster(tmp_path / "wide.tif", wide, nodata=-32768, wavelengths_nm=waves)
    numbers = [1, 2, *range(4, 10), *range(11, 15)]
    model = _with_band_list(tiny_model.onnx, tmp_path / "subset.onnx", numbers, 14)
    assert OnnxClassifier(model).metadata.raster_bands == tuple(numbers)

    classify_raster(raster, model, tmp_path / "wide_classes.tif")
    classify_raster(synthetic_scene_files["raster"], tiny_model.onnx, tmp_path / "classes.tif")
    expected = read_raster(tmp_path / "classes.tif")
    np.testing.assert_array_equal(read_raster(tmp_path / "wide_classes.tif"), expected)

    with pytest.raises(BandMismatchError, match="reads 12 of the 14 bands .* has 12 bands"):
        classify_raster(
            synthetic_scene_files["raster"], model, tmp_path / "x.tif", band_matching="strict"
        )
    # by wavelength (band matching select, the default) the 12 bands are the model's bands
    classify_raster(synthetic_scene_files["raster"], model, tmp_path / "x.tif")
    np.testing.assert_array_equal(read_raster(tmp_path / "x.tif"), expected)
    bad = _with_band_list(tiny_model.onnx, tmp_path / "bad.onnx", numbers[::-1], 14)
    with pytest.raises(ModelMetadataError, match="increasing numbers in 1..14"):
        OnnxClassifier(bad)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _simulate_training(bar, clock, epochs=5, steps=20, first_step=30.0, step=0.5, validation=2.0):
    """Report like the training loop: a slow first step, then even steps, validation after
    each epoch; returns (eta shown at the first line after epoch 1, true time left then)."""
    import re

    total = epochs * steps
    bar.estimate_after(steps / total)
    shown = None
    for s in range(1, total + 1):
        clock.now += first_step if s == 1 else step
        before = bar.stream.getvalue()
        bar.set_progress(s / total)
        line = bar.stream.getvalue()[len(before) :]
        if shown is None and s > steps and "eta" in line and "..." not in line:
            shown = (float(re.search(r"eta\s+([0-9.]+)s", line).group(1)), clock.now)
        if s % steps == 0:
            clock.now += validation
    return shown[0], clock.now - shown[1]


def test_time_left_is_within_half_after_the_first_epoch_and_absent_before():
    import io

    clock = _Clock()
    bar = ProgressBar("train", stream=io.StringIO(), interval=1e9, clock=clock)
    shown, actual = _simulate_training(bar, clock)
    assert actual / 1.5 <= shown <= actual * 1.5, (shown, actual)
    first = bar.stream.getvalue().splitlines()[0]
    assert "eta    ..." in first  # no guess from the slow first step (was 30 s x 100)


def test_log_file_gets_a_line_at_least_every_minute():
    import io

    clock = _Clock()
    bar = ProgressBar("train", stream=io.StringIO(), clock=clock)
    for s in range(1, 2001):  # 20 s per step, 0.05 % per step: 10 % takes 66 minutes
        clock.now += 20.0
        bar.set_progress(s / 20000)
    times = [float(line.split("%")[1].split("s")[0]) for line in bar.stream.getvalue().splitlines()]
    assert len(times) >= 2000 * 20 / 60 - 1
    assert max(np.diff(times)) <= 60.0


# --- the command line, with two EnMAP-like tiles -----------------------------------------


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def tile_folder(tmp_path_factory) -> Path:
    """Two adjacent 12-band tiles like EnMAP L2A ones (band 5 flagged bad and empty,
    wavelength/fwhm/bbl band metadata, scale 1e-4), training labels on both, test labels on
    the second, a tile list and a class table."""
    folder = tmp_path_factory.mktemp("tiles")
    cube, classes = synthetic_cube(rows=24, cols=60, seed=5)
    cube[4] = -32768
    for i in range(2):
        part = np.ascontiguousarray(cube[:, :, 30 * i : 30 * (i + 1)])
        labels = classes[:, 30 * i : 30 * (i + 1)]
        train = np.zeros_like(labels)
        train[1::3, 1::3] = labels[1::3, 1::3]
        path = write_tile(
            folder / f"tile_{i}.tif",
            part,
            col_offset=30 * i,
            nodata=-32768,
            band_items=enmap_like_items(bad={5}),
        )
        from osgeo import gdal

        ds = gdal.Open(str(path), gdal.GA_Update)
        for b in range(12):
            ds.GetRasterBand(b + 1).SetScale(1e-4)
        ds = None
        write_tile(folder / f"tile_{i}_train.tif", train.astype(np.uint8), col_offset=30 * i)
        test = np.where(train == 0, labels, 0)
        write_tile(folder / f"tile_{i}_test.tif", test.astype(np.uint8), col_offset=30 * i)
    (folder / "tiles.csv").write_text(
        "raster,train_labels,test_labels\n"
        "tile_0.tif,tile_0_train.tif,\n"
        "tile_1.tif,tile_1_train.tif,tile_1_test.tif\n"
    )
    (folder / "classes.csv").write_text(
        "value,name,colour\n1,roof,#d7191c\n2,low vegetation,#a6d96a\n3,water,#2b83ba\n"
    )
    return folder


@pytest.fixture(scope="module")
def tile_run(tile_folder) -> tuple[Path, subprocess.CompletedProcess[str]]:
    done = _cli(
        [
            "train",
            "--tiles",
            "tiles.csv",
            "--classes",
            "classes.csv",
            "--max-steps",
            "6",
            "--output-dir",
            "run",
            "--validation-share",
            "0.25",
        ],
        cwd=tile_folder,
    )
    return tile_folder / "run", done


def test_train_on_two_tiles_from_a_csv_logs_what_it_decided(tile_run):
    run, done = tile_run
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert "left out 1 bands flagged bad (bbl): 5" in log
    assert "the model uses 11 of the 12 bands" in log
    assert "class names and colours from classes.csv" in log
    assert "2 rasters, 11 bands, 3 classes" in log
    assert "recipe 'default': 6 steps" in log and "step budget 6" in log
    assert "validation: OA" in done.stdout and "test: OA" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["pixels"] == 640 and 0 < metrics["validation"]["pixels"] < 80
    assert "validation_loss" in metrics["history"][0]
    record = json.loads((run / "config.json").read_text())["training"]
    assert record["rasters"] == 2 and record["bands_left_out"]["flagged_bad"] == [5]
    assert record["train_pixels"] + metrics["validation"]["pixels"] == 2 * 80


def test_exported_model_reads_the_training_bands_and_reports_validation_and_test(
    tile_run, tmp_path
):
    run, done = tile_run
    assert done.returncode == 0, done.stderr
    model = tmp_path / "tiles.onnx"
    exported = _cli(["export", str(run), "--output", str(model), "--model-id", "tiles"], tmp_path)
    assert exported.returncode == 0, exported.stderr
    meta = OnnxClassifier(model).metadata
    assert meta.raster_bands == (1, 2, 3, 4, *range(6, 13)) and meta.raster_band_count == 12
    assert meta.fwhm_nm == tuple(10.0 + b for b in range(12) if b != 4)
    assert [c.name for c in meta.classes] == ["roof", "low vegetation", "water"]
    assert set(meta.metrics) == {"validation", "test"}
    info = _cli(["info", str(model)], tmp_path)
    assert "bands: 11 of 12 raster bands" in info.stdout
    assert "validation OA" in info.stdout and "test OA" in info.stdout
    classes = tmp_path / "classes.tif"
    folder = run.parent
    result = _cli(
        [
            "classify",
            str(folder / "tile_1.tif"),
            "--model",
            str(model),
            "--output",
            str(classes),
            "--quiet",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert set(np.unique(read_raster(classes))) <= {1, 2, 3}


def test_evaluate_needs_only_the_test_labels(tile_run, tmp_path):
    run, done = tile_run
    assert done.returncode == 0, done.stderr
    folder = run.parent
    result = _cli(
        [
            "evaluate",
            str(run),
            "--raster",
            str(folder / "tile_1.tif"),
            "--test-labels",
            str(folder / "tile_1_test.tif"),
            "--json",
            str(tmp_path / "m.json"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "test: OA" in result.stdout and "roof" in result.stdout
    reported = json.loads((run / "metrics.json").read_text())["test"]
    assert (
        json.loads((tmp_path / "m.json").read_text())["confusion_matrix"]
        == reported["confusion_matrix"]
    )


def test_repeated_raster_and_label_options_and_one_line_refusals(tile_folder, tmp_path):
    args = ["train", "--max-steps", "2", "--quiet", "--output-dir", str(tmp_path / "r")]
    for i in range(2):
        args += ["--raster", f"tile_{i}.tif", "--train-labels", f"tile_{i}_train.tif"]
    done = _cli(args + ["--early-stopping", "1", "--validation-share", "0"], tile_folder)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "early stopping needs validation pixels" in done.stderr
    done = _cli(args, tile_folder)
    assert done.returncode == 0, done.stderr
    assert "will show 'Class 1' ... 'Class 3'" in done.stderr
    shifted = write_tile(
        tmp_path / "shifted.tif", read_raster(tile_folder / "tile_0_train.tif"), col_offset=10
    )
    bad = ["train", "--raster", "tile_0.tif", "--train-labels", str(shifted)]
    done = _cli(bad + ["--output-dir", str(tmp_path / "s")], tile_folder)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "offset from tile_0.tif by +10.0 columns" in done.stderr


def test_rasters_without_wavelengths_are_said_to_be_checked_by_band_count(tmp_path):
    cube, classes = synthetic_cube()
    write_raster(tmp_path / "plain.tif", cube)
    write_raster(tmp_path / "labels.tif", classes.astype(np.uint8))
    done = _cli(
        [
            "train",
            "--raster",
            "plain.tif",
            "--train-labels",
            "labels.tif",
            "--max-steps",
            "1",
            "--quiet",
            "--output-dir",
            "r",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "no wavelengths: the model will be checked by band count only" in done.stderr


def test_early_stopping_keeps_the_best_validation_epoch(tile_folder, tmp_path):
    done = _cli(
        [
            "train",
            "--tiles",
            "tiles.csv",
            "--epochs",
            "4",
            "--early-stopping",
            "1",
            "--lr",
            "0.05",
            "--quiet",
            "--output-dir",
            str(tmp_path / "r"),
        ],
        tile_folder,
    )
    assert done.returncode == 0, done.stderr
    history = json.loads((tmp_path / "r" / "metrics.json").read_text())["history"]
    record = json.loads((tmp_path / "r" / "config.json").read_text())["training"]
    losses = [row["validation_loss"] for row in history]
    best = int(np.argmin(losses)) + 1
    assert record["validation"]["best_epoch"] == best
    assert record["validation"]["weights"] == "best epoch"
    if len(history) < 4:  # stopped: one epoch without improvement after the best
        assert len(history) == best + 1 and "early stopping" in record["stopped"]
