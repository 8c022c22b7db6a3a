"""FactoFormer: factorised pixel-token and band-token transformers fused by a linear head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import Branch, EncoderConfig, FactoFormerConfig
from .layers import DEFAULT_KERNELS, Kernels, TokenEncoder


def build_encoder(config: EncoderConfig, kernels: Kernels = DEFAULT_KERNELS) -> TokenEncoder:
    """The token encoder of one branch (the same module in pretraining and fine-tuning)."""
    return TokenEncoder(
        in_features=config.token_features,
        num_tokens=config.num_tokens,
        dim=config.dim,
        depth=config.depth,
        num_heads=config.heads,
        mlp_hidden=config.mlp_hidden,
        drop=config.drop_rate,
        block_eps=config.block_norm_eps,
        outer_eps=config.outer_norm_eps,
        kernels=kernels,
    )


class FactoFormer(nn.Module):
    """Centre-pixel classifier for hyperspectral patches (Mohamed et al., TGRS 2024).

    Two independent encoders read the same patch. The *pixel* encoder (the paper's
    spatial transformer) sees ``patch_size**2`` tokens, one spectrum each; the *band*
    encoder (the paper's spectral transformer) sees ``num_bands`` tokens, one small image
    each. Their cls outputs are concatenated and mapped to class logits by
    Linear -> Linear, with nothing in between.

    Input: (batch, num_bands, patch_size, patch_size) float32, normalised.
    Output: (batch, num_classes) logits.

    Args:
        config: the architecture.
        kernels: kernel choices for training and export (see :class:`Kernels`).
    """

    def __init__(self, config: FactoFormerConfig, kernels: Kernels = DEFAULT_KERNELS) -> None:
        super().__init__()
        self.config = config
        c = config
        self.pixel_encoder = build_encoder(c.encoder("pixel"), kernels)
        self.band_encoder = build_encoder(c.encoder("band"), kernels)
        self.fusion = nn.Linear(c.pixel_dim + c.band_dim, c.fusion_dim)
        self.head = nn.Linear(c.fusion_dim, c.num_classes)

    def encoder(self, branch: Branch) -> TokenEncoder:
        """The encoder of the ``pixel`` or ``band`` branch."""
        return self.pixel_encoder if branch == "pixel" else self.band_encoder

    @staticmethod
    def pixel_tokens(patches: torch.Tensor) -> torch.Tensor:
        """(batch, bands, p, p) -> (batch, p*p, bands): one token per pixel."""
        return patches.flatten(2).transpose(1, 2)

    @staticmethod
    def band_tokens(patches: torch.Tensor) -> torch.Tensor:
        """(batch, bands, p, p) -> (batch, bands, p*p): one token per band."""
        return patches.flatten(2)

    @staticmethod
    def tokens(patches: torch.Tensor, branch: Branch) -> torch.Tensor:
        """The input tokens of one branch (see :meth:`pixel_tokens`, :meth:`band_tokens`)."""
        if branch == "pixel":
            return FactoFormer.pixel_tokens(patches)
        return FactoFormer.band_tokens(patches)

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
