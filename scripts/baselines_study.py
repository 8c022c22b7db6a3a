"""The baselines on the Indian Pines fixed split: random forest, RBF SVM and 3D-CNN, per seed.

For each model and seed asked for, train on the 695 training pixels (RF/SVM: the seed
shuffles the cross-validation folds and seeds the forest and libsvm's probability fit;
3D-CNN: the li2017 recipe, seed for weights and batch order; ``factoformer``, not run by
default: the paper's recipe, for a row measured the same way), convert or export to ONNX,
measure OA/AA/kappa on the 9,671 test pixels with the ONNX model, then classify the whole
bundled scene (145 x 145 pixels) with the engine and record its pixels per second. Each
result is written as soon as it is known to ``<results>/<model>-seed<k>.json``; a result
that already exists is skipped, and an interrupted network run resumes from its last epoch
(under ``<runs>``). ``--max-steps`` smoke runs write to ``results/baselines-smoke``.

``--subset N [N ...] --subset-seeds K [K ...]`` trains instead on the stored
label-efficiency subsets of the training split (N pixels per class, draw seed K;
``resources/indian_pines/subsets``, made by ``scripts/make_label_subsets.py``), each with
model seed K, and writes ``<results>/label-efficiency/<model>-<N>px-seed<K>.json``; the
test split stays the same, and the speed (that of the full split's models) is not measured.

``--enmap DIR`` trains instead on the EnMAP Potsdam tiles of ``DIR`` (the layout of
``shared/data/enmap_potsdam_tiles``: its ``train_files.csv`` tiles give the training
labels, ``validation_files.csv`` the validation labels, ``test_files.csv`` the test
labels), measures on the test tiles and the speed on the first test tile, and writes
``<results>/enmap-<model>-seed<k>.json``; FactoFormer trains there with the engine's
default recipe for a new scene (what ``python -m engine train`` uses: at most 2,000 steps);
``factoformer-pixel`` pre-trains its pixel branch first on every valid pixel of the 18
tiles with the engine's default pretraining recipe (no label read), then does the same.
``--fit train+validation`` (EnMAP) trains on the validation tiles' labels too, the protocol
of a final model once every choice is made (nothing is then measured on validation), and
writes ``<results>/enmap-<model>+validation-seed<k>.json``. ``--step-budget N`` (EnMAP,
networks) trains with the engine's default recipe for a new scene at a budget of N steps
instead of 2,000 (``<results>/enmap-<model>-<N>steps-seed<k>.json``). ``--augment
dihedral`` (EnMAP, networks) fine-tunes with random flips and quarter turns of each patch
(``<results>/enmap-<model>[-<N>steps]-dihedral-seed<k>.json``). ``--patch-size P``
(EnMAP, FactoFormer) reads P x P patches instead of the paper's 7 x 7 (``-patch<P>`` in the
name).

Examples:
    python scripts/baselines_study.py --models rf svm --seeds 0        # minutes
    python scripts/baselines_study.py --models cnn3d --seeds 0 1 2 3 4  # hours on 2 cores
    python scripts/baselines_study.py --models rf svm --subset 5 10 20 --subset-seeds 0 1 2
    python scripts/baselines_study.py --models rf svm --enmap ../shared/data/enmap_potsdam_tiles
    python scripts/baselines_table.py results/baselines
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import (  # noqa: E402
    CNN3D_RECIPES,
    DEFAULT_STEP_BUDGET,
    PAPER_RECIPES,
    TrainingRecipe,
    default_pretraining_recipe,
    default_recipe,
)
from engine.data.scenes import Scene, load_indian_pines  # noqa: E402
from engine.data.subsets import load_indian_pines_subset, subset_path  # noqa: E402
from engine.data.training_set import TileFiles, TrainingSet, load_training_set  # noqa: E402
from engine.evaluation import evaluate_pixels  # noqa: E402
from engine.export.onnx import export_onnx, metadata_from_run  # noqa: E402
from engine.infer.classify import DEFAULT_BATCH_SIZE, classify_raster  # noqa: E402
from engine.infer.model import OnnxClassifier  # noqa: E402
from engine.models.registry import model_spec  # noqa: E402
from engine.pretraining.data import raster_pixels  # noqa: E402
from engine.pretraining.run import finished_or_pretrained, hardware  # noqa: E402
from engine.pretraining.transfer import PretrainedBranch  # noqa: E402
from engine.progress import ProgressBar, SilentFeedback  # noqa: E402
from engine.system import available_cores  # noqa: E402
from engine.training.classical import MODEL_NAME, run_classical  # noqa: E402
from engine.training.run import run_training  # noqa: E402
from engine.training.trainer import configure_cpu  # noqa: E402

MODELS = ("rf", "svm", "cnn3d", "factoformer", "factoformer-pixel")
# factoformer-pixel: the pixel branch pre-trained first (EnMAP only); its result rows are
# named by the pretraining recipe, as the pretraining study's are.
RECORD_NAMES = {"factoformer-pixel": "factoformer-pixel/default"}
BUNDLED_SCENE = ROOT / "resources" / "indian_pines" / "indian_pines.tif"


def main() -> None:
    args = parse_args()
    configure_cpu(args.threads)
    for subset, seed in jobs(args):
        scene = None
        for name in args.models:
            tag = f"{name}-{subset}px-seed{seed}" if subset else f"{name}-seed{seed}"
            tag = f"enmap-{tag}" if args.enmap else tag
            fitted = args.fit.removeprefix("train")
            budget = f"-{args.step_budget}steps" if args.step_budget else ""
            augment = f"-{args.augment}" if args.augment != "none" else ""
            patch = f"-patch{args.patch_size}" if args.patch_size else ""
            tag = tag.replace("-seed", f"{fitted}{budget}{augment}{patch}-seed")
            path = args.results / f"{tag}.json"
            if path.exists():
                print(f"{path} exists; skipped", file=sys.stderr)
                continue
            print(f"training {tag}", file=sys.stderr)
            patch_size = args.patch_size or model_spec(architecture(name)).patch_size
            if args.enmap:
                data = enmap_data(args.enmap, patch_size, args.fit)
                raster = enmap_tiles(args.enmap)[2][0]
            else:
                scene = scene or load_scene(args.data_root, subset, seed)
                data = TrainingSet.from_scene(scene, patch_size)
                raster = None if subset else BUNDLED_SCENE  # the speed is the full split's
            model, seconds, details = train(name, data, seed, args.runs / tag, args)
            record = measure(
                RECORD_NAMES.get(name, name), seed, data, model, seconds, details, raster
            )
            if subset:
                record["subset"] = subset_record(scene, subset, seed)
            record["fit_on"] = args.fit
            if args.step_budget:
                record["step_budget"] = args.step_budget
            if args.augment != "none":
                record["augment"] = args.augment
            if args.patch_size:
                record["patch_size"] = args.patch_size
            write_json(path, record)
            m = record["metrics"]
            rate = record.get("inference", {}).get("pixels_per_second")
            print(
                f"{tag}: OA {100 * m['overall_accuracy']:.2f} "
                f"AA {100 * m['average_accuracy']:.2f} kappa {100 * m['kappa']:.2f}, trained in "
                f"{seconds:.1f} s" + (f", {rate:.0f} px/s" if rate else "") + f" -> {path}"
            )


def jobs(args: argparse.Namespace) -> list[tuple[int | None, int]]:
    """(pixels per class or None for the whole split, seed) pairs, in the order run."""
    if args.subset:
        return [(n, k) for n in args.subset for k in args.subset_seeds]
    return [(None, k) for k in args.seeds]


def load_scene(data_root: Path | None, subset: int | None, seed: int) -> Scene:
    """Indian Pines with the whole training split, or with a stored subset of it."""
    if subset is None:
        return load_indian_pines(data_root)
    return load_indian_pines_subset(subset, seed, data_root)


def enmap_tiles(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Image tiles of the train, validation and test lists of the EnMAP Potsdam folder."""
    lists = []
    for split in ("train", "validation", "test"):
        table = (folder / f"{split}_files.csv").read_text().split()[1:]
        lists.append([folder / line.split(",")[0] for line in table])
    return lists[0], lists[1], lists[2]


