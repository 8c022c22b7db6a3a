"""Command line: ``python -m engine {train,pretrain,evaluate,export,classify,info}``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import EngineError


def main(argv: Sequence[str] | None = None, prog: str = "factoformer") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    previous = _stop_on_termination()
    try:
        return int(args.run(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so staged outputs are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _stop_on_termination() -> dict[int, object]:
    """Turn SIGTERM (and SIGHUP where it exists) into :class:`Terminated`; returns the
    previous handlers. Only the main thread may install handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: object) -> None:
        raise Terminated(signum)

    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    return {signum: signal.signal(signum, stop) for signum in signals}


def build_parser(prog: str = "factoformer") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="FactoFormer hyperspectral classification engine.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a FactoFormer on a labelled scene")
    _add_scene_arguments(p)
    p.add_argument("--output-dir", type=Path, help="run folder (default: runs/<scene>-seed<seed>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="default: the paper's recipe for the scene")
    p.add_argument("--lr", type=float, help="learning rate (default: the paper's recipe)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    g = p.add_argument_group("start from pre-trained branches (`pretrain`)")
    g.add_argument("--pretrained", type=Path, help="pretraining run folder (its pixel/ and band/)")
    g.add_argument(
        "--pretrained-pixel", type=Path, help="pre-trained pixel branch (file or folder)"
    )
    g.add_argument("--pretrained-band", type=Path, help="pre-trained band branch (file or folder)")
    g.add_argument(
        "--transfer-outer-norm",
        action="store_true",
        help="also transfer each branch's outer LayerNorm (the official code does not)",
    )
    p.set_defaults(run=_train)

    p = sub.add_parser("pretrain", help="pre-train FactoFormer branches by masked reconstruction")
    _add_pretrain_arguments(p)
    p.set_defaults(run=_pretrain)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint or ONNX model on a scene")
    p.add_argument("model", type=Path, help="checkpoint.pt, a run folder, or a .onnx model")
    _add_scene_arguments(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("export", help="export a checkpoint to a self-describing ONNX model")
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt or its run folder")
    p.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--model-id", required=True, help="stable identifier, e.g. factoformer-ip")
    p.add_argument("--model-version", default="1.0.0")
    p.add_argument("--description", default="")
    p.add_argument(
        "--portable",
        action="store_true",
        help="standard ONNX ops only (no ONNX Runtime contrib attention; slower in ONNX Runtime)",
    )
    p.set_defaults(run=_export)

    p = sub.add_parser("classify", help="classify a raster into a styled class map")
    p.add_argument(
        "input", help="hyperspectral raster: a file or any GDAL name (/vsizip/..., NETCDF:...)"
    )
    p.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    p.add_argument("--output", type=Path, required=True, help="class map GeoTIFF")
    p.add_argument("--confidence", type=Path, help="optional confidence GeoTIFF")
    p.add_argument("--probabilities", type=Path, help="optional per-class probability GeoTIFF")
    p.add_argument("--mask", help="optional mask raster (0 = skip pixel), any GDAL name")
    p.add_argument("--batch-size", type=int, default=64, help="patches per ONNX Runtime call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_classify)

    p = sub.add_parser("info", help="print what an ONNX model's metadata says")
    p.add_argument("model", type=Path)
    p.set_defaults(run=_info)
    return parser


def _add_scene_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scene (a benchmark scene, or a raster with label rasters)")
    g.add_argument("--dataset", choices=("indian_pines", "pavia_university", "houston2013"))
    g.add_argument(
        "--data-root",
        type=Path,
        help="folder laid out like shared/data (Indian Pines default: the bundled scene)",
    )
    g.add_argument("--cube", type=Path, help="cube file for Pavia University / Houston 2013")
    g.add_argument("--raster", type=Path, help="any GDAL raster")
    g.add_argument("--train-labels", type=Path, help="label raster of the training pixels")
    g.add_argument("--test-labels", type=Path, help="label raster of the test pixels")


def _add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    from .config import PRETRAINING_RECIPES

    g = p.add_argument_group("pixels (a benchmark scene's unlabelled pixels, or rasters)")
    g.add_argument("--dataset", choices=("indian_pines", "pavia_university", "houston2013"))
    g.add_argument("--data-root", type=Path, help="folder laid out like shared/data")
    g.add_argument("--cube", type=Path, help="cube file for Pavia University / Houston 2013")
    g.add_argument("--raster", type=Path, nargs="+", help="rasters without labels: all pixels")
    p.add_argument("--branch", choices=("pixel", "band", "both"), default="both")
    p.add_argument("--output-dir", type=Path, required=True, help="pretraining run folder")
    p.add_argument(
        "--recipe", choices=sorted(PRETRAINING_RECIPES), default="fast", help="default: fast"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--mask-ratio", type=float)
    p.add_argument("--loss", choices=("all", "masked"), help="MSE over all or hidden tokens")
    p.add_argument("--masks", choices=("fixed", "redrawn"), help="per sample once, or every step")
    p.add_argument("--encoder", choices=("mask-token", "visible"), help="which tokens to encode")
    p.add_argument("--decoder-depth", type=int, help="transformer blocks before the decoder")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bfloat16 autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _load_scene(args: argparse.Namespace):  # -> Scene
    from .data.scenes import (
        load_houston2013,
        load_indian_pines,
        load_pavia_university,
        load_raster_scene,
    )

    if args.raster is not None:
        if args.dataset or args.train_labels is None:
            raise SystemExit("error: --raster needs --train-labels and excludes --dataset")
        return load_raster_scene(args.raster, args.train_labels, args.test_labels)
    if args.dataset in (None, "indian_pines"):
        return load_indian_pines(args.data_root)
    if args.data_root is None or args.cube is None:
        raise SystemExit(f"error: --dataset {args.dataset} needs --data-root and --cube")
    loader = load_pavia_university if args.dataset == "pavia_university" else load_houston2013
    return loader(args.data_root, args.cube)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .config import PAPER_RECIPES, TrainingRecipe
    from .training.run import run_training
    from .training.trainer import configure_cpu

    configure_cpu(args.threads)
    scene = _load_scene(args)
    recipe = PAPER_RECIPES.get(scene.name, TrainingRecipe())
    recipe = replace(
        recipe,
        seed=args.seed,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        **({"epochs": args.epochs} if args.epochs else {}),
        **({"learning_rate": args.lr} if args.lr else {}),
    )
    pretrained = _load_pretrained(args)
    out = args.output_dir or Path("runs") / f"{scene.name}-seed{args.seed}"
    print(
        f"training on {scene.name}: {(scene.train_labels > 0).sum()} pixels, "
        f"{scene.num_bands} bands, {scene.num_classes} classes; recipe {recipe.to_dict()}"
        + "".join(f"; pre-trained {b.branch} branch" for b in pretrained),
        file=sys.stderr,
    )
    run = run_training(
        scene,
        recipe,
        out,
        pretrained=pretrained,
        transfer_outer_norm=args.transfer_outer_norm,
        show_progress=not args.quiet,
        resume=args.resume,
    )
    print(f"trained {run.result.steps} steps in {run.result.seconds:.1f} s -> {out}")
    if run.metrics is not None:
        print(f"test: {run.metrics.summary()}")
    return 0


def _load_pretrained(args: argparse.Namespace) -> list:  # -> list[PretrainedBranch]
    if args.pretrained is None and args.pretrained_pixel is None and args.pretrained_band is None:
        return []
    from .pretraining.transfer import load_branch, load_run

    if args.pretrained is not None:
        if args.pretrained_pixel or args.pretrained_band:
            raise SystemExit("error: give --pretrained or --pretrained-pixel/--pretrained-band")
        return load_run(args.pretrained)
    paths = {"pixel": args.pretrained_pixel, "band": args.pretrained_band}
    return [load_branch(path, branch) for branch, path in paths.items() if path is not None]


def _pretrain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .config import PRETRAINING_RECIPES, paper_encoder
    from .pretraining.data import raster_pixels, scene_unlabelled_pixels
    from .pretraining.run import pretrain_branch
    from .progress import ProgressBar, SilentFeedback
    from .training.trainer import configure_cpu

    configure_cpu(args.threads)
    if (args.raster is None) == (args.dataset is None):
        raise SystemExit("error: give either --dataset or --raster")
    if args.raster is not None:
        pixels = raster_pixels(args.raster)
    else:
        args.train_labels = args.test_labels = None
        pixels = scene_unlabelled_pixels(_load_scene(args))
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "mask_ratio": args.mask_ratio,
        "loss": args.loss,
        "masks": args.masks,
        "encoder": args.encoder,
        "decoder_depth": args.decoder_depth,
        "bf16": args.bf16,
    }
    try:
        recipe = replace(
            PRETRAINING_RECIPES[args.recipe],
            seed=args.seed,
            max_steps=args.max_steps,
            **{k: v for k, v in overrides.items() if v is not None},
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"pretraining on {len(pixels)} pixels ({pixels.description['sources']}), "
        f"{pixels.num_bands} bands; recipe {recipe.to_dict()}",
        file=sys.stderr,
    )
    branches = ("pixel", "band") if args.branch == "both" else (args.branch,)
    for branch in branches:
        feedback = SilentFeedback() if args.quiet else ProgressBar(f"pretrain {branch}")
        config = paper_encoder(pixels.num_bands, branch, pixels.patch_size)
        done = pretrain_branch(pixels, config, recipe, args.output_dir, feedback, args.resume)
        p = done.provenance
        print(
            f"{branch} branch: {p['steps']} steps, {p['epochs']} epochs in {p['seconds']:.1f} s, "
            f"loss {p['final_loss']:.5f} (hidden tokens {p['final_masked_mse']:.5f}) "
            f"-> {args.output_dir / branch}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data.prepared import PreparedScene
    from .evaluation import evaluate_labels

    scene = _load_scene(args)
    if args.model.suffix.lower() == ".onnx":
        from .infer.model import OnnxClassifier

        model = OnnxClassifier(args.model)
        meta = model.metadata
        logits, normalization, patch_size = model.map_logits, meta.normalization, meta.patch_size
        num_bands, num_classes = meta.num_bands, meta.num_classes
    else:
        from .training.checkpoint import load_checkpoint
        from .training.trainer import configure_cpu, torch_logits

        configure_cpu()
        ckpt = load_checkpoint(args.model)
        logits, normalization = torch_logits(ckpt.model), ckpt.normalization
        patch_size = ckpt.config.patch_size
        num_bands, num_classes = ckpt.config.num_bands, ckpt.config.num_classes
    if (num_bands, num_classes) != (scene.num_bands, scene.num_classes):
        raise SystemExit(
            f"error: model has {num_bands} bands / {num_classes} classes, scene {scene.name} "
            f"{scene.num_bands} / {scene.num_classes}"
        )
    labels = scene.test_labels if args.split == "test" else scene.train_labels
    if labels is None:
        raise SystemExit(f"error: scene {scene.name} has no {args.split} labels")
    prepared = PreparedScene.from_scene(scene, patch_size, normalization)
    metrics = evaluate_labels(logits, prepared, labels)
    print(f"{args.split}: {metrics.summary()}")
    for c, acc in zip(scene.classes, metrics.per_class_accuracy, strict=True):
        print(f"  {c.value:3d} {c.name:32s} {100 * acc:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(metrics.to_dict([c.name for c in scene.classes]), indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    from .data.prepared import PreparedScene
    from .data.scenes import load_indian_pines
    from .export.onnx import export_onnx, max_logit_difference, metadata_from_run

    ckpt, meta = metadata_from_run(
        args.checkpoint, args.model_id, args.model_version, args.description
    )
    path = export_onnx(ckpt, meta, args.output, portable=args.portable)
    rng = np.random.default_rng(0)
    if ckpt.training.get("dataset") == "indian_pines" and ckpt.config.num_bands == 200:
        scene = load_indian_pines()  # parity on real patches
        prepared = PreparedScene.from_scene(scene, ckpt.config.patch_size, ckpt.normalization)
        rows, cols, _ = scene.pixels(scene.test_labels)
        pick = rng.choice(len(rows), 256, replace=False)
        patches = prepared.extractor(rows[pick], cols[pick])
    else:
        c = ckpt.config
        patches = rng.random((64, c.num_bands, c.patch_size, c.patch_size), dtype=np.float32)
    diff = max_logit_difference(ckpt, path, patches)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); max |logit| difference "
        f"ONNX Runtime vs PyTorch on {len(patches)} patches: {diff:.2e}"
    )
    return 0 if diff <= 1e-4 else 3


def _classify(args: argparse.Namespace) -> int:
    from . import SHIPPED_MODEL
    from .infer.classify import classify_raster
    from .progress import ProgressBar, SilentFeedback

    feedback = SilentFeedback() if args.quiet else ProgressBar("classify")
    report = classify_raster(
        args.input,
        args.model or SHIPPED_MODEL,
        args.output,
        confidence=args.confidence,
        probabilities=args.probabilities,
        mask=args.mask,
        batch_size=args.batch_size,
        feedback=feedback,
    )
    print(
        f"wrote {report.class_map}: {report.classified_pixels} pixels classified, "
        f"{report.nodata_pixels} no-data, {report.seconds:.1f} s "
        f"({report.pixels_per_second:.0f} pixels/s)"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from .infer.model import OnnxClassifier

    meta = OnnxClassifier(args.model).metadata
    test = meta.metrics.get("test", {})
    print(f"{meta.model_type} {meta.model_id} v{meta.model_version}")
    print(f"  bands: {meta.num_bands}" + (" with wavelengths" if meta.wavelengths_nm else ""))
    print(f"  patch: {meta.patch_size}x{meta.patch_size}, padding {meta.padding}")
    print(f"  trained on: {meta.training.get('dataset')} ({meta.training.get('split')})")
    if test:
        print(
            f"  test OA {100 * test['overall_accuracy']:.2f}  AA "
            f"{100 * test['average_accuracy']:.2f}  kappa {100 * test['kappa']:.2f}"
        )
    for c in meta.classes:
        print(f"  {c.value:3d} {c.color} {c.name}")
    return 0
