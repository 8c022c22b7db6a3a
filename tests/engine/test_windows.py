"""Tiling and halo arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from engine.infer.windows import tile_raster, tile_size_for_budget, with_halo


@pytest.mark.parametrize(
    ("width", "height", "tile"),
    [(1, 1, 1), (7, 9, 4), (145, 145, 64), (300, 17, 256), (33, 70, 33)],
)
def test_tiles_cover_every_pixel_exactly_once(width, height, tile):
    cover = np.zeros((height, width), dtype=int)
    for window in tile_raster(width, height, tile):
        cover[window.slices()] += 1
        assert 0 < window.width <= tile and 0 < window.height <= tile
    assert (cover == 1).all()


@pytest.mark.parametrize("halo", [0, 1, 3, 5])
def test_halo_read_plus_padding_always_gives_full_context(halo):
    width, height = 23, 17
    for tile in tile_raster(width, height, 6):
        hw = with_halo(tile, halo, width, height)
        assert hw.read.col_off >= 0 and hw.read.row_off >= 0
        assert hw.read.col_off + hw.read.width <= width
        assert hw.read.row_off + hw.read.height <= height
        assert hw.read.height + hw.pad_before[0] + hw.pad_after[0] == tile.height + 2 * halo
        assert hw.read.width + hw.pad_before[1] + hw.pad_after[1] == tile.width + 2 * halo
        assert min(*hw.pad_before, *hw.pad_after) >= 0
        # padding only where the tile touches the raster border
        assert (hw.pad_before[0] > 0) == (tile.row_off < halo)
        assert (hw.pad_after[1] > 0) == (tile.col_off + tile.width > width - halo)


def test_tile_size_follows_the_memory_budget():
    small = tile_size_for_budget(200, 3, 16 * 1024 * 1024)
    large = tile_size_for_budget(200, 3, 1024 * 1024 * 1024)
    assert 16 <= small < large <= 2048
    assert 3 * 4 * 200 * (small + 6) ** 2 <= 16 * 1024 * 1024