def enmap_data(
    folder: Path, patch_size: int, fit: Literal["train", "train+validation"] = "train"
) -> TrainingSet:
    """The EnMAP Potsdam tiles, each labelled for the split of the list that names it
    (the validation tiles for training with ``fit="train+validation"``)."""
    splits = ("train", "train" if fit == "train+validation" else "validation", "test")
    tiles = [
        TileFiles(raster, **{f"{split}_labels": folder / "labels" / raster.name})
        for split, rasters in zip(splits, enmap_tiles(folder), strict=True)
        for raster in rasters
    ]
    return load_training_set(tiles, patch_size, name="enmap_potsdam")


def subset_record(scene: Scene, per_class: int, seed: int) -> dict[str, Any]:
    """Which stored subset a label-efficiency result was trained on."""
    return {
        "per_class": per_class,
        "seed": seed,
        "file": subset_path(per_class, seed).relative_to(ROOT).as_posix(),
        "training_pixels": int((scene.train_labels > 0).sum()),
    }


def train(
    name: str, data: TrainingSet, seed: int, out: Path, args: argparse.Namespace
) -> tuple[Path, float, dict[str, Any]]:
    """Train one model; returns its ONNX file, the training wall time (pretraining
    included) and what was chosen."""
    spec = model_spec(architecture(name))
    options = {"patch_size": args.patch_size} if args.patch_size else {}
    config = spec.config(data.num_bands, data.num_classes, **options)
    feedback = SilentFeedback() if args.quiet else ProgressBar(f"{name} seed {seed}")
    if spec.family == "sklearn":
        threads = args.threads or available_cores()
        run = run_classical(data, config, seed, out, threads, feedback)
        details = {"config": config.to_dict(), "search": run.metadata.training["search"]}
        details["onnx_check"] = run.metadata.training["onnx_check"]
        return out / MODEL_NAME, run.seconds, details
    recipe = network_recipe(spec.default_recipe, data, args.step_budget)
    recipe = replace(recipe, seed=seed, augment=args.augment)
    recipe = replace(recipe, max_steps=args.max_steps or recipe.max_steps)
    details: dict[str, Any] = {"config": config.to_dict(), "recipe": recipe.to_dict()}
    pretrained, pretraining_seconds = [], 0.0
    if name == "factoformer-pixel":
        # one pretraining per scene and seed, whichever tiles train: it reads no label
        pretraining = args.runs / f"{data.name}-pixel-branch-seed{seed}"
        branch = pixel_branch(data, seed, pretraining, args, feedback)
        pretrained, pretraining_seconds = [branch], branch.provenance["seconds"]
        details["pretraining"] = {
            k: branch.provenance[k] for k in ("recipe", "steps", "epochs", "seconds", "pixels")
        }
    run = run_training(
        data, recipe, out, config, pretrained=pretrained, feedback=feedback, resume=True
    )
    model_id = f"{name}-{data.name}-seed{seed}".replace("_", "-")
    checkpoint, metadata = metadata_from_run(out, model_id)
    model = export_onnx(checkpoint, metadata, out / MODEL_NAME)
    details["steps"] = run.result.steps
    return model, pretraining_seconds + run.result.seconds, details


