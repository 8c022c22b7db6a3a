"""SimMIM-style masked pretraining of a MaskedSST, on the shared training loop.

Hidden tokens (one pixel x one spectral block each) are replaced after the embedding by a
learned mask token; all tokens go through the encoder; a linear decoder per spectral
block maps every encoded token back to its ``spectral_block`` normalised values. With the
``visible`` encoder (MAE) only the visible pixels go through the encoder; the hidden places
get the mask token afterwards, and spatial decoder blocks let them read the visible ones
before the linear decoders. The loss
is the L1 error on the hidden tokens only, each sample's own (the official code indexes
the loss with a flat list cut into equal chunks, which drifts into other samples' masks;
here the per-token errors are selected with each sample's boolean mask).

A pretraining run folder holds ``encoder.pt`` (the pre-trained backbone and its provenance,
weights only), ``state.pt`` (the loop's state, for ``resume``) and ``pretraining.json``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import MaskedPretrainingRecipe, MaskedSSTConfig
from ..data.dense import DenseTiles
from ..data.normalization import Normalization
from ..errors import InputDataError, ModelLoadError
from ..models import DEFAULT_KERNELS, Kernels
from ..models.layers import Block
from ..models.maskedsst import BlockwiseLinear, MaskedSST
from ..progress import Feedback
from ..training.loop import StepFunction, fit, load_weights_only, seed_everything
from .data import PretrainingPixels
from .run import STATE_NAME, provenance, write_run
from .transfer import ENCODER_NAME, check_matching, check_normalization, save_pretrained

ENCODER_FORMAT = "maskedsst-pretrained-encoder/1"
HEAD_PREFIXES = ("head.", "head_norm.")  # fine-tuning only; never pre-trained
_MASK_STREAM, _ANCHOR_STREAM = 3, 4  # seed streams (the tile offsets use 2)


def tube_masks(
    rng: np.random.Generator, count: int, config: MaskedSSTConfig, ratio: float, unit: int
) -> np.ndarray:
    """(count, blocks, pixels) bool: ``ceil(ratio * units)`` of the tile's ``unit x unit``
    pixel units hidden, the same pixels in every spectral block."""
    t = config.tile_size
    per_side = -(-t // unit)
    units = per_side * per_side
    hidden = math.ceil(ratio * units)
    ranks = rng.random((count, units)).argsort(axis=1)
    unit_mask = np.zeros((count, units), dtype=bool)
    np.put_along_axis(unit_mask, ranks[:, :hidden], True, axis=1)
    grid = unit_mask.reshape(count, per_side, per_side)
    pixels = grid.repeat(unit, axis=1).repeat(unit, axis=2)[:, :t, :t].reshape(count, -1)
    return np.repeat(pixels[:, None], config.num_blocks, axis=1)


def random_token_masks(
    rng: np.random.Generator, count: int, config: MaskedSSTConfig, ratio: float
) -> np.ndarray:
    """(count, blocks, pixels) bool: ``int(ratio * tokens)`` tokens hidden at random."""
    tokens = config.num_tokens
    hidden = int(ratio * tokens)
    ranks = rng.random((count, tokens)).argsort(axis=1)
    masks = np.zeros((count, tokens), dtype=bool)
    np.put_along_axis(masks, ranks[:, :hidden], True, axis=1)
    return masks.reshape(count, config.num_blocks, config.num_pixels)


def draw_masks(
    recipe: MaskedPretrainingRecipe, config: MaskedSSTConfig, count: int, step: int
) -> np.ndarray:
    """The masks of one step: a pure function of the seed and the step (resume-safe)."""
    rng = np.random.default_rng([recipe.seed, _MASK_STREAM, step])
    if recipe.masking == "tube":
        return tube_masks(rng, count, config, recipe.mask_ratio, recipe.mask_unit)
    return random_token_masks(rng, count, config, recipe.mask_ratio)


class MaskedTileReconstruction(nn.Module):
    """A MaskedSST backbone, a learned mask token, spatial decoder blocks and one linear
    decoder per spectral block.

    Args:
        config: the backbone (its per-pixel head is built but never used: no gradient,
            not transferred).
        grad_clip: clamp every gradient element to +-grad_clip (None: off).
        kernels: kernel choices.
        visible_only: encode only the visible pixels (masks must hide the same pixels in
            every block and as many in every sample, as tube masks do).
        decoder_depth: spatial transformer blocks (no dropout) before the linear decoders.
    """

    def __init__(
        self,
        config: MaskedSSTConfig,
        grad_clip: float | None = None,
        kernels: Kernels = DEFAULT_KERNELS,
        visible_only: bool = False,
        decoder_depth: int = 0,
    ) -> None:
        super().__init__()
        if visible_only and decoder_depth < 1:
            raise ValueError("the visible-pixel encoder needs at least one decoder block")
        self.config = c = config
        self.visible_only = visible_only
        self.backbone = MaskedSST(config, kernels)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, c.dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos = None
        if visible_only:
            self.decoder_pos = nn.Parameter(torch.zeros(1, c.num_blocks, c.num_pixels, c.dim))
            nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        self.decoder_blocks = nn.Sequential(
            *(
                Block(c.dim, c.heads, c.mlp_hidden, 0.0, 1e-5, kernels, c.head_dim, False)
                for _ in range(decoder_depth)
            )
        )
        self.decoder_norm = nn.LayerNorm(c.dim) if decoder_depth else nn.Identity()
        self.decoder = BlockwiseLinear(c.num_blocks, c.dim, c.spectral_block)
        if grad_clip is not None:
            for p in self.parameters():
                p.register_hook(lambda g, c=grad_clip: g.clamp(-c, c))

    def forward(self, tiles: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reconstructed tokens (batch, blocks, pixels, spectral_block).

        Args:
            tiles: (batch, bands, t, t) normalised tiles.
            masks: (batch, blocks, pixels) bool, True = hidden.
        """
        embedded = self.backbone.embed_tokens(self.backbone.tokens(tiles))
        if self.visible_only:
            encoded = self._encode_visible(embedded, masks)
        else:
            hidden = masks.unsqueeze(-1)
            embedded = torch.where(hidden, self.mask_token.to(embedded.dtype), embedded)
            encoded = self.backbone.encode(embedded)
        n, s, p, d = encoded.shape
        decoded = self.decoder_blocks(encoded.reshape(n * s, p, d)).reshape(n, s, p, d)
        return self.decoder(self.decoder_norm(decoded))

    def _encode_visible(self, embedded: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Encode the visible pixels; return every place, hidden ones holding the mask
        token, with the decoder's positions added."""
        n, s, p, d = embedded.shape
        hidden = masks[:, 0]  # (batch, pixels): the same pixels in every block
        visible = p - int(hidden[0].sum())
        # Stable sort puts the visible (False) pixels first, in tile order.
        order = torch.argsort(hidden.to(torch.uint8), dim=1, stable=True)[:, :visible]
        index = order[:, None, :, None].expand(n, s, visible, d)
        encoded = self.backbone.encode(embedded.gather(2, index), order)
        places = self.mask_token.to(encoded.dtype).expand(n, s, p, d).scatter(2, index, encoded)
        assert self.decoder_pos is not None
        return places + self.decoder_pos

    def band_weights(self) -> torch.Tensor:
        """(blocks, 1, spectral_block): 1 for real bands, 0 for the zero padding."""
        c = self.config
        real = torch.ones(c.num_blocks * c.spectral_block)
        if c.band_padding:
            real[-c.band_padding :] = 0.0
        return real.reshape(c.num_blocks, 1, c.spectral_block)


def masked_l1(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    masks: torch.Tensor,
    band_weights: torch.Tensor,
) -> torch.Tensor:
    """Mean L1 error over the hidden tokens of every sample (its own mask, nothing else).

    Args:
        reconstruction, target: (batch, blocks, pixels, spectral_block).
        masks: (batch, blocks, pixels) bool, True = hidden.
        band_weights: (blocks, 1, spectral_block), 0 for padding bands (left out).
    """
    weights = band_weights.to(reconstruction.dtype)
    error = ((reconstruction - target).abs() * weights).sum(-1)  # (batch, blocks, pixels)
    per_token = error / weights.sum(-1)  # mean over each token's real bands
    return per_token[masks].mean()


def pretraining_step(
    model: MaskedTileReconstruction,
    tiles: DenseTiles,
    recipe: MaskedPretrainingRecipe,
) -> StepFunction:
    """The loop's step: random anchors and tile offsets, masks, reconstruction, loss.

    The sample indices the loop hands over only set the batch size: each step draws its
    anchors at random from all of ``tiles`` (from the seed and the step).
    """
    weights = model.band_weights()
    config = model.config

    def step(indices, step_index):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng([recipe.seed, _ANCHOR_STREAM, step_index])
        anchors = rng.integers(0, len(tiles), size=len(indices))
        batch, _ = tiles.batch(anchors, step_index)
        inputs = torch.from_numpy(batch)
        masks = torch.from_numpy(draw_masks(recipe, config, len(indices), step_index))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            reconstruction = model(inputs, masks)
        target = model.backbone.tokens(inputs)
        loss = masked_l1(reconstruction.float(), target, masks, weights)
        return loss, {}

    return step


def pretraining_tiles(pixels: PretrainingPixels, tile_size: int, seed: int) -> DenseTiles:
    """Anchor pixels of a pretraining set as dense tiles (built with the context patch
    size, :func:`~engine.data.dense.context_patch_size`)."""
    if pixels.patch_size != 2 * tile_size - 1:
        raise ValueError(f"pretraining pixels need patch size {2 * tile_size - 1} for tiles")
    padded = [e.padded for e in pixels.extractors]
    return DenseTiles(padded, tile_size, pixels.sources, pixels.rows, pixels.cols, seed=seed)


@dataclass
class PretrainedMaskedSST:
    """A pre-trained MaskedSST backbone with where it came from."""

    config: MaskedSSTConfig
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the backbone as a weights-only file (atomically)."""
        return save_pretrained(path, ENCODER_FORMAT, self)


def pretrain_maskedsst(
    pixels: PretrainingPixels,
    config: MaskedSSTConfig,
    recipe: MaskedPretrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    feedback: Feedback | None = None,
    resume: bool = False,
    kernels: Kernels = DEFAULT_KERNELS,
) -> PretrainedMaskedSST:
    """Pretrain a MaskedSST backbone on tiles around ``pixels`` (see the module doc).

    Args:
        pixels: anchor pixels, cut with patch size ``2 * tile_size - 1``.
        config: the backbone (``num_classes`` is not used).
        recipe: optimisation and masking.
        output_dir: the run folder; None keeps nothing on disk (and cannot resume).
        feedback: progress and cancellation.
        resume: continue from the folder's last saved epoch.
        kernels: kernel choices.
    """
    if pixels.num_bands != config.num_bands:
        raise InputDataError(
            f"the pretraining pixels have {pixels.num_bands} bands, the model {config.num_bands}"
        )
    tiles = pretraining_tiles(pixels, config.tile_size, recipe.seed)
    seed_everything(recipe.seed)
    visible = recipe.encoder == "visible"
    model = MaskedTileReconstruction(
        config, recipe.grad_clip, kernels, visible, recipe.decoder_depth
    )
    out = Path(output_dir) if output_dir is not None else None
    fitted = fit(
        model,
        pretraining_step(model, tiles, recipe),
        recipe.tiles_per_epoch,
        recipe,
        feedback,
        out / STATE_NAME if out else None,
        resume,
        "pretrain maskedsst",
    )
    objective = objective_summary(recipe, config)
    record = provenance({"model_type": "MaskedSST"}, pixels, objective, recipe, fitted)
    state = {
        k: v.detach().clone()
        for k, v in model.backbone.state_dict().items()
        if not k.startswith(HEAD_PREFIXES)
    }
    pretrained = PretrainedMaskedSST(config, state, record)
    if out is not None:
        write_run(out, pretrained, fitted.history)
    return pretrained


def objective_summary(recipe: MaskedPretrainingRecipe, config: MaskedSSTConfig) -> str:
    """One line saying what the backbone learned to do."""
    if recipe.masking == "tube":
        u = recipe.mask_unit
        units = (-(-config.tile_size // u)) ** 2
        hidden = f"{math.ceil(recipe.mask_ratio * units)} of {units} {u}x{u}-pixel units"
        hidden += " in every spectral block (tube)"
    else:
        hidden = f"{int(recipe.mask_ratio * config.num_tokens)} of {config.num_tokens} tokens"
    if recipe.encoder == "visible":
        how = "hidden; only the visible pixels encoded, a learned mask token in the hidden places"
    else:
        how = "hidden behind a learned mask token"
    depth = recipe.decoder_depth
    blocks = f"{depth} spatial decoder block{'s' * (depth > 1)}, " if depth else ""
    return (
        f"masked reconstruction of normalised {config.spectral_block}-band tokens: {hidden} "
        f"{how}, {blocks}a linear decoder per spectral block, "
        "L1 over each sample's hidden tokens"
    )


def load_pretrained(path: str | os.PathLike[str]) -> PretrainedMaskedSST:
    """Load a pre-trained backbone (the file or its run folder) without executing code."""
    path = Path(path)
    file = path / ENCODER_NAME if path.is_dir() else path
    if not file.is_file():
        raise ModelLoadError(f"no pre-trained MaskedSST in {path} (looked for {ENCODER_NAME})")
    data = load_weights_only(file, ENCODER_FORMAT, "pre-trained MaskedSST")
    config = MaskedSSTConfig.from_dict(data["config"])
    return PretrainedMaskedSST(config, data["state_dict"], data["provenance"])


_MATCHING_FIELDS = (
    "num_bands",
    "tile_size",
    "spectral_block",
    "dim",
    "spatial_depth",
    "spectral_depth",
    "heads",
    "head_dim",
    "mlp_hidden",
    "pos_embedding",
    "token_norm",
)


def transfer_backbone(
    model: MaskedSST, pre: PretrainedMaskedSST, normalization: Normalization
) -> dict[str, Any]:
    """Copy the pre-trained backbone (everything but the head) into ``model``, which will
    read pixels normalised with ``normalization``; returns the provenance record. The head
    keeps the values ``model`` was built with."""
    check_matching(pre.config, model.config, _MATCHING_FIELDS, "MaskedSST")
    check_normalization(pre.provenance, normalization)
    missing, unexpected = model.load_state_dict(pre.state_dict, strict=False)
    if unexpected or any(not k.startswith(HEAD_PREFIXES) for k in missing):
        raise InputDataError(
            f"the pre-trained MaskedSST does not fit the model (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)})"
        )
    return {"transferred": "embedding, positions, spatial and spectral layers", **pre.provenance}
