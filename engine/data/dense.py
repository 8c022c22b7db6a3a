"""Square tiles for dense (per-pixel) models, cut at random positions around anchor pixels.

A dense model (MaskedSST) labels every pixel of a ``tile_size x tile_size`` tile. For
training, each sample is an *anchor* pixel (a labelled pixel for fine-tuning, an unlabelled
one for pretraining); at every step the tile that contains it is placed at a fresh random
offset, so an anchor may sit anywhere in its tile. Cubes are normalised and padded
symmetrically (numpy ``mode="symmetric"``, as inference pads a raster) by ``tile_size - 1``
pixels, so a tile may reach past the border exactly as an edge tile does at inference.
Mirrored pixels never carry a label: their targets are :data:`IGNORE`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

IGNORE = -1  # target of unlabelled (and mirrored) pixels; the loss skips it
_OFFSET_STREAM = 2  # seed stream of the tile offsets (masks use 0 and 1)


def context_patch_size(tile_size: int) -> int:
    """The odd patch size whose symmetric padding (``tile_size - 1`` pixels) dense tiles
    need: build :class:`~engine.data.training_set.TrainingSet` and pretraining pixels with it."""
    return 2 * tile_size - 1


class DenseTiles:
    """Training tiles of one split: ``(bands, t, t)`` inputs and ``(t, t)`` targets.

    Args:
        padded: per raster, its (bands, rows + 2(t-1), cols + 2(t-1)) normalised cube,
            padded symmetrically by ``t - 1`` pixels on each side.
        tile_size: tile edge ``t``.
        sources, rows, cols: (n,) anchor pixels (raster index, row, column).
        targets: per raster, (rows, cols) int64 class indices 0..C-1, :data:`IGNORE` where
            unlabelled; None for pretraining (no targets).
        seed: seed of the random tile offsets (one draw per step, so runs resume exactly).

    With targets, :meth:`weights_at` gives each labelled pixel the inverse of its
    :func:`tile_coverage` by the anchors (0 elsewhere).
    """

    def __init__(
        self,
        padded: Sequence[np.ndarray],
        tile_size: int,
        sources: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        targets: Sequence[np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        self.tile_size = t = tile_size
        self.pad = t - 1
        self.sources = np.asarray(sources, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)
        self.seed = seed
        self.padded = list(padded)
        self._windows = [sliding_window_view(p, (t, t), axis=(1, 2)) for p in self.padded]
        self.shapes = [(p.shape[1] - 2 * self.pad, p.shape[2] - 2 * self.pad) for p in padded]
        self._targets = self._weights = None
        if targets is not None:
            self._targets = [
                sliding_window_view(
                    np.pad(g.astype(np.int64), self.pad, constant_values=IGNORE), (t, t)
                )
                for g in targets
            ]
            self._weights = [
                sliding_window_view(np.pad(w, self.pad), (t, t))
                for w in self._inverse_coverage(targets)
            ]

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def num_bands(self) -> int:
        return int(self.padded[0].shape[0])

    def offsets(self, count: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(count,) row and column of each anchor inside its tile at ``step`` (0..t-1)."""
        rng = np.random.default_rng([self.seed, _OFFSET_STREAM, step])
        inside = rng.integers(0, self.tile_size, size=(2, count))
        return inside[0], inside[1]

    def tile_origins(self, indices: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-left pixel (may be negative: inside the padding) of each sample's tile."""
        indices = np.asarray(indices)
        dy, dx = self.offsets(indices.size, step)
        return self.rows[indices] - dy, self.cols[indices] - dx

    def inputs_at(self, sources: np.ndarray, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
        """(n, bands, t, t) float32 tiles with top-left pixels (tops, lefts)."""
        t = self.tile_size
        out = np.empty((len(tops), self.num_bands, t, t), dtype=np.float32)
        for s in np.unique(sources):
            pick = np.flatnonzero(sources == s)
            windows = self._windows[s][:, tops[pick] + self.pad, lefts[pick] + self.pad]
            out[pick] = windows.transpose(1, 0, 2, 3)
        return out

    def targets_at(self, sources: np.ndarray, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
        """(n, t, t) int64 targets of the tiles with top-left pixels (tops, lefts)."""
        return self._label_tiles(self._targets, sources, tops, lefts)

    def _inverse_coverage(self, targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per raster, float32 1 / (tiles expected to contain the pixel per epoch) at its
        labelled pixels, 0 elsewhere."""
        weights = []
        for s, grid in enumerate(targets):
            anchors = np.zeros(grid.shape, dtype=bool)
            pick = self.sources == s
            anchors[self.rows[pick], self.cols[pick]] = True
            coverage = tile_coverage(anchors, self.tile_size)
            labelled = grid != IGNORE
            inverse = np.divide(1.0, coverage, out=np.zeros_like(coverage), where=coverage > 0)
            weights.append(np.where(labelled, inverse, 0.0).astype(np.float32))
        return weights

    def weights_at(self, sources: np.ndarray, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
        """(n, t, t) float32 loss weights of the tiles with top-left pixels (tops, lefts)."""
        return self._label_tiles(self._weights, sources, tops, lefts)

    def _label_tiles(
        self,
        windows: list[np.ndarray] | None,
        sources: np.ndarray,
        tops: np.ndarray,
        lefts: np.ndarray,
    ) -> np.ndarray:
        """(n, t, t) tiles of per-pixel label ``windows`` (targets or weights)."""
        if windows is None:
            raise ValueError("these tiles have no targets (pretraining tiles)")
        t = self.tile_size
        out = np.empty((len(tops), t, t), dtype=windows[0].dtype)
        for s in np.unique(sources):
            pick = np.flatnonzero(sources == s)
            out[pick] = windows[s][tops[pick] + self.pad, lefts[pick] + self.pad]
        return out

    def batch_weights(self, indices: np.ndarray, step: int) -> np.ndarray:
        """The loss weights of the tiles :meth:`batch` gives for the same arguments."""
        indices = np.asarray(indices)
        tops, lefts = self.tile_origins(indices, step)
        return self.weights_at(self.sources[indices], tops, lefts)

    def batch(self, indices: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Tiles of the samples ``indices`` at ``step`` and their targets (None without)."""
        indices = np.asarray(indices)
        sources = self.sources[indices]
        tops, lefts = self.tile_origins(indices, step)
        inputs = self.inputs_at(sources, tops, lefts)
        targets = self.targets_at(sources, tops, lefts) if self._targets is not None else None
        return inputs, targets


def label_grids(
    shapes: Sequence[tuple[int, int]],
    tile: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
) -> list[np.ndarray]:
    """Per raster, a (rows, cols) grid of class indices (value - 1), :data:`IGNORE` elsewhere."""
    grids = [np.full(shape, IGNORE, dtype=np.int64) for shape in shapes]
    for s, grid in enumerate(grids):
        pick = tile == s
        grid[rows[pick], cols[pick]] = values[pick] - 1
    return grids


def tile_coverage(anchors: np.ndarray, tile_size: int) -> np.ndarray:
    """(rows, cols) float64: how many tiles are expected to contain each pixel when every
    ``anchors`` pixel gets one ``tile_size`` tile at a uniformly random offset (as in one
    epoch). A tile around an anchor contains a pixel ``d`` rows and ``e`` columns away with
    probability ``(t - |d|)(t - |e|) / t**2``, so this is the anchor mask convolved with that
    separable kernel."""
    t = tile_size
    kernel = (t - np.abs(np.arange(1 - t, t))) / t  # (2t - 1,), symmetric
    coverage = anchors.astype(np.float64)
    for axis in (0, 1):  # no anchor outside the raster: zeros beyond its edges
        coverage = ndimage.convolve1d(coverage, kernel, axis=axis, mode="constant")
    return coverage
