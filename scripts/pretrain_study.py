"""The pretraining study on Indian Pines for one seed: the whole recipe, four ways.

For the seed given: pre-train the pixel branch, pre-train the band branch (on the scene's
unlabelled pixels), then fine-tune with the paper's recipe four ways: from scratch, with
the pixel branch pre-trained, with the band branch pre-trained, with both. Each result is
written as soon as it is known to ``<results>/[validation/][<variant>/]<config>-seed<k>.json``
(OA/AA/kappa, last epoch, wall times, hardware, recipes, command); a result that already
exists is skipped, and interrupted pretraining and fine-tuning runs resume from their last
epoch (under ``<runs>``), so the study can be stopped and restarted across sessions.
``<runs>`` is not committed; each finished branch's ``encoder.pt`` and ``pretraining.json``
are also copied to ``--branch-store`` (``results/pretrained-branches/``, committed) and
taken from there when ``<runs>`` lacks them, so a fresh checkout fine-tunes from the
branches an earlier one pre-trained instead of pre-training them again. A branch still
pre-training at the end of a session travels the same way: copy its ``state.pt`` to
``<branch-store>/<recipe>-seed<k>/<branch>/``; the next checkout resumes from it.

``--validation SHARE`` is the mode for choosing variants (loss, masks, encoder...): a
share of the 695 *training* pixels, by whole connected regions per class (fixed seed
``--validation-seed``), is held out and reported instead of the test set, which is then
never read. Pretraining is the same in both modes (it never uses labels).

Examples:
    python scripts/pretrain_study.py --seed 0                     # fast recipe, test split
    python scripts/pretrain_study.py --seed 0 --recipe paper      # the official recipe
    python scripts/pretrain_study.py --seed 0 --validation 0.3 --loss masked --masks redrawn
    python scripts/results_table.py --study results/pretraining
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import (  # noqa: E402
    BRANCHES,
    PAPER_RECIPES,
    PRETRAINING_RECIPES,
    PretrainingRecipe,
    TrainingRecipe,
)
from engine.data.scenes import Scene, load_indian_pines  # noqa: E402
from engine.data.subsets import SUBSET_BUDGETS, subset_path, with_subset  # noqa: E402
from engine.data.validation import labels_fingerprint, scene_with_validation  # noqa: E402
from engine.errors import InputDataError, ModelLoadError  # noqa: E402
from engine.pretraining.data import scene_unlabelled_pixels  # noqa: E402
from engine.pretraining.run import (  # noqa: E402
    STATE_NAME,
    SUMMARY_NAME,
    finished_or_pretrained,
    hardware,
)
from engine.pretraining.transfer import ENCODER_NAME, PretrainedBranch  # noqa: E402
from engine.progress import ProgressBar, SilentFeedback  # noqa: E402
from engine.training.loop import same_recipe  # noqa: E402
from engine.training.run import run_training  # noqa: E402
from engine.training.trainer import configure_cpu  # noqa: E402

CONFIGS = {"scratch": (), "pixel": ("pixel",), "band": ("band",), "both": ("pixel", "band")}
OBJECTIVE_OPTIONS = ("epochs", "batch_size", "learning_rate", "loss", "masks", "encoder")
OBJECTIVE_OPTIONS += ("decoder_depth", "mask_ratio", "drop_rate", "bf16")


def main() -> None:
    args = parse_args()
    configure_cpu(args.threads)
    recipe, variant = pretraining_recipe(args)
    scene = load_indian_pines(args.data_root)
    mode = "validation" if args.validation else "test"
    evaluated = validation_scene(scene, args) if args.validation else scene
    split = labels_fingerprint(evaluated.test_labels) if args.validation else None
    results = args.results / ("validation" if args.validation else "")
    if args.subset:
        # Fine-tune on a stored subset (draw seed = --seed); pretraining keeps the full
        # scene's unlabelled pixels, so it is the same pretraining as the full-split runs.
        evaluated = with_subset(scene, subset_path(args.subset, args.seed), args.subset)
        results = args.results / "label-efficiency" / f"{args.subset}px"
    pretraining_seed = args.pretraining_seed
    runs = args.runs / f"{variant}-seed{pretraining_seed}"
    fine_tune = replace(
        PAPER_RECIPES["indian_pines"],
        seed=args.seed,
        max_steps=args.max_steps,
        augment=args.augment,
    )
    tuned = "" if args.augment == "none" else f"augment-{args.augment}"
    results = results / tuned if tuned else results
    pending = [
        c
        for c in args.configs
        if not done(result_path(results, variant, c, args.seed), fine_tune, recipe, split)
    ]
    if not pending:
        print(f"all results for seed {args.seed} ({variant}, {mode}) exist; nothing to do")
        return
    needed = sorted({b for c in pending for b in CONFIGS[c]}, key=BRANCHES.index)
    branches = {b: pretrained_branch(scene, b, recipe, runs, args) for b in needed}
    for config in pending:
        used = [branches[b] for b in CONFIGS[config]]
        parts = ["finetune", config, tuned, f"validation-{split}" if split else ""]
        parts += [f"subset{args.subset}-seed{args.seed}" if args.subset else ""]
        out = runs / "-".join(filter(None, parts))
        print(f"fine-tuning: {config} (seed {args.seed}, {mode})", file=sys.stderr)
        start = time.monotonic()
        run = run_training(
            evaluated, fine_tune, out, pretrained=used, show_progress=not args.quiet, resume=True
        )
        record = {
            "config": config,
            "variant": "" if config == "scratch" else variant,
            "seed": args.seed,
            "evaluated_on": mode,
            "training_pixels": int((evaluated.train_labels > 0).sum()),
            "validation_split": split,
            "subset": {"per_class": args.subset, "draw_seed": args.seed} if args.subset else None,
            "pretraining_seed": pretraining_seed if used else None,
            "metrics": run.metrics.to_dict([c.name for c in scene.classes]),
            "last_epoch": run.result.history[-1] if run.result.history else None,
            "seconds": {
                **{f"pretrain_{b.branch}": b.provenance["seconds"] for b in used},
                "fine_tune": round(run.result.seconds, 1),
                "whole_recipe": round(
                    run.result.seconds + sum(b.provenance["seconds"] for b in used), 1
                ),
                "this_session": round(time.monotonic() - start, 1),
            },
            "pretraining_recipe": recipe.to_dict() if used else None,
            "fine_tuning_recipe": fine_tune.to_dict(),
            "pretraining_pixels": used[0].provenance["pixels"] if used else None,
            "hardware": hardware(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        }
        path = result_path(results, variant, config, args.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        m = run.metrics
        print(
            f"{config:8s} seed {args.seed} {mode}: OA {100 * m.overall_accuracy:.2f} "
            f"AA {100 * m.average_accuracy:.2f} kappa {100 * m.kappa:.2f} -> {path}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data-root", type=Path, help="shared/data layout (default: bundled)")
    parser.add_argument("--recipe", choices=sorted(PRETRAINING_RECIPES), default="fast")
    parser.add_argument("--epochs", type=int, help="pretraining epochs")
    parser.add_argument("--batch-size", type=int, help="pretraining batch size")
    parser.add_argument("--lr", dest="learning_rate", type=float, help="pretraining rate")
    parser.add_argument("--loss", choices=("all", "masked"))
    parser.add_argument("--masks", choices=("fixed", "redrawn"))
    parser.add_argument("--encoder", choices=("mask-token", "visible"))
    parser.add_argument("--decoder-depth", type=int)
    parser.add_argument("--mask-ratio", type=float)
    parser.add_argument("--dropout", dest="drop_rate", type=float)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument(
        "--augment",
        choices=("none", "dihedral"),
        default="none",
        help="fine-tuning augmentation (results go to <results>/augment-<name>/)",
    )
    parser.add_argument(
        "--validation",
        type=validation_share,
        metavar="SHARE",
        help="hold out this share of the training pixels and report it instead of the test set",
    )
    parser.add_argument("--validation-seed", type=int, default=0)
    parser.add_argument(
        "--subset",
        type=int,
        choices=SUBSET_BUDGETS,
        help="label efficiency: fine-tune on the stored subset with this many pixels per "
        "class drawn with --seed (results in <results>/label-efficiency/<N>px/)",
    )
    parser.add_argument(
        "--pretraining-seed",
        type=int,
        help="use the branches pre-trained with this seed (default: --seed)",
    )
    parser.add_argument("--max-steps", type=int, help="smoke runs: stop every run after N steps")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "pretraining")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "pretraining")
    parser.add_argument(
        "--branch-store",
        type=Path,
        default=ROOT / "results" / "pretrained-branches",
        help="finished branches are kept here and taken from here when --runs lacks them",
    )
    parser.add_argument("--threads", type=int)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.subset and args.validation:
        parser.error("--subset and --validation do not go together")
    if args.pretraining_seed is None:
        args.pretraining_seed = args.seed
    return args


def pretraining_recipe(args: argparse.Namespace) -> tuple[PretrainingRecipe, str]:
    """The recipe and its name: the named recipe plus the options the line changes."""
    named = PRETRAINING_RECIPES[args.recipe]
    changes = {
        k: getattr(args, k)
        for k in OBJECTIVE_OPTIONS
        if getattr(args, k) is not None and getattr(args, k) != getattr(named, k)
    }
    recipe = replace(
        named,
        seed=args.pretraining_seed,
        max_steps=args.max_steps,
        **changes,
    )
    name = args.recipe + "".join(f"+{k}={v}" for k, v in sorted(changes.items()))
    return recipe, name.replace("_", "-")


def validation_share(text: str) -> float:
    """``--validation``'s value: a share strictly between 0 and 1."""
    share = float(text)
    if not 0 < share < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return share


