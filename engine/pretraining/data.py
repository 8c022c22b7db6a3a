"""The pixels a branch is pre-trained on, as lazily cut, normalised float32 patches.

Two sources: the unlabelled pixels of a scene (FactoFormer's protocol: every pixel with
neither a training nor a test label; the method is transductive within the scene), or
every valid pixel of one or more rasters that have no labels at all. The functions that
build the pixel set take a boolean exclusion mask, never label values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.normalization import METHOD_NAMES, MINMAX, Normalization, fit_normalization
from ..data.patches import PatchExtractor
from ..data.prepared import normalised_extractor
from ..data.scenes import Scene
from ..data.scenes import _read_raster_cube as read_raster_cube
from ..errors import InputDataError


@dataclass
class PretrainingPixels:
    """Sample i is the patch centred on (rows[i], cols[i]) of raster ``sources[i]``.

    Attributes:
        extractors: one lazy patch extractor per raster, over its normalised cube.
        sources: (n,) index into ``extractors`` of each sample.
        rows, cols: (n,) centre pixel of each sample.
        normalization: the statistics the patches were normalised with.
        band_names: one name per band.
        description: provenance (which rasters, which pixels, how many).
    """

    extractors: tuple[PatchExtractor, ...]
    sources: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    normalization: Normalization
    band_names: tuple[str, ...]
    description: dict[str, Any]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_bands(self) -> int:
        return self.normalization.num_bands

    @property
    def patch_size(self) -> int:
        return self.extractors[0].patch_size

    def patches(self, indices: np.ndarray) -> np.ndarray:
        """(len(indices), bands, p, p) float32 patches of the samples ``indices``."""
        rows, cols = self.rows[indices], self.cols[indices]
        if len(self.extractors) == 1:
            return self.extractors[0](rows, cols)
        sources = self.sources[indices]
        p = self.patch_size
        out = np.empty((len(indices), self.num_bands, p, p), dtype=np.float32)
        for s in np.unique(sources):
            pick = sources == s
            out[pick] = self.extractors[s](rows[pick], cols[pick])
        return out


def unlabelled_pixels(
    cube: np.ndarray,
    exclude: np.ndarray,
    band_names: Sequence[str],
    valid: np.ndarray | None = None,
    patch_size: int = 7,
    name: str = "scene",
    normalization_method: str = MINMAX,
) -> PretrainingPixels:
    """The valid pixels of one scene that ``exclude`` does not mark.

    The statistics (``normalization_method``'s) are those of the whole scene (every valid
    pixel), as fine-tuning computes them, so pre-trained and fine-tuned branches see the
    same values.

    Args:
        cube: (rows, cols, bands) values.
        exclude: (rows, cols) bool, True for pixels to leave out (e.g. ``labels > 0``).
            Only this mask is read: the class of a labelled pixel never reaches pretraining.
        band_names: one name per band.
        valid: (rows, cols) bool, False for no-data pixels; None means all valid.
        patch_size: odd patch edge.
        name: what the provenance calls the scene.
    """
    if not isinstance(exclude, np.ndarray) or exclude.dtype != bool:
        raise TypeError("exclude must be a boolean mask (e.g. labels > 0), not label values")
    if exclude.shape != cube.shape[:2]:
        raise InputDataError(f"{name}: the exclusion mask does not match the cube's grid")
    bands_first = np.moveaxis(cube, -1, 0)
    normalization = fit_normalization(normalization_method, bands_first, valid)
    method = METHOD_NAMES[normalization_method]
    keep = ~exclude if valid is None else ~exclude & valid
    rows, cols = np.nonzero(keep)
    if len(rows) == 0:
        raise InputDataError(f"{name}: no pixel is left for pretraining")
    description = {
        "pixels": int(len(rows)),
        "sources": [
            {
                "name": name,
                "selection": "valid pixels without a training or test label",
                "pixels": int(len(rows)),
                "excluded": int(exclude.sum()),
            }
        ],
        "normalization": f"per-band {method} over the whole scene (as fine-tuning)",
    }
    extractor = normalised_extractor(bands_first, valid, normalization, patch_size)
    return PretrainingPixels(
        (extractor,),
        np.zeros(len(rows), dtype=np.int32),
        rows,
        cols,
        normalization,
        tuple(band_names),
        description,
    )


def scene_unlabelled_pixels(
    scene: Scene, patch_size: int = 7, normalization_method: str = MINMAX
) -> PretrainingPixels:
    """FactoFormer's pretraining set: the scene's pixels with no training or test label."""
    exclude = scene.train_labels > 0
    if scene.test_labels is not None:
        exclude |= scene.test_labels > 0
    return unlabelled_pixels(
        scene.cube,
        exclude,
        scene.band_names,
        scene.valid,
        patch_size,
        scene.name,
        normalization_method,
    )


def raster_pixels(
    paths: Sequence[str | os.PathLike[str]],
    patch_size: int = 7,
    normalization_method: str = MINMAX,
) -> PretrainingPixels:
    """Every valid pixel of one or more rasters (no labels involved).

    The rasters must have the same bands. They are normalised together: per band, by
    ``normalization_method``'s statistics over all their valid pixels.
    """
    if not paths:
        raise InputDataError("give at least one raster to pre-train on")
    cubes, valids, infos = zip(*(read_raster_cube(p) for p in paths), strict=True)
    first = infos[0]
    for path, info in zip(paths, infos, strict=True):
        if info.count != first.count:
            raise InputDataError(
                f"{path} has {info.count} bands but {paths[0]} has {first.count}; "
                "pre-train on rasters of the same bands"
            )
    pixels = np.concatenate([c[v] for c, v in zip(cubes, valids, strict=True)])  # (n, bands)
    if len(pixels) == 0:
        raise InputDataError("the rasters have no valid pixel to pre-train on")
    normalization = fit_normalization(normalization_method, pixels.T[:, None, :])
    method = METHOD_NAMES[normalization_method]
    extractors, sources, rows, cols, described = [], [], [], [], []
    for i, (path, cube, valid) in enumerate(zip(paths, cubes, valids, strict=True)):
        bands_first = np.moveaxis(cube, -1, 0)
        extractors.append(normalised_extractor(bands_first, valid, normalization, patch_size))
        r, c = np.nonzero(valid)
        rows.append(r)
        cols.append(c)
        sources.append(np.full(len(r), i, dtype=np.int32))
        described.append({"name": Path(path).name, "selection": "valid pixels", "pixels": len(r)})
    description = {
        "pixels": int(sum(len(r) for r in rows)),
        "sources": described,
        "normalization": f"per-band {method} over the valid pixels of all pretraining rasters",
    }
    return PretrainingPixels(
        tuple(extractors),
        np.concatenate(sources),
        np.concatenate(rows),
        np.concatenate(cols),
        normalization,
        tuple(first.names),
        description,
    )
