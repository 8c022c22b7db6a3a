"""A validation set carved from training labels by whole connected regions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from .scenes import Scene

# 8-connectivity: pixels touching at a corner belong to one region, so a validation region
# never shares an edge or a corner with a training region of its class.
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass
class CarvedLabels:
    """Training label maps split into training and validation maps (one pair per tile)."""

    train: list[np.ndarray]
    validation: list[np.ndarray]
    single_region_classes: list[int]  # classes left entirely in training (one region only)


def carve_validation(
    train_labels: Sequence[np.ndarray],
    share: float,
    seed: int,
    regions: Sequence[np.ndarray] | None = None,
) -> CarvedLabels:
    """Move about ``share`` of each class's training pixels to a validation set.

    Whole regions move, never part of one, so validation pixels are not the neighbours of
    training pixels of the same region. A region is, by default, 8-connected pixels of one
    class in one tile; with ``regions`` (one id map per tile, e.g. the polygon each pixel
    was burnt from, see :mod:`~engine.data.vector_labels`) it is every pixel of one id, in
    whichever tile. Per class, regions are taken in a random order fixed by ``seed`` until
    their pixels come closest to the share (see :func:`_random_prefix`), so validation
    holds large and small regions alike; at least one region of every class stays in
    training. Only the training labels are looked at (test labels never enter here).
    """
    if not 0 < share < 1:
        raise ValueError(f"validation share must be between 0 and 1, got {share}")
    rng = np.random.default_rng(seed)
    id_maps = _id_maps(train_labels, regions)
    sizes: dict[int, int] = {}
    value_of: dict[int, int] = {}
    for labels, id_map in zip(train_labels, id_maps, strict=True):
        labelled = id_map > 0
        ids, first, counts = np.unique(id_map[labelled], return_index=True, return_counts=True)
        values = labels[labelled][first]
        for rid, value, count in zip(ids.tolist(), values.tolist(), counts.tolist(), strict=True):
            sizes[rid] = sizes.get(rid, 0) + count
            value_of.setdefault(rid, int(value))
    train = [labels.copy() for labels in train_labels]
    validation = [np.zeros_like(labels) for labels in train_labels]
    moving: list[int] = []
    single = []
    for value in sorted(set(value_of.values())):
        found = [(rid, sizes[rid]) for rid in sorted(value_of) if value_of[rid] == value]
        if len(found) < 2:
            single.append(value)
            continue
        chosen = _random_prefix([size for _, size in found], share, rng)
        moving.extend(found[i][0] for i in chosen)
    for t, id_map in enumerate(id_maps):
        pixels = np.isin(id_map, moving)
        validation[t][pixels] = train[t][pixels]
        train[t][pixels] = 0
    return CarvedLabels(train, validation, single)


def _random_prefix(sizes: list[int], share: float, rng: np.random.Generator) -> list[int]:
    """Indices of regions, in a random order, until their pixels come closest to ``share``.

    Stopping at the first region that would overshoot (instead of skipping it for smaller
    ones) keeps large and small regions equally likely to be chosen; skipping would fill
    validation with the smallest fragments, the hardest pixels. A region larger than twice
    the share is skipped only while nothing is chosen; one region always stays in training.
    """
    target = share * sum(sizes)
    chosen: list[int] = []
    moved = 0
    for i in rng.permutation(len(sizes)):
        if moved >= target or len(chosen) == len(sizes) - 1:
            break
        if moved + sizes[i] - target <= target - moved:  # taking it lands closer
            chosen.append(int(i))
            moved += sizes[i]
        elif chosen:
            break
    if not chosen:  # every region is larger than twice the share: take the smallest
        chosen = [min(range(len(sizes)), key=lambda i: sizes[i])]
    return chosen


def _id_maps(
    train_labels: Sequence[np.ndarray], regions: Sequence[np.ndarray] | None
) -> list[np.ndarray]:
    """Region id of every labelled pixel (0 elsewhere), unique over all tiles."""
    if regions is not None:
        if len(regions) != len(train_labels):
            raise ValueError("one region map per label map")
        out = []
        for labels, ids in zip(train_labels, regions, strict=True):
            if ids.shape != labels.shape:
                raise ValueError("a region map must have its label map's shape")
            if ((labels > 0) & (ids <= 0)).any():
                raise ValueError("every labelled pixel needs a region id")
            out.append(np.where(labels > 0, ids, 0).astype(np.int64))
        return out
    out, offset = [], 0
    for labels in train_labels:
        ids, _, _, id_map = _regions(labels)
        out.append(np.where(id_map > 0, id_map + offset, 0))
        offset += len(ids)
    return out


def scene_with_validation(scene: Scene, share: float, seed: int) -> Scene:
    """``scene`` for choosing variants: about ``share`` of its training pixels (whole
    regions, :func:`carve_validation`) become its evaluated labels, in place of the test
    labels, which are not kept."""
    carved = carve_validation([scene.train_labels], share, seed)
    split = f"{scene.split}; validation carved from training (seed {seed})"
    return replace(
        scene, train_labels=carved.train[0], test_labels=carved.validation[0], split=split
    )


def labels_fingerprint(labels: np.ndarray) -> str:
    """A short fingerprint of a label map: results of one validation split are never mixed
    with those of another (e.g. after a change to the carving)."""
    return hashlib.sha1(labels.astype("<i4").tobytes()).hexdigest()[:8]


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
