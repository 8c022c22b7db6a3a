"""Train on a scene, evaluate on its test pixels and write the run folder: the one function
the CLI, the plugin and the study scripts call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import FactoFormerConfig, TrainingRecipe
from ..data.prepared import PreparedScene
from ..data.scenes import Scene
from ..evaluation import evaluate_labels
from ..metrics import ClassificationMetrics
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


def run_training(
    scene: Scene,
    recipe: TrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    config: FactoFormerConfig | None = None,
    pretrained: Sequence[PretrainedBranch] = (),
    transfer_outer_norm: bool = False,
    feedback: Feedback | None = None,
    show_progress: bool = True,
    resume: bool = False,
) -> TrainedRun:
    """Train a FactoFormer on ``scene``'s training pixels, test it on its test pixels.

    With ``output_dir`` the run folder gets the checkpoint, config and metrics files, and
    the per-epoch training state that ``resume`` continues from. Test labels are read only
    after training, to measure the result.
    """
    patch_size = config.patch_size if config else 7
    prepared = PreparedScene.from_scene(scene, patch_size)
    out = Path(output_dir) if output_dir is not None else None
    result = train(
        prepared,
        recipe,
        config,
        show_progress,
        pretrained=pretrained,
        transfer_outer_norm=transfer_outer_norm,
        feedback=feedback,
        state_path=out / STATE_NAME if out else None,
        resume=resume,
    )
    metrics = None
    if scene.test_labels is not None and (scene.test_labels > 0).any():
        metrics = evaluate_labels(torch_logits(result.model), prepared, scene.test_labels)
    if out is not None:
        save_run(out, scene, recipe, result, metrics)
    return TrainedRun(result, metrics, out)
