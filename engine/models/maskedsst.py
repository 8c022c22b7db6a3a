"""MaskedSST: a spatial-spectral transformer that labels every pixel of a small tile.

Scheibenreif, Mommert and Borth, "Masked Vision Transformers for Hyperspectral Image
Classification" (CVPR EarthVision 2023). A tile of ``tile_size x tile_size`` pixels is cut
into tokens of one pixel by ``spectral_block`` consecutive bands (the bands are padded
with zeros to a multiple of the block first, inside the model). Each spectral block has
its own linear embedding. All spatial layers (attention among the pixels of one block)
run first, then all spectral layers (attention among the blocks of one pixel); the
blocks are averaged and a per-pixel head gives the logits of every pixel of the tile.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import MaskedSSTConfig
from .layers import DEFAULT_KERNELS, Block, Dropout, Kernels


def sincos_1d(positions: np.ndarray, width: int) -> np.ndarray:
    """(n, width) sin-cos embedding of ``positions`` (first half sines, then cosines)."""
    omega = 1.0 / 10000.0 ** (np.arange(width // 2, dtype=np.float64) / (width / 2))
    angles = np.outer(positions, omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_embedding(config: MaskedSSTConfig) -> np.ndarray:
    """(num_blocks * num_pixels, dim) sin-cos positions, tokens in (block, row, col) order."""
    t, spectral = config.tile_size, config.dim // 3
    spatial = config.dim - spectral
    rows, cols = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
    pixel = np.concatenate(
        [sincos_1d(rows.ravel(), spatial // 2), sincos_1d(cols.ravel(), spatial // 2)], axis=1
    )  # (pixels, spatial)
    positions = config.spectral_positions or tuple(range(config.num_blocks))
    block = sincos_1d(np.asarray(positions, dtype=np.float64), spectral)  # (blocks, spectral)
    table = np.concatenate(
        [
            np.tile(pixel[None], (config.num_blocks, 1, 1)),
            np.repeat(block[:, None], config.num_pixels, axis=1),
        ],
        axis=2,
    )
    return table.reshape(config.num_tokens, config.dim)


def transformer(config: MaskedSSTConfig, depth: int, kernels: Kernels) -> nn.Sequential:
    """``depth`` pre-norm blocks, qkv without bias, no final norm (vit-pytorch style)."""
    c = config
    return nn.Sequential(
        *(
            Block(c.dim, c.heads, c.mlp_hidden, c.drop_rate, 1e-5, kernels, c.head_dim, False)
            for _ in range(depth)
        )
    )


class BlockwiseLinear(nn.Module):
    """One linear map per spectral block: (..., blocks, tokens, in) -> (..., blocks, tokens, out).

    Initialised like ``nn.Linear`` (uniform in +-1/sqrt(in)).
    """

    def __init__(self, blocks: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(blocks, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(blocks, 1, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) + self.bias


class MaskedSST(nn.Module):
    """Dense classifier of hyperspectral tiles.

    Input: (batch, num_bands, tile_size, tile_size) float32, normalised.
    Output: (batch, num_classes, tile_size, tile_size) logits, one set per pixel.

    Args:
        config: the architecture.
        kernels: kernel choices for training and export (see :class:`Kernels`).
    """

    def __init__(self, config: MaskedSSTConfig, kernels: Kernels = DEFAULT_KERNELS) -> None:
        super().__init__()
        self.config = c = config
        self.token_norm = nn.LayerNorm(c.spectral_block) if c.token_norm else nn.Identity()
        self.embed = BlockwiseLinear(c.num_blocks, c.spectral_block, c.dim)
        self.embed_norm = nn.LayerNorm(c.dim)
        if c.pos_embedding == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, c.num_tokens + 1, c.dim))
        else:
            table = torch.from_numpy(sincos_embedding(c)).float()[None]
            self.pos_embed = nn.Parameter(table)
        self.pos_drop = Dropout(c.drop_rate, kernels.fast_dropout)
        self.spatial = transformer(c, c.spatial_depth, kernels)
        self.spectral = transformer(c, c.spectral_depth, kernels)
        self.head_norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def tokens(self, tiles: torch.Tensor) -> torch.Tensor:
        """(batch, bands, t, t) -> (batch, blocks, t*t, spectral_block) raw token values,
        the bands zero-padded to a multiple of the block (also the pretraining target)."""
        c = self.config
        n = tiles.shape[0]
        if c.band_padding:
            tiles = F.pad(tiles, (0, 0, 0, 0, 0, c.band_padding))
        x = tiles.reshape(n, c.num_blocks, c.spectral_block, c.num_pixels)
        return x.transpose(2, 3)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, blocks, pixels, spectral_block) -> (batch, blocks, pixels, dim)."""
        return self.embed_norm(self.embed(self.token_norm(tokens)))

    def encode(self, embedded: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Positions, spatial then spectral layers: (b, blocks, p, dim) -> same shape.

        ``pixels``: (b, p) indices of the tile pixels ``embedded`` holds, the same in every
        block (e.g. the visible ones); None when it holds all of them in order.
        """
        c = self.config
        n, s, p, d = embedded.shape
        pos = self.pos_embed[:, : c.num_tokens].reshape(1, s, c.num_pixels, d)
        if pixels is not None:
            pos = pos.expand(n, -1, -1, -1).gather(2, pixels[:, None, :, None].expand(n, s, p, d))
        x = self.pos_drop(embedded + pos)
        x = self.spatial(x.reshape(n * s, p, d)).reshape(n, s, p, d)
        x = x.transpose(1, 2).reshape(n * p, s, d)
        return self.spectral(x).reshape(n, p, s, d).transpose(1, 2)

    def classify(self, encoded: torch.Tensor) -> torch.Tensor:
        """(batch, blocks, pixels, dim) -> (batch, classes, t, t): mean over blocks, head."""
        t = self.config.tile_size
        logits = self.head(self.head_norm(encoded.mean(dim=1)))  # (batch, pixels, classes)
        return logits.transpose(1, 2).reshape(encoded.shape[0], -1, t, t)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(self.embed_tokens(self.tokens(tiles))))

    def head_parameters(self) -> list[nn.Parameter]:
        """The per-pixel head (its own learning rate in fine-tuning)."""
        return [*self.head_norm.parameters(), *self.head.parameters()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Everything but the head (what pretraining transfers)."""
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]
