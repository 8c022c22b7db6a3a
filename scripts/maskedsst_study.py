"""The MaskedSST study for one seed: scratch vs pre-trained fine-tuning, on Indian Pines and
on the EnMAP Potsdam tiles.

For each scene: pre-train a MaskedSST backbone (Indian Pines: tiles around the scene's
unlabelled pixels; EnMAP: tiles around every pixel of all 18 tiles, no labels), then
fine-tune from scratch and from the pre-trained backbone, and measure each model on the
test pixels from dense whole-raster predictions (overlapping tiles blended as the plugin
does). EnMAP fine-tunes on the train tiles, reports the validation tiles (the only split
for choices) and the test tiles. Each result is written as soon as it is known to
``<results>/<scene>[/<variant>]/<config>-seed<k>.json`` (variant: options other than the
defaults, ``random-masks``, ``visible``, ``2400-pretrain-steps``, ``sincos``,
``no-token-norm``, ``standard-normalization``, ``1500-steps``, ``equal-weights``); a
result that exists is skipped, and interrupted runs resume from their last epoch (under
``<runs>``). The names are relative to the study's own baseline pretraining, the official
mask-token encoder for 600 steps, not to the engine's default (since 2026-12-07 the
visible encoder for 4,800 steps: ``--encoder visible --pretrain-steps 4800``), so a
result's path keeps its meaning when the engine's default moves. ``--encoder
visible`` pre-trains MAE-style: only the visible pixels are encoded, then one spatial
decoder block (half the step time). ``--pixel-weighting equal`` weights the fine-tuning
loss so that every training pixel counts the same (see ``DenseTrainingRecipe``).
``--no-token-norm`` leaves out the LayerNorm over each token's raw values.
``--normalization standard`` standardises each band (mean 0, std 1, the official code's
input) instead of the engine's min-max (variant ``standard-normalization``).

``--validation SHARE`` (Indian Pines only) is the mode for choosing variants (encoder,
pretraining length...): that share of the training pixels, whole regions (seed
``--validation-seed``, the FactoFormer study's carving), is held out and reported in place
of the test pixels, whose labels are not used (as every labelled pixel they are left out
of pretraining); results in ``<results>/validation/<scene>/...``.

Label efficiency (``--subset N``, Indian Pines only): fine-tune on the stored subset with N
pixels per class drawn with ``--seed`` (the FactoFormer study's files), from the backbone
pre-trained with ``--pretraining-seed``; results in
``<results>/label-efficiency/<N>px[/<variant>]/``.

Examples:
    python scripts/maskedsst_study.py --seed 0                       # both scenes
    python scripts/maskedsst_study.py --seed 0 --scenes enmap --no-bf16
    python scripts/maskedsst_study.py --seed 0 --scenes enmap --pos-embedding sincos
    python scripts/maskedsst_study.py --seed 1 --subset 5 --pretraining-seed 0
    python scripts/maskedsst_study.py --seed 0 --scenes indian_pines --validation 0.3 \
        --encoder visible --pretrain-steps 4800
    python scripts/maskedsst_study.py --seed 0 --smoke --results /tmp/r --runs /tmp/runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pretrain_study import validation_scene, validation_share  # noqa: E402

from engine.config import (  # noqa: E402
    DEFAULT_DENSE_STEPS,
    FINE_TUNING_PIXEL_WEIGHTING,
    PIXEL_WEIGHTINGS,
    DenseTrainingRecipe,
    MaskedPretrainingRecipe,
    MaskedSSTConfig,
)
from engine.data.dense import context_patch_size  # noqa: E402
from engine.data.normalization import METHODS, MINMAX  # noqa: E402
from engine.data.scenes import load_indian_pines  # noqa: E402
from engine.data.subsets import SUBSET_BUDGETS, subset_path, with_subset  # noqa: E402
from engine.data.training_set import (  # noqa: E402
    TileFiles,
    TrainingSet,
    load_training_set,
    read_tile_csv,
)
from engine.data.validation import labels_fingerprint  # noqa: E402
from engine.pretraining.data import raster_pixels, scene_unlabelled_pixels  # noqa: E402
from engine.pretraining.maskedsst import (  # noqa: E402
    ENCODER_NAME,
    PretrainedMaskedSST,
    load_pretrained,
    pretrain_maskedsst,
)
from engine.pretraining.run import hardware  # noqa: E402
from engine.progress import ProgressBar, SilentFeedback  # noqa: E402
from engine.training.dense import (  # noqa: E402
    default_dense_recipe,
    maskedsst_config,
    run_dense_training,
)
from engine.training.trainer import configure_cpu  # noqa: E402

ENMAP = ROOT.parent / "shared" / "data" / "enmap_potsdam_tiles"
SCENES = ("indian_pines", "enmap")
CONFIGS = ("scratch", "pretrained")
OFFICIAL_WEIGHTING = DenseTrainingRecipe.pixel_weighting  # older results: no weighting key
BASELINE_ENCODER = "mask-token"  # the study's baseline pretraining: unnamed in result paths
BASELINE_PRETRAINING_EPOCHS = 12  # of 50 steps: 600 steps
# --smoke: a tiny network and a few steps, to check the script end to end in a minute
SMOKE_NET = {"dim": 24, "spatial_depth": 1, "spectral_depth": 1, "heads": 2, "head_dim": 8}


def main() -> None:
    args = parse_args()
    configure_cpu(args.threads)
    for scene in args.scenes:
        pending = [c for c in args.configs if not result_path(args, scene, c).exists()]
        if not pending:
            print(f"{scene}: all results for seed {args.seed} exist; nothing to do")
            continue
        data, split = training_data(scene, args)
        runs = args.runs / f"{scene}-seed{args.seed}" / (f"validation-{split}" if split else "")
        pre_runs = args.runs / f"{scene}-seed{args.pretraining_seed}"
        pre = pretrained(scene, data, pre_runs, args) if "pretrained" in pending else None
        for config in pending:
            used = pre if config == "pretrained" else None
            fine_tune(scene, data, split, config, used, runs, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scenes", nargs="+", choices=SCENES, default=list(SCENES))
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--pretrain-steps", type=int, help="default: 600, the baseline's")
    parser.add_argument("--finetune-steps", type=int, default=DEFAULT_DENSE_STEPS)
    parser.add_argument("--masking", choices=("tube", "random"), default="tube")
    parser.add_argument(
        "--pixel-weighting",
        choices=PIXEL_WEIGHTINGS,
        default=FINE_TUNING_PIXEL_WEIGHTING,
        help="fine-tuning loss: every labelled pixel of every tile once (tiles, official), or "
        "every training pixel the same over an epoch (equal, the default)",
    )
    parser.add_argument(
        "--encoder",
        choices=("mask-token", "visible"),
        default=BASELINE_ENCODER,
        help="pretraining: encode every token (official, the baseline) or only the visible pixels",
    )
    parser.add_argument(
        "--pos-embedding",
        choices=("learned", "sincos"),
        default="learned",
        help="sincos: spectral positions from the band wavelengths (EnMAP; block index for IP)",
    )
    parser.add_argument(
        "--token-norm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the paper's LayerNorm over each token's raw values before its embedding "
        "(default); --no-token-norm embeds the normalised values as they are",
    )
    parser.add_argument(
        "--normalization",
        choices=METHODS,
        default=MINMAX,
        help="input statistics per band: min-max to [0, 1] (the engine's, default) or "
        "standardisation to mean 0, std 1 (the official MaskedSST code's)",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bfloat16 autocast (default; about 2x faster on CPUs with AVX-512 BF16)",
    )
    parser.add_argument(
        "--subset",
        type=int,
        choices=SUBSET_BUDGETS,
        help="label efficiency (Indian Pines): fine-tune on the stored subset with this many "
        "pixels per class drawn with --seed",
    )
    parser.add_argument(
        "--pretraining-seed",
        type=int,
        help="use the backbone pre-trained with this seed (default: --seed)",
    )
    parser.add_argument(
        "--validation",
        type=validation_share,
        metavar="SHARE",
        help="hold out this share of Indian Pines' training pixels and report them, not test",
    )
    parser.add_argument("--validation-seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny network, 3 steps each")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "maskedsst")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "maskedsst")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.subset and args.scenes != ["indian_pines"]:
        parser.error("--subset needs --scenes indian_pines (the stored subsets are its)")
    if args.validation and (args.scenes != ["indian_pines"] or args.subset):
        parser.error("--validation needs --scenes indian_pines and no --subset")
    if args.pretraining_seed is None:
        args.pretraining_seed = args.seed
    if args.smoke:
        args.pretrain_steps = args.finetune_steps = 3
    return args


def training_data(scene: str, args: argparse.Namespace) -> tuple[TrainingSet, str | None]:
    """Indian Pines' fixed split (or its stored ``--subset`` drawn with ``--seed``, or with
    ``--validation`` carved from its training pixels), or the EnMAP train / validation /
    test tiles; and the fingerprint of the validation split, if one is carved."""
    patch = context_patch_size(MaskedSSTConfig.tile_size)
    if scene == "enmap":
        tiles = [*read_tile_csv(ENMAP / "train_files.csv")]
        for split in ("validation", "test"):
            for t in read_tile_csv(ENMAP / f"{split}_files.csv"):  # columns image, mask
                tiles.append(TileFiles(t.raster, **{f"{split}_labels": t.train_labels}))
        return load_training_set(
            tiles, patch, name="enmap_potsdam_tiles", normalization_method=args.normalization
        ), None
    pines = load_indian_pines()
    if args.subset:
        pines = with_subset(pines, subset_path(args.subset, args.seed), args.subset)
    if not args.validation:
        return TrainingSet.from_scene(pines, patch, normalization_method=args.normalization), None
    carved = validation_scene(pines, args)  # the FactoFormer study's carving and message
    data = TrainingSet.from_scene(carved, patch, normalization_method=args.normalization)
    return data, labels_fingerprint(carved.test_labels)


def network(data: TrainingSet, args: argparse.Namespace) -> MaskedSSTConfig:
    options = dict(SMOKE_NET) if args.smoke else {}
    return maskedsst_config(
        data, pos_embedding=args.pos_embedding, token_norm=args.token_norm, **options
    )


def pretrained(
    scene: str, data: TrainingSet, runs: Path, args: argparse.Namespace
) -> PretrainedMaskedSST:
    """The backbone pre-trained in ``runs/pretrain[-<variant>]`` (resuming or starting it)."""
    folder = runs / "-".join(["pretrain", *pretraining_variant(args, "pretrained")])
    if (folder / ENCODER_NAME).exists():
        return load_pretrained(folder)
    patch = context_patch_size(MaskedSSTConfig.tile_size)
    if scene == "indian_pines":
        pixels = scene_unlabelled_pixels(load_indian_pines(), patch, args.normalization)
    else:
        images = sorted((ENMAP / "images").glob("*.tif"))
        pixels = raster_pixels(images, patch, args.normalization)
    if pixels.band_names != data.band_names:
        raise SystemExit(f"{scene}: pretraining and fine-tuning read different bands")
    seed = args.pretraining_seed
    recipe = MaskedPretrainingRecipe(
        epochs=BASELINE_PRETRAINING_EPOCHS,
        seed=seed,
        masking=args.masking,
        bf16=args.bf16,
        encoder=args.encoder,
        decoder_depth=int(args.encoder == "visible"),
    )
    if args.pretrain_steps:
        epochs = -(-args.pretrain_steps * recipe.batch_size // recipe.tiles_per_epoch)
        recipe = replace(recipe, epochs=epochs, max_steps=args.pretrain_steps)
    print(f"{scene}: pretraining ({len(pixels)} anchor pixels, seed {seed})", file=sys.stderr)
    feedback = SilentFeedback() if args.quiet else ProgressBar("pretrain")
    config = replace(network(data, args), num_classes=2)
    return pretrain_maskedsst(pixels, config, recipe, folder, feedback, resume=True)


def fine_tune(
    scene: str,
    data: TrainingSet,
    split: str | None,
    config: str,
    pre: PretrainedMaskedSST | None,
    runs: Path,
    args: argparse.Namespace,
) -> None:
    recipe = default_dense_recipe(
        len(data.train),
        step_budget=args.finetune_steps,
        seed=args.seed,
        bf16=args.bf16,
        pixel_weighting=args.pixel_weighting,
    )
    print(f"{scene}: fine-tuning {config} (seed {args.seed})", file=sys.stderr)
    start = time.monotonic()
    subset = [f"subset{args.subset}"] if args.subset else []
    run = run_dense_training(
        data,
        recipe,
        runs / "-".join(["finetune", config, *variant(args, config), *subset]),
        network(data, args),
        pre,
        show_progress=not args.quiet,
        resume=True,
    )
    names = [c.name for c in data.classes]
    pre_seconds = pre.provenance["seconds"] if pre is not None else 0.0
    record = {
        "scene": scene,
        "config": config,
        "seed": args.seed,
        "smoke": args.smoke,
        "training_pixels": len(data.train),
        "subset": {"per_class": args.subset, "draw_seed": args.seed} if args.subset else None,
        "evaluated_on": "validation" if split else "test",
        "validation_split": split,
        "normalization": data.normalization.method,
        "pretraining_seed": args.pretraining_seed if pre is not None else None,
        "metrics": run.metrics.to_dict(names),
        "validation": run.validation.to_dict(names) if run.validation else None,
        "last_epoch": run.result.history[-1] if run.result.history else None,
        "steps": {"fine_tune": run.result.steps},
        "seconds": {
            "pretrain": pre_seconds if pre is not None else None,
            "fine_tune": round(run.result.seconds, 1),
            "whole_recipe": round(run.result.seconds + pre_seconds, 1),
            "this_session": round(time.monotonic() - start, 1),
        },
        "fine_tuning_recipe": recipe.to_dict(),
        "pretraining": pre.provenance if pre is not None else None,
        "model": run.result.model.config.to_dict(),
        "hardware": hardware(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if pre is not None:
        record["steps"]["pretrain"] = pre.provenance["steps"]
    path = result_path(args, scene, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    m = run.metrics
    print(
        f"{scene} {config:10s} seed {args.seed}: {record['evaluated_on']} "
        f"OA {100 * m.overall_accuracy:.2f} AA {100 * m.average_accuracy:.2f} "
        f"kappa {100 * m.kappa:.2f} -> {path}"
    )


def variant(args: argparse.Namespace, config: str) -> list[str]:
    """The options of a fine-tuning run that differ from the defaults (masks matter only
    when pre-trained), e.g. ``["random-masks", "1500-steps"]``."""
    steps = [f"{args.finetune_steps}-steps"] if args.finetune_steps != DEFAULT_DENSE_STEPS else []
    weighting = args.pixel_weighting  # named unless the official one, whatever the default
    weights = [f"{weighting}-weights"] if weighting != OFFICIAL_WEIGHTING else []
    return pretraining_variant(args, config) + steps + weights


def pretraining_variant(args: argparse.Namespace, config: str) -> list[str]:
    """The options of the pretraining that differ from the study's baseline."""
    names = []
    if config != "scratch":
        names += [f"{args.masking}-masks"] if args.masking != "tube" else []
        names += [args.encoder] if args.encoder != BASELINE_ENCODER else []
        names += [f"{args.pretrain_steps}-pretrain-steps"] if args.pretrain_steps else []
    names += ["sincos"] if args.pos_embedding != "learned" else []
    names += [] if args.token_norm else ["no-token-norm"]
    return names + ([f"{args.normalization}-normalization"] if args.normalization != MINMAX else [])


def result_path(args: argparse.Namespace, scene: str, config: str) -> Path:
    """``<results>/<scene>[/<variant>]/<config>-seed<k>.json``, for a subset
    ``<results>/label-efficiency/<N>px[/<variant>]/...``, for ``--validation``
    ``<results>/validation/<scene>[/<variant>]/...``."""
    if args.subset:
        top = args.results / "label-efficiency" / f"{args.subset}px"
    elif args.validation:
        top = args.results / "validation" / scene
    else:
        top = args.results / scene
    folder = top / "+".join(variant(args, config))
    return folder / f"{config}-seed{args.seed}.json"


if __name__ == "__main__":
    main()
