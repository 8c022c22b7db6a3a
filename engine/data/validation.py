"""A validation set carved from training labels by whole connected regions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# 8-connectivity: pixels touching at a corner belong to one region, so a validation region
# never shares an edge or a corner with a training region of its class.
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass
class CarvedLabels:
    """Training label maps split into training and validation maps (one pair per tile)."""

    train: list[np.ndarray]
    validation: list[np.ndarray]
    single_region_classes: list[int]  # classes left entirely in training (one region only)


def carve_validation(train_labels: Sequence[np.ndarray], share: float, seed: int) -> CarvedLabels:
    """Move about ``share`` of each class's training pixels to a validation set.

    Whole connected regions (8-connected pixels of one class in one tile) move, never part
    of one, so validation pixels are not the neighbours of training pixels. Regions are
    taken per class in a random order fixed by ``seed`` while they fit in the class's share
    (the smallest one when none fits); at least one region of every class stays in
    training. Only the training labels are looked at (test labels never enter here).
    """
    if not 0 < share < 1:
        raise ValueError(f"validation share must be between 0 and 1, got {share}")
    rng = np.random.default_rng(seed)
    regions = [_regions(labels) for labels in train_labels]
    train = [labels.copy() for labels in train_labels]
    validation = [np.zeros_like(labels) for labels in train_labels]
    moving = [np.zeros(len(ids) + 1, dtype=bool) for ids, _, _, _ in regions]
    classes = sorted({int(v) for labels in train_labels for v in np.unique(labels) if v > 0})
    single = []
    for value in classes:
        # (tile, region id, pixel count) of every region of this class
        found = [
            (t, rid, size)
            for t, (ids, sizes, values, _) in enumerate(regions)
            for rid, size, v in zip(ids, sizes, values, strict=True)
            if v == value
        ]
        if len(found) < 2:
            single.append(value)
            continue
        target = share * sum(size for _, _, size in found)
        chosen, moved = [], 0
        for i in rng.permutation(len(found)):
            if moved + found[i][2] <= target and len(chosen) < len(found) - 1:
                chosen.append(i)
                moved += found[i][2]
        if not chosen:  # every region is larger than the share: take the smallest
            chosen = [min(range(len(found)), key=lambda i: found[i][2])]
        for i in chosen:
            t, rid, _ = found[i]
            moving[t][rid] = True
    for t, (_, _, _, id_map) in enumerate(regions):
        pixels = moving[t][id_map]
        validation[t][pixels] = train[t][pixels]
        train[t][pixels] = 0
    return CarvedLabels(train, validation, single)


def _regions(labels: np.ndarray) -> tuple[list[int], list[int], list[int], np.ndarray]:
    """(region ids, sizes, class values, id map) of the connected regions of each class."""
    ids_map = np.zeros(labels.shape, dtype=np.int64)
    ids, sizes, values = [], [], []
    next_id = 1
    for value in np.unique(labels[labels > 0]):
        regions, count = ndimage.label(labels == value, structure=EIGHT_NEIGHBOURS)
        if count == 0:
            continue
        mask = regions > 0
        ids_map[mask] = regions[mask] + next_id - 1
        counts = np.bincount(regions[mask], minlength=count + 1)[1:]
        ids.extend(range(next_id, next_id + count))
        sizes.extend(int(c) for c in counts)
        values.extend([int(value)] * count)
        next_id += count
    return ids, sizes, values, ids_map
