"""FactoFormer: factorised pixel-token and band-token transformers fused by a linear head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import FactoFormerConfig
from .layers import TokenEncoder


class FactoFormer(nn.Module):
    """Centre-pixel classifier for hyperspectral patches (Mohamed et al., TGRS 2024).

    Two independent encoders read the same patch. The *pixel* encoder (the paper's
    spatial transformer) sees ``patch_size**2`` tokens, one spectrum each; the *band*
    encoder (the paper's spectral transformer) sees ``num_bands`` tokens, one small image
    each. Their cls outputs are concatenated and mapped to class logits by
    Linear -> Linear, with nothing in between.

    Input: (batch, num_bands, patch_size, patch_size) float32, normalised.
    Output: (batch, num_classes) logits.
    """

    def __init__(self, config: FactoFormerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.pixel_encoder = TokenEncoder(
            in_features=c.num_bands,
            num_tokens=c.num_pixels,
            dim=c.pixel_dim,
            depth=c.pixel_depth,
            num_heads=c.pixel_heads,
            mlp_hidden=c.pixel_mlp_hidden,
            drop=c.drop_rate,
            eps=c.norm_eps,
        )
        self.band_encoder = TokenEncoder(
            in_features=c.num_pixels,
            num_tokens=c.num_bands,
            dim=c.band_dim,
            depth=c.band_depth,
            num_heads=c.band_heads,
            mlp_hidden=c.band_mlp_hidden,
            drop=c.drop_rate,
            eps=c.norm_eps,
        )
        self.fusion = nn.Linear(c.pixel_dim + c.band_dim, c.fusion_dim)
        self.head = nn.Linear(c.fusion_dim, c.num_classes)

    @staticmethod
    def pixel_tokens(patches: torch.Tensor) -> torch.Tensor:
        """(batch, bands, p, p) -> (batch, p*p, bands): one token per pixel."""
        return patches.flatten(2).transpose(1, 2)

    @staticmethod
    def band_tokens(patches: torch.Tensor) -> torch.Tensor:
        """(batch, bands, p, p) -> (batch, bands, p*p): one token per band."""
        return patches.flatten(2)

    def forward_features(self, patches: torch.Tensor) -> torch.Tensor:
        """Fused cls features before the classifier, (batch, fusion_dim)."""
        pixel_cls = self.pixel_encoder(self.pixel_tokens(patches))  # (batch, pixel_dim)
        band_cls = self.band_encoder(self.band_tokens(patches))  # (batch, band_dim)
        return self.fusion(torch.cat([pixel_cls, band_cls], dim=1))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(patches))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
