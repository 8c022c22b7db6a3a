"""Command line: ``python -m engine COMMAND``.

Commands: train, pretrain, evaluate, export, quantize, classify, assess, info.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import cli_classify, cli_maskedsst
from .config import (
    CNN3D_RECIPES,
    DEFAULT_RECIPE_NAME,
    DEFAULT_STEP_BUDGET,
    FINE_TUNING_AUGMENT,
    PAPER_RECIPES,
)
from .errors import EngineError, InputDataError, PrecisionError

# engine.models.registry.MODELS, named here so that the parser imports no torch.
MODEL_NAMES = ("factoformer", "cnn3d", "maskedsst", "rf", "svm")
PATCH_MODELS = ("factoformer", "cnn3d")  # the types whose patch edge --patch-size sets
MAX_PATCH_SIZE = 31


def main(argv: Sequence[str] | None = None, prog: str = "factoformer") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    previous = _stop_on_termination()
    try:
        return int(args.run(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # raise SystemExit("error: ..."): options that do not go together
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
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

    p = sub.add_parser(
        "train", help="train a model (FactoFormer, ...) on a labelled scene or rasters"
    )
    _add_scene_arguments(p)
    p.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default=MODEL_NAMES[0],
        help="factoformer (default), cnn3d (the 3D-CNN of Li et al. 2017), maskedsst (dense "
        "8x8-tile transformer, Scheibenreif et al. 2023), rf (random forest) "
        "or svm (RBF SVM); rf and svm read single pixel spectra and choose their "
        "hyperparameters by cross-validation on the training pixels",
    )
    p.add_argument("--trees", type=int, help="rf: trees in the forest (default 200)")
    p.add_argument(
        "--patch-size",
        type=int,
        help="factoformer/cnn3d: patch edge in pixels, odd (default: the pre-trained branches', "
        "else 7, the paper's; smaller windows suit coarse pixels such as 30 m EnMAP)",
    )
    p.add_argument("--output-dir", type=Path, help="run folder (default: runs/<scene>-seed<seed>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--recipe",
        choices=(DEFAULT_RECIPE_NAME, *PAPER_RECIPES, *CNN3D_RECIPES),
        help="the paper's recipe of a benchmark scene (its default), or 'default' (the default "
        f"for your rasters: lr 1e-3, at most 80 epochs and {DEFAULT_STEP_BUDGET} steps); "
        "cnn3d: li2017 (SGD, its default)",
    )
    p.add_argument("--epochs", type=int, help="default: from the recipe")
    p.add_argument("--lr", type=float, help="learning rate (default: from the recipe)")
    p.add_argument("--batch-size", type=int, help="default: from the recipe (32; cnn3d: 100)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (the step budget)")
    p.add_argument(
        "--augment",
        choices=("none", "dihedral"),
        help="dihedral: random flips and quarter turns of each training patch (default: "
        "dihedral when fine-tuning pre-trained branches, chosen on validation pixels; else none)",
    )
    p.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    g = p.add_argument_group("validation (never the test labels)")
    g.add_argument(
        "--validation-share",
        type=float,
        help="without validation labels, hold out this share of each class's training pixels "
        "by whole connected regions (default: 0.2 for your rasters, 0 for benchmark scenes)",
    )
    g.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation value; keep the best epoch",
    )
    g.add_argument("--monitor", choices=("loss", "accuracy"), default="loss")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    g = p.add_argument_group("start from pre-trained branches (`pretrain`)")
    g.add_argument(
        "--pretrained",
        type=Path,
        help="pretraining run folder (FactoFormer: its pixel/ and band/; maskedsst: its encoder)",
    )
    g.add_argument(
        "--pretrained-pixel", type=Path, help="pre-trained pixel branch (file or folder)"
    )
    g.add_argument("--pretrained-band", type=Path, help="pre-trained band branch (file or folder)")
    g.add_argument(
        "--transfer-outer-norm",
        action="store_true",
        help="also transfer each branch's outer LayerNorm (the official code does not)",
    )
    g = p.add_argument_group("training labels from a polygon or point layer (instead of rasters)")
    g.add_argument(
        "--train-vector",
        help="polygons/points (any OGR format) with a class field, burnt onto each --raster; "
        "a validation share is carved by whole polygons",
    )
    g.add_argument(
        "--class-field",
        help="class field of --train-vector: integer class values (the model's class ids) "
        "or text names; --classes may then list value,name,colour with text values",
    )
    g.add_argument("--vector-layer", help="layer (name or number) of a multi-layer --train-vector")
    p.add_argument(
        "--progress-json",
        action="store_true",
        help="progress and loss as JSON lines on stdout (for the QGIS plugin)",
    )
    cli_maskedsst.add_train_arguments(p)
    p.set_defaults(run=_train)

    p = sub.add_parser(
        "pretrain", help="pre-train FactoFormer branches or a MaskedSST by masked reconstruction"
    )
    p.add_argument("--model", choices=("factoformer", "maskedsst"), default="factoformer")
    _add_pretrain_arguments(p)
    cli_maskedsst.add_pretrain_arguments(p)
    p.set_defaults(run=_pretrain)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint or ONNX model on a scene")
    p.add_argument("model", type=Path, help="checkpoint.pt, a run folder, or a .onnx model")
    _add_scene_arguments(p)
    p.add_argument("--split", choices=("test", "validation", "train"), default="test")
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
    p.add_argument(
        "--precision",
        default="fp32",
        metavar="fp32|int8",
        help="fp32 (default) or int8 (MatMul/Gemm weights quantised, see `quantize`)",
    )
    p.add_argument(
        "--classes",
        type=Path,
        help="class table CSV value,name[,colour #rrggbb] naming the model's classes (every "
        "class value of the model, no other; an empty colour keeps the model's)",
    )
    p.set_defaults(run=_export)

    p = sub.add_parser(
        "quantize", help="write an int8 copy of an exported fp32 ONNX model (no PyTorch needed)"
    )
    p.add_argument("model", type=Path, help="the fp32 .onnx model")
    p.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument(
        "--precision",
        default="int8",
        metavar="int8",
        help="int8 (default): ONNX Runtime dynamic quantisation of the MatMul/Gemm layers",
    )
    p.set_defaults(run=_quantize)

    p = sub.add_parser("classify", help="classify rasters into styled class maps")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="input",
        help="hyperspectral raster: a file or any GDAL name (/vsizip/..., NETCDF:...); "
        "several, globs ('scenes/*.tif') or @list.txt (one a line) with --output-dir",
    )
    p.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    p.add_argument("--output", type=Path, help="class map GeoTIFF (one input)")
    cli_classify.add_output_arguments(p)
    p.add_argument("--mask", help="optional mask raster (0 = skip pixel), any GDAL name")
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="pixels predicted per ONNX Runtime call: patches, or 8x8 tiles of 64 (MaskedSST)",
    )
    p.add_argument(
        "--band-matching",
        choices=("strict", "select", "resample"),
        default="select",
        help="strict: the model's bands exactly; select (default): also pick the model's "
        "wavelengths among more bands; resample: also resample spectrally",
    )
    cli_classify.add_cluster_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_classify)

    p = sub.add_parser("assess", help="accuracy report of a class map against reference labels")
    p.add_argument("classmap", help="class raster (e.g. the output of classify)")
    p.add_argument(
        "--reference", required=True, help="label raster on the map's grid, or a vector file"
    )
    p.add_argument("--class-field", help="class field of a vector reference (values or names)")
    p.add_argument("--layer", help="layer of a multi-layer vector reference")
    p.add_argument("--output", type=Path, required=True, help="HTML report (CSV, JSON beside)")
    p.set_defaults(run=_assess)

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
    g.add_argument(
        "--raster",
        action="append",
        help="a GDAL raster or a glob (tiles/*.tif); repeat for several rasters (no mosaic)",
    )
    for split in ("train", "validation", "test"):
        g.add_argument(
            f"--{split}-labels",
            action="append",
            help=f"label raster of the {split} pixels (or a glob), one per --raster, in order",
        )
    g.add_argument(
        "--tiles",
        type=Path,
        help="CSV listing rasters: raster,train_labels[,validation_labels][,test_labels]",
    )
    g.add_argument(
        "--classes",
        type=Path,
        help="class table CSV: value,name[,colour #rrggbb] (default: names from the labels)",
    )


def _add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    from .config import DEFAULT_PRETRAINING_STEPS, DEFAULT_RECIPE_NAME, PRETRAINING_RECIPES

    g = p.add_argument_group("pixels (a benchmark scene's unlabelled pixels, or rasters)")
    g.add_argument("--dataset", choices=("indian_pines", "pavia_university", "houston2013"))
    g.add_argument("--data-root", type=Path, help="folder laid out like shared/data")
    g.add_argument("--cube", type=Path, help="cube file for Pavia University / Houston 2013")
    g.add_argument("--raster", type=Path, nargs="+", help="rasters without labels: all pixels")
    p.add_argument(
        "--branch",
        choices=("pixel", "band", "both"),
        help="default: pixel (chosen on Indian Pines validation pixels: as good as both "
        "within the noise, in a quarter of the time); both: the paper's protocol",
    )
    p.add_argument("--output-dir", type=Path, required=True, help="pretraining run folder")
    p.add_argument(
        "--recipe",
        choices=(DEFAULT_RECIPE_NAME, *sorted(PRETRAINING_RECIPES)),
        help=f"default: {DEFAULT_RECIPE_NAME}, which is paper-visible (the paper's schedule, "
        f"visible-only encoding) with at most {DEFAULT_PRETRAINING_STEPS:,} steps per branch "
        "(fewer epochs on larger scenes)",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        help="FactoFormer: patch edge in pixels, odd (default 7); fine-tuning reads the same",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--mask-ratio", type=float)
    p.add_argument("--loss", choices=("all", "masked"), help="MSE over all or hidden tokens")
    p.add_argument("--masks", choices=("fixed", "redrawn"), help="per sample once, or every step")
    p.add_argument(
        "--encoder",
        choices=("mask-token", "visible"),
        help="which tokens to encode (maskedsst default: visible; mask-token: the official "
        "SimMIM encoder, with no decoder block unless --decoder-depth)",
    )
    p.add_argument("--decoder-depth", type=int, help="transformer blocks before the decoder")
    p.add_argument("--dropout", type=float, help="encoder dropout while pretraining")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, help="bfloat16 autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--progress-json",
        action="store_true",
        help="progress and loss as JSON lines on stdout (for the QGIS plugin)",
    )


def _load_scene(args: argparse.Namespace):  # -> Scene
    """The benchmark scene the arguments name (Indian Pines by default)."""
    from .data.scenes import load_houston2013, load_indian_pines, load_pavia_university

    if args.dataset in (None, "indian_pines"):
        return load_indian_pines(args.data_root)
    if args.data_root is None or args.cube is None:
        raise SystemExit(f"error: --dataset {args.dataset} needs --data-root and --cube")
    loader = load_pavia_university if args.dataset == "pavia_university" else load_houston2013
    return loader(args.data_root, args.cube)


def _own_tiles(args: argparse.Namespace):  # -> list[TileFiles] | None
    """The rasters and label rasters the arguments name; None for a benchmark scene."""
    from .data.training_set import read_tile_csv, tiles_from_paths

    labels = [args.train_labels, args.validation_labels, args.test_labels]
    if getattr(args, "train_vector", None):
        return _vector_tiles(args)
    if getattr(args, "class_field", None) or getattr(args, "vector_layer", None):
        raise SystemExit("error: --class-field and --vector-layer need --train-vector")
    if args.tiles is None and not args.raster:
        if any(labels) or args.classes:
            raise SystemExit("error: label rasters and --classes need --raster (or --tiles)")
        return None
    if args.dataset:
        raise SystemExit("error: --raster and --tiles exclude --dataset")
    if args.tiles is not None:
        if args.raster or any(labels):
            raise SystemExit(
                "error: --tiles lists the rasters and labels; drop --raster/--*-labels"
            )
        return read_tile_csv(args.tiles)
    return tiles_from_paths(args.raster, *(x or () for x in labels))


def _vector_tiles(args: argparse.Namespace):  # -> list[TileFiles]
    """Burn ``--train-vector`` onto each ``--raster``; the label and polygon-id rasters are
    written to ``<run folder>/labels`` (their class names and colours travel with them)."""
    from dataclasses import replace

    from .data.raster import open_raster
    from .data.training_set import tiles_from_paths
    from .data.vector_labels import rasterise_labels, read_class_styles, write_label_raster

    if not args.raster or args.tiles or args.dataset:
        raise SystemExit("error: --train-vector needs --raster (and no --tiles or --dataset)")
    if args.train_labels or args.validation_labels:
        raise SystemExit("error: give --train-vector or --train-labels, not both")
    if not args.class_field:
        raise SystemExit("error: --train-vector needs --class-field")
    styles = read_class_styles(args.classes) if args.classes else None
    args.classes = None  # consumed here: the label rasters carry the names and colours
    tiles = tiles_from_paths(args.raster, test_labels=args.test_labels or ())
    layer = args.vector_layer
    layer = int(layer) if layer is not None and layer.isdigit() else layer
    folder = _run_dir(args, tiles[0].raster.stem) / "labels"
    out = []
    for tile in tiles:
        image = open_raster(tile.raster)
        burnt = rasterise_labels(args.train_vector, image, args.class_field, layer, styles)
        stem = tile.raster.stem
        labels, regions = folder / f"{stem}_labels.tif", folder / f"{stem}_polygons.tif"
        write_label_raster(burnt, image, labels, regions)
        _say(
            [
                f"{tile.raster.name}: {int((burnt.labels > 0).sum())} pixels labelled by "
                f"{burnt.features} features of {Path(args.train_vector).name} "
                f"({len(burnt.classes)} classes) -> {labels}"
            ],
            "note: ",
        )
        out.append(replace(tile, train_labels=labels, train_regions=regions))
    return out


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    """The training run folder: ``--output-dir``, else ``runs/<name>[-<model>]-seed<seed>``."""
    kind = "" if args.model == "factoformer" else f"-{args.model}"
    return args.output_dir or Path("runs") / f"{name}{kind}-seed{args.seed}"


def _say(lines: Sequence[str], prefix: str = "") -> None:
    for line in lines:
        print(f"{prefix}{line}", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from .data.training_set import TrainingSet, load_training_set
    from .models.registry import model_spec
    from .training.run import run_training
    from .training.trainer import configure_cpu

    configure_cpu(args.threads)
    spec = model_spec(args.model)
    _check_model_options(args)
    pretrained = _load_pretrained(args) if spec.name == "factoformer" else []
    tiles = _own_tiles(args)
    scene = _load_scene(args) if tiles is None else None
    name = scene.name if scene is not None else (args.tiles or tiles[0].raster).stem
    out = _run_dir(args, name)
    saved = _saved_state(args, out)
    patch_size = _patch_size(args, spec, pretrained, saved)
    if scene is not None:
        share = args.validation_share or 0.0
        if args.early_stopping and not share:
            raise InputDataError("early stopping needs validation pixels: give --validation-share")
        data = TrainingSet.from_scene(
            scene,
            patch_size,
            validation_share=share,
            seed=args.seed,
            normalization_method=spec.normalization,
        )
    else:
        has_validation = any(t.validation_labels for t in tiles)
        share = args.validation_share
        if share is None:
            share = 0.0 if has_validation else 0.2
        if args.early_stopping and not share and not has_validation:
            raise InputDataError(
                "early stopping needs validation pixels (validation labels or share)"
            )
        data = load_training_set(
            tiles,
            patch_size,
            classes_csv=args.classes,
            validation_share=share,
            seed=args.seed,
            name=name,
            normalization_method=spec.normalization,
        )
    _say(data.notes, "note: ")
    _say(data.warnings, "warning: ")
    feedback = _feedback(args, f"fit {spec.name}" if spec.family == "sklearn" else "train")
    if spec.family == "sklearn":
        return _fit_classical(args, data, name, feedback)
    if spec.family == "dense":
        return _report_training(*cli_maskedsst.train(args, data, name, feedback))
    recipe, recipe_line = _recipe(args, name if tiles is None else None, len(data.train), saved)
    _say(
        [
            f"training on {name}: {data.summary()}",
            recipe_line + "".join(f"; pre-trained {b.branch} branch" for b in pretrained),
        ]
    )
    run = run_training(
        data,
        recipe,
        out,
        pretrained=pretrained,
        transfer_outer_norm=args.transfer_outer_norm,
        feedback=feedback,
        resume=args.resume,
        patience=args.early_stopping,
        monitor=args.monitor,
        time_limit=args.max_minutes * 60 if args.max_minutes else None,
        config=spec.config(data.num_bands, data.num_classes, patch_size=patch_size),
    )
    return _report_training(run, out)


def _report_training(run, out: Path) -> int:  # run: TrainedRun
    """Print what a training run did and measured; the command's exit code."""
    print(f"trained {run.result.steps} steps in {run.result.seconds:.1f} s -> {out}")
    if run.result.stopped:
        print(f"stopped: {run.result.stopped}")
    if run.validation is not None:
        print(f"validation: {run.validation.summary()}")
    if run.metrics is not None:
        print(f"test: {run.metrics.summary()}")
    return 0


