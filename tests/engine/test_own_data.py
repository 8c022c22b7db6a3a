"""Training on your own rasters, as a new user meets it: inference of a band subset, the
command line with several tiles, class tables and evaluation with test labels only."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import WAVELENGTHS, edit_model_metadata, read_raster, synthetic_cube, write_raster

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
        classify_raster(synthetic_scene_files["raster"], model, tmp_path / "x.tif")
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
