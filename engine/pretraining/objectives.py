"""Masked reconstruction of one FactoFormer branch, and its step for the training loop.

The encoder is exactly the fine-tuning branch (:func:`~engine.models.build_encoder`), so
its weights transfer as they are. Two ways to encode a masked sample:

* ``mask-token`` (FactoFormer): hidden tokens are replaced, after the token embedding and
  before the cls token and positions are added, by one learned mask token; all tokens
  go through the encoder. A linear decoder maps every output token back to its values.
* ``visible`` (MAE): only the visible ~30 % of the tokens, with their own positional
  embeddings, go through the encoder. The encoded tokens are scattered back to their
  places, every hidden place gets a learned mask token, a separate positional embedding
  is added to all places, and ``decoder_depth`` transformer blocks (then a LayerNorm)
  run over the full sequence before the linear decoder. A purely linear decoder would see
  nothing of the visible tokens at a hidden place (only its position), so it could only
  predict a constant there; the blocks are what lets hidden places read the visible ones.

Decoders: pixel branch dim -> bands per pixel token; band branch dim -> patch_size**2 per
band token. The target is the normalised input itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig, PretrainingRecipe
from ..models import DEFAULT_KERNELS, FactoFormer, Kernels, build_encoder
from ..models.layers import Block
from ..training.loop import StepFunction
from .data import PretrainingPixels
from .masking import TokenMasker


class MaskedReconstruction(nn.Module):
    """One branch's encoder, a learned mask token and a decoder to the token values.

    Args:
        config: the branch's encoder.
        visible_only: encode only the visible tokens (MAE) instead of all of them.
        decoder_depth: transformer blocks before the linear decoder (0: linear only).
        kernels: kernel choices (see :class:`~engine.models.Kernels`).
    """

    def __init__(
        self,
        config: EncoderConfig,
        visible_only: bool = False,
        decoder_depth: int = 0,
        kernels: Kernels = DEFAULT_KERNELS,
    ) -> None:
        super().__init__()
        if visible_only and decoder_depth < 1:
            raise ValueError("the visible-token encoder needs at least one decoder block")
        self.config = config
        self.visible_only = visible_only
        self.encoder = build_encoder(config, kernels)
        dim = config.dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos = None
        if visible_only:
            self.decoder_pos = nn.Parameter(torch.zeros(1, config.num_tokens + 1, dim))
            nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        self.decoder_blocks = nn.Sequential(
            *(
                Block(dim, config.heads, config.mlp_hidden, 0.0, config.block_norm_eps, kernels)
                for _ in range(decoder_depth)
            )
        )
        self.decoder_norm = nn.LayerNorm(dim) if decoder_depth else nn.Identity()
        self.decoder = nn.Linear(dim, config.token_features)

    def tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """The branch's input tokens, which are also the reconstruction target."""
        return FactoFormer.tokens(patches, self.config.branch)

    def forward(self, patches: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reconstructed tokens (batch, num_tokens, token_features).

        Args:
            patches: (batch, bands, p, p) normalised patches.
            masks: (batch, num_tokens) bool, True = hidden; every row hides as many tokens.
        """
        tokens = self.tokens(patches)
        if self.visible_only:
            encoded = self._encode_visible(tokens, masks)
        else:
            embedded = self.encoder.embed_tokens(tokens)
            hidden = masks.unsqueeze(-1)
            embedded = torch.where(hidden, self.mask_token.to(embedded.dtype), embedded)
            encoded = self.encoder.forward_features(embedded)
        decoded = self.decoder_norm(self.decoder_blocks(encoded))
        return self.decoder(decoded[:, 1:])

    def _encode_visible(self, tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Encode the visible tokens; return the full sequence with mask tokens, cls first."""
        n, t, _ = tokens.shape
        visible = t - int(masks[0].sum())
        # Stable sort puts the visible (False) places first, in token order.
        order = torch.argsort(masks.to(torch.uint8), dim=1, stable=True)[:, :visible]
        picked = tokens.gather(1, order.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        encoded = self.encoder.forward_features(self.encoder.embed_tokens(picked), order)
        dim = encoded.shape[-1]
        places = self.mask_token.to(encoded.dtype).expand(n, t, dim)
        places = places.scatter(1, order.unsqueeze(-1).expand(-1, -1, dim), encoded[:, 1:])
        assert self.decoder_pos is not None
        return torch.cat([encoded[:, :1], places], dim=1) + self.decoder_pos


def reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, masks: torch.Tensor, over: str
) -> torch.Tensor:
    """Mean squared error over all tokens (``all``) or over the hidden ones (``masked``)."""
    if over == "all":
        return F.mse_loss(reconstruction, target)
    per_token = (reconstruction - target).pow(2).mean(-1)  # (batch, tokens)
    return per_token[masks].mean()


def reconstruction_step(
    model: MaskedReconstruction,
    pixels: PretrainingPixels,
    masker: TokenMasker,
    recipe: PretrainingRecipe,
) -> StepFunction:
    """The loop's step: cut the patches, mask them, reconstruct, return the loss.

    Besides the loss the step reports ``masked_mse``, the error on the hidden tokens only,
    which compares across variants whatever loss they minimise.
    """

    def step(indices, step_index):  # type: ignore[no-untyped-def]
        patches = torch.from_numpy(pixels.patches(indices))
        masks = torch.from_numpy(masker(indices, step_index))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            reconstruction = model(patches, masks)
        reconstruction = reconstruction.float()
        target = model.tokens(patches)
        loss = reconstruction_loss(reconstruction, target, masks, recipe.loss)
        with torch.no_grad():
            masked = reconstruction_loss(reconstruction, target, masks, "masked")
        return loss, {"masked_mse": float(masked)}

    return step
