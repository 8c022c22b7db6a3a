"""Configuration objects: one frozen dataclass per model and one per training recipe."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, TypeVar

_T = TypeVar("_T")
Branch = Literal["pixel", "band"]
BRANCHES: tuple[Branch, ...] = ("pixel", "band")


class _PlainDict:
    """``to_dict``/``from_dict`` for a flat frozen dataclass."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored with checkpoints, models and pretrained encoders."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[_T], values: dict[str, Any]) -> _T:
        """Inverse of :meth:`to_dict`."""
        return cls(**values)


class _Recipe(_PlainDict):
    """What every training and pretraining recipe shares: the StepLR interval."""

    epochs: int

    @property
    def lr_step(self) -> int:
        """Epochs between two learning-rate decays."""
        return max(1, self.epochs // 10)


def check_model_size(model: str, num_bands: int, num_classes: int, min_bands: int = 1) -> None:
    """Refuse a model with fewer than ``min_bands`` bands or 2 classes (ValueError)."""
    if num_bands < min_bands or num_classes < 2:
        bands = "1 band" if min_bands == 1 else f"{min_bands} bands"
        raise ValueError(
            f"a {model} needs at least {bands} and 2 classes, got {num_bands} bands "
            f"and {num_classes} classes"
        )


def check_config_keys(cls: type, values: dict[str, Any], model: str) -> None:
    """Refuse keys that are not fields of the config dataclass ``cls`` (ValueError)."""
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {model} config keys: {', '.join(unknown)}")


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
    200 bands and 16 classes). As in the official code, the LayerNorms inside the
    transformer (each block's two and the transformer's own final norm) use
    ``block_norm_eps`` (PyTorch's default 1e-5) and only each branch's outer norm uses
    ``outer_norm_eps`` (1e-6). Configs written before the split have one ``norm_eps``,
    which :meth:`from_dict` maps to both, so old models keep their behaviour.
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
    block_norm_eps: float = 1e-5
    outer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        check_model_size("FactoFormer", self.num_bands, self.num_classes)
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

    def encoder(self, branch: Branch) -> EncoderConfig:
        """The configuration of one branch's token encoder."""
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {', '.join(BRANCHES)}, got {branch!r}")
        return EncoderConfig(
            branch=branch,
            num_bands=self.num_bands,
            patch_size=self.patch_size,
            dim=getattr(self, f"{branch}_dim"),
            depth=getattr(self, f"{branch}_depth"),
            heads=getattr(self, f"{branch}_heads"),
            mlp_hidden=getattr(self, f"{branch}_mlp_hidden"),
            drop_rate=self.drop_rate,
            block_norm_eps=self.block_norm_eps,
            outer_norm_eps=self.outer_norm_eps,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints and ONNX metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FactoFormerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped.

        The single ``norm_eps`` of configs written before the split becomes both epsilons.
        """
        values = dict(values)
        if "norm_eps" in values:
            eps = values.pop("norm_eps")
            values.setdefault("block_norm_eps", eps)
            values.setdefault("outer_norm_eps", eps)
        check_config_keys(cls, values, "FactoFormer")
        return cls(**values)


def paper_encoder(num_bands: int, branch: Branch, patch_size: int = 7) -> EncoderConfig:
    """The published architecture of one branch for ``num_bands`` bands (for pretraining)."""
    return FactoFormerConfig(num_bands=num_bands, num_classes=2, patch_size=patch_size).encoder(
        branch
    )


@dataclass(frozen=True)
class EncoderConfig(_PlainDict):
    """One FactoFormer branch: a transformer over pixel tokens or over band tokens.

    A *pixel* token is one pixel's spectrum (``num_bands`` values, ``patch_size**2``
    tokens); a *band* token is one band's image (``patch_size**2`` values, ``num_bands``
    tokens). Pretraining builds a branch from this alone, without the classifier head.
    """

    branch: Branch
    num_bands: int
    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    drop_rate: float
    block_norm_eps: float
    outer_norm_eps: float

    @property
    def token_features(self) -> int:
        """Values per token."""
        return self.num_bands if self.branch == "pixel" else self.patch_size**2

    @property
    def num_tokens(self) -> int:
        """Tokens per patch, without the cls token."""
        return self.patch_size**2 if self.branch == "pixel" else self.num_bands


@dataclass(frozen=True)
class TrainingRecipe(_Recipe):
    """Supervised fine-tuning recipe (FactoFormer ``main_finetune.py`` defaults).

    Adam without weight decay, cross-entropy, StepLR with ``step = epochs // 10`` and
    gamma 0.9, batch 32. The model of the last epoch is the result: no validation set,
    no early stopping, no selection. ``optimizer`` ``sgd`` (with ``momentum``) replaces
    Adam for recipes that call for it (the 3D-CNN's, :data:`CNN3D_RECIPES`).
    ``augment`` ``dihedral`` turns each training patch by one of the 8 flips and quarter
    turns of the square, drawn per sample and step; the centre pixel, whose class is
    the label, stays in place (the official code does not augment: ``none``).
    """

    epochs: int = 80
    learning_rate: float = 3e-4
    batch_size: int = 32
    weight_decay: float = 0.0
    lr_gamma: float = 0.9
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs only)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.0  # SGD only
    augment: Literal["none", "dihedral"] = "none"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.augment not in ("none", "dihedral"):
            raise ValueError(f"augment must be none or dihedral, got {self.augment!r}")


# Per-dataset recipes of the official code's README (epochs, learning rate).
PAPER_RECIPES: dict[str, TrainingRecipe] = {
    "indian_pines": TrainingRecipe(epochs=80, learning_rate=3e-4),
    "pavia_university": TrainingRecipe(epochs=80, learning_rate=1e-3),
    "houston2013": TrainingRecipe(epochs=40, learning_rate=2e-3),
}

# The 3D-CNN of Li et al. 2017 as DeepHyperX trains it (get_model("li")): SGD lr 0.01,
# momentum 0.9, weight decay 5e-4, 200 epochs of batches of 100. DeepHyperX lowers the
# rate tenfold when the loss stops improving for 50 epochs; here it stays constant.
CNN3D_RECIPES: dict[str, TrainingRecipe] = {
    "li2017": TrainingRecipe(
        epochs=200,
        learning_rate=0.01,
        batch_size=100,
        weight_decay=5e-4,
        lr_gamma=1.0,
        optimizer="sgd",
        momentum=0.9,
    ),
}

# A scene without a paper recipe gets the paper's optimiser with lr 1e-3 (between the
# paper's 3e-4 and 2e-3) and a step budget: 2,000 steps of 32 patches take about 8 minutes
# on 2 CPU cores, whatever the number of labelled pixels.
DEFAULT_STEP_BUDGET = 2000
DEFAULT_RECIPE_NAME = "default"
# Fine-tuning from pre-trained branches augments by default: on validation pixels carved
# from Indian Pines' training split (pixel branch pre-trained, 3 seeds) dihedral patches
# gave 85.31 ± 1.64 OA against 81.54 ± 0.82 without. From scratch the default stays none
# (on the EnMAP validation tiles it did not help: 73.80 against 74.79, one seed).
FINE_TUNING_AUGMENT = "dihedral"


def default_recipe(
    train_pixels: int, batch_size: int = 32, step_budget: int = DEFAULT_STEP_BUDGET
) -> TrainingRecipe:
    """The recipe for a new scene: as many epochs (at most 80) as ``step_budget`` steps
    start, so that the learning-rate schedule runs its course within the budget."""
    batches = max(1, -(-train_pixels // batch_size))
    epochs = max(1, min(80, -(-step_budget // batches)))
    return TrainingRecipe(
        epochs=epochs, learning_rate=1e-3, batch_size=batch_size, max_steps=step_budget
    )


@dataclass(frozen=True)
class PretrainingRecipe(_Recipe):
    """Masked-reconstruction pretraining of one branch.

    The optimisation mirrors :class:`TrainingRecipe` (Adam, StepLR every ``epochs // 10``
    epochs, gamma 0.9). The objective fields choose the variant:

    * ``mask_ratio``: share of the branch's tokens hidden, ``int(ratio * tokens)`` exactly.
    * ``masks``: ``fixed`` draws each sample's mask once for the whole run (official code);
      ``redrawn`` draws new masks at every step (MAE/SimMIM).
    * ``loss``: ``all`` is the MSE over every token (what the official code computes);
      ``masked`` only over the hidden tokens (what the paper describes).
    * ``encoder``: ``mask-token`` replaces hidden tokens by a learned mask token and
      encodes all tokens (official); ``visible`` encodes only the visible tokens and lets
      ``decoder_depth`` transformer blocks fill in the hidden ones (MAE).
    * ``decoder_depth``: blocks before the linear decoder. With ``visible`` at least one is
      needed, otherwise a hidden token's reconstruction could only depend on its position.
    * ``drop_rate``: dropout in the encoder while pretraining; None keeps the
      architecture's (0.1, as the official code). MAE pre-trains without dropout, and
      without attention dropout the attention runs in PyTorch's fused kernel.
    * ``bf16``: run forward and backward under bfloat16 autocast on the CPU.
    """

    epochs: int = 200
    learning_rate: float = 5e-4
    batch_size: int = 32
    weight_decay: float = 0.0
    lr_gamma: float = 0.9
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps
    mask_ratio: float = 0.7
    masks: Literal["fixed", "redrawn"] = "fixed"
    loss: Literal["all", "masked"] = "all"
    encoder: Literal["mask-token", "visible"] = "mask-token"
    decoder_depth: int = 0
    drop_rate: float | None = None
    bf16: bool = False

    def __post_init__(self) -> None:
        choices = {
            "masks": ("fixed", "redrawn"),
            "loss": ("all", "masked"),
            "encoder": ("mask-token", "visible"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.encoder == "visible" and self.decoder_depth < 1:
            raise ValueError("the visible-token encoder needs decoder_depth >= 1")


# "paper": FactoFormer pretraining/main_pretrain.py, hyperparameters confirmed by the
# released checkpoints. "paper-visible": the paper's schedule with visible-only encoding
# (about 3.6x cheaper; the pixel branch pre-trained this way gave the shipped model).
# "fast": 13x fewer steps, made to fit both branches and fine-tuning into one hour on 2
# CPU cores, but it did not help on Indian Pines (docs/RESULTS.md).
PRETRAINING_RECIPES: dict[str, PretrainingRecipe] = {
    "paper": PretrainingRecipe(),
    "paper-visible": PretrainingRecipe(encoder="visible", decoder_depth=1),
    "fast": PretrainingRecipe(
        epochs=60, learning_rate=1e-3, batch_size=128, encoder="visible", decoder_depth=1
    ),
}


# The default for any scene: "paper-visible", chosen on Indian Pines validation pixels
# (docs/RESULTS.md), with at most the steps it takes there (200 epochs of 334 batches), so a
# larger scene gets fewer epochs of the same schedule rather than a longer run.
DEFAULT_PRETRAINING_STEPS = 66_800


def default_pretraining_recipe(
    num_pixels: int, batch_size: int = 32, step_budget: int = DEFAULT_PRETRAINING_STEPS
) -> PretrainingRecipe:
    """``paper-visible`` with as many whole epochs (at most 200, at least 1) as fit in
    ``step_budget`` steps, and that budget as its step limit."""
    batches = max(1, -(-num_pixels // batch_size))
    epochs = max(1, min(200, step_budget // batches))
    return replace(
        PRETRAINING_RECIPES["paper-visible"],
        epochs=epochs,
        batch_size=batch_size,
        max_steps=step_budget,
    )


PIXEL_WEIGHTINGS = ("tiles", "equal")  # DenseTrainingRecipe.pixel_weighting
# MaskedSST fine-tunes with equal pixel weights by default (default_dense_recipe): from
# scratch on validation pixels carved from Indian Pines' training split, 3 seeds, they beat
# the official tile weighting (docs/RESULTS.md). The recipe field's own default stays the
# official "tiles", which is what records written before the option was added mean.
FINE_TUNING_PIXEL_WEIGHTING = "equal"
# Fine-tuning budget for 2 CPU cores (see benchmarks/bench_maskedsst.py): 500 steps of 8
# tiles; the official runs take at least 1,000 steps of 2 tiles (EnMAP) on a GPU.
DEFAULT_DENSE_STEPS = 500


@dataclass(frozen=True)
class DenseTrainingRecipe(_Recipe):
    """Fine-tuning of a dense tile model (MaskedSST), adapted from its ``finetune.py``.

    Official: Adam, lr 5e-4 for the backbone and 5e-3 for the per-pixel head, weight decay
    5e-3, cross-entropy ignoring unlabelled pixels, ReduceLROnPlateau, at least 1,000 steps
    of 2 tiles. Here: the same optimiser and learning rates, StepLR (gamma 0.9 every
    ``epochs // 10`` epochs, as every recipe of the shared loop) and a step budget
    (``max_steps``). An epoch visits every labelled training pixel once as the anchor of
    a tile placed at a random offset around it. ``bf16``: bfloat16 autocast on the CPU.

    ``pixel_weighting``: ``tiles`` (official) averages the loss over every labelled pixel
    of the batch's tiles, so a pixel with many labelled neighbours is scored in many tiles
    and counts more than an isolated one; ``equal`` divides each labelled pixel's loss by
    the number of tiles expected to contain it in an epoch
    (:func:`~engine.data.dense.tile_coverage`), so every training pixel counts the same,
    as for a centre-pixel classifier. The two agree on fully labelled tiles.
    """

    epochs: int = 100
    learning_rate: float = 5e-4
    head_learning_rate: float = 5e-3
    batch_size: int = 8
    weight_decay: float = 5e-3
    lr_gamma: float = 0.9
    seed: int = 0
    max_steps: int | None = None
    bf16: bool = False
    pixel_weighting: str = "tiles"

    def __post_init__(self) -> None:
        if self.pixel_weighting not in PIXEL_WEIGHTINGS:
            raise ValueError(f"pixel_weighting must be one of {', '.join(PIXEL_WEIGHTINGS)}")


@dataclass(frozen=True)
class MaskedPretrainingRecipe(_Recipe):
    """Masked pretraining of a MaskedSST (after the official ``pretrain.py``, adapted).

    Each step draws ``batch_size`` anchor pixels at random and a tile at a random offset
    around each; an epoch is ``tiles_per_epoch`` tiles (a checkpoint for ``resume`` after
    each). Masking hides tokens after the embedding:

    * ``tube`` (official config): the tile is cut into ``mask_unit x mask_unit`` pixel
      units and ``ceil(mask_ratio * units)`` of them are hidden in every spectral block
      (3 of 4 units of an 8x8 tile: 75 %);
    * ``random``: ``int(mask_ratio * tokens)`` tokens (pixel x spectral block) at random.

    ``encoder``: ``visible`` (MAE: only the visible pixels are encoded; needs tube masks)
    or ``mask-token`` (official, SimMIM: every token is encoded, hidden ones as a learned
    mask token). ``decoder_depth`` spatial transformer blocks run over all places before
    the linear decoders (``visible`` needs at least one, so that hidden places can read the
    visible ones; the official mask-token recipe has none).

    The default, the visible encoder with one decoder block for 96 epochs of 50 steps
    (4,800 steps), was chosen on Indian Pines validation pixels over the official
    mask-token encoder with a 600-step budget (see ``docs/RESULTS.md``); the official run
    is 200+ epochs over 89 EnMAP scenes on a GPU. :func:`masked_pretraining_recipe` fills
    in what another encoder or masking implies.

    The loss is the L1 error on the hidden tokens' normalised values (padding bands left
    out), averaged over each sample's own hidden tokens. ``grad_clip`` clamps every
    gradient element to +-grad_clip (the official value clipping); None turns it off.
    The official optimiser is AdamW lr 8e-3; the shared loop's Adam + StepLR is used here.
    """

    epochs: int = 96
    learning_rate: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 0.0
    lr_gamma: float = 0.9
    seed: int = 0
    max_steps: int | None = None
    tiles_per_epoch: int = 800
    mask_ratio: float = 0.7
    masking: Literal["tube", "random"] = "tube"
    mask_unit: int = 4
    grad_clip: float | None = 1.0
    bf16: bool = False
    encoder: Literal["mask-token", "visible"] = "visible"
    decoder_depth: int = 1

    def __post_init__(self) -> None:
        if self.masking not in ("tube", "random"):
            raise ValueError("masking must be one of tube, random")
        if self.encoder not in ("mask-token", "visible"):
            raise ValueError("encoder must be one of mask-token, visible")
        if self.encoder == "visible" and (self.masking != "tube" or self.decoder_depth < 1):
            raise ValueError(
                "the visible-pixel encoder needs tube masks and at least one decoder block"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.tiles_per_epoch < 1 or self.mask_unit < 1:
            raise ValueError("tiles_per_epoch and mask_unit must be at least 1")


def masked_pretraining_recipe(**options: Any) -> MaskedPretrainingRecipe:
    """A :class:`MaskedPretrainingRecipe` from the options given (None: not given), with
    what they imply: random masks mean the mask-token encoder, and the mask-token encoder
    means no decoder block (the official recipe), unless stated otherwise."""
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("masking") == "random":
        given.setdefault("encoder", "mask-token")
    if given.get("encoder") == "mask-token":
        given.setdefault("decoder_depth", 0)
    return MaskedPretrainingRecipe(**given)


PosEmbedding = Literal["learned", "sincos"]
POS_EMBEDDINGS: tuple[PosEmbedding, ...] = ("learned", "sincos")
FIRST_WAVELENGTH_NM = 400.0  # spectral position 0 of the sin-cos embedding
POSITION_STEP_NM = 100.0  # one spectral position per 100 nm (about one EnMAP block)


@dataclass(frozen=True)
class MaskedSSTConfig:
    """Architecture of a MaskedSST (defaults: the released EnMAP/Houston models).

    ``dim`` is the token width; attention has ``heads`` heads of ``head_dim`` each, so its
    inner width (512) differs from ``dim`` (96); ``mlp_hidden`` is an absolute width.

    ``pos_embedding``: ``learned`` (a trainable ``(1, tokens + 1, dim)`` table of which
    the first ``tokens`` rows are used, as in the released checkpoints) or ``sincos``
    (2-D sin-cos over the tile's pixels, ``dim - dim // 3`` wide, concatenated with a 1-D
    sin-cos over the spectral position of each block, ``dim // 3`` wide; trainable too).
    ``spectral_positions`` are the blocks' positions for ``sincos``: from the blocks' mean
    wavelengths (:func:`spectral_positions`) when the bands have wavelengths, else None
    (the block index).

    ``token_norm``: a LayerNorm over each token's raw ``spectral_block`` values before its
    embedding, as in the paper (so a token keeps only the shape of its spectrum piece, not
    its level or contrast); False embeds the normalised values as they are.
    """

    num_bands: int
    num_classes: int
    tile_size: int = 8
    spectral_block: int = 10
    dim: int = 96
    spatial_depth: int = 4
    spectral_depth: int = 4
    heads: int = 8
    head_dim: int = 64
    mlp_hidden: int = 64
    drop_rate: float = 0.1
    pos_embedding: PosEmbedding = "learned"
    spectral_positions: tuple[float, ...] | None = None
    token_norm: bool = True
    model_type: ClassVar[str] = "MaskedSST"  # metadata model_type

    def __post_init__(self) -> None:
        check_model_size("MaskedSST", self.num_bands, self.num_classes)
        for name in ("tile_size", "spectral_block", "dim", "heads", "head_dim", "mlp_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {', '.join(POS_EMBEDDINGS)}")
        if self.pos_embedding == "sincos" and (self.dim // 3 % 2 or (self.dim - self.dim // 3) % 4):
            raise ValueError(
                f"the sin-cos embedding needs dim // 3 even and dim - dim // 3 divisible by 4, "
                f"got dim {self.dim}"
            )
        if self.spectral_positions is not None:
            if len(self.spectral_positions) != self.num_blocks:
                raise ValueError(
                    f"{len(self.spectral_positions)} spectral positions for {self.num_blocks} "
                    "spectral blocks"
                )
            object.__setattr__(self, "spectral_positions", tuple(self.spectral_positions))

    @property
    def num_blocks(self) -> int:
        """Spectral blocks per pixel (bands padded up to a multiple of the block)."""
        return -(-self.num_bands // self.spectral_block)

    @property
    def band_padding(self) -> int:
        """Zero bands the model appends to reach a multiple of ``spectral_block``."""
        return self.num_blocks * self.spectral_block - self.num_bands

    @property
    def patch_size(self) -> int:
        """Edge of the model's input: a dense model reads (and labels) whole tiles."""
        return self.tile_size

    @property
    def num_pixels(self) -> int:
        return self.tile_size * self.tile_size

    @property
    def num_tokens(self) -> int:
        """Tokens per tile: one per pixel and spectral block."""
        return self.num_blocks * self.num_pixels

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints and ONNX metadata."""
        values = dataclasses.asdict(self)
        if self.spectral_positions is not None:
            values["spectral_positions"] = list(self.spectral_positions)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MaskedSSTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        check_config_keys(cls, values, "MaskedSST")
        values = dict(values)
        if values.get("spectral_positions") is not None:
            values["spectral_positions"] = tuple(float(p) for p in values["spectral_positions"])
        return cls(**values)


def spectral_positions(
    wavelengths_nm: Sequence[float] | None, spectral_block: int = 10
) -> tuple[float, ...] | None:
    """Spectral position of each block: its bands' mean wavelength, one unit per 100 nm
    above 400 nm (so EnMAP's 20 blocks lie near 0..20). None without wavelengths."""
    if not wavelengths_nm:
        return None
    w = [float(x) for x in wavelengths_nm]
    blocks = [w[i : i + spectral_block] for i in range(0, len(w), spectral_block)]
    return tuple(
        round((sum(b) / len(b) - FIRST_WAVELENGTH_NM) / POSITION_STEP_NM, 4) for b in blocks
    )
