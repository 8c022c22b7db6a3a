"""Training data from several real rasters: tiles, label alignment, bad bands, classes,
validation carving and VRT mosaics (small GeoTIFF/ENVI files written here)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from helpers import WAVELENGTHS, enmap_like_items, synthetic_cube, write_tile
from osgeo import gdal

from engine.data.labels import read_classes_csv
from engine.data.normalization import STANDARD
from engine.data.raster import band_info, open_raster
from engine.data.training_set import (
    TileFiles,
    load_training_set,
    read_tile_csv,
    tiles_from_paths,
)
from engine.data.validation import carve_validation
from engine.errors import InputDataError

TILE_COLS = 30


@pytest.fixture
def two_tiles(tmp_path):
    """Two adjacent 24x30 tiles of one scene, each with its own training labels."""
    cube, classes = synthetic_cube(rows=24, cols=2 * TILE_COLS, seed=1)
    files = []
    for i in range(2):
        part = np.ascontiguousarray(cube[:, :, i * TILE_COLS : (i + 1) * TILE_COLS])
        labels = np.zeros((24, TILE_COLS), np.uint8)
        labels[2:22:4, 1:29:4] = classes[2:22:4, i * TILE_COLS + 1 : (i + 1) * TILE_COLS - 1 : 4]
        files.append(
            TileFiles(
                write_tile(
                    tmp_path / f"t{i}.tif",
                    part,
                    col_offset=i * TILE_COLS,
                    band_items=enmap_like_items(),
                ),
                write_tile(tmp_path / f"t{i}_train.tif", labels, col_offset=i * TILE_COLS),
            )
        )
    return files, cube


def test_two_tiles_share_one_normalisation_and_cut_patches_per_tile(two_tiles):
    files, cube = two_tiles
    data = load_training_set(files, patch_size=5)
    assert len(data.tiles) == 2 and data.num_bands == 12 and data.num_classes == 3
    values = cube.astype(np.float64)
    np.testing.assert_allclose(data.normalization.minimum, values.min(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(data.normalization.maximum, values.max(axis=(1, 2)), rtol=1e-6)
    train = data.train
    assert len(train) == 2 * 5 * 7
    # A pixel of the second tile: its patch is the second tile alone, mirrored at the edge.
    i = int(np.flatnonzero(train.tile == 1)[0])
    r, c = int(train.rows[i]), int(train.cols[i])
    tile = values[:, :, TILE_COLS:]
    span = values.max(axis=(1, 2)) - values.min(axis=(1, 2))
    norm = (tile - values.min(axis=(1, 2))[:, None, None]) / span[:, None, None]
    expected = np.pad(norm, ((0, 0), (2, 2), (2, 2)), mode="symmetric")[:, r : r + 5, c : c + 5]
    np.testing.assert_allclose(data.train.patches(np.array([i]))[0], expected, atol=1e-5)
    assert data.train.targets(np.array([i]))[0] == data.train.values[i] - 1


def test_standardisation_over_tiles_equals_numpy_on_their_pixels(two_tiles):
    files, cube = two_tiles
    data = load_training_set(files, patch_size=5, normalization_method=STANDARD)
    pixels = cube.reshape(cube.shape[0], -1).astype(np.float64)  # every pixel is valid
    np.testing.assert_allclose(data.normalization.mean, pixels.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(data.normalization.std, pixels.std(axis=1), rtol=1e-5)
    i = int(np.flatnonzero(data.train.tile == 0)[0])
    r, c = int(data.train.rows[i]), int(data.train.cols[i])
    expected = (pixels.reshape(cube.shape)[:, r, c] - pixels.mean(axis=1)) / pixels.std(axis=1)
    np.testing.assert_allclose(data.train.patches(np.array([i]))[0][:, 2, 2], expected, atol=1e-5)
    with pytest.raises(ValueError, match="normalisation method"):
        load_training_set(files, patch_size=5, normalization_method="zscore")


def test_tile_csv_resolves_relative_paths_and_empty_cells(two_tiles, tmp_path):
    files, _ = two_tiles
    (tmp_path / "tiles.csv").write_text(
        "raster,train_labels,test_labels\nt0.tif,t0_train.tif,\nt1.tif,,t1_train.tif\n"
    )
    tiles = read_tile_csv(tmp_path / "tiles.csv")
    assert tiles[0].raster == files[0].raster and tiles[0].test_labels is None
    assert tiles[1].train_labels is None and tiles[1].test_labels == files[1].train_labels
    data = load_training_set(tiles, patch_size=5)
    assert len(data.train) == len(data.test) == 35
    assert set(np.unique(data.train.tile)) == {0} and set(np.unique(data.test.tile)) == {1}
    # Only the training tile makes the statistics.
    tile0 = gdal.Open(str(files[0].raster)).ReadAsArray()
    np.testing.assert_allclose(data.normalization.maximum, tile0.max(axis=(1, 2)))


def test_globs_pair_rasters_and_labels_in_sorted_order(two_tiles, tmp_path):
    files, _ = two_tiles
    (tmp_path / "labels").mkdir()
    for f in files:
        shutil.copy(f.train_labels, tmp_path / "labels" / f.raster.name)
    tiles = tiles_from_paths([str(tmp_path / "t?.tif")], [str(tmp_path / "labels" / "*.tif")])
    assert [t.raster.name for t in tiles] == ["t0.tif", "t1.tif"]
    assert [t.train_labels.name for t in tiles] == ["t0.tif", "t1.tif"]
    with pytest.raises(InputDataError, match="2 rasters but 1 train"):
        tiles_from_paths([str(tmp_path / "t?.tif")], [files[0].train_labels])


def test_label_raster_shifted_by_ten_pixels_is_refused_with_the_offset(tmp_path):
    cube, classes = synthetic_cube()
    raster = write_tile(tmp_path / "scene.tif", cube)
    shifted = write_tile(tmp_path / "shifted.tif", classes.astype(np.uint8), col_offset=10)
    with pytest.raises(InputDataError, match=r"offset from scene.tif by \+10.0 columns") as exc:
        load_training_set([TileFiles(raster, shifted)])
    assert "\n" not in str(exc.value)
    near = write_tile(tmp_path / "near.tif", classes.astype(np.uint8))
    ds = gdal.Open(str(near), gdal.GA_Update)
    gt = list(ds.GetGeoTransform())
    gt[0] += 0.4 * gt[1]  # within half a pixel: accepted
    ds.SetGeoTransform(gt)
    ds = None
    assert len(load_training_set([TileFiles(raster, near)]).train) == (classes > 0).sum()
    small = write_tile(tmp_path / "small.tif", classes[:20].astype(np.uint8))
    with pytest.raises(InputDataError, match="30x20 pixels but scene.tif is 30x24"):
        load_training_set([TileFiles(raster, small)])


def test_flagged_and_empty_bands_are_dropped_not_blamed_on_the_labels(tmp_path):
    cube, classes = synthetic_cube()
    cube[3] = -32768  # flagged bad (bbl=0) and entirely no-data, like EnMAP's bands 130-135
    cube[7] = -32768  # entirely no-data, not flagged
    raster = write_tile(
        tmp_path / "s.tif", cube, nodata=-32768, band_items=enmap_like_items(bad={4})
    )
    labels = write_tile(tmp_path / "l.tif", classes.astype(np.uint8))
    data = load_training_set([TileFiles(raster, labels)])
    assert data.bands.numbers == (1, 2, 3, 5, 6, 7, 9, 10, 11, 12)
    assert data.bands.flagged == (4,) and data.bands.empty == (8,) and data.bands.count == 12
    assert data.wavelengths_nm == tuple(w for i, w in enumerate(WAVELENGTHS) if i not in (3, 7))
    assert data.fwhm_nm == tuple(10.0 + i for i in range(12) if i not in (3, 7))
    assert len(data.train) == (classes > 0).sum()  # no pixel lost to the empty bands
    log = "\n".join(data.notes)
    assert "1 bands flagged bad (bbl): 4" in log and "without any valid value" in log
    assert "uses 10 of the 12 bands" in log
    kept = cube[[0, 1, 2, 4, 5, 6, 8, 9, 10, 11]].astype(np.float64)
    np.testing.assert_allclose(data.normalization.minimum, kept.min(axis=(1, 2)))


def test_envi_header_bad_band_list_is_honoured(tmp_path):
    cube, classes = synthetic_cube()
    raster = write_tile(tmp_path / "s.bsq", cube, driver="ENVI")
    with open(tmp_path / "s.hdr", "a") as f:
        f.write("bbl = {" + ", ".join("0" if i == 5 else "1" for i in range(12)) + "}\n")
    labels = write_tile(tmp_path / "l.tif", classes.astype(np.uint8))
    data = load_training_set([TileFiles(raster, labels)])
    assert data.bands.flagged == (6,) and 6 not in data.bands.numbers


def test_leaked_nodata_value_is_refused_with_band_and_value(tmp_path):
    cube, classes = synthetic_cube()
    cube[2, 5, 5] = -9999  # no-data value not declared
    raster = write_tile(tmp_path / "s.tif", cube)
    labels = write_tile(tmp_path / "l.tif", classes.astype(np.uint8))
    with pytest.raises(InputDataError, match=r"band 3 .* value -9999.*no-data"):
        load_training_set([TileFiles(raster, labels)])
    cube[2, 5, 5] = 2000
    cube[:, :2, :] = 0  # fill pixels with 0 in every band
    raster = write_tile(tmp_path / "s.tif", cube)
    data = load_training_set([TileFiles(raster, labels)])
    assert any("60 valid pixels of s.tif have the same value (0)" in w for w in data.warnings)


def test_class_names_from_csv_label_raster_qml_or_none(tmp_path):
    cube, classes = synthetic_cube()
    raster = write_tile(tmp_path / "s.tif", cube)
    labels = write_tile(tmp_path / "l.tif", classes.astype(np.uint8))
    tile = [TileFiles(raster, labels)]
    data = load_training_set(tile)
    assert [c.name for c in data.classes] == ["Class 1", "Class 2", "Class 3"]
    assert any("will show 'Class 1' ... 'Class 3'" in n for n in data.notes)

    csv = tmp_path / "classes.csv"
    csv.write_text("value,name,colour\n1,water,#0000ff\n2,forest,#00aa00\n3,urban,\n")
    data = load_training_set(tile, classes_csv=csv)
    assert [(c.name, c.color) for c in data.classes][:2] == [
        ("water", "#0000ff"),
        ("forest", "#00aa00"),
    ]
    assert data.classes[2].name == "urban" and data.classes[2].color.startswith("#")

    ds = gdal.Open(str(labels), gdal.GA_Update)
    band = ds.GetRasterBand(1)
    table = gdal.ColorTable()
    for v, rgb in enumerate([(0, 0, 0), (0, 0, 255), (0, 170, 0), (200, 0, 0)]):
        table.SetColorEntry(v, (*rgb, 255))
    band.SetRasterColorTable(table)  # GTiff drops category names set before a colour table
    band.SetRasterCategoryNames(["", "water", "forest", "urban"])
    ds = None
    data = load_training_set(tile)
    assert [(c.name, c.color) for c in data.classes] == [
        ("water", "#0000ff"),
        ("forest", "#00aa00"),
        ("urban", "#c80000"),
    ]

    from engine.data.classes import make_classes
    from engine.infer.style import paletted_qml

    (tmp_path / "l.qml").write_text(paletted_qml(make_classes(["lake", "wood", "town"])))
    assert [c.name for c in load_training_set(tile).classes] == ["lake", "wood", "town"]


def test_classes_csv_errors_are_one_line(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("1,water,blue\n")
    with pytest.raises(InputDataError, match="line 1: colour 'blue' is not #rrggbb"):
        read_classes_csv(bad)
    bad.write_text("1,water\n1,lake\n")
    with pytest.raises(InputDataError, match="class value 1 repeats"):
        read_classes_csv(bad)


def test_carving_moves_whole_regions_only_from_training_labels():
    labels = np.zeros((40, 40), np.int32)
    for k in range(8):  # 8 separate squares per class
        r, c = 5 * (k % 4), 10 * (k // 4)
        labels[r : r + 3, c : c + 3] = 1
        labels[20 + r : 23 + r, 20 + c : 23 + c] = 2
    labels[0, 39] = 3  # a class with a single region
    carved = carve_validation([labels], share=0.25, seed=7)
    train, validation = carved.train[0], carved.validation[0]
    assert not ((train > 0) & (validation > 0)).any()
    np.testing.assert_array_equal(np.where(validation > 0, validation, train), labels)
    from scipy import ndimage

    regions, count = ndimage.label(labels > 0, structure=np.ones((3, 3)))
    for rid in range(1, count + 1):
        in_validation = validation[regions == rid] > 0
        assert in_validation.all() or not in_validation.any(), f"region {rid} split"
    for value in (1, 2):
        assert (validation == value).sum() == 2 * 9  # 25 % of 8 regions of 9 pixels
    assert carved.single_region_classes == [3] and (train == 3).sum() == 1
    again = carve_validation([labels], share=0.25, seed=7)
    np.testing.assert_array_equal(again.validation[0], validation)
    other = carve_validation([labels], share=0.25, seed=8)
    assert not np.array_equal(other.validation[0], validation)


def test_carved_validation_ignores_test_labels(two_tiles, tmp_path):
    files, _ = two_tiles
    test = np.zeros((24, TILE_COLS), np.uint8)
    test[1::4, 3::4] = 2  # no overlap with the training pixels
    test_file = write_tile(tmp_path / "test.tif", test)
    with_test = [TileFiles(files[0].raster, files[0].train_labels, test_labels=test_file), files[1]]
    a = load_training_set(files, patch_size=5, validation_share=0.3, seed=1)
    b = load_training_set(with_test, patch_size=5, validation_share=0.3, seed=1)
    for x, y in ((a.validation, b.validation), (a.train, b.train)):
        np.testing.assert_array_equal(x.tile, y.tile)
        np.testing.assert_array_equal(x.rows, y.rows)
        np.testing.assert_array_equal(x.values, y.values)
    assert len(b.test) == (test > 0).sum() and len(a.validation) > 0
    overlapping = write_tile(
        tmp_path / "overlap.tif", gdal.Open(str(files[0].train_labels)).ReadAsArray()
    )
    with pytest.raises(InputDataError, match="both the train and the test labels"):
        load_training_set(
            [TileFiles(files[0].raster, files[0].train_labels, test_labels=overlapping)]
        )


def test_tiles_with_different_bands_are_refused(two_tiles, tmp_path):
    files, cube = two_tiles
    other = write_tile(tmp_path / "other.tif", cube[:10, :, :TILE_COLS].copy())
    with pytest.raises(InputDataError, match="has 10 bands but t0.tif 12"):
        load_training_set([files[0], TileFiles(other, files[0].train_labels)])


@pytest.mark.skipif(shutil.which("gdalbuildvrt") is None, reason="gdalbuildvrt is not installed")
@pytest.mark.parametrize("driver", ["GTiff", "ENVI"])
def test_gdalbuildvrt_mosaic_keeps_wavelengths_fwhm_scale_and_bad_bands(tmp_path, driver):
    cube, classes = synthetic_cube(rows=16, cols=2 * 16, seed=2)
    cube[4] = -32768  # the flagged band holds no data
    suffix = ".tif" if driver == "GTiff" else ".bsq"
    parts = []
    for i in range(2):
        part = np.ascontiguousarray(cube[:, :, i * 16 : (i + 1) * 16])
        path = write_tile(
            tmp_path / f"m{i}{suffix}", part, col_offset=16 * i, nodata=-32768, driver=driver
        )
        ds = gdal.Open(str(path), gdal.GA_Update)
        for b, items in enumerate(enmap_like_items(bad={5})):
            band = ds.GetRasterBand(b + 1)
            band.SetScale(0.0001)
            if driver == "GTiff":  # band metadata, as in EnMAP L2A GeoTIFFs
                band.SetMetadata({k: str(v) for k, v in items.items()})
        ds = None
        if driver == "ENVI":  # header lists, as ENVI writes them
            with open(tmp_path / f"m{i}.hdr", "a") as f:
                f.write("wavelength units = Nanometers\n")
                f.write("wavelength = {" + ", ".join(map(str, WAVELENGTHS)) + "}\n")
                f.write("fwhm = {" + ", ".join(str(10 + b) for b in range(12)) + "}\n")
                f.write("bbl = {" + ", ".join("0" if b == 4 else "1" for b in range(12)) + "}\n")
            (tmp_path / f"m{i}.bsq.aux.xml").unlink()  # GDAL's copy of the header before
        parts.append(str(path))
    vrt = tmp_path / "mosaic.vrt"
    subprocess.run(["gdalbuildvrt", "-q", str(vrt), *parts], check=True)
    info = band_info(open_raster(vrt))
    assert info.wavelengths_nm == tuple(WAVELENGTHS)
    assert info.scale == (0.0001,) * 12
    labels = write_tile(tmp_path / "labels.tif", classes.astype(np.uint8))
    data = load_training_set([TileFiles(vrt, labels)])
    assert data.bands.flagged == (5,) and 5 not in data.bands.numbers
    assert data.wavelengths_nm == tuple(w for i, w in enumerate(WAVELENGTHS) if i != 4)
    assert data.fwhm_nm == tuple(10.0 + b for b in range(12) if b != 4)
    kept = np.delete(cube, 4, axis=0).astype(np.float64) * 0.0001  # physical values
    np.testing.assert_allclose(data.normalization.minimum, kept.min(axis=(1, 2)), rtol=1e-5)


def test_benchmark_scene_gives_the_patches_and_order_of_the_prepared_scene():
    from engine.data.prepared import PreparedScene
    from engine.data.scenes import load_indian_pines
    from engine.data.training_set import TrainingSet

    scene = load_indian_pines()
    prepared = PreparedScene.from_scene(scene, 7)
    data = TrainingSet.from_scene(scene, 7)
    rows, cols, values = scene.pixels(scene.train_labels)
    idx = np.arange(0, len(rows), 7)
    np.testing.assert_array_equal(data.train.values, values)
    np.testing.assert_array_equal(data.train.patches(idx), prepared.extractor(rows[idx], cols[idx]))
    np.testing.assert_array_equal(data.normalization.fill, prepared.normalization.fill)
    assert len(data.test) == 9671 and data.validation is None and not data.bands.is_subset


def test_carving_chooses_large_and_small_regions_alike():
    """One 6x6 field and 36 single pixels of one class, half to validation: the field must
    be chosen about as often as not (skipping regions that overshoot the share would
    almost always fill validation with the single pixels)."""
    labels = np.zeros((20, 40), np.int32)
    labels[:6, :6] = 1
    labels[10:20:3, 0:40:3][:, :9] = 1  # 4 x 9 = 36 isolated pixels
    assert (labels == 1).sum() == 72
    field_chosen = 0
    for seed in range(100):
        validation = carve_validation([labels], share=0.5, seed=seed).validation[0]
        moved = int((validation > 0).sum())
        assert 18 <= moved <= 54  # close to half of the 72 pixels
        field_chosen += bool(validation[:6, :6].all())
        assert validation[:6, :6].all() or not validation[:6, :6].any()
    assert 30 <= field_chosen <= 70


def test_scene_with_validation_evaluates_held_out_training_pixels_not_test_pixels():
    from engine.data.scenes import load_indian_pines
    from engine.data.validation import labels_fingerprint, scene_with_validation

    scene = load_indian_pines()
    carved = scene_with_validation(scene, 0.3, seed=0)
    held_out = carved.test_labels > 0
    assert not (held_out & (carved.train_labels > 0)).any()
    np.testing.assert_array_equal(  # together they are the training split, no test pixel
        np.where(held_out, carved.test_labels, carved.train_labels), scene.train_labels
    )
    assert 0.2 < held_out.sum() / (scene.train_labels > 0).sum() < 0.4
    assert labels_fingerprint(carved.test_labels) == labels_fingerprint(
        scene_with_validation(scene, 0.3, seed=0).test_labels
    )
    assert labels_fingerprint(carved.test_labels) != labels_fingerprint(
        scene_with_validation(scene, 0.3, seed=1).test_labels
    )
