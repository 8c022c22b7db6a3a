"""Token masks for masked reconstruction: which tokens of each sample are hidden.

A mask row has one entry per token of a branch (True = hidden) and exactly
``int(ratio * tokens)`` hidden entries, as FactoFormer's ``RandomMaskingGenerator``. For the
pixel branch a token is a pixel, so a hidden token hides that pixel in every band; for the
band branch a token is a band, so it hides that band over the whole patch.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

MaskMode = Literal["fixed", "redrawn"]
_FIXED_STREAM, _REDRAWN_STREAM = 0, 1  # independent seed streams for the two modes
_CHUNK = 65536  # samples per draw, so that the uniform draws stay small


def masked_count(num_tokens: int, ratio: float) -> int:
    """Hidden tokens per sample: ``int(ratio * num_tokens)`` (34 of 49, 140 of 200)."""
    return int(ratio * num_tokens)


def random_masks(
    rng: np.random.Generator, num_samples: int, num_tokens: int, ratio: float
) -> np.ndarray:
    """(num_samples, num_tokens) bool masks, each with exactly ``masked_count`` True."""
    hidden = masked_count(num_tokens, ratio)
    masks = np.zeros((num_samples, num_tokens), dtype=bool)
    for start in range(0, num_samples, _CHUNK):
        stop = min(start + _CHUNK, num_samples)
        ranks = rng.random((stop - start, num_tokens)).argsort(axis=1)
        np.put_along_axis(masks[start:stop], ranks[:, :hidden], True, axis=1)
    return masks


class TokenMasker:
    """Masks for the samples of each training step, fixed per sample or redrawn per step.

    ``fixed`` draws every sample's mask once (FactoFormer draws them before training and
    keeps them for all epochs) and stores them bit-packed; ``redrawn`` draws new masks at
    every step. Both are pure functions of the seed, the sample indices and the step, so
    a resumed run sees the same masks as an uninterrupted one.

    Args:
        num_samples: samples in the pretraining set.
        num_tokens: tokens per sample of the branch (49 pixels, or the band count).
        ratio: share of tokens to hide.
        mode: ``fixed`` or ``redrawn``.
        seed: seed of the draws.
    """

    def __init__(
        self, num_samples: int, num_tokens: int, ratio: float, mode: MaskMode, seed: int
    ) -> None:
        if mode not in ("fixed", "redrawn"):
            raise ValueError(f"mask mode must be 'fixed' or 'redrawn', got {mode!r}")
        self.num_tokens = num_tokens
        self.ratio = ratio
        self.mode = mode
        self.seed = seed
        self._packed: np.ndarray | None = None
        if mode == "fixed":
            rng = np.random.default_rng([seed, _FIXED_STREAM])
            self._packed = np.packbits(random_masks(rng, num_samples, num_tokens, ratio), axis=1)

    def __call__(self, indices: np.ndarray, step: int) -> np.ndarray:
        """(len(indices), num_tokens) bool masks of the samples ``indices`` at ``step``."""
        if self._packed is not None:
            return np.unpackbits(self._packed[indices], axis=1, count=self.num_tokens).view(bool)
        rng = np.random.default_rng([self.seed, _REDRAWN_STREAM, step])
        return random_masks(rng, len(indices), self.num_tokens, self.ratio)