def _patch_size(args: argparse.Namespace, spec, pretrained: list, saved: dict | None) -> int:
    """The patch edge to train with: the resumed run's, ``--patch-size``, the pre-trained
    branches' (all that are known must agree), else the model type's."""
    if spec.name not in PATCH_MODELS:
        return spec.patch_size
    model = ((saved or {}).get("record") or {}).get("model") or {}
    known = [(f"--patch-size {args.patch_size}", args.patch_size)]
    known += [(f"the pre-trained {b.branch} branch", b.config.patch_size) for b in pretrained]
    known += [("the run being resumed", model.get("patch_size"))]
    known = [(source, size) for source, size in known if size is not None]
    if len({size for _, size in known}) > 1:
        sizes = ", ".join(f"{source}: {size}x{size}" for source, size in known)
        raise InputDataError(f"patch sizes disagree ({sizes}); use one size")
    if not known:
        return spec.patch_size
    return _odd_patch_size(known[0][1], spec.min_patch_size, f" for --model {spec.name}")


def _odd_patch_size(size: int, smallest: int = 1, use: str = "") -> int:
    if not smallest <= size <= MAX_PATCH_SIZE or size % 2 == 0:
        raise InputDataError(
            f"--patch-size must be an odd number from {smallest} to {MAX_PATCH_SIZE}{use}, "
            f"got {size}"
        )
    return size


