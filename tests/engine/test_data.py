"""Scenes, labels, normalisation and patch extraction on real files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_shared
from helpers import SHARED_DATA, WAVELENGTHS, synthetic_cube, write_raster

from engine.data.classes import INDIAN_PINES_CLASSES, INDIAN_PINES_GIC_TO_SPLIT
from engine.data.normalization import (
    MinMaxNormalization,
    StandardNormalization,
    normalization_from_dict,
)
from engine.data.patches import PatchExtractor, pad_symmetric
from engine.data.prepared import PreparedScene
from engine.data.raster import band_info, category_names, open_raster
from engine.data.scenes import (
    _load_mat,
    load_houston2013,
    load_indian_pines,
    load_pavia_university,
    load_raster_scene,
)
from engine.errors import DatasetNotFoundError, InputDataError, RasterReadError


@pytest.fixture(scope="module")
def bundled():
    return load_indian_pines()


def test_bundled_indian_pines_has_the_fixed_split(bundled):
    assert bundled.cube.shape == (145, 145, 200)
    assert bundled.cube.dtype == np.int16
    train = np.bincount(bundled.train_labels.ravel(), minlength=17)[1:]
    test = np.bincount(bundled.test_labels.ravel(), minlength=17)[1:]
    assert train.tolist() == [50] * 13 + [15] * 3
    assert test.sum() == 9671 and test[0] == 1384 and test[15] == 5
    assert not ((bundled.train_labels > 0) & (bundled.test_labels > 0)).any()
    assert [c.name for c in bundled.classes][:2] == ["Corn-notill", "Corn-mintill"]
    assert bundled.band_names[103] == "AVIRIS channel 109"  # channels 104-108 removed


def test_bundled_rasters_carry_names_colours_and_no_nodata():
    from helpers import BUNDLED_SCENE, BUNDLED_TEST

    info = band_info(open_raster(BUNDLED_SCENE))
    assert info.count == 200 and all(v is None for v in info.nodata)
    assert category_names(BUNDLED_TEST)[1:] == [c.name for c in INDIAN_PINES_CLASSES]
    ds = open_raster(BUNDLED_TEST)
    band = ds.GetRasterBand(1)
    assert band.GetColorTable().GetColorEntry(1)[:3] == INDIAN_PINES_CLASSES[0].rgb()


@requires_shared
def test_bundled_scene_equals_the_shared_benchmark_files(bundled):
    shared = load_indian_pines(SHARED_DATA)
    assert np.array_equal(shared.cube.astype(np.int32), bundled.cube.astype(np.int32))
    assert np.array_equal(shared.train_labels, bundled.train_labels)
    assert np.array_equal(shared.test_labels, bundled.test_labels)


@requires_shared
def test_split_class_order_agrees_with_gic_ground_truth(bundled):
    gic = _load_mat(SHARED_DATA / "indian_pines" / "Indian_pines_gt.mat", "indian_pines_gt")
    mapped = np.vectorize(lambda v: INDIAN_PINES_GIC_TO_SPLIT.get(v, 0))(gic)
    split = bundled.train_labels + bundled.test_labels
    both = (split > 0) & (mapped > 0)
    assert both.sum() > 10_000
    assert np.array_equal(split[both], mapped[both])


@requires_shared
def test_pavia_and_houston_need_their_cube(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Pavia University cube"):
        load_pavia_university(SHARED_DATA, tmp_path / "PaviaU.mat")
    with pytest.raises(DatasetNotFoundError, match="Houston 2013"):
        load_houston2013(SHARED_DATA, tmp_path / "houston.tif")
    tr = _load_mat(SHARED_DATA / "pavia_university" / "TRpaviaU.mat", "TRpaviaU")
    ts = _load_mat(SHARED_DATA / "houston2013" / "TSLabel.mat", "TSLabel")
    assert (tr > 0).sum() == 3921 and (ts > 0).sum() == 12197


def test_pavia_loader_reads_a_gdal_cube(tmp_path):
    if not (SHARED_DATA / "pavia_university").is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (only in the development checkout)")
    cube = np.ones((103, 610, 340), dtype=np.int16)
    scene = load_pavia_university(SHARED_DATA, write_raster(tmp_path / "pu.tif", cube))
    assert scene.cube.shape == (610, 340, 103) and scene.num_classes == 9


def test_raster_scene_reads_wavelengths_class_names_and_nodata(tmp_path):
    cube, classes = synthetic_cube()
    cube[:, 0, 0] = -999
    raster = write_raster(tmp_path / "s.tif", cube, nodata=-999, wavelengths_nm=WAVELENGTHS)
    train = classes.copy()
    train[0, 0] = 0
    labels = write_raster(tmp_path / "train.tif", train.astype(np.uint8))
    from osgeo import gdal

    ds = gdal.Open(str(labels), gdal.GA_Update)
    ds.GetRasterBand(1).SetRasterCategoryNames(["none", "water", "forest", "urban"])
    ds = None
    scene = load_raster_scene(raster, labels)
    assert [c.name for c in scene.classes] == ["water", "forest", "urban"]
    assert scene.wavelengths_nm == tuple(WAVELENGTHS)
    assert scene.valid is not None and not scene.valid[0, 0] and scene.valid.sum() == 24 * 30 - 1


def test_raster_scene_rejects_labels_on_nodata_and_wrong_grid(tmp_path):
    cube, classes = synthetic_cube()
    cube[:, 0, 0] = -999
    raster = write_raster(tmp_path / "s.tif", cube, nodata=-999)
    labels = write_raster(tmp_path / "l.tif", classes.astype(np.uint8))
    with pytest.raises(InputDataError, match="no-data"):
        load_raster_scene(raster, labels)
    small = write_raster(tmp_path / "small.tif", classes[:10].astype(np.uint8))
    with pytest.raises(InputDataError, match="is 30x10 pixels but s.tif is 30x24"):
        load_raster_scene(raster, small)


def test_unreadable_raster_gives_one_line_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(RasterReadError, match="cannot open") as exc:
        open_raster(bad)
    assert "\n" not in str(exc.value)


def test_normalisation_maps_scene_range_to_unit_interval():
    cube = np.random.default_rng(0).integers(100, 5000, (5, 8, 9)).astype(np.int16)
    norm = MinMaxNormalization.fit(cube)
    out = norm.apply(cube, band_axis=0)
    assert out.dtype == np.float32
    assert np.allclose(out.min(axis=(1, 2)), 0) and np.allclose(out.max(axis=(1, 2)), 1)
    again = MinMaxNormalization.from_dict(norm.to_dict())
    assert np.array_equal(again.apply(cube, band_axis=0), out)


def test_standardisation_gives_each_band_zero_mean_and_unit_std_over_valid_pixels():
    rng = np.random.default_rng(1)
    cube = rng.normal(1000, 300, (4, 6, 7)).astype(np.float32)
    cube[3] = 42.0  # a constant band is only shifted
    valid = np.ones((6, 7), bool)
    valid[0, :3] = False
    cube[:, 0, :3] = -32768  # no-data values must not reach the statistics
    norm = StandardNormalization.fit(cube, valid)
    out = norm.apply(cube, band_axis=0)[:, valid]
    np.testing.assert_allclose(out[:3].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[:3].std(axis=1), 1, atol=1e-5)
    assert np.all(out[3] == 0) and norm.std[3] == 1
    assert np.array_equal(norm.fill, np.zeros(4, np.float32))
    hand = cube[0][valid].astype(np.float64)  # the first band by hand
    assert norm.lower[0] == pytest.approx((hand.min() - hand.mean()) / hand.std(), rel=1e-5)
    again = normalization_from_dict(norm.to_dict())
    assert isinstance(again, StandardNormalization)
    assert np.array_equal(again.apply(cube, band_axis=0), norm.apply(cube, band_axis=0))
    minmax = MinMaxNormalization.fit(cube).to_dict()
    assert isinstance(normalization_from_dict(minmax), MinMaxNormalization)
    with pytest.raises(ValueError, match="unsupported normalisation method 'zscore'"):
        normalization_from_dict({**norm.to_dict(), "method": "zscore"})
    bad = StandardNormalization.from_dict({**norm.to_dict(), "std": [1.0, 0.0, 1.0, 1.0]})
    assert bad.problems() == ["normalisation std of band 2 is not positive"]


def test_symmetric_padding_repeats_the_edge_pixel():
    block = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    padded = pad_symmetric(block, (2, 1), (0, 0))
    assert padded.shape == (1, 5, 5)
    assert padded[0, :, 0].tolist() == [4, 0, 0, 4, 8]  # rows mirrored: r1, r0 | r0, r1, r2
    assert padded[0, 2, :3].tolist() == [0, 0, 1]  # column mirrored: c0 | c0, c1


def test_patch_extractor_matches_direct_slicing():
    cube = np.random.default_rng(1).random((6, 20, 25), dtype=np.float32)
    extractor = PatchExtractor.from_cube(cube, 7)
    rows, cols = np.array([0, 10, 19]), np.array([0, 12, 24])
    patches = extractor(rows, cols)
    assert patches.shape == (3, 6, 7, 7) and patches.flags.c_contiguous
    padded = np.pad(cube, ((0, 0), (3, 3), (3, 3)), mode="symmetric")
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        assert np.array_equal(patches[i], padded[:, r : r + 7, c : c + 7])
        assert np.array_equal(patches[i][:, 3, 3], cube[:, r, c])  # centre pixel


def test_prepared_scene_uses_given_statistics(bundled):
    fitted = PreparedScene.from_scene(bundled, 7)
    shifted = MinMaxNormalization(
        fitted.normalization.minimum - 100, fitted.normalization.maximum, fitted.normalization.fill
    )
    other = PreparedScene.from_scene(bundled, 7, shifted)
    a = fitted.extractor(np.array([5]), np.array([5]))
    b = other.extractor(np.array([5]), np.array([5]))
    assert (b > a).all()
