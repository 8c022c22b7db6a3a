"""Markdown comparison tables of the baselines and the transformers, mean ± std over seeds.

Usage: python scripts/baselines_table.py [FOLDERS or .json files] [--speed results/speed]
           [--label-efficiency "results/*/label-efficiency"]

Reads the JSON results of ``scripts/baselines_study.py`` (``model`` key) and of
``scripts/pretrain_study.py`` (``config`` key: ``scratch`` is FactoFormer from scratch,
anything else a pre-trained FactoFormer) and ``scripts/maskedsst_study.py`` (``scene`` and
``config`` keys); default folders ``results/baselines``, ``results/pretraining`` and its
pretraining-recipe folders, ``results/maskedsst/indian_pines`` and
``results/maskedsst/enmap`` with their variant folders (a row per pretraining and
fine-tuning variant; MaskedSST rows fine-tuned with the official tile-weighted loss, the
default before equal pixel weights, say so, as do rows without the paper's token
LayerNorm or with standardised input). Prints three tables:

1. Indian Pines fixed split: OA/AA/kappa on the test split, training wall time (the whole
   recipe, pretraining included) and whole-scene inference speed (pixels/s, the engine on
   the bundled 145 x 145 scene; from ``results/speed/<model>.json``, written by
   ``scripts/inference_speed.py``, for models whose results carry none). Models without
   results yet are listed as pending (in tables 1 and 3).
2. Label efficiency: test OA by labelled pixels per class (stored subsets; ``full`` is
   the whole training split of table 1), from every ``label-efficiency`` folder.
3. EnMAP Potsdam test tiles.

Accuracies are percentages; std with ddof=1 (0 for one seed); times and speeds are means.
"""

from __future__ import annotations

import argparse
import json
import sys
from glob import glob
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import (  # noqa: E402
    DEFAULT_DENSE_STEPS,
    FINE_TUNING_PIXEL_WEIGHTING,
    PRETRAINING_RECIPES,
    MaskedPretrainingRecipe,
)

ORDER = ("rf", "svm", "cnn3d", "factoformer", "factoformer-both", "maskedsst", "maskedsst-pre")
NAMES = {
    "rf": "Random forest",
    "svm": "RBF SVM",
    "cnn3d": "3D-CNN (Li et al. 2017)",
    "factoformer": "FactoFormer (scratch)",
    "factoformer-both": "FactoFormer (both branches pre-trained, fast)",
    "maskedsst": "MaskedSST (scratch)",
    "maskedsst-pre": "MaskedSST (pre-trained)",
}
ENMAP_MODELS = ("rf", "svm", "cnn3d", "factoformer", "maskedsst", "maskedsst-pre")
SPEED_OF = {"factoformer-": "factoformer", "maskedsst-": "maskedsst"}
METRICS = ("overall_accuracy", "average_accuracy", "kappa")
BUDGETS = (5, 10, 20, "full")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[
            ROOT / "results" / "baselines",
            ROOT / "results" / "pretraining",
            *recipe_folders(ROOT / "results" / "pretraining"),
            *maskedsst_folders(ROOT / "results" / "maskedsst"),
        ],
    )
    parser.add_argument("--speed", type=Path, default=ROOT / "results" / "speed")
    parser.add_argument(
        "--label-efficiency", default=str(ROOT / "results" / "*" / "label-efficiency")
    )
    args = parser.parse_args()
    full = load(args.paths)
    speeds = load_speeds(args.speed)
    print("Indian Pines fixed split\n")
    print(table(full.get("indian_pines", {}), speeds))
    print("\nLabel efficiency (Indian Pines, test OA %)\n")
    print(efficiency_table(load_label_efficiency(args.label_efficiency), full))
    print("\nEnMAP Potsdam test tiles\n")
    enmap = full.get("enmap_potsdam", {})
    print(table(enmap, {}, ENMAP_MODELS))  # the speed files are Indian Pines


def recipe_folders(study: Path) -> list[Path]:
    """The pretraining study's folders of one pretraining recipe each (``fast``,
    ``paper-visible``, ``fast+epochs=200...``), not its augmentation or subset folders."""
    found = sorted(study.glob("*")) if study.is_dir() else []
    return [d for d in found if d.is_dir() and d.name.split("+")[0] in PRETRAINING_RECIPES]


def maskedsst_folders(study: Path) -> list[Path]:
    """The MaskedSST study's whole-split folders (``indian_pines``, ``enmap``) and their
    variant folders (``equal-weights``, ``1500-steps``...), each row named by its record."""
    scenes = [study / "indian_pines", study / "enmap"]
    return [f for s in scenes for f in (s, *sorted(s.glob("*"))) if f.is_dir()]