def _check_model_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen model would ignore."""
    network = ("recipe", "epochs", "lr", "batch_size", "max_steps", "max_minutes")
    network += ("early_stopping", "resume", "augment", "patch_size")
    pretraining = ("pretrained", "pretrained_pixel", "pretrained_band", "transfer_outer_norm")
    ignored = {"rf": (*network, *pretraining), "svm": (*network, *pretraining, "trees")}
    ignored["cnn3d"] = (*pretraining, "trees")
    ignored["factoformer"] = ("trees",)
    ignored["maskedsst"] = ("recipe", "early_stopping", "trees", "augment", "patch_size")
    ignored["maskedsst"] += pretraining[1:]
    for model in ("factoformer", "cnn3d", "rf", "svm"):
        ignored[model] += cli_maskedsst.TRAIN_OPTIONS
    given = [f"--{k.replace('_', '-')}" for k in ignored[args.model] if getattr(args, k)]
    if given:
        raise SystemExit(f"error: {', '.join(given)} do not apply to --model {args.model}")


def _feedback(args: argparse.Namespace, label: str):  # -> Feedback
    """JSON lines (``--progress-json``), nothing (``--quiet``) or a progress bar."""
    from .progress import JsonLinesFeedback, ProgressBar, SilentFeedback

    if getattr(args, "progress_json", False):
        return JsonLinesFeedback(label)
    return SilentFeedback() if args.quiet else ProgressBar(label)


def _fit_classical(
    args: argparse.Namespace, data, name: str, feedback
) -> int:  # data: TrainingSet, feedback: Feedback
    """``train --model rf|svm``: search, fit, convert and test; see engine.training.classical."""
    from .models.registry import model_spec
    from .system import available_cores
    from .training.classical import run_classical

    spec = model_spec(args.model)
    options = {"n_estimators": args.trees} if args.trees else {}
    config = spec.config(data.num_bands, data.num_classes, **options)
    out = _run_dir(args, name)
    _say([f"fitting {spec.model_type} on {name}: {data.summary()}"])
    threads = args.threads or available_cores()
    run = run_classical(data, config, args.seed, out, threads, feedback)
    _say(run.notes, "note: ")
    search = run.metadata.training["search"]
    print(f"{search['method']}: chose {search['chosen']}")
    print(f"fitted in {run.seconds:.1f} s -> {out}")
    if run.validation is not None:
        print(f"validation: {run.validation.summary()}")
    if run.metrics is not None:
        print(f"test: {run.metrics.summary()}")
    return 0


def _recipe(
    args: argparse.Namespace, scene: str | None, train_pixels: int, saved: dict | None = None
):
    """The training recipe the arguments ask for, and a line for the log saying what it is;
    ``saved``: the state of the run being resumed."""
    from dataclasses import replace

    from .config import default_recipe
    from .models.registry import model_spec

    name = args.recipe or model_spec(args.model).default_recipe
    name = name or (scene if scene in PAPER_RECIPES else DEFAULT_RECIPE_NAME)
    overrides = {"epochs": args.epochs, "learning_rate": args.lr, "batch_size": args.batch_size}
    overrides["augment"] = args.augment or _default_augment(args, saved)
    overrides = {k: v for k, v in overrides.items() if v}
    if name == DEFAULT_RECIPE_NAME:
        budget = args.max_steps or DEFAULT_STEP_BUDGET
        recipe = default_recipe(train_pixels, args.batch_size or 32, budget)
        if args.epochs and not args.max_steps:
            overrides["max_steps"] = None  # --epochs alone: the epochs, not the budget
    else:
        named = {**PAPER_RECIPES, **CNN3D_RECIPES}[name]
        recipe = replace(named, max_steps=args.max_steps)
    recipe = replace(recipe, seed=args.seed, **overrides)
    batches = -(-train_pixels // recipe.batch_size)
    steps = recipe.epochs * batches
    if recipe.max_steps is not None:
        steps = min(steps, recipe.max_steps)
    line = (
        f"recipe {name!r}: {steps} steps ({recipe.epochs} epochs of {batches} batches of "
        f"{recipe.batch_size}"
        + (f", step budget {recipe.max_steps}" if recipe.max_steps is not None else "")
        + f"), learning rate {recipe.learning_rate:g}"
        + (f", SGD momentum {recipe.momentum:g}" if recipe.optimizer == "sgd" else "")
        + (f", {recipe.augment} augmentation" if recipe.augment != "none" else "")
    )
    if name == DEFAULT_RECIPE_NAME:
        line += "; --max-steps, --epochs or --recipe change it"
    return recipe, line


def _default_augment(args: argparse.Namespace, saved: dict | None) -> str | None:
    """Without ``--augment``: a resumed run (``saved`` state) keeps its own; fine-tuning
    from pre-trained branches flips and turns the patches; else the recipe's (none)."""
    if saved is not None:
        return str(saved["recipe"].get("augment", "none"))
    return FINE_TUNING_AUGMENT if _fine_tunes(args) else None