def validation_scene(scene: Scene, args: argparse.Namespace) -> Scene:
    """The scene with a share of its training pixels moved to the evaluated labels."""
    carved = scene_with_validation(scene, args.validation, args.validation_seed)
    print(
        f"validation: {(carved.test_labels > 0).sum()} of {(scene.train_labels > 0).sum()} "
        f"training pixels held out (seed {args.validation_seed}); test pixels are only left "
        "out of pretraining, as every labelled pixel",
        file=sys.stderr,
    )
    return carved


def done(
    path: Path, fine_tune: TrainingRecipe, recipe: PretrainingRecipe, split: str | None
) -> bool:
    """True when ``path`` holds a result of these recipes (and validation ``split``);
    refuse one of other recipes or another split."""
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    same = same_recipe(r["fine_tuning_recipe"], fine_tune) and (
        r["pretraining_recipe"] is None or same_recipe(r["pretraining_recipe"], recipe)
    )
    if not same:
        raise SystemExit(f"error: {path} was made with other recipes; use another --results")
    if split and r.get("validation_split") != split:
        raise SystemExit(f"error: {path} was evaluated on another validation split")
    return True


def pretrained_branch(
    scene: Scene, branch: str, recipe: PretrainingRecipe, runs: Path, args: argparse.Namespace
) -> PretrainedBranch:
    """The branch pre-trained in ``runs`` (resuming or starting it when it is not done)."""
    print(f"{branch} branch (seed {recipe.seed}) in {runs}", file=sys.stderr)
    stored = args.branch_store / runs.name / branch
    if restore_branch(stored, runs / branch):
        print(f"{branch} branch taken from {stored}", file=sys.stderr)
    feedback = SilentFeedback() if args.quiet else ProgressBar(f"pretrain {branch}")
    try:
        pretrained = finished_or_pretrained(
            runs, branch, recipe, lambda: scene_unlabelled_pixels(scene), feedback
        )
    except (InputDataError, ModelLoadError) as exc:  # another recipe, or a damaged state
        raise SystemExit(f"error: {exc} (--runs, --branch-store)") from None
    if args.max_steps is None and keep_branch(runs / branch, stored):
        print(f"{branch} branch kept in {stored}", file=sys.stderr)
    return pretrained