def model_key(record: dict) -> str:
    """The table row of a result: its ``model``, ``maskedsst[-pre]`` (MaskedSST study, which
    names its ``scene``) or ``factoformer[-config][/variant]`` (pretraining study; the
    pretraining recipe is named unless it is ``fast``, so recipes never share a row)."""
    if "scene" in record:  # its "model" is the architecture
        options = maskedsst_architecture(record) + maskedsst_fine_tuning(record)
        if record["config"] != "scratch":
            options = maskedsst_pretraining(record) + options
            return "maskedsst-pre" + "".join(f"@{o}" for o in options)
        return "maskedsst" + "".join(f"@{o}" for o in options)
    if "model" in record:
        fitted = record.get("fit_on", "train")
        budget = record.get("step_budget")
        augment = record.get("augment")
        patch = record.get("patch_size")
        return (
            record["model"]
            + ("" if fitted == "train" else f"@trained on {fitted.replace('+', ' + ')} tiles")
            + (f"@{budget:,} steps" if budget else "")
            + (f"@{augment} augmentation" if augment else "")
            + (f"@{patch}x{patch} patches" if patch else "")
        )
    config = record["config"]
    if config == "scratch":
        return "factoformer"
    variant = recipe_name(record.get("pretraining_recipe")) or record.get("variant") or "fast"
    return f"factoformer-{config}" + ("" if variant == "fast" else f"/{variant}")


def maskedsst_architecture(record: dict) -> list[str]:
    """How a MaskedSST result's architecture and input differ from the engine's defaults
    (the paper's token norm, min-max input, learned positions)."""
    model = record.get("model", {})
    names = [] if model.get("token_norm", True) else ["no token norm"]
    names += ["standardised input"] if record.get("normalization") == "standard" else []
    return names + (["sin-cos positions"] if model.get("pos_embedding") == "sincos" else [])


def maskedsst_fine_tuning(record: dict) -> list[str]:
    """How a MaskedSST result's fine-tuning differs from the default (none for the default):
    another step budget, or the official tile-weighted loss (records without a weighting
    are from before equal pixel weights became the default, so tile-weighted)."""
    steps = record["steps"]["fine_tune"]
    options = [f"{steps:,} fine-tuning steps"] if steps != DEFAULT_DENSE_STEPS else []
    weighting = record["fine_tuning_recipe"].get("pixel_weighting", "tiles")
    return options + (["tile-weighted loss"] if weighting != FINE_TUNING_PIXEL_WEIGHTING else [])


# What results written before the recipe had these keys used (the defaults of then).
MASKEDSST_LEGACY_PRETRAINING = {"encoder": "mask-token", "decoder_depth": 0}


def maskedsst_pretraining(record: dict) -> list[str]:
    """How a MaskedSST result's pretraining differs from the default recipe's (none for the
    default, so results of other recipes never share its row)."""
    pre, default = record["pretraining"], MaskedPretrainingRecipe()
    recipe = {**default.to_dict(), **MASKEDSST_LEGACY_PRETRAINING, **pre["recipe"]}
    options = [f"{recipe['encoder']} encoder"] if recipe["encoder"] != default.encoder else []
    options += [f"{recipe['masking']} masks"] if recipe["masking"] != default.masking else []
    default_steps = default.epochs * default.tiles_per_epoch // default.batch_size
    options += [f"{pre['steps']:,} pretraining steps"] if pre["steps"] != default_steps else []
    return options


def recipe_name(stored: dict | None) -> str | None:
    """The named pretraining recipe ``stored`` is (seed and step limit aside), if any."""
    if not stored:
        return None
    ignored = ("seed", "max_steps")
    for name, recipe in PRETRAINING_RECIPES.items():
        named = recipe.to_dict()
        if all(stored.get(k, named[k]) == v for k, v in named.items() if k not in ignored):
            return name
    return None


def dataset(record: dict) -> str:
    """``indian_pines`` or ``enmap_potsdam``."""
    if record.get("scene") == "enmap":
        return "enmap_potsdam"
    return record.get("dataset", "indian_pines")


def name(key: str) -> str:
    key, *options = key.split("@")  # e.g. other training tiles, another step budget
    if options:
        return ", ".join([name(key), *options])
    if key in NAMES:
        return NAMES[key]
    config, _, variant = key.split("-", 1)[-1].partition("/")
    branches = "both branches" if config == "both" else f"{config} branch"
    return f"FactoFormer ({branches} pre-trained, {variant or 'fast'})"


def json_files(paths: list[Path]) -> list[Path]:
    """The JSON files given and those of the folders given (a missing folder: none yet)."""
    return [
        f for p in paths if p.exists() for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])
    ]


