"""Draw and store the label-efficiency subsets of the Indian Pines training split.

Usage: python scripts/make_label_subsets.py [--budgets 5 10 20] [--seeds 0 1 2]

For each budget N and draw seed K, keeps N training pixels per class (all of a class
that has fewer; engine/data/subsets.py, ``draw_subset``) and writes
``resources/indian_pines/subsets/train_<N>px_seed<K>.tif``: a Byte label raster on the
scene's grid with the training raster's encoding (class values of the split, 0 =
unlabelled, colour table, category names, QGIS style), and ``manifest.json`` with each
file's budget, seed and pixel counts per class. The files are committed: studies read
them, they do not redraw them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.scenes import BUNDLED_INDIAN_PINES, load_indian_pines  # noqa: E402
from engine.data.subsets import (  # noqa: E402
    SUBSET_BUDGETS,
    SUBSET_SEEDS,
    SUBSETS_FOLDER,
    draw_subset,
    subset_path,
)
from engine.infer.style import paletted_qml, style_class_band  # noqa: E402

gdal.UseExceptions()
TRAIN_RASTER = BUNDLED_INDIAN_PINES / "indian_pines_train.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", type=int, default=list(SUBSET_BUDGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SUBSET_SEEDS))
    args = parser.parse_args()
    scene = load_indian_pines()
    SUBSETS_FOLDER.mkdir(parents=True, exist_ok=True)
    entries = []
    for budget in args.budgets:
        for seed in args.seeds:
            labels = draw_subset(scene.train_labels, budget, seed)
            path = subset_path(budget, seed)
            write_labels(path, labels, scene, budget, seed)
            counts = np.bincount(labels.ravel(), minlength=scene.num_classes + 1)[1:]
            per_class = dict(zip((str(c.value) for c in scene.classes), counts, strict=True))
            entries.append(
                {
                    "file": path.name,
                    "per_class": budget,
                    "seed": seed,
                    "pixels": int(counts.sum()),
                    "counts": {v: int(n) for v, n in per_class.items()},
                }
            )
            print(f"{path.relative_to(ROOT)}: {counts.sum()} pixels")
    manifest = {
        "source": f"{TRAIN_RASTER.name} ({scene.split})",
        "method": "per class, its pixels in row-major order permuted by "
        "numpy.random.default_rng(seed), classes in ascending value; the first per_class kept",
        "classes": {str(c.value): c.name for c in scene.classes},
        "subsets": entries,
    }
    (SUBSETS_FOLDER / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_labels(path: Path, labels: np.ndarray, scene, budget: int, seed: int) -> None:
    """Byte label raster on the training raster's grid, styled like it."""
    template = gdal.Open(str(TRAIN_RASTER))
    rows, cols = labels.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, 1, gdal.GDT_Byte, ["COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform(template.GetGeoTransform())
    ds.SetMetadata(
        {
            "SOURCE": template.GetMetadataItem("SOURCE"),
            "SPLIT": scene.split,
            "SUBSET": f"{budget} training pixels per class (all if fewer), draw seed {seed}",
        }
    )
    band = ds.GetRasterBand(1)
    band.WriteArray(labels.astype(np.uint8))
    style_class_band(band, scene.classes)
    band.SetDescription("label (0 = unlabelled)")
    ds = None
    path.with_suffix(".qml").write_text(paletted_qml(scene.classes), encoding="utf-8")


if __name__ == "__main__":
    main()