def _saved_state(args: argparse.Namespace, out: Path) -> dict | None:
    """The state of the run in ``out`` that ``--resume`` continues, if there is one."""
    from .training.loop import load_state
    from .training.run import STATE_NAME

    state = out / STATE_NAME
    return load_state(state) if args.resume and state.is_file() else None


def _fine_tunes(args: argparse.Namespace) -> bool:
    """Whether the training starts from pre-trained branches."""
    given = (args.pretrained, args.pretrained_pixel, args.pretrained_band)
    return any(path is not None for path in given)


def _load_pretrained(args: argparse.Namespace) -> list:  # -> list[PretrainedBranch]
    if not _fine_tunes(args):
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

    from .config import (
        DEFAULT_RECIPE_NAME,
        PRETRAINING_RECIPES,
        default_pretraining_recipe,
        paper_encoder,
    )
    from .pretraining.data import raster_pixels, scene_unlabelled_pixels
    from .pretraining.run import pretrain_branch
    from .training.trainer import configure_cpu

    configure_cpu(args.threads)
    if (args.raster is None) == (args.dataset is None):
        raise SystemExit("error: give either --dataset or --raster")
    if args.model == "maskedsst":
        return cli_maskedsst.pretrain(args, _load_scene, _feedback(args, "pretrain maskedsst"))
    cli_maskedsst.refuse_pretrain_options(args)
    patch = 7 if args.patch_size is None else _odd_patch_size(args.patch_size, smallest=3)
    if args.raster is not None:
        pixels = raster_pixels(args.raster, patch)
    else:
        args.train_labels = args.test_labels = None
        pixels = scene_unlabelled_pixels(_load_scene(args), patch)
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "mask_ratio": args.mask_ratio,
        "loss": args.loss,
        "masks": args.masks,
        "encoder": args.encoder,
        "decoder_depth": args.decoder_depth,
        "drop_rate": args.dropout,
        "bf16": args.bf16,
    }
    if args.recipe in (None, DEFAULT_RECIPE_NAME):
        named = default_pretraining_recipe(len(pixels), args.batch_size or 32)
        if args.epochs:  # --epochs alone: the epochs, not the step budget
            named = replace(named, max_steps=None)
    else:
        named = PRETRAINING_RECIPES[args.recipe]
    try:
        recipe = replace(
            named,
            seed=args.seed,
            max_steps=args.max_steps or named.max_steps,
            **{k: v for k, v in overrides.items() if v is not None},
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"pretraining on {len(pixels)} pixels ({pixels.description['sources']}), "
        f"{pixels.num_bands} bands; recipe {recipe.to_dict()}",
        file=sys.stderr,
    )
    branch = args.branch or "pixel"
    branches = ("pixel", "band") if branch == "both" else (branch,)
    for branch in branches:
        feedback = _feedback(args, f"pretrain {branch}")
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
    from .data.training_set import TrainingSet, load_training_set
    from .evaluation import evaluate_pixels
    from .training.classical import MODEL_NAME, is_classical_run

    if is_classical_run(args.model):  # an rf / svm run folder: its converted model
        args.model = args.model / MODEL_NAME
    if args.model.suffix.lower() == ".onnx":
        from .infer.model import OnnxClassifier

        model = OnnxClassifier(args.model)
        meta = model.metadata
        logits, normalization, patch_size = model.map_logits, meta.normalization, meta.patch_size
        classes, raster_bands = meta.classes, meta.raster_bands
        dense = cli_maskedsst.dense_onnx(model)
    else:
        from .training.checkpoint import load_checkpoint
        from .training.trainer import configure_cpu, torch_logits

        configure_cpu()
        ckpt = load_checkpoint(args.model)
        logits, normalization = torch_logits(ckpt.model), ckpt.normalization
        patch_size, classes, raster_bands = ckpt.config.patch_size, ckpt.classes, ckpt.raster_bands
        dense = cli_maskedsst.dense_torch(ckpt)
    if dense is not None:  # every pixel of a tile: data padded for tiles past the border
        patch_size = cli_maskedsst.context_patch(dense)
    tiles = _own_tiles(args)
    if tiles is None:
        scene = _load_scene(args)
        if (scene.num_bands, scene.num_classes) != (normalization.num_bands, len(classes)):
            raise SystemExit(
                f"error: model has {normalization.num_bands} bands / {len(classes)} classes, "
                f"scene {scene.name} {scene.num_bands} / {scene.num_classes}"
            )
        data = TrainingSet.from_scene(scene, patch_size, normalization)
        classes = scene.classes
    else:
        data = load_training_set(
            tiles,
            patch_size,
            normalization=normalization,
            classes=classes,
            band_numbers=raster_bands,
        )
    pixels = data.splits.get(args.split)
    if pixels is None:
        raise SystemExit(f"error: no {args.split} labels given (or none on valid pixels)")
    if dense is not None:
        metrics = cli_maskedsst.evaluate(dense, data, args.split)
    else:
        metrics = evaluate_pixels(logits, pixels, len(classes))
    print(f"{args.split}: {metrics.summary()}")
    for c, acc in zip(classes, metrics.per_class_accuracy, strict=True):
        print(f"  {c.value:3d} {c.name:32s} {100 * acc:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(metrics.to_dict([c.name for c in classes]), indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .data.labels import renamed_classes
    from .export.onnx import export_onnx, max_logit_difference, metadata_from_run
    from .export.precision import check_precision
    from .training.classical import export_classical, is_classical_run

    precision = check_precision(args.precision)
    if is_classical_run(args.checkpoint):  # rf / svm: the run's converted model
        if precision != "fp32":
            raise PrecisionError("random forest and SVM models are exported in fp32 only")
        path = export_classical(
            args.checkpoint,
            args.output,
            args.model_id,
            args.model_version,
            args.description,
            args.classes,
        )
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        return 0
    ckpt, meta = metadata_from_run(
        args.checkpoint, args.model_id, args.model_version, args.description
    )
    if args.classes:
        meta = dataclasses.replace(meta, classes=renamed_classes(meta.classes, args.classes))
    if precision != "fp32":
        return _export_quantized(ckpt, meta, args, precision)
    path = export_onnx(ckpt, meta, args.output, portable=args.portable)
    patches = _parity_patches(ckpt)
    diff = max_logit_difference(ckpt, path, patches)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); max |logit| difference "
        f"ONNX Runtime vs PyTorch on {len(patches)} patches: {diff:.2e}"
    )
    return 0 if diff <= 1e-4 else 3


