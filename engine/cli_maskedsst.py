"""The MaskedSST parts of the command line: ``pretrain``, ``train`` and ``evaluate`` with
``--model maskedsst`` (and evaluation of any dense model). :mod:`engine.cli` owns the
parsers and calls these; torch is imported only when a command runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .progress import Feedback

# Options of one pretraining that have no meaning for the other (all default None).
_FACTOFORMER_PRETRAIN_ONLY = ("branch", "recipe", "loss", "masks", "dropout", "patch_size")
_MASKEDSST_PRETRAIN_ONLY = ("masking", "mask_unit", "tiles_per_epoch", "grad_clip")
_MASKEDSST_PRETRAIN_ONLY += ("pos_embedding",)
# Options of ``train`` for MaskedSST only (engine.cli refuses them for other models).
TRAIN_OPTIONS = ("head_lr", "bf16", "pos_embedding")


def add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    """MaskedSST options of ``pretrain`` (``--model maskedsst``)."""
    g = p.add_argument_group("MaskedSST pretraining (--model maskedsst)")
    g.add_argument(
        "--masking",
        choices=("tube", "random"),
        help="tube: 3 of the 4 4x4-pixel units hidden in every spectral block (official "
        "config, default); random: 70%% of the tokens",
    )
    g.add_argument("--mask-unit", type=int, help="tube edge in pixels (default 4)")
    g.add_argument("--tiles-per-epoch", type=int, help="tiles per epoch (default 800)")
    g.add_argument("--grad-clip", type=float, help="clamp gradient values (default 1; 0: off)")
    add_model_arguments(g)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """MaskedSST options of ``train`` (``--model maskedsst``)."""
    g = p.add_argument_group("MaskedSST fine-tuning (--model maskedsst)")
    g.add_argument("--head-lr", type=float, help="learning rate of the per-pixel head (5e-3)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bfloat16 autocast (CPU)")
    add_model_arguments(g)


def add_model_arguments(g: Any) -> None:
    g.add_argument(
        "--pos-embedding",
        choices=("learned", "sincos"),
        help="learned (released models, default) or sin-cos with spectral positions from the "
        "band wavelengths; with --pretrained: the pre-trained model's",
    )


def pretrain(
    args: argparse.Namespace, load_scene: Callable[[argparse.Namespace], Any], feedback: Feedback
) -> int:
    """``pretrain --model maskedsst``: masked pretraining of a MaskedSST backbone, showing
    its progress in ``feedback`` (a progress bar, JSON lines or nothing)."""
    from .config import MaskedSSTConfig, masked_pretraining_recipe, spectral_positions
    from .data.dense import context_patch_size
    from .models.registry import model_spec
    from .pretraining.data import raster_pixels, scene_unlabelled_pixels
    from .pretraining.maskedsst import pretrain_maskedsst

    _refuse(args, _FACTOFORMER_PRETRAIN_ONLY, "--model factoformer")
    patch = context_patch_size(MaskedSSTConfig.tile_size)
    method = model_spec("maskedsst").normalization
    if args.raster is not None:
        pixels = raster_pixels(args.raster, patch, method)
        wavelengths = _raster_wavelengths(args.raster)
    else:
        args.train_labels = args.test_labels = None
        scene = load_scene(args)
        pixels = scene_unlabelled_pixels(scene, patch, method)
        wavelengths = scene.wavelengths_nm
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "mask_ratio": args.mask_ratio,
        "masking": args.masking,
        "mask_unit": args.mask_unit,
        "tiles_per_epoch": args.tiles_per_epoch,
        "bf16": args.bf16,
        "encoder": args.encoder,
        "decoder_depth": args.decoder_depth,
    }
    try:
        recipe = masked_pretraining_recipe(seed=args.seed, max_steps=args.max_steps, **overrides)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.grad_clip is not None:
        recipe = replace(recipe, grad_clip=args.grad_clip or None)
    pos = args.pos_embedding or "learned"
    positions = spectral_positions(wavelengths) if pos == "sincos" else None
    config = MaskedSSTConfig(
        num_bands=pixels.num_bands,
        num_classes=2,  # the head is not pre-trained
        pos_embedding=pos,
        spectral_positions=positions,
    )
    print(
        f"pretraining a MaskedSST on tiles around {len(pixels)} pixels "
        f"({pixels.description['sources']}), {pixels.num_bands} bands "
        f"({config.num_blocks} blocks, {config.band_padding} zero bands); "
        f"recipe {recipe.to_dict()}",
        file=sys.stderr,
    )
    done = pretrain_maskedsst(pixels, config, recipe, args.output_dir, feedback, args.resume)
    p = done.provenance
    print(
        f"maskedsst: {p['steps']} steps, {p['epochs']} epochs in {p['seconds']:.1f} s, "
        f"loss {p['final_loss']:.5f} -> {args.output_dir}"
    )
    return 0


def _raster_wavelengths(paths) -> tuple[float, ...] | None:
    """Centre wavelengths of the bands the pretraining reads (those not flagged bad)."""
    from .data.raster import band_info, open_raster

    return band_info(open_raster(paths[0])).good().wavelengths_nm


def train(args: argparse.Namespace, data, name: str, feedback: Feedback) -> tuple[Any, Path]:
    """``train --model maskedsst`` on a :class:`TrainingSet` built with the context patch
    size (see :func:`engine.data.dense.context_patch_size`), showing its progress in
    ``feedback``; returns the finished
    :class:`~engine.training.run.TrainedRun` and its folder, which :mod:`engine.cli`
    reports."""
    from .pretraining.maskedsst import load_pretrained
    from .training.dense import (
        DEFAULT_DENSE_STEPS,
        default_dense_recipe,
        maskedsst_config,
        run_dense_training,
    )

    pre = load_pretrained(args.pretrained) if args.pretrained is not None else None
    if pre is not None:
        if args.pos_embedding and args.pos_embedding != pre.config.pos_embedding:
            raise SystemExit(
                f"error: the pre-trained model uses {pre.config.pos_embedding} positions"
            )
        config = replace(pre.config, num_classes=data.num_classes)
    else:
        config = maskedsst_config(data, pos_embedding=args.pos_embedding or "learned")
    budget = args.max_steps or DEFAULT_DENSE_STEPS
    recipe = default_dense_recipe(len(data.train), args.batch_size or 8, budget)
    overrides = {
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "head_learning_rate": args.head_lr,
        "bf16": args.bf16,
    }
    recipe = replace(recipe, seed=args.seed, **{k: v for k, v in overrides.items() if v})
    out = args.output_dir or Path("runs") / f"{name}-maskedsst-seed{args.seed}"
    batches = -(-len(data.train) // recipe.batch_size)
    steps = min(recipe.epochs * batches, recipe.max_steps or recipe.epochs * batches)
    print(
        f"training a MaskedSST on {name}: {data.summary()}\n"
        f"{steps} steps ({recipe.epochs} epochs of {batches} batches of {recipe.batch_size} "
        f"tiles, step budget {recipe.max_steps}), learning rate {recipe.learning_rate:g} "
        f"(head {recipe.head_learning_rate:g})"
        + ("; pre-trained backbone" if pre is not None else "; from scratch"),
        file=sys.stderr,
    )
    run = run_dense_training(
        data,
        recipe,
        out,
        config,
        pre,
        feedback=feedback,
        resume=args.resume,
        time_limit=args.max_minutes * 60 if args.max_minutes else None,
    )
    return run, out


def dense_onnx(model):  # -> OnnxClassifier | None
    """The ONNX model when it predicts every pixel of a tile (metadata ``dense``)."""
    from .metadata import DENSE

    return model if model.metadata.prediction == DENSE else None


def dense_torch(checkpoint):  # -> TorchDenseModel | None
    """A dense checkpoint (MaskedSST) as the model inference's dense predictor reads."""
    from .models.registry import spec_for_config

    if spec_for_config(checkpoint.config).family != "dense":
        return None
    from .training.dense import TorchDenseModel

    return TorchDenseModel(checkpoint.model)


def context_patch(dense) -> int:
    """The patch size to build evaluation data with for a dense model."""
    from .data.dense import context_patch_size

    return context_patch_size(dense.metadata.tile_size)


def evaluate(dense, data, split: str):  # -> ClassificationMetrics
    """Metrics of a dense model on a split, from dense predictions of whole rasters."""
    from .training.dense import evaluate_dense

    return evaluate_dense(dense, data, split)


def refuse_pretrain_options(args: argparse.Namespace) -> None:
    """``pretrain --model factoformer``: refuse the MaskedSST options."""
    _refuse(args, _MASKEDSST_PRETRAIN_ONLY, "--model maskedsst")


def _refuse(args: argparse.Namespace, names: tuple[str, ...], owner: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]
    if given:
        raise SystemExit(f"error: {', '.join(given)} apply to {owner} only")
