"""Fine-tuning of a dense tile model (MaskedSST): every pixel of a tile is classified.

Training data come from a :class:`~engine.data.training_set.TrainingSet` built with the
context patch size ``2 * tile_size - 1`` (:func:`~engine.data.dense.context_patch_size`),
whose cubes are then padded symmetrically by ``tile_size - 1`` pixels, as inference pads
a raster. Each step places a tile at a random offset around each anchor (a labelled
training pixel) and minimises the cross-entropy over the tile's labelled pixels (each
counted once, or weighted so that every training pixel counts the same: the recipe's
``pixel_weighting``); the other pixels (unlabelled, other splits, mirrored padding) are
ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from ..config import (
    DEFAULT_DENSE_STEPS,
    FINE_TUNING_PIXEL_WEIGHTING,
    DenseTrainingRecipe,
    MaskedSSTConfig,
    spectral_positions,
)
from ..data.dense import IGNORE, DenseTiles, context_patch_size, label_grids
from ..data.training_set import TrainingSet
from ..errors import InputDataError
from ..metrics import ClassificationMetrics, classification_metrics
from ..models import DEFAULT_KERNELS, Kernels
from ..models.maskedsst import MaskedSST
from ..pretraining.maskedsst import PretrainedMaskedSST, transfer_backbone
from ..progress import Feedback, ProgressBar, SilentFeedback
from .checkpoint import save_run
from .loop import fit, seed_everything
from .run import STATE_NAME, TrainedRun
from .trainer import TrainingResult


def default_dense_recipe(
    train_pixels: int, batch_size: int = 8, step_budget: int = DEFAULT_DENSE_STEPS, **kw
) -> DenseTrainingRecipe:
    """The fine-tuning recipe for a step budget: as many epochs (anchors visited once
    each) as fit, so that the learning-rate schedule runs its course within the budget;
    equal pixel weights unless ``pixel_weighting`` says otherwise."""
    batches = max(1, -(-train_pixels // batch_size))
    epochs = max(1, -(-step_budget // batches))
    kw.setdefault("pixel_weighting", FINE_TUNING_PIXEL_WEIGHTING)
    return DenseTrainingRecipe(epochs=epochs, batch_size=batch_size, max_steps=step_budget, **kw)


def maskedsst_config(data: TrainingSet, **overrides) -> MaskedSSTConfig:
    """The paper's architecture for the data's bands and classes (spectral positions from
    the band wavelengths when the data know them and a sin-cos embedding is asked for)."""
    values = dict(overrides)
    if values.get("pos_embedding") == "sincos" and "spectral_positions" not in values:
        block = values.get("spectral_block", 10)
        values["spectral_positions"] = spectral_positions(data.wavelengths_nm, block)
    return MaskedSSTConfig(num_bands=data.num_bands, num_classes=data.num_classes, **values)


def split_tiles(data: TrainingSet, split: str, tile_size: int, seed: int = 0) -> DenseTiles:
    """Tiles anchored on the labelled pixels of ``split``, with that split's targets."""
    pixels = data.splits.get(split)
    if pixels is None:
        raise InputDataError(f"{data.name}: no {split} pixel")
    _check_context(data, tile_size)
    shapes = [e.shape for e in data.extractors]
    grids = label_grids(shapes, pixels.tile, pixels.rows, pixels.cols, pixels.values)
    padded = [e.padded for e in data.extractors]
    return DenseTiles(padded, tile_size, pixels.tile, pixels.rows, pixels.cols, grids, seed)


def _check_context(data: TrainingSet, tile_size: int) -> None:
    if data.patch_size != context_patch_size(tile_size):
        raise ValueError(
            f"dense tiles of {tile_size} pixels need data built with patch size "
            f"{context_patch_size(tile_size)}, not {data.patch_size}"
        )