def _export_quantized(ckpt, meta, args: argparse.Namespace, precision: str) -> int:
    """Export fp32 to a temporary file and check it, quantise it into ``--output``, and say
    on how many parity patches it keeps PyTorch's class (below 95 %: rc 3)."""
    import tempfile

    import torch

    from .export.onnx import export_onnx, max_logit_difference
    from .export.precision import quantize_model
    from .infer.model import OnnxClassifier

    patches = _parity_patches(ckpt)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(ckpt, meta, Path(tmp) / "fp32.onnx", portable=args.portable)
        diff = max_logit_difference(ckpt, fp32, patches)
        if diff > 1e-4:
            print(f"error: the fp32 export differs from PyTorch by {diff:.2e}", file=sys.stderr)
            return 3
        path = quantize_model(fp32, args.output, precision)
    with torch.no_grad():
        expected = ckpt.model.eval()(torch.from_numpy(patches)).numpy().argmax(axis=1)
    agree = float((OnnxClassifier(path).logits(patches).argmax(axis=1) == expected).mean())
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {precision}); same class as "
        f"PyTorch on {100 * agree:.1f} % of {len(patches)} patches"
    )
    return 0 if agree >= 0.95 else 3


def _parity_patches(ckpt):  # -> np.ndarray
    """256 real test patches for an Indian Pines model (when the scene is bundled), else 64
    random patches: what export compares ONNX Runtime and PyTorch on."""
    import numpy as np

    from .data.prepared import PreparedScene
    from .data.scenes import load_indian_pines

    rng = np.random.default_rng(0)
    scene = None
    if ckpt.training.get("dataset") == "indian_pines" and ckpt.config.num_bands == 200:
        try:
            scene = load_indian_pines()  # parity on real patches
        except EngineError:  # an installed plugin has no bundled scene: random patches
            scene = None
    if scene is not None:
        prepared = PreparedScene.from_scene(scene, ckpt.config.patch_size, ckpt.normalization)
        rows, cols, _ = scene.pixels(scene.test_labels)
        pick = rng.choice(len(rows), 256, replace=False)
        return prepared.extractor(rows[pick], cols[pick])
    c = ckpt.config
    return rng.random((64, c.num_bands, c.patch_size, c.patch_size), dtype=np.float32)