def architecture(name: str) -> str:
    """The registered model a study name trains (``factoformer-pixel``: ``factoformer``)."""
    return name.removesuffix("-pixel")


def pixel_branch(
    data: TrainingSet, seed: int, out: Path, args: argparse.Namespace, feedback
) -> PretrainedBranch:
    """FactoFormer's pixel branch pre-trained with the engine's default recipe on every
    valid pixel of ``data``'s rasters (train, validation and test tiles alike: no label
    is read), as ``python -m engine pretrain --raster`` does; resumed in ``out``."""
    pixels = raster_pixels([tile.raster for tile in data.tiles], data.patch_size)
    recipe = replace(default_pretraining_recipe(len(pixels)), seed=seed)  # needs the count
    recipe = replace(recipe, max_steps=args.max_steps or recipe.max_steps)
    return finished_or_pretrained(out, "pixel", recipe, lambda: pixels, feedback)


def network_recipe(
    named: str | None, data: TrainingSet, step_budget: int | None = None
) -> TrainingRecipe:
    """The model's own named recipe (3D-CNN), else FactoFormer's: the paper's on Indian
    Pines, the engine's default for a new scene (``python -m engine train``) elsewhere,
    with ``step_budget`` steps if given."""
    if named:
        return CNN3D_RECIPES[named]
    if data.name == "enmap_potsdam":
        return default_recipe(len(data.train), step_budget=step_budget or DEFAULT_STEP_BUDGET)
    return PAPER_RECIPES["indian_pines"]


