"""The training workflow in QGIS, end to end and timed, through ``qgis_process``.

On the bundled Indian Pines scene: the training split as polygons (one per 4-connected
field, a GeoPackage with an integer ``crop`` field) -> ``factoformer:pretrain`` ->
``factoformer:train`` (from the polygons, with the pre-trained branches) ->
``factoformer:classify`` -> ``factoformer:assess`` against the test split. Prints each
step's wall time and the test accuracy, and writes them to ``<output-dir>/workflow.json``.
Usage (after scripts/setup.sh):
    OMP_NUM_THREADS=1 python scripts/qgis_workflow.py --pretrain-steps 100 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--pretrain-steps", type=int, default=100, help="steps per branch")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    build_plugin.build()
    with tempfile.TemporaryDirectory() as profile:
        env = install_plugin(Path(profile))
        fields = polygonise(TRAIN_LABELS, out / "indian_pines_fields.gpkg")
        pre, model = out / "pretrained", out / "indian_pines_polygons.onnx"
        classes, report = out / "indian_pines_classes.tif", out / "indian_pines_report.html"
        times = {}
        _, times["pretrain"] = run(
            env,
            "factoformer:pretrain",
            f"INPUT={SCENE}",
            f"OUTPUT={pre}",
            f"MAX_STEPS={args.pretrain_steps}",
            f"SEED={args.seed}",
        )
        trained, times["train"] = run(
            env,
            "factoformer:train",
            f"INPUT={SCENE}",
            f"TRAINING={fields}",
            "CLASS_FIELD=crop",
            f"PRETRAINED={pre}",
            f"EPOCHS={args.epochs}",
            f"SEED={args.seed}",
            f"OUTPUT={model}",
        )
        _, times["classify"] = run(
            env, "factoformer:classify", f"INPUT={SCENE}", f"MODEL={model}", f"OUTPUT={classes}"
        )
        assessed, times["assess"] = run(
            env,
            "factoformer:assess",
            f"INPUT={classes}",
            f"REFERENCE={TEST_LABELS}",
            f"OUTPUT={report}",
        )
    summary = {
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


if __name__ == "__main__":
    main()
