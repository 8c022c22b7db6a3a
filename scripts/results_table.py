"""Markdown table of test OA/AA/kappa over training runs, with mean and standard deviation.

Usage: python scripts/results_table.py runs/indian_pines-seed*
       python scripts/results_table.py --study results/pretraining [more folders or .json]
       python scripts/results_table.py --ablation results/pretraining/validation
       python scripts/results_table.py --maskedsst-choices results/maskedsst/validation \
           results/maskedsst/enmap
The standard deviation is the sample one (ddof=1). ``--study`` reads the JSON results of
``scripts/pretrain_study.py`` (folders are searched recursively) and prints one row per
evaluation set, configuration and pretraining variant. ``--ablation`` prints the pretraining
choices (encoder, masks, loss) side by side: validation results of the pixel branch on the
full split, one row per recipe and seed, with the scratch run as the reference.
``--maskedsst-choices`` does the same for ``scripts/maskedsst_study.py`` results on
validation pixels (``--validation`` runs, the EnMAP validation tiles): one row per scene,
fine-tuning pixel weighting, token norm, input normalisation, configuration, pretraining
(encoder, masks, steps, final loss) and seed, then a second table with one row per
choice: mean ± std over its seeds and the mean gain over scratch (same scene, weighting,
token norm and input) on the seeds both have.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--study", action="store_true", help="pretrain_study.py results")
    parser.add_argument("--ablation", action="store_true", help="pretraining choices")
    parser.add_argument("--maskedsst-choices", action="store_true", help="MaskedSST choices")
    args = parser.parse_args()
    missing = [str(p) for p in args.runs if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    if args.maskedsst_choices:
        maskedsst_choices_table(args.runs)
        return
    if args.study:
        study_table(args.runs)
        return
    if args.ablation:
        ablation_table(args.runs)
        return
    rows = []
    for run in sorted(args.runs):
        test = json.loads((run / "metrics.json").read_text())["test"]
        training = json.loads((run / "config.json").read_text())["training"]
        rows.append((training["seed"], test, training["seconds"]))
    print("| seed | OA % | AA % | kappa % | training time (s) |")
    print("|---:|---:|---:|---:|---:|")
    for seed, test, seconds in rows:
        oa, aa, kappa = (100 * test[k] for k in ("overall_accuracy", "average_accuracy", "kappa"))
        print(f"| {seed} | {oa:.2f} | {aa:.2f} | {kappa:.2f} | {seconds:.0f} |")
    values = np.array(
        [[t["overall_accuracy"], t["average_accuracy"], t["kappa"]] for _, t, _ in rows]
    )
    mean, std = 100 * values.mean(axis=0), 100 * values.std(axis=0, ddof=1 if len(rows) > 1 else 0)
    cells = " | ".join(f"**{m:.2f} ± {s:.2f}**" for m, s in zip(mean, std, strict=True))
    print(f"| mean ± std ({len(rows)} seeds) | {cells} | |")


STUDY_ORDER = ("scratch", "pixel", "band", "both")
FULL_SPLIT = 10**6  # sorts the full training split after the label-efficiency subsets


def study_results(paths: list[Path]) -> list[dict]:
    """Every JSON result under ``paths`` (folders searched recursively)."""
    files = [f for p in paths for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p])]
    return [json.loads(f.read_text()) for f in files]


def percentages(r: dict) -> list[float]:
    """OA, AA and kappa of a result, in %."""
    return [100 * r["metrics"][k] for k in ("overall_accuracy", "average_accuracy", "kappa")]


def ablation_table(paths: list[Path]) -> None:
    """Validation results of the pixel branch on the full split, one row per recipe and
    seed (scratch first)."""
    rows = [
        r
        for r in study_results(paths)
        if r["evaluated_on"] == "validation"
        and r["config"] in ("scratch", "pixel")
        and not r.get("subset")
        and r["fine_tuning_recipe"].get("augment", "none") == "none"
    ]
    print(
        "| pretraining | encoder | masks | loss | seed | validation OA % | AA % | kappa % "
        "| pixel-branch pretraining, wall (min) |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["config"] != "scratch", r["variant"] or "")):
        cells = " | ".join(f"{v:.2f}" for v in percentages(r))
        if r["config"] == "scratch":
            print(f"| none (scratch) | - | - | - | {r['seed']} | {cells} | - |")
            continue
        recipe = r["pretraining_recipe"]
        minutes = r["seconds"]["pretrain_pixel"] / 60
        print(
            f"| {r['variant']} | {recipe['encoder']} | {recipe['masks']} | {recipe['loss']} "
            f"| {r['seed']} | {cells} | {minutes:.1f} |"
        )


def maskedsst_choices_table(paths: list[Path]) -> None:
    """Validation results of ``maskedsst_study.py``: ``--validation`` runs (Indian Pines)
    and the EnMAP runs' validation tiles, one row per scene, fine-tuning pixel weighting,
    token norm, input normalisation, positions, configuration, pretraining and seed, scratch
    first."""
    rows = [validation_view(r) for r in study_results(paths)]
    rows = [r for r in rows if r is not None]
    print(
        "| scene | pixel weights | token norm | input | positions | fine-tuned from | encoder "
        "| masks | pretraining steps | final pretraining loss | fine-tuning steps | seed "
        "| validation OA % | AA % | kappa % | pretraining, wall (min) |"
    )
    print("|---|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=maskedsst_choice_order):
        cells = " | ".join(f"{v:.2f}" for v in percentages(r))
        tuned = r["steps"]["fine_tune"]
        model = "| " + " | ".join(model_key(r))
        pre = r["pretraining"]
        if pre is None:
            print(f"{model} | scratch | - | - | - | - | {tuned} | {r['seed']} | {cells} | - |")
            continue
        recipe = pre["recipe"]
        print(
            f"{model} | pre-trained | {recipe.get('encoder', 'mask-token')} | {recipe['masking']} "
            f"| {pre['steps']} | {pre['final_loss']:.4f} | {tuned} | {r['seed']} | {cells} "
            f"| {pre['seconds'] / 60:.1f} |"
        )
    print()
    maskedsst_choices_summary(rows)


def validation_view(r: dict) -> dict | None:
    """A MaskedSST result with its validation metrics as ``metrics`` (``--validation``
    runs are evaluated on them; EnMAP runs record the validation tiles beside the test
    tiles); None when it has none."""
    if r.get("evaluated_on") == "validation":
        return {"scene": "indian_pines", **r}
    if r.get("validation"):
        return {**r, "metrics": r["validation"]}
    return None


def maskedsst_choices_summary(rows: list[dict]) -> None:
    """One row per MaskedSST choice: validation mean ± std over seeds, and the mean paired
    gain in OA over scratch with the same scene, weighting, token norm, input and positions
    (seeds that have both)."""
    groups: dict[tuple, list[dict]] = {}
    for r in sorted(rows, key=maskedsst_choice_order):
        groups.setdefault(maskedsst_choice_order(r)[:-1], []).append(r)
    scratch = {
        (*model_key(r), r["steps"]["fine_tune"], r["seed"]): percentages(r)[0]
        for r in rows
        if r["pretraining"] is None
    }
    print("| scene | pixel weights | token norm | input | positions | fine-tuned from | encoder "
          "| masks | pretraining steps | fine-tuning steps | seeds | validation OA % | AA % "
          "| kappa % | OA gain over scratch (same seeds) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---:|---:|---|---:|---:|---:|---:|")
    for key, group in groups.items():
        pretrained, encoder, masks, steps, tuned = key[-5:]
        values = np.array([percentages(r) for r in group])
        std = values.std(axis=0, ddof=1) if len(group) > 1 else np.zeros(3)
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(values.mean(0), std, strict=True))
        seeds = ",".join(str(r["seed"]) for r in group)
        references = [scratch.get((*model_key(r), tuned, r["seed"])) for r in group]
        paired = zip(values[:, 0], references, strict=True)
        gains = [oa - reference for oa, reference in paired if reference is not None]
        gain = f"{np.mean(gains):+.2f} (n = {len(gains)})" if pretrained and gains else "-"
        choice = "scratch | - | - | -"
        if pretrained:
            choice = f"pre-trained | {encoder} | {masks} | {steps}"
        model = "| " + " | ".join(model_key(group[0]))
        print(f"{model} | {choice} | {tuned} | {seeds} | {cells} | {gain} |")


def pixel_weighting(r: dict) -> str:
    """The fine-tuning pixel weighting of a MaskedSST result (older results: ``tiles``)."""
    return r.get("fine_tuning_recipe", {}).get("pixel_weighting", "tiles")


def token_norm(r: dict) -> str:
    """``paper`` (the LayerNorm over each token's raw values; older results) or ``none``."""
    return "paper" if r.get("model", {}).get("token_norm", True) else "none"


def input_norm(r: dict) -> str:
    """The input normalisation: ``min-max`` (older results) or ``standard``."""
    return {"minmax": "min-max"}.get(r.get("normalization", "minmax"), r.get("normalization"))


def positions(r: dict) -> str:
    """The positional embedding: ``learned`` (older results) or ``sincos``."""
    return r.get("model", {}).get("pos_embedding", "learned")


def model_key(r: dict) -> tuple[str, str, str, str, str]:
    """What a pre-trained result is paired with scratch on: scene, weighting, token norm,
    input normalisation, positions."""
    return r["scene"], pixel_weighting(r), token_norm(r), input_norm(r), positions(r)


# model_key's options after the scene, as results without them mean: each sorts first
MODEL_DEFAULTS = ("tiles", "paper", "min-max", "learned")


def maskedsst_choice_order(r: dict) -> tuple:
    pre = r["pretraining"] or {"recipe": {"encoder": "", "masking": ""}, "steps": 0}
    recipe, (scene, *options) = pre["recipe"], model_key(r)
    encoder = recipe.get("encoder", "mask-token")  # results before the visible encoder
    pairs = zip(options, MODEL_DEFAULTS, strict=True)
    model = tuple(x for option, default in pairs for x in (option != default, option))
    choice = (scene, *model, pre["steps"] > 0, encoder)
    return (*choice, recipe["masking"], pre["steps"], r["steps"]["fine_tune"], r["seed"])


def study_table(paths: list[Path]) -> None:
    """One row per (evaluation set, configuration, variant): mean ± std over seeds."""
    groups: dict[tuple[str, int, str, int, str, str], list[dict]] = {}
    for r in study_results(paths):
        subset = (r.get("subset") or {}).get("per_class") or FULL_SPLIT
        augment = r["fine_tuning_recipe"].get("augment", "none")
        order = STUDY_ORDER.index(r["config"])
        key = (r["evaluated_on"], subset, augment, order, r["config"], r["variant"])
        groups.setdefault(key, []).append(r)
    print(
        "| evaluated on | labels per class | fine-tuning augmentation | fine-tuned from "
        "| pretraining | seeds | OA % | AA % | kappa % | whole recipe (min) |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|")
    for (evaluated, subset, augment, _, config, variant), rows in sorted(groups.items()):
        values = np.array([percentages(r) for r in rows])
        std = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(3)
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(values.mean(0), std, strict=True))
        minutes = np.mean([r["seconds"]["whole_recipe"] for r in rows]) / 60
        source = {"scratch": "scratch", "both": "both branches pre-trained"}.get(
            config, f"{config} branch pre-trained"
        )
        seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
        labels = "full split" if subset == FULL_SPLIT else str(subset)
        print(
            f"| {evaluated} | {labels} | {augment} | {source} | {variant or '-'} | {seeds} "
            f"| {cells} | {minutes:.1f} |"
        )


if __name__ == "__main__":
    main()
