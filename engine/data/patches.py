"""Lazy extraction of square patches around pixels, with symmetric border padding."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_symmetric(block: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """Pad a (bands, rows, cols) block by mirroring, edge pixel included (numpy 'symmetric').

    Args:
        block: (bands, rows, cols) array.
        before: pixels to add above and to the left.
        after: pixels to add below and to the right.
    """
    if not any(before) and not any(after):
        return block
    pad = ((0, 0), (before[0], after[0]), (before[1], after[1]))
    return np.pad(block, pad, mode="symmetric")


class PatchExtractor:
    """Builds (n, bands, p, p) float32 patches on demand from a padded block.

    Only a strided view is kept; each call copies just the requested patches, so memory
    is one padded block plus one batch, never one patch per pixel.

    Args:
        padded: (bands, rows + p - 1, cols + p - 1) float32 block whose border already
            holds the context of its outermost pixels (see :func:`pad_symmetric`).
        patch_size: odd patch edge ``p``.
    """

    def __init__(self, padded: np.ndarray, patch_size: int) -> None:
        self.patch_size = patch_size
        self.padded = padded
        # (bands, rows, cols, p, p) view; no copy.
        self._windows = sliding_window_view(padded, (patch_size, patch_size), axis=(1, 2))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of pixels that have a patch."""
        return self._windows.shape[1], self._windows.shape[2]

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Patches centred on (rows[i], cols[i]) as a contiguous (n, bands, p, p) array."""
        patches = self._windows[:, rows, cols]  # (bands, n, p, p) copy
        return np.ascontiguousarray(patches.transpose(1, 0, 2, 3), dtype=np.float32)

    @classmethod
    def from_cube(cls, cube: np.ndarray, patch_size: int) -> PatchExtractor:
        """Extractor for a whole (bands, rows, cols) scene, padded symmetrically at its border."""
        m = patch_size // 2
        return cls(pad_symmetric(cube, (m, m), (m, m)), patch_size)
