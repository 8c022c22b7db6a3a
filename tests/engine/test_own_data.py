"""Training on your own rasters, as a new user meets it: inference of a band subset, the
command line with several tiles, class tables and evaluation with test labels only."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import WAVELENGTHS, edit_model_metadata, read_raster, synthetic_cube, write_raster

from engine.errors import BandMismatchError, ModelMetadataError
from engine.infer.classify import classify_raster
from engine.infer.model import OnnxClassifier


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
