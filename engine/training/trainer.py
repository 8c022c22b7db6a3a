"""Supervised training and evaluation of a FactoFormer on one scene."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import FactoFormerConfig, TrainingRecipe
from ..data.normalization import Normalization
from ..data.prepared import PreparedScene
from ..data.training_set import TrainingSet
from ..errors import InputDataError
from ..models import DEFAULT_KERNELS, FactoFormer, Kernels
from ..models.cnn3d import CNN3DConfig
from ..models.registry import spec_for_config
from ..pretraining.transfer import PretrainedBranch, transfer
from ..progress import Feedback, ProgressBar, SilentFeedback
from ..system import available_cores
from .augment import apply_dihedral, dihedral_codes
from .loop import fit, seed_everything
from .monitor import ValidationMonitor


def configure_cpu(threads: int | None = None, tune_malloc: bool = True) -> None:
    """Use every core and keep large buffers in the heap between steps.

    glibc returns big blocks to the OS after each free and page-faults them back in on
    the next step; raising its mmap/trim thresholds saved ~15 % per training step.
    """
    torch.set_num_threads(threads or available_cores())
    if tune_malloc and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
        libc.mallopt(m_top_pad, 256 * 1024 * 1024)


@dataclass
class TrainingResult:
    """A trained model with its per-epoch history."""

    model: FactoFormer
    normalization: Normalization
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    pretraining: dict[str, Any] | None = None  # what was transferred from pretraining
    validation: dict[str, Any] | None = None  # validation monitoring and early stopping
    stopped: str | None = None  # why training ended before the recipe's end, if it did


def train(
    prepared: PreparedScene | TrainingSet,
    recipe: TrainingRecipe,
    config: FactoFormerConfig | CNN3DConfig | None = None,
    show_progress: bool = True,
    *,
    pretrained: Sequence[PretrainedBranch] = (),
    transfer_outer_norm: bool = False,
    feedback: Feedback | None = None,
    state_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    kernels: Kernels = DEFAULT_KERNELS,
    patience: int | None = None,
    monitor: str = "loss",
    time_limit: float | None = None,
) -> TrainingResult:
    """Train a FactoFormer on the scene's training pixels with the given recipe.

    The model starts from the seed's initial weights; the tensors of any ``pretrained``
    branches then replace theirs (see :func:`~engine.pretraining.transfer.transfer`).
    The model of the last epoch is returned; the test labels are not looked at.

    Args:
        prepared: the normalised scene, or tiles (:class:`TrainingSet`, whose validation
            pixels are measured after every epoch).
        recipe: the fine-tuning recipe.
        config: the architecture (default: the paper's FactoFormer, for the scene's bands
            and classes); another PyTorch model type's config trains that model.
        show_progress: draw a progress bar on stderr (when no ``feedback`` is given).
        pretrained: pre-trained branches to start from.
        transfer_outer_norm: also transfer the branches' outer LayerNorm.
        feedback: progress and cancellation.
        state_path: per-epoch training state, for ``resume``.
        resume: continue from ``state_path`` when it exists.
        kernels: kernel choices (benchmarks compare them).
        patience: early stopping: epochs without a better validation ``monitor`` value
            before training stops; the best epoch's weights are returned.
        monitor: ``loss`` or ``accuracy`` of the validation pixels.
        time_limit: seconds after which training stops.
    """
    data = prepared if isinstance(prepared, TrainingSet) else _training_set(prepared)
    config = config or FactoFormerConfig(num_bands=data.num_bands, num_classes=data.num_classes)
    seed_everything(recipe.seed)
    if isinstance(config, FactoFormerConfig):
        model = FactoFormer(config, kernels)
    else:
        model = spec_for_config(config).build(config)
    record = transfer(model, pretrained, transfer_outer_norm) if pretrained else None
    pixels = data.train
    if pixels is None:
        raise InputDataError(f"{data.name}: no training pixel")
    if patience is not None and data.validation is None:
        raise InputDataError("early stopping needs validation pixels (validation labels or share)")
    checker = (
        ValidationMonitor(model, data.validation, patience, monitor) if data.validation else None
    )

    def step(idx: np.ndarray, step_index: int) -> tuple[torch.Tensor, dict[str, float]]:
        patches = pixels.patches(idx)
        if recipe.augment == "dihedral":
            codes = dihedral_codes(recipe.seed, step_index, len(idx))
            patches = apply_dihedral(patches, codes)
        logits = model(torch.from_numpy(patches))
        targets = torch.from_numpy(pixels.targets(idx))
        correct = int((logits.argmax(1) == targets).sum())
        return F.cross_entropy(logits, targets), {"train_accuracy": correct / len(idx)}

    if feedback is None:
        feedback = ProgressBar("train") if show_progress else SilentFeedback()
    fitted = fit(
        model,
        step,
        len(pixels),
        recipe,
        feedback,
        state_path,
        resume,
        "training",
        epoch_end=checker,
        time_limit=time_limit,
        record={"model": config.to_dict(), "pretraining": record},
    )
    if checker is not None:
        checker.restore_best()
    return TrainingResult(
        model,
        data.normalization,
        fitted.history,
        fitted.seconds,
        fitted.steps,
        fitted.record.get("pretraining") if fitted.record else record,
        checker.record() if checker else None,
        fitted.stopped,
    )


def _training_set(prepared: PreparedScene) -> TrainingSet:
    """A prepared scene as training data, with its statistics."""
    return TrainingSet.from_scene(
        prepared.scene, prepared.extractor.patch_size, prepared.normalization
    )


def torch_logits(model: FactoFormer) -> Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]:
    """Maps batches of patches to logits with ``model`` in eval mode, without gradients."""
    model.eval()

    def map_logits(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        with torch.no_grad():
            for patches in batches:
                yield model(torch.from_numpy(patches)).numpy()

    return map_logits
