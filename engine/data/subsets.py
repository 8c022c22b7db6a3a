"""Fixed, stratified subsets of the Indian Pines training split (label-efficiency studies).

A subset keeps ``per_class`` training pixels of every class (all of a class that has
fewer), drawn once with a seed and stored in the repository as a label raster on the
scene's grid (``resources/indian_pines/subsets/train_<N>px_seed<K>.tif``, same encoding
as the training label raster) with ``manifest.json`` listing each file's seed and counts.
For one seed the subsets are nested: each class's pixels are put in one random order and
a budget of N takes the first N, so the 5-pixel subset lies inside the 10-pixel one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import DatasetNotFoundError, InputDataError
from .raster import read_label_raster
from .scenes import BUNDLED_INDIAN_PINES, Scene, load_indian_pines

SUBSETS_FOLDER = BUNDLED_INDIAN_PINES / "subsets"
SUBSET_BUDGETS = (5, 10, 20)
SUBSET_SEEDS = (0, 1, 2)


def draw_subset(train_labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Label map keeping ``per_class`` random training pixels of each class (all if fewer).

    Each class's pixels (row-major order) are permuted by one generator seeded with
    ``seed``, class after class in ascending value; the first ``per_class`` are kept.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, not {per_class}")
    rng = np.random.default_rng(seed)
    flat = train_labels.ravel()
    subset = np.zeros_like(flat)
    for value in np.unique(flat[flat > 0]):
        pixels = np.flatnonzero(flat == value)
        keep = pixels[rng.permutation(pixels.size)[:per_class]]
        subset[keep] = value
    return subset.reshape(train_labels.shape)


def subset_path(per_class: int, seed: int, folder: Path = SUBSETS_FOLDER) -> Path:
    """Where the stored subset with ``per_class`` pixels per class and draw ``seed`` lives."""
    return folder / f"train_{per_class}px_seed{seed}.tif"


def with_subset(scene: Scene, labels_path: str | os.PathLike[str], per_class: int) -> Scene:
    """``scene`` with its training labels replaced by a stored subset; test labels unchanged.

    Refuses a subset that labels a pixel the training split does not label (or labels it
    with another class), or that keeps more than ``per_class`` pixels of a class.
    """
    subset = read_label_raster(labels_path)
    if subset.shape != scene.train_labels.shape:
        raise InputDataError(f"{labels_path} is not on the {scene.name} grid")
    kept = subset > 0
    if (subset[kept] != scene.train_labels[kept]).any():
        raise InputDataError(f"{labels_path} is not a subset of the {scene.name} training split")
    if np.bincount(subset[kept]).max(initial=0) > per_class:
        raise InputDataError(f"{labels_path} holds more than {per_class} pixels of a class")
    split = f"{scene.split}; training subset {Path(labels_path).name} ({kept.sum()} pixels)"
    return dataclasses.replace(scene, train_labels=subset, split=split)


def load_indian_pines_subset(
    per_class: int,
    seed: int,
    data_root: str | os.PathLike[str] | None = None,
    folder: Path = SUBSETS_FOLDER,
) -> Scene:
    """Indian Pines with the stored ``per_class`` training subset of draw ``seed``."""
    path = subset_path(per_class, seed, folder)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"no stored subset with {per_class} pixels per class and seed {seed} at {path} "
            "(run scripts/make_label_subsets.py)"
        )
    return with_subset(load_indian_pines(data_root), path, per_class)