def _quantize(args: argparse.Namespace) -> int:
    from .export.precision import quantize_model

    path = quantize_model(args.model, args.output, args.precision)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {args.precision})")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from . import SHIPPED_MODEL
    from .infer.classify import classify_raster

    feedback = cli_classify.feedback(args)
    requests, distributed = cli_classify.scene_requests(args)
    if distributed:
        return cli_classify.classify_on_dask(args, requests, feedback)
    request = requests[0]
    report = classify_raster(
        request.input,
        args.model or SHIPPED_MODEL,
        request.outputs["class_map"],
        confidence=request.outputs.get("confidence"),
        probabilities=request.outputs.get("probabilities"),
        mask=args.mask,
        batch_size=args.batch_size,
        feedback=feedback,
        band_matching=args.band_matching,
    )
    print(f"bands: {report.band_plan}")
    print(
        f"wrote {report.class_map}: {report.classified_pixels} pixels classified, "
        f"{report.nodata_pixels} no-data, {report.seconds:.1f} s "
        f"({report.pixels_per_second:.0f} pixels/s)"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from .export.precision import describe as describe_precision
    from .infer.model import OnnxClassifier

    meta = OnnxClassifier(args.model).metadata
    print(f"{meta.model_type} {meta.model_id} v{meta.model_version}")
    bands = f"  bands: {meta.num_bands}"
    if meta.raster_bands:
        bands += f" of {meta.raster_band_count} raster bands"
    print(bands + (" with wavelengths" if meta.wavelengths_nm else " (no wavelengths)"))
    print(f"  patch: {meta.patch_size}x{meta.patch_size}, padding {meta.padding}")
    print(f"  {describe_precision(meta)}")
    print(f"  trained on: {meta.training.get('dataset')} ({meta.training.get('split')})")
    for split in ("validation", "test"):
        m = meta.metrics.get(split)
        if m:
            print(
                f"  {split} OA {100 * m['overall_accuracy']:.2f}  AA "
                f"{100 * m['average_accuracy']:.2f}  kappa {100 * m['kappa']:.2f}"
                f"  ({m.get('pixels', '?')} pixels)"
            )
    for c in meta.classes:
        print(f"  {c.value:3d} {c.color} {c.name}")
    return 0


def _assess(args: argparse.Namespace) -> int:
    from .assessment import assess
    from .assessment_report import write_report

    result = assess(args.classmap, args.reference, args.class_field, args.layer)
    paths = write_report(result, args.output, [args.classmap, args.reference])
    print(
        f"OA {100 * result.overall_accuracy:.2f}  AA {100 * result.average_accuracy:.2f}  "
        f"kappa {result.kappa:.4f}  ({result.total} reference pixels)"
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