def train_dense(
    data: TrainingSet,
    recipe: DenseTrainingRecipe,
    config: MaskedSSTConfig | None = None,
    *,
    pretrained: PretrainedMaskedSST | None = None,
    feedback: Feedback | None = None,
    show_progress: bool = True,
    state_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    kernels: Kernels = DEFAULT_KERNELS,
    time_limit: float | None = None,
) -> TrainingResult:
    """Fine-tune a MaskedSST on the training pixels of ``data`` (test labels unread).

    The model starts from the seed's initial weights; a ``pretrained`` backbone then
    replaces everything but the head. Validation pixels, when ``data`` has them, are
    measured after every epoch on dense predictions (``validation_accuracy``).
    """
    config = config or maskedsst_config(data)
    if (config.num_bands, config.num_classes) != (data.num_bands, data.num_classes):
        raise InputDataError(
            f"the model has {config.num_bands} bands / {config.num_classes} classes, the data "
            f"{data.num_bands} / {data.num_classes}"
        )
    seed_everything(recipe.seed)
    model = MaskedSST(config, kernels)
    if pretrained is not None:
        record = transfer_backbone(model, pretrained, data.normalization)
    else:
        record = None
    tiles = split_tiles(data, "train", config.tile_size, recipe.seed)

    def step(idx: np.ndarray, step_index: int) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, targets = tiles.batch(idx, step_index)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            logits = model(torch.from_numpy(inputs))
        logits = logits.float()
        target = torch.from_numpy(targets)
        correct = (logits.argmax(1) == target).float()
        if recipe.pixel_weighting == "equal":
            weights = torch.from_numpy(tiles.batch_weights(idx, step_index))
            total = weights.sum()
            losses = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
            accuracy = (correct * weights).sum() / total
            return (losses * weights).sum() / total, {"train_accuracy": float(accuracy)}
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE)
        accuracy = correct[target != IGNORE].mean()
        return loss, {"train_accuracy": float(accuracy)}

    def validate(epoch: int) -> tuple[dict[str, float], bool]:
        metrics = evaluate_dense(TorchDenseModel(model), data, "validation")
        return {"validation_accuracy": metrics.overall_accuracy}, False

    groups = [
        {"params": model.backbone_parameters()},
        {"params": model.head_parameters(), "lr": recipe.head_learning_rate},
    ]
    if feedback is None:
        feedback = ProgressBar("train") if show_progress else SilentFeedback()
    fitted = fit(
        model,
        step,
        len(tiles),
        recipe,
        feedback,
        state_path,
        resume,
        "training",
        epoch_end=validate if data.validation is not None else None,
        time_limit=time_limit,
        param_groups=groups,
        record={"model": config.to_dict(), "pretraining": record},
    )
    return TrainingResult(
        model,  # type: ignore[arg-type]
        data.normalization,
        fitted.history,
        fitted.seconds,
        fitted.steps,
        fitted.record.get("pretraining") if fitted.record else record,
        None,
        fitted.stopped,
    )


class TorchDenseModel:
    """A PyTorch dense model with the interface inference's dense predictor reads from an
    ONNX model (``metadata.tile_size``, ``metadata.num_classes``, ``map_logits``)."""

    def __init__(self, model: MaskedSST) -> None:
        self.model = model
        c = model.config
        self.metadata = SimpleNamespace(tile_size=c.tile_size, num_classes=c.num_classes)

    def map_logits(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        self.model.eval()
        with torch.no_grad():
            for tiles in batches:
                yield self.model(torch.from_numpy(tiles)).numpy()


def predict_dense_split(model, data: TrainingSet, split: str, batch_size: int = 32) -> np.ndarray:
    """(n,) class values (1..C) of the ``split`` pixels, from dense predictions of whole
    rasters with inference's predictor (overlapping tiles, blended), in split order.

    Args:
        model: :class:`TorchDenseModel` or an ONNX model (``OnnxClassifier``).
    """
    from ..infer.predictors import DenseTilePredictor

    pixels = data.splits.get(split)
    if pixels is None:
        raise InputDataError(f"{data.name}: no {split} pixel")
    _check_context(data, model.metadata.tile_size)
    predictor = DenseTilePredictor(model, batch_size)
    predicted = np.zeros(len(pixels), dtype=np.int64)
    for t in np.unique(pixels.tile):
        pick = np.flatnonzero(pixels.tile == t)
        extractor = data.extractors[t]
        valid = np.zeros(extractor.shape, dtype=bool)
        valid[pixels.rows[pick], pixels.cols[pick]] = True
        logits = predictor.predict(extractor.padded, valid, (0, 0), extractor.shape, _no_progress)
        predicted[pick] = logits[:, pixels.rows[pick], pixels.cols[pick]].argmax(0) + 1
    return predicted


def evaluate_dense(model, data: TrainingSet, split: str = "test") -> ClassificationMetrics:
    """Metrics of a dense model on the ``split`` pixels (see :func:`predict_dense_split`)."""
    predicted = predict_dense_split(model, data, split)
    return classification_metrics(data.splits[split].values, predicted, data.num_classes)


def _no_progress(fraction: float) -> None:
    return None


def run_dense_training(
    data: TrainingSet,
    recipe: DenseTrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    config: MaskedSSTConfig | None = None,
    pretrained: PretrainedMaskedSST | None = None,
    feedback: Feedback | None = None,
    show_progress: bool = True,
    resume: bool = False,
    time_limit: float | None = None,
) -> TrainedRun:
    """Fine-tune a MaskedSST (:func:`train_dense`), then measure it on the validation and
    test pixels from dense predictions of whole rasters, as the plugin would classify them
    (test labels are read only now). With ``output_dir`` the run folder gets the
    checkpoint, config and metrics files and the per-epoch state ``resume`` continues from.
    """
    out = Path(output_dir) if output_dir is not None else None
    result = train_dense(
        data,
        recipe,
        config,
        pretrained=pretrained,
        feedback=feedback,
        show_progress=show_progress,
        state_path=out / STATE_NAME if out else None,
        resume=resume,
        time_limit=time_limit,
    )
    model = TorchDenseModel(result.model)
    metrics = evaluate_dense(model, data, "test") if data.test is not None else None
    validation = evaluate_dense(model, data, "validation") if data.validation else None
    if out is not None:
        save_run(out, data, recipe, result, metrics, validation)  # type: ignore[arg-type]
    return TrainedRun(result, metrics, out, validation)
