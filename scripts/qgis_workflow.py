"""The training workflow in QGIS, end to end and timed, through ``qgis_process``.

On the bundled Indian Pines scene: the training split as polygons (one per 4-connected
field, a GeoPackage with an integer ``crop`` field) -> ``factoformer:pretrain`` (its
default branches: the pixel branch) -> ``factoformer:train`` (from the polygons and the
pre-trained branch) ->
``factoformer:classify`` -> ``factoformer:assess`` against the test split. Prints each
step's wall time and the test accuracy, and writes them to ``<output-dir>/workflow.json``.

``--enmap DIR`` runs the same on a scene the shipped model has never seen: the EnMAP
Potsdam tiles of ``DIR`` (layout of ``shared/data/enmap_potsdam_tiles``). The tiles of
``train_files.csv`` become one ``gdalbuildvrt`` mosaic and their label tiles polygons
(field ``crop``); the model classifies the mosaic of the ``test_files.csv`` tiles and is
assessed against their label tiles. ``--pretrain-steps 0`` skips pretraining.
Usage (after scripts/setup.sh):
    OMP_NUM_THREADS=1 python scripts/qgis_workflow.py --pretrain-steps 100 --epochs 20
    OMP_NUM_THREADS=1 python scripts/qgis_workflow.py --enmap ../shared/data/enmap_potsdam_tiles \
        --pretrain-steps 0 --epochs 5
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from osgeo import gdal, ogr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import build_plugin  # noqa: E402
from demo import QGIS_PROCESS, install_plugin  # noqa: E402

from engine.data.scenes import BUNDLED_INDIAN_PINES  # noqa: E402

SCENE = BUNDLED_INDIAN_PINES / "indian_pines.tif"
TRAIN_LABELS = BUNDLED_INDIAN_PINES / "indian_pines_train.tif"
TEST_LABELS = BUNDLED_INDIAN_PINES / "indian_pines_test.tif"


class Scene(NamedTuple):
    """What one workflow run trains on and is assessed against."""

    name: str
    train_raster: Path
    fields: Path  # training polygons, integer field ``crop``
    test_raster: Path
    test_labels: Path


def indian_pines(out: Path) -> Scene:
    """The bundled scene, its training split as polygons, its test split."""
    fields = polygonise(TRAIN_LABELS, out / "indian_pines_fields.gpkg")
    return Scene("indian_pines", SCENE, fields, SCENE, TEST_LABELS)


def enmap(folder: Path, out: Path) -> Scene:
    """EnMAP Potsdam: the training tiles as one mosaic with polygons, the test tiles' mosaic."""
    train, train_labels = tile_lists(folder / "train_files.csv", folder)
    test, test_labels = tile_lists(folder / "test_files.csv", folder)
    fields = polygonise(
        mosaic(train_labels, out / "enmap_train_labels.vrt"), out / "enmap_fields.gpkg"
    )
    return Scene(
        "enmap",
        mosaic(train, out / "enmap_train.vrt"),
        fields,
        mosaic(test, out / "enmap_test.vrt"),
        mosaic(test_labels, out / "enmap_test_labels.vrt"),
    )


def tile_lists(listing: Path, folder: Path) -> tuple[list[Path], list[Path]]:
    """The image and label tiles of an EnMAP-Box SpecDeepMap list (``image,mask`` rows)."""
    with listing.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [folder / r["image"] for r in rows], [folder / r["mask"] for r in rows]


def mosaic(tiles: list[Path], path: Path) -> Path:
    """The tiles as one ``gdalbuildvrt`` mosaic (band metadata is read from its sources)."""
    vrt = gdal.BuildVRT(str(path), [str(t.resolve()) for t in tiles])
    if vrt is None:
        sys.exit(f"gdalbuildvrt failed for {path.name}")
    vrt = None  # closing writes the file
    return path


def polygonise(labels: Path, path: Path) -> Path:
    """The labelled pixels of ``labels`` as polygons with an integer field ``crop``."""
    src = gdal.Open(str(labels))
    band = src.GetRasterBand(1)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", src.GetSpatialRef(), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)
    ds = None
    return path


def run(env: dict[str, str], algorithm: str, *params: str) -> tuple[dict, float]:
    """Run one algorithm with ``qgis_process --json``; returns (results, seconds)."""
    command = [QGIS_PROCESS, "--json", "run", algorithm, "--", *params]
    print("$ " + shlex.join(command).replace(str(ROOT) + "/", ""), flush=True)
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=7200)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{algorithm} failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)["results"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("workflow_output"))
    parser.add_argument(
        "--enmap", type=Path, help="EnMAP Potsdam tile folder instead of Indian Pines"
    )
    parser.add_argument(
        "--pretrain-steps", type=int, default=100, help="steps per branch; 0 = none"
    )
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    build_plugin.build()
    with tempfile.TemporaryDirectory() as profile:
        env = install_plugin(Path(profile))
        scene = enmap(args.enmap.resolve(), out) if args.enmap else indian_pines(out)
        times, trained, assessed = workflow(env, scene, out, args)
    summary = {
        "scene": scene.name,
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "total_seconds": round(sum(times.values()), 1),
        "pretrain_steps_per_branch": args.pretrain_steps,
        "epochs": args.epochs,
        "validation_oa": trained.get("VALIDATION_OA"),
        "validation_pixels": trained.get("VALIDATION_PIXELS"),
        "test": {"oa": assessed["OA"], "aa": assessed["AA"], "kappa": assessed["KAPPA"]},
    }
    (out / "workflow.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        + f"; total {summary['total_seconds']:.1f} s"
    )
    print(
        f"test split: OA {100 * assessed['OA']:.2f}  AA {100 * assessed['AA']:.2f}  "
        f"kappa {100 * assessed['KAPPA']:.2f}; validation OA "
        f"{100 * (trained.get('VALIDATION_OA') or 0):.2f} on {trained.get('VALIDATION_PIXELS')} "
        "pixels (whole polygons)"
    )


def workflow(
    env: dict[str, str], scene: Scene, out: Path, args: argparse.Namespace
) -> tuple[dict[str, float], dict, dict]:
    """pretrain (unless 0 steps) -> train -> classify -> assess; (times, train, assess results)."""
    pre, model = out / "pretrained", out / f"{scene.name}_polygons.onnx"
    classes, report = out / f"{scene.name}_classes.tif", out / f"{scene.name}_report.html"
    times: dict[str, float] = {}
    pretrained = []
    if args.pretrain_steps > 0:
        _, times["pretrain"] = run(
            env,
            "factoformer:pretrain",
            f"INPUT={scene.train_raster}",
            f"OUTPUT={pre}",
            f"MAX_STEPS={args.pretrain_steps}",
            f"SEED={args.seed}",
        )
        pretrained = [f"PRETRAINED={pre}"]
    trained, times["train"] = run(
        env,
        "factoformer:train",
        f"INPUT={scene.train_raster}",
        f"TRAINING={scene.fields}",
        "CLASS_FIELD=crop",
        *pretrained,
        f"EPOCHS={args.epochs}",
        f"SEED={args.seed}",
        f"OUTPUT={model}",
    )
    _, times["classify"] = run(
        env,
        "factoformer:classify",
        f"INPUT={scene.test_raster}",
        f"MODEL={model}",
        f"OUTPUT={classes}",
    )
    assessed, times["assess"] = run(
        env,
        "factoformer:assess",
        f"INPUT={classes}",
        f"REFERENCE={scene.test_labels}",
        f"OUTPUT={report}",
    )
    return times, trained, assessed


if __name__ == "__main__":
    main()
