"""Markdown table of test OA/AA/kappa over training runs, with mean and standard deviation.

Usage: python scripts/results_table.py runs/indian_pines-seed*
The standard deviation is the sample one (ddof=1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