def measure(
    name: str,
    seed: int,
    data: TrainingSet,
    model: Path,
    seconds: float,
    details: dict[str, Any],
    raster: Path | None,
) -> dict[str, Any]:
    """Test metrics of the ONNX model and its speed classifying all of ``raster`` (if any)."""
    classifier = OnnxClassifier(model)
    metrics = evaluate_pixels(classifier.map_logits, data.test, data.num_classes)
    names = [c.name for c in data.classes]
    if data.validation is not None:  # measured only: nothing is chosen by it
        validation = evaluate_pixels(classifier.map_logits, data.validation, data.num_classes)
        details = {**details, "validation_metrics": validation.to_dict(names)}
    if raster is not None:
        details = {**details, "inference": speed(classifier, raster)}
    return {
        "model": name,
        "model_type": classifier.metadata.model_type,
        "seed": seed,
        "dataset": data.name,
        "split": data.split,
        "metrics": metrics.to_dict(names),
        "training_seconds": round(seconds, 2),
        **details,
        "hardware": hardware(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def speed(classifier: OnnxClassifier, raster: Path) -> dict[str, Any]:
    """Pixels per second of the engine classifying all of ``raster``."""
    with tempfile.TemporaryDirectory() as tmp:
        report = classify_raster(raster, classifier, Path(tmp) / "classes.tif")
    return {
        "raster": raster.name,
        "pixels": report.classified_pixels,
        "seconds": round(report.seconds, 3),
        "pixels_per_second": round(report.pixels_per_second, 1),
        "batch_size": DEFAULT_BATCH_SIZE,
        "onnx_runtime_calls_in_flight": classifier.workers,
    }


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``path`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS[:3]))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--subset", nargs="+", type=int, help="train on the stored N-pixels-per-class subsets"
    )
    parser.add_argument(
        "--subset-seeds", nargs="+", type=int, default=[0, 1, 2], help="their draw seeds"
    )
    parser.add_argument("--data-root", type=Path, help="shared/data layout (default: bundled)")
    parser.add_argument("--enmap", type=Path, help="train and test on these EnMAP Potsdam tiles")
    parser.add_argument(
        "--fit",
        choices=("train", "train+validation"),
        default="train",
        help="EnMAP: the tiles whose labels train the model",
    )
    parser.add_argument(
        "--step-budget", type=int, help="EnMAP networks: the default recipe at N steps"
    )
    parser.add_argument(
        "--augment",
        choices=("none", "dihedral"),
        default="none",
        help="EnMAP networks: fine-tuning augmentation",
    )
    parser.add_argument(
        "--patch-size", type=int, help="EnMAP FactoFormer: patch edge (default: the paper's 7)"
    )
    parser.add_argument("--max-steps", type=int, help="3D-CNN smoke runs: stop after N steps")
    parser.add_argument("--results", type=Path, help="default: results/baselines")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "baselines")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.enmap and args.subset:
        parser.error("--enmap runs on the whole tile lists (no --subset)")
    not_factoformer = {"rf", "svm", "cnn3d"} & set(args.models)
    for given, option in (
        (args.step_budget, "--step-budget"),
        (args.augment != "none", "--augment"),
    ):
        if given and (not args.enmap or not_factoformer):
            parser.error(f"{option} applies to --enmap with factoformer models")
    if args.patch_size and (
        not args.enmap or not_factoformer or "factoformer-pixel" in args.models
    ):
        parser.error("--patch-size applies to --enmap with --models factoformer")
    if args.fit != "train" and not args.enmap:
        parser.error("--fit applies to --enmap (Indian Pines has no validation split)")
    if "factoformer-pixel" in args.models and not args.enmap:
        parser.error("factoformer-pixel runs with --enmap; on Indian Pines: pretrain_study.py")
    folder = ROOT / "results" / ("baselines-smoke" if args.max_steps else "baselines")
    if args.subset:
        folder = folder / "label-efficiency"
    args.results = args.results or folder
    return args


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"done in {time.monotonic() - start:.0f} s", file=sys.stderr)
