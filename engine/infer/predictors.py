"""What a model predicts: the centre pixel of a patch, or every pixel of a tile.

A predictor turns one read window into per-pixel logits. The tiled classifier reads the
window's core grown by :attr:`Predictor.halo` pixels (symmetric padding beyond the raster),
normalises it and fills missing data, then asks the predictor for the logits of the core.
Both kinds below give a pixel the same logits whatever the window layout and batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..data.patches import PatchExtractor
from ..metadata import DENSE
from .model import OnnxClassifier

Progress = Callable[[float], None]  # fraction of the window done; may raise CancelledError


class Predictor(Protocol):
    """Logits for the core of a window.

    ``halo``: pixels of context needed on each side of the core.
    """

    halo: int

    def predict(
        self,
        padded: np.ndarray,
        valid: np.ndarray,
        origin: tuple[int, int],
        raster_shape: tuple[int, int],
        progress: Progress,
    ) -> np.ndarray:
        """(classes, h, w) float32 logits of the core pixels where ``valid``.

        Args:
            padded: (bands, h + 2 * halo, w + 2 * halo) normalised block around the core.
            valid: (h, w) bool, the core pixels to predict; other values are undefined.
            origin: (row, col) of the core's first pixel in the raster.
            raster_shape: (rows, cols) of the raster.
            progress: called with the fraction of the window done after each batch.
        """
        ...


class CentrePixelPredictor:
    """A patch classifier: one P x P patch per pixel, logits of its centre pixel.

    Args:
        model: ONNX model with (batch, bands, P, P) -> (batch, classes).
        batch_size: patches per ONNX Runtime call.
    """

    def __init__(self, model: OnnxClassifier, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.patch_size = model.metadata.patch_size
        self.halo = self.patch_size // 2

    def predict(
        self,
        padded: np.ndarray,
        valid: np.ndarray,
        origin: tuple[int, int],
        raster_shape: tuple[int, int],
        progress: Progress,
    ) -> np.ndarray:
        logits = np.zeros((self.model.metadata.num_classes, *valid.shape), dtype=np.float32)
        pixels = np.stack(np.nonzero(valid), axis=1)  # (n, 2) rows and cols
        extractor = PatchExtractor(padded, self.patch_size)
        batches = list(_chunks(pixels, self.batch_size))
        inputs = (extractor(batch[:, 0], batch[:, 1]) for batch in batches)
        for batch, out in _run_batches(self.model, batches, inputs, progress):
            logits[:, batch[:, 0], batch[:, 1]] = out.T
        return logits


def blend_weights(tile_size: int) -> np.ndarray:
    """(T, T) separable squared Hann window sampled at pixel centres: ``sin⁴(π (i + ½) / T)``.

    A pixel takes its logits mostly from the tiles in which it lies most central, where
    the model sees the most context; the weight never reaches zero (its floor, at a tile's
    edge pixels, is ``sin⁴(π / 2T)``: 0.0015 for T = 8), so every pixel of a tile counts.
    The plain Hann window (``sin²``, edge weight 0.038) let a tile's edge pixels, which
    a model sees without neighbours on one side, leave faint seams at every stride.
    """
    w = np.sin(np.pi * (np.arange(tile_size) + 0.5) / tile_size) ** 4
    return np.outer(w, w).astype(np.float32)


def tile_starts(core_start: int, core_size: int, raster_size: int, tile: int, stride: int):
    """First pixels, along one axis, of the global tiles that overlap a core.

    The global grid is anchored to the raster, not to the window: tiles start at
    ``k * stride - (tile - stride)`` for k = 0, 1, ... up to the last pixel, so every
    raster pixel, edges included, lies in the same number of tiles (``tile / stride``
    when the stride divides the tile) and the tiles beyond the raster see its
    symmetric padding.
    """
    first = stride - tile
    lo = max(core_start - tile + 1, first)  # a tile starting here still reaches the core
    hi = min(core_start + core_size - 1, raster_size - 1)
    k0 = -(-(lo - first) // stride)
    return np.arange(first + k0 * stride, hi + 1, stride)


class DenseTilePredictor:
    """A dense model: logits of every pixel of a T x T tile, tiles overlapping and blended.

    Tiles lie on a grid anchored to the raster with stride ``max(1, T // 2)`` (see
    :func:`tile_starts`); a pixel's logits are the average of the logits of the tiles
    containing it, weighted by :func:`blend_weights`, so no block seams appear. Tiles are
    accumulated in raster order whatever the window, so a pixel's logits do not depend on
    the window layout. Tiles without a pixel to predict are skipped.

    Args:
        model: ONNX model with (batch, bands, T, T) -> (batch, classes, T, T); or any
            object with its ``metadata`` (``tile_size``, ``num_classes``) and ``map_logits``.
        batch_size: tiles per ONNX Runtime call.
    """

    def __init__(self, model: OnnxClassifier, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.tile = model.metadata.tile_size
        self.stride = max(1, self.tile // 2)
        self.halo = self.tile - 1
        self.weights = blend_weights(self.tile)

    def predict(
        self,
        padded: np.ndarray,
        valid: np.ndarray,
        origin: tuple[int, int],
        raster_shape: tuple[int, int],
        progress: Progress,
    ) -> np.ndarray:
        h, w = valid.shape
        tiles = self._tiles(valid, origin, raster_shape)
        logits = np.zeros((self.model.metadata.num_classes, h, w), dtype=np.float32)
        weight = np.zeros((h, w), dtype=np.float32)
        # local tile starts in ``padded``, whose first pixel is origin - halo
        local = [(r - origin[0] + self.halo, c - origin[1] + self.halo) for r, c in tiles]
        windows = sliding_window_view(padded, (self.tile, self.tile), axis=(1, 2))
        batches = list(_chunks(local, self.batch_size))
        inputs = (_stack(windows, batch) for batch in batches)
        for batch, out in _run_batches(self.model, batches, inputs, progress):
            for (r, c), tile_logits in zip(batch, out, strict=True):
                self._accumulate(logits, weight, tile_logits, r - self.halo, c - self.halo)
        np.divide(logits, weight, out=logits, where=weight > 0)
        return logits

    def _tiles(
        self, valid: np.ndarray, origin: tuple[int, int], raster_shape: tuple[int, int]
    ) -> list[tuple[int, int]]:
        """Global (row, col) starts of the tiles with a pixel to predict, in raster order."""
        h, w = valid.shape
        t, s = self.tile, self.stride
        rows = tile_starts(origin[0], h, raster_shape[0], t, s)
        cols = tile_starts(origin[1], w, raster_shape[1], t, s)
        # valid pixels in each tile's part of the core, from a summed-area table
        table = np.zeros((h + 1, w + 1), dtype=np.int64)
        table[1:, 1:] = valid.cumsum(0).cumsum(1)
        r0 = np.clip(rows - origin[0], 0, h)[:, None]
        r1 = np.clip(rows + t - origin[0], 0, h)[:, None]
        c0 = np.clip(cols - origin[1], 0, w)[None, :]
        c1 = np.clip(cols + t - origin[1], 0, w)[None, :]
        counts = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
        keep_r, keep_c = np.nonzero(counts)
        return [(int(rows[i]), int(cols[j])) for i, j in zip(keep_r, keep_c, strict=True)]

    def _accumulate(
        self, logits: np.ndarray, weight: np.ndarray, tile: np.ndarray, r: int, c: int
    ) -> None:
        """Add one tile's weighted logits; (r, c) is its first pixel relative to the core."""
        h, w = weight.shape
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + self.tile, h), min(c + self.tile, w)
        part = (slice(r0 - r, r1 - r), slice(c0 - c, c1 - c))
        wpart = self.weights[part]
        logits[:, r0:r1, c0:c1] += wpart * tile[(slice(None), *part)]
        weight[r0:r1, c0:c1] += wpart


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _run_batches(
    model: OnnxClassifier,
    batches: list[Sequence],
    inputs: Iterable[np.ndarray],
    progress: Progress,
) -> Iterator[tuple[Sequence, np.ndarray]]:
    """(batch, logits) for each batch of items and its model input; ``progress`` gets the
    share of items done once the caller has used a batch's logits."""
    total = sum(len(batch) for batch in batches)
    done = 0
    for batch, out in zip(batches, model.map_logits(inputs), strict=True):
        yield batch, out
        done += len(batch)
        progress(done / total)


def _stack(windows: np.ndarray, starts: list[tuple[int, int]]) -> np.ndarray:
    """(n, bands, T, T) float32 tiles from a (bands, rows, cols, T, T) window view."""
    rows, cols = zip(*starts, strict=True)
    tiles = windows[:, list(rows), list(cols)]  # (bands, n, T, T) copy
    return np.ascontiguousarray(tiles.transpose(1, 0, 2, 3), dtype=np.float32)


def make_predictor(model: OnnxClassifier, batch_size: int) -> Predictor:
    """The predictor for the model's ``prediction`` mode (metadata).

    ``batch_size`` counts the pixels predicted per ONNX Runtime call: one per patch of a
    centre-pixel model, T² per tile of a dense model (at least one tile per call). An 8 x 8
    MaskedSST tile needs tens of MB of ONNX Runtime working memory, as much as dozens of
    FactoFormer patches, so the default of 64 gives both kinds a similar footprint per
    call; on CPU, larger batches of tiles were not faster.
    """
    meta = model.metadata
    if meta.prediction == DENSE:
        return DenseTilePredictor(model, max(1, batch_size // meta.tile_size**2))
    return CentrePixelPredictor(model, batch_size)
