"""Markdown table of the baselines study: one row per model, mean ± std over its seeds.

Usage: python scripts/baselines_table.py results/baselines [more folders or .json files]
Reads the JSON results of ``scripts/baselines_study.py``. Accuracies are test-split
percentages (standard deviation with ddof=1; 0 for one seed); training time and
whole-scene inference speed (pixels/s, the engine on the bundled 145 x 145 scene) are
means over the seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ORDER = ("rf", "svm", "cnn3d", "factoformer")
NAMES = {
    "rf": "Random forest",
    "svm": "RBF SVM",
    "cnn3d": "3D-CNN (Li et al. 2017)",
    "factoformer": "FactoFormer (scratch)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args()
    print(table(load(args.paths)))


def load(paths: list[Path]) -> dict[str, list[dict]]:
    """Results grouped by model, in :data:`ORDER`."""
    files = [f for p in paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    groups: dict[str, list[dict]] = {}
    for f in files:
        record = json.loads(f.read_text())
        groups.setdefault(record["model"], []).append(record)
    return {m: sorted(groups[m], key=lambda r: r["seed"]) for m in ORDER if m in groups}


def table(groups: dict[str, list[dict]]) -> str:
    lines = [
        "| model | seeds | OA % | AA % | kappa % | training (s) | inference (px/s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, rows in groups.items():
        keys = ("overall_accuracy", "average_accuracy", "kappa")
        values = 100 * np.array([[r["metrics"][k] for k in keys] for r in rows])
        std = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(3)
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(values.mean(0), std, strict=True))
        seconds = np.mean([r["training_seconds"] for r in rows])
        speed = np.mean([r["inference"]["pixels_per_second"] for r in rows])
        seeds = ",".join(str(r["seed"]) for r in rows)
        lines.append(f"| {NAMES[model]} | {seeds} | {cells} | {seconds:.1f} | {speed:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
