"""The stored label-efficiency subsets of the Indian Pines training split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import BUNDLED_TEST, REPO
from osgeo import gdal

from engine.data.scenes import load_indian_pines
from engine.data.subsets import (
    SUBSET_BUDGETS,
    SUBSET_SEEDS,
    SUBSETS_FOLDER,
    draw_subset,
    load_indian_pines_subset,
    subset_path,
    with_subset,
)
from engine.errors import DatasetNotFoundError, InputDataError

TRAIN = REPO / "resources" / "indian_pines" / "indian_pines_train.tif"
STORED = [(n, k) for n in SUBSET_BUDGETS for k in SUBSET_SEEDS]


def raw(path):
    """Band 1 as stored, read with GDAL directly (not through the engine)."""
    ds = gdal.Open(str(path))  # keep the dataset alive while its band is read
    return ds.GetRasterBand(1).ReadAsArray()


@pytest.mark.parametrize(("per_class", "seed"), STORED)
def test_stored_subset_is_a_subset_of_the_training_split_with_its_counts(per_class, seed):
    train, subset = raw(TRAIN), raw(subset_path(per_class, seed))
    assert subset.shape == train.shape == (145, 145)
    kept = subset > 0
    assert (subset[kept] == train[kept]).all()
    train_counts = np.bincount(train.ravel(), minlength=17)[1:]
    counts = np.bincount(subset.ravel(), minlength=17)[1:]
    # the split has 50 pixels of classes 1-13 and 15 of classes 14-16
    expected = [min(per_class, 50)] * 13 + [min(per_class, 15)] * 3
    assert counts.tolist() == expected == np.minimum(train_counts, per_class).tolist()
    manifest = json.loads((SUBSETS_FOLDER / "manifest.json").read_text())
    entry = next(e for e in manifest["subsets"] if e["file"] == subset_path(per_class, seed).name)
    assert (entry["per_class"], entry["seed"], entry["pixels"]) == (per_class, seed, sum(expected))
    assert [entry["counts"][str(v)] for v in range(1, 17)] == expected


def test_subsets_differ_between_seeds_and_nest_within_a_seed():
    five = [raw(subset_path(5, k)) > 0 for k in SUBSET_SEEDS]
    assert not np.array_equal(five[0], five[1]) and not np.array_equal(five[1], five[2])
    ten, twenty = raw(subset_path(10, 0)) > 0, raw(subset_path(20, 0)) > 0
    assert not (five[0] & ~ten).any() and not (ten & ~twenty).any()


def test_stored_files_are_the_draw_of_their_seed():
    train = raw(TRAIN).astype(np.int32)
    assert np.array_equal(draw_subset(train, 10, 1), raw(subset_path(10, 1)))


def test_subset_scene_replaces_only_the_training_labels():
    scene = load_indian_pines_subset(5, 2)
    assert np.array_equal(scene.train_labels, raw(subset_path(5, 2)))
    assert np.array_equal(scene.test_labels, raw(BUNDLED_TEST))
    assert scene.cube.shape == (145, 145, 200) and "train_5px_seed2.tif" in scene.split


def test_subset_that_is_not_in_the_training_split_is_refused(tmp_path):
    scene = load_indian_pines()
    labels = raw(BUNDLED_TEST).copy()
    labels[labels > 1] = 0  # test pixels of class 1: never training pixels
    path = tmp_path / "bad.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 145, 145, 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).WriteArray(labels)
    ds = None
    with pytest.raises(InputDataError, match="not a subset"):
        with_subset(scene, path, 5000)
    with pytest.raises(InputDataError, match="more than 5 pixels"):
        with_subset(scene, subset_path(10, 0), 5)
    with pytest.raises(DatasetNotFoundError, match="make_label_subsets"):
        load_indian_pines_subset(7, 0)
