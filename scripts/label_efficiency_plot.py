"""Plot test OA against labelled pixels per class for every model with label-efficiency results.

Usage: python scripts/label_efficiency_plot.py [--output docs/images/label_efficiency.png]

Reads every ``<results>/*/label-efficiency`` folder (any depth; results of
``scripts/baselines_study.py``, ``scripts/pretrain_study.py`` and
``scripts/maskedsst_study.py`` with ``--subset``) and, for the ``full`` point, the
whole-split results in ``<results>/baselines``, ``<results>/pretraining`` and
``<results>/maskedsst/indian_pines`` with its variant folders (as
``scripts/baselines_table.py`` reads them);
``<results>`` is ``results`` unless ``--results`` says otherwise. Each point is the mean
OA over the runs (subset draws) with ± one standard deviation as error bars. The full
split has 50 pixels per class (15 for its three smallest classes) and is drawn at 50.
matplotlib comes from Debian's ``python3-matplotlib`` (a dependency of QGIS's Python
packages), seen by the project venv through ``--system-site-packages``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from baselines_table import (  # noqa: E402
    ROOT,
    load,
    load_label_efficiency,
    maskedsst_folders,
    mean_std,
    name,
    recipe_folders,
)

FULL_AT = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "images" / "label_efficiency.png"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    subsets = load_label_efficiency(str(args.results / "*" / "label-efficiency"))
    whole = load(
        [
            args.results / "baselines",
            args.results / "pretraining",
            *recipe_folders(args.results / "pretraining"),
            *maskedsst_folders(args.results / "maskedsst"),
        ]
    )
    whole = whole.get("indian_pines", {})
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120)
    for key, budgets in subsets.items():
        points = [(b, rows) for b, rows in budgets.items()]
        if whole.get(key):
            points.append((FULL_AT, whole[key]))
        x = [b for b, _ in points]
        stats = [mean_std(rows) for _, rows in points]
        counts = sorted({len(rows) for _, rows in points})
        runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        ax.errorbar(
            x,
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            marker="o",
            capsize=3,
            label=f"{name(key)} ({runs} {'run' if runs == '1' else 'runs'} per point)",
        )
    ax.set_xscale("log")
    ax.set_xticks([5, 10, 20, FULL_AT], ["5", "10", "20", "full\n(50; 15 for 3 classes)"])
    ax.set_xlabel("labelled training pixels per class")
    ax.set_ylabel("test OA % (9,671 pixels)")
    ax.set_title("Indian Pines fixed split: accuracy against labels (mean ± std)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, bbox_inches="tight")  # the legend below the axes included
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