def is_test_result(record: dict) -> bool:
    return "metrics" in record and record.get("evaluated_on", "test") == "test"


def load(paths: list[Path]) -> dict[str, dict[str, list[dict]]]:
    """Test results by data set, then by row key (in :data:`ORDER`, others after)."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for f in json_files(paths):
        record = json.loads(f.read_text())
        if is_test_result(record) and not record.get("subset"):
            rows = groups.setdefault(dataset(record), {})
            rows.setdefault(model_key(record), []).append(record)
    return {d: ordered(g) for d, g in groups.items()}


def ordered(groups: dict[str, list[dict]]) -> dict[str, list[dict]]:
    keys = [k for k in ORDER if k in groups] + sorted(k for k in groups if k not in ORDER)
    return {k: sorted(groups[k], key=lambda r: r["seed"]) for k in keys}


def load_speeds(folder: Path) -> dict[str, float]:
    """Pixels/s by model name from ``scripts/inference_speed.py`` results."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    records = [json.loads(f.read_text()) for f in files]
    return {r["model"]: r["inference"]["pixels_per_second"] for r in records}


def load_label_efficiency(pattern: str) -> dict[str, dict[int, list[dict]]]:
    """Label-efficiency results (any depth below the folders) by row key, then budget."""
    groups: dict[str, dict[int, list[dict]]] = {}
    for folder in sorted(glob(pattern)):
        for f in sorted(Path(folder).rglob("*.json")):
            record = json.loads(f.read_text())
            if is_test_result(record) and record.get("subset"):
                budget = int(record["subset"]["per_class"])
                groups.setdefault(model_key(record), {}).setdefault(budget, []).append(record)
    return {k: dict(sorted(v.items())) for k, v in ordered_keys(groups).items()}


def ordered_keys(groups: dict) -> dict:
    keys = [k for k in ORDER if k in groups] + sorted(k for k in groups if k not in ORDER)
    return {k: groups[k] for k in keys}


def mean_std(records: list[dict], key: str = "overall_accuracy") -> tuple[float, float]:
    values = 100 * np.array([r["metrics"][key] for r in records])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def training_seconds(record: dict) -> float:
    """The whole recipe's wall time (baselines: search and fit; pretraining study: all)."""
    if "training_seconds" in record:
        return record["training_seconds"]
    return record["seconds"]["whole_recipe"]


def speed(key: str, rows: list[dict], speeds: dict[str, float]) -> float | None:
    measured = [r["inference"]["pixels_per_second"] for r in rows if "inference" in r]
    if measured:
        return float(np.mean(measured))
    base = key.split("@")[0]  # variants of training run at their model's speed
    family = next((v for p, v in SPEED_OF.items() if base.startswith(p)), base)
    return speeds.get(base, speeds.get(family))


def table(
    groups: dict[str, list[dict]], speeds: dict[str, float], planned: tuple[str, ...] = ORDER
) -> str:
    """One row per model with results, then every ``planned`` model still pending."""
    lines = [
        "| model | seeds | OA % | AA % | kappa % | training (s) | inference (px/s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    keys = list(groups) + [k for k in planned if k not in groups]
    for key in keys:
        rows = groups.get(key)
        if not rows:
            lines.append(f"| {name(key)} | pending | – | – | – | – | – |")
            continue
        cells = " | ".join("{:.2f} ± {:.2f}".format(*mean_std(rows, m)) for m in METRICS)
        seconds = np.mean([training_seconds(r) for r in rows])
        pixels = speed(key, rows, speeds)
        rate = f"{pixels:,.0f}" if pixels else "–"
        seeds = ",".join(str(r["seed"]) for r in rows)
        lines.append(f"| {name(key)} | {seeds} | {cells} | {seconds:,.1f} | {rate} |")
    return "\n".join(lines)


def efficiency_table(
    subsets: dict[str, dict[int, list[dict]]], full: dict[str, dict[str, list[dict]]]
) -> str:
    """OA mean ± std (runs) per model and labelled pixels per class."""
    whole = full.get("indian_pines", {})
    lines = [
        "| model | "
        + " | ".join(f"{b} px/class" if b != "full" else "full" for b in BUDGETS)
        + " |",
        "|---|" + "---:|" * len(BUDGETS),
    ]
    for key in subsets:
        cells = []
        for budget in BUDGETS:
            rows = whole.get(key) if budget == "full" else subsets[key].get(budget)
            cells.append("{:.2f} ± {:.2f} ({})".format(*mean_std(rows), len(rows)) if rows else "–")
        lines.append(f"| {name(key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
