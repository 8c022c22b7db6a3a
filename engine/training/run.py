"""Train on a scene, evaluate on its test pixels and write the run folder: the one function
the CLI, the plugin and the study scripts call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import FactoFormerConfig, TrainingRecipe
from ..data.scenes import Scene
from ..data.training_set import TrainingSet
from ..evaluation import evaluate_pixels
from ..metrics import ClassificationMetrics
from ..models.cnn3d import CNN3DConfig
from ..pretraining.transfer import PretrainedBranch
from ..progress import Feedback
from .checkpoint import save_run
from .trainer import TrainingResult, torch_logits, train

STATE_NAME = "training_state.pt"


@dataclass
class TrainedRun:
    """A finished training run: the result, its test metrics and where it was written."""

    result: TrainingResult
    metrics: ClassificationMetrics | None
    output_dir: Path | None
    validation: ClassificationMetrics | None = None


def run_training(
    scene: Scene | TrainingSet,
    recipe: TrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    config: FactoFormerConfig | CNN3DConfig | None = None,
    pretrained: Sequence[PretrainedBranch] = (),
    transfer_outer_norm: bool = False,
    feedback: Feedback | None = None,
    show_progress: bool = True,
    resume: bool = False,
    *,
    patience: int | None = None,
    monitor: str = "loss",
    time_limit: float | None = None,
) -> TrainedRun:
    """Train a FactoFormer (or the model ``config`` describes) on ``scene``'s training
    pixels, test it on its test pixels.

    ``scene`` may be one or several rasters (:class:`TrainingSet`): its validation pixels
    are measured after every epoch (``patience``, ``monitor``: early stopping) and once
    more at the end; ``time_limit`` (seconds) stops training early.

    With ``output_dir`` the run folder gets the checkpoint, config and metrics files, and
    the per-epoch training state that ``resume`` continues from. Test labels are read only
    after training, to measure the result.
    """
    patch_size = config.patch_size if config else 7
    data = scene if isinstance(scene, TrainingSet) else TrainingSet.from_scene(scene, patch_size)
    out = Path(output_dir) if output_dir is not None else None
    result = train(
        data,
        recipe,
        config,
        show_progress,
        pretrained=pretrained,
        transfer_outer_norm=transfer_outer_norm,
        feedback=feedback,
        state_path=out / STATE_NAME if out else None,
        resume=resume,
        patience=patience,
        monitor=monitor,
        time_limit=time_limit,
    )
    logits = torch_logits(result.model)
    metrics = evaluate_pixels(logits, data.test, data.num_classes) if data.test else None
    validation = None
    if data.validation is not None:
        validation = evaluate_pixels(logits, data.validation, data.num_classes)
    if out is not None:
        save_run(out, data, recipe, result, metrics, validation)
    return TrainedRun(result, metrics, out, validation)