def restore_branch(stored: Path, target: Path) -> bool:
    """Copy a stored branch (finished, or a partial run's ``state.pt``) into ``target`` when
    ``target`` holds neither; True when copied."""
    names = [n for n in (STATE_NAME, SUMMARY_NAME, ENCODER_NAME) if (stored / n).is_file()]
    if not names or any((target / n).is_file() for n in (STATE_NAME, ENCODER_NAME)):
        return False
    target.mkdir(parents=True, exist_ok=True)
    for name in names:  # the encoder last: it marks the branch done
        shutil.copy2(stored / name, target / name)
    return True


def keep_branch(finished: Path, stored: Path) -> bool:
    """Copy a finished branch's encoder and summary into ``stored`` (dropping a partial
    state kept there) when ``stored`` has no encoder yet; True when copied."""
    if (stored / ENCODER_NAME).is_file():
        return False
    stored.mkdir(parents=True, exist_ok=True)
    for name in (SUMMARY_NAME, ENCODER_NAME):
        shutil.copy2(finished / name, stored / name)
    (stored / STATE_NAME).unlink(missing_ok=True)
    return True


def result_path(results: Path, variant: str, config: str, seed: int) -> Path:
    folder = results if config == "scratch" else results / variant
    return folder / f"{config}-seed{seed}.json"


if __name__ == "__main__":
    main()
