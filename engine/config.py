"""Configuration objects: one frozen dataclass per model and one per training recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FactoFormerConfig:
    """Architecture of a FactoFormer (Mohamed et al., IEEE TGRS 2024).

    The paper's names are counter-intuitive, so the fields use what the tokens are:

    * ``pixel_*``: the paper's *spatial* transformer. Tokens are the ``patch_size**2`` pixels
      of the patch, each embedded from its full spectrum (``num_bands -> pixel_dim``).
    * ``band_*``: the paper's *spectral* transformer. Tokens are the ``num_bands`` bands,
      each embedded from its ``patch_size x patch_size`` image (``patch_size**2 -> band_dim``).

    ``*_mlp_hidden`` are absolute hidden widths (8 and 4 in the paper), not ratios.
    The defaults reproduce the published Indian Pines model (148,620 parameters for
    200 bands and 16 classes).
    """

    num_bands: int
    num_classes: int
    patch_size: int = 7
    pixel_dim: int = 64
    pixel_depth: int = 5
    pixel_heads: int = 4
    pixel_mlp_hidden: int = 8
    band_dim: int = 32
    band_depth: int = 5
    band_heads: int = 4
    band_mlp_hidden: int = 4
    fusion_dim: int = 96
    drop_rate: float = 0.1
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.num_bands < 1 or self.num_classes < 2:
            raise ValueError(
                f"a FactoFormer needs at least 1 band and 2 classes, got {self.num_bands} bands "
                f"and {self.num_classes} classes"
            )
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd number, got {self.patch_size}")
        for name in ("pixel", "band"):
            dim, heads = getattr(self, f"{name}_dim"), getattr(self, f"{name}_heads")
            if dim % heads:
                raise ValueError(f"{name}_dim ({dim}) must be divisible by {name}_heads ({heads})")

    @property
    def num_pixels(self) -> int:
        """Number of pixel tokens in one patch."""
        return self.patch_size * self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints and ONNX metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FactoFormerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FactoFormer config keys: {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class TrainingRecipe:
    """Supervised fine-tuning recipe (FactoFormer ``main_finetune.py`` defaults).

    Adam without weight decay, cross-entropy, StepLR with ``step = epochs // 10`` and
    gamma 0.9, batch 32. The model of the last epoch is the result: no validation set,
    no early stopping, no selection.
    """

    epochs: int = 80
    learning_rate: float = 3e-4
    batch_size: int = 32
    weight_decay: float = 0.0
    lr_gamma: float = 0.9
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs only)

    @property
    def lr_step(self) -> int:
        """Epochs between two learning-rate decays."""
        return max(1, self.epochs // 10)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored with every checkpoint and model."""
        return dataclasses.asdict(self)


# Per-dataset recipes of the official code's README (epochs, learning rate).
PAPER_RECIPES: dict[str, TrainingRecipe] = {
    "indian_pines": TrainingRecipe(epochs=80, learning_rate=3e-4),
    "pavia_university": TrainingRecipe(epochs=80, learning_rate=1e-3),
    "houston2013": TrainingRecipe(epochs=40, learning_rate=2e-3),
}
