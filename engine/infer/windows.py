"""Raster windows: tiling a raster and adding the halo a patch model needs.

A window is a rectangle of pixels ``(col_off, row_off, width, height)``. Inference reads
each tile with a halo of ``patch_size // 2`` pixels so that every pixel of the tile has
its full patch context; the part of the halo that falls outside the raster is filled by
symmetric padding, exactly as in training. A pixel's patch therefore never depends on
the tile layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels with integer offset and size."""

    col_off: int
    row_off: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"window size must be >= 0, got {self.width}x{self.height}")

    @property
    def size(self) -> int:
        return self.width * self.height

    def slices(self) -> tuple[slice, slice]:
        """(row slice, column slice) of this window in a full-raster array."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )


@dataclass(frozen=True)
class HaloWindow:
    """A tile, the window actually read around it, and the padding the raster lacks.

    ``read`` is the tile grown by the halo and clipped to the raster; ``pad_before`` /
    ``pad_after`` are the (rows, cols) of halo that lie outside the raster.
    """

    tile: Window
    read: Window
    pad_before: tuple[int, int]
    pad_after: tuple[int, int]


def tile_raster(width: int, height: int, tile_size: int) -> Iterator[Window]:
    """Non-overlapping tiles covering the raster, row by row; edge tiles are smaller."""
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    for row in range(0, height, tile_size):
        for col in range(0, width, tile_size):
            yield Window(col, row, min(tile_size, width - col), min(tile_size, height - row))


def with_halo(tile: Window, halo: int, width: int, height: int) -> HaloWindow:
    """Grow ``tile`` by ``halo`` pixels on each side, clipped to a ``width x height`` raster."""
    col0, row0 = max(tile.col_off - halo, 0), max(tile.row_off - halo, 0)
    col1 = min(tile.col_off + tile.width + halo, width)
    row1 = min(tile.row_off + tile.height + halo, height)
    return HaloWindow(
        tile=tile,
        read=Window(col0, row0, col1 - col0, row1 - row0),
        pad_before=(halo - (tile.row_off - row0), halo - (tile.col_off - col0)),
        pad_after=(
            halo - (row1 - tile.row_off - tile.height),
            halo - (col1 - tile.col_off - tile.width),
        ),
    )


def tile_size_for_budget(num_bands: int, halo: int, budget_bytes: int, num_classes: int = 0) -> int:
    """Largest tile edge (16..2048) whose float32 arrays fit ``budget_bytes``.

    Per tile, three copies of the halo block live at once (the raw read, the normalised
    block and its padded copy) beside one score per class and pixel.
    """
    per_pixel = 3 * 4 * max(num_bands, 1) + 4 * max(num_classes, 0)
    edge = int((budget_bytes / per_pixel) ** 0.5) - 2 * halo
    return max(16, min(2048, edge))
