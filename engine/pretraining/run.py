"""Pretrain FactoFormer branches into a run folder: the one function the CLI, the plugin and
the study script call.

A run folder holds one sub-folder per branch: ``<run>/pixel`` and ``<run>/band``, each with
``encoder.pt`` (the pre-trained encoder and its provenance, weights only), ``state.pt``
(the training loop's per-epoch state, for ``resume``) and ``pretraining.json`` (provenance
and per-epoch history, for people).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch

from ..config import Branch, EncoderConfig, PretrainingRecipe, paper_encoder
from ..errors import InputDataError
from ..models import DEFAULT_KERNELS, Kernels
from ..progress import Feedback
from ..system import available_cores
from ..training.loop import (
    RESUMABLE_CHANGES,
    FitResult,
    LoopRecipe,
    fit,
    same_recipe,
    seed_everything,
)
from .data import PretrainingPixels
from .masking import TokenMasker, masked_count
from .objectives import MaskedReconstruction, reconstruction_step
from .transfer import ENCODER_NAME, PretrainedBranch, load_branch

STATE_NAME = "state.pt"
SUMMARY_NAME = "pretraining.json"


def pretrain_branch(
    pixels: PretrainingPixels,
    config: EncoderConfig,
    recipe: PretrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    feedback: Feedback | None = None,
    resume: bool = False,
    kernels: Kernels = DEFAULT_KERNELS,
) -> PretrainedBranch:
    """Pretrain one branch by masked reconstruction of ``pixels``.

    Args:
        pixels: the pretraining patches.
        config: the branch's encoder (its ``branch`` says which one).
        recipe: optimisation and objective.
        output_dir: the run folder; the branch is written to ``<output_dir>/<branch>``.
            None keeps nothing on disk (and cannot resume).
        feedback: progress and cancellation.
        resume: continue from the branch's last saved epoch.
        kernels: kernel choices (benchmarks compare them).
    """
    if pixels.num_bands != config.num_bands or pixels.patch_size != config.patch_size:
        raise ValueError("the pretraining patches do not match the encoder's bands or patch size")
    if recipe.drop_rate is not None:
        config = replace(config, drop_rate=recipe.drop_rate)
    seed_everything(recipe.seed)
    visible = recipe.encoder == "visible"
    model = MaskedReconstruction(config, visible, recipe.decoder_depth, kernels)
    masker = TokenMasker(
        len(pixels), config.num_tokens, recipe.mask_ratio, recipe.masks, recipe.seed
    )
    branch_dir = Path(output_dir) / config.branch if output_dir is not None else None
    fitted = fit(
        model,
        reconstruction_step(model, pixels, masker, recipe),
        len(pixels),
        recipe,
        feedback,
        branch_dir / STATE_NAME if branch_dir else None,
        resume,
        f"pretrain {config.branch}",
    )
    objective = objective_summary(recipe, config)
    record = {"branch": config.branch}
    record = provenance(record, pixels, objective, recipe, fitted, ("loss", "masked_mse"))
    state = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    pretrained = PretrainedBranch(config.branch, config, state, record)
    if branch_dir is not None:
        write_run(branch_dir, pretrained, fitted.history)
    return pretrained


def finished_or_pretrained(
    output_dir: str | os.PathLike[str],
    branch: Branch,
    recipe: PretrainingRecipe,
    pixels: Callable[[], PretrainingPixels],
    feedback: Feedback | None = None,
) -> PretrainedBranch:
    """The published ``branch`` finished in ``output_dir`` with ``recipe``; otherwise
    pre-trained there, continuing a partial or shorter run (``max_steps`` raised).
    ``pixels`` is called only when training.

    Raises:
        InputDataError: the folder holds a branch of another recipe, or one trained for
            more steps than ``recipe`` allows.
    """
    if (Path(output_dir) / branch / ENCODER_NAME).is_file():
        finished = load_branch(output_dir, branch)
        stored, steps = finished.provenance["recipe"], finished.provenance["steps"]
        if same_recipe(stored, recipe):
            return finished
        if not same_recipe(stored, recipe, RESUMABLE_CHANGES):
            raise InputDataError(
                f"{Path(output_dir) / branch} holds a branch pre-trained with another recipe "
                f"({stored}); use another folder"
            )
        if recipe.max_steps is not None and recipe.max_steps <= steps:
            raise InputDataError(
                f"{Path(output_dir) / branch} holds a branch pre-trained for {steps} steps, "
                f"not fewer ({recipe.max_steps}); use another folder"
            )
    source = pixels()
    config = paper_encoder(source.num_bands, branch, source.patch_size)
    return pretrain_branch(source, config, recipe, output_dir, feedback, resume=True)


def pretrain(
    pixels: PretrainingPixels,
    configs: Sequence[EncoderConfig],
    recipe: PretrainingRecipe,
    output_dir: str | os.PathLike[str] | None = None,
    feedback_for: dict[Branch, Feedback] | None = None,
    resume: bool = False,
) -> list[PretrainedBranch]:
    """Pretrain several branches one after the other (see :func:`pretrain_branch`)."""
    feedback_for = feedback_for or {}
    return [
        pretrain_branch(pixels, c, recipe, output_dir, feedback_for.get(c.branch), resume)
        for c in configs
    ]


def provenance(
    identity: dict[str, Any],
    pixels: PretrainingPixels,
    objective: str,
    recipe: LoopRecipe,
    fitted: FitResult,
    metrics: Sequence[str] = ("loss",),
) -> dict[str, Any]:
    """A pretraining run's record: ``identity`` (what was pre-trained), the pixels,
    objective and recipe, its length, the last epoch's ``metrics`` (as ``final_<metric>``),
    hardware and software."""
    last = fitted.history[-1] if fitted.history else {}
    return {
        **identity,
        "pixels": pixels.description,
        "bands": pixels.num_bands,
        "normalization_method": pixels.normalization.method,
        "objective": objective,
        "recipe": recipe.to_dict(),
        "epochs": int(last.get("epoch", 0)),
        "steps": fitted.steps,
        "seconds": round(fitted.seconds, 1),
        **{f"final_{metric}": last.get(metric) for metric in metrics},
        "hardware": hardware(),
        "software": {"torch": str(torch.__version__), "python": platform.python_version()},
    }


class Pretrained(Protocol):
    """A pre-trained network that can be saved, with its provenance."""

    provenance: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path: ...


def write_run(folder: Path, pretrained: Pretrained, history: list[dict[str, float]]) -> None:
    """Write ``encoder.pt`` and ``pretraining.json`` (provenance and history) into ``folder``."""
    pretrained.save(folder / ENCODER_NAME)
    summary = {**pretrained.provenance, "history": history}
    (folder / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")


def objective_summary(recipe: PretrainingRecipe, config: EncoderConfig) -> str:
    """One line saying what the branch learned to do."""
    hidden = masked_count(config.num_tokens, recipe.mask_ratio)
    token = "pixel" if config.branch == "pixel" else "band"
    encoder = "all tokens with a mask token" if recipe.encoder == "mask-token" else "visible tokens"
    return (
        f"masked reconstruction of normalised {token} tokens: {hidden} of {config.num_tokens} "
        f"hidden ({recipe.masks} masks), encoder on {encoder}, "
        f"{recipe.decoder_depth} decoder blocks + linear decoder, MSE over {recipe.loss} tokens"
    )


def hardware() -> dict[str, Any]:
    """The CPU a run used, for the provenance of timings."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
