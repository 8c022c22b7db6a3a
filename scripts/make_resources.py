"""Build the bundled Indian Pines demo scene (resources/indian_pines) from shared/data.

Usage: python scripts/make_resources.py [--data-root ../shared/data]

Writes an int16 GeoTIFF cube (200 bands, band descriptions, no no-data value) and Byte
label rasters (train, test, ground truth = train + test) in the split's class order, each
with a colour table, category names and a QGIS style. The scene has no map coordinates;
the rasters carry a nominal 20 m pixel grid without a CRS so that GIS software accepts them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.scenes import BUNDLED_INDIAN_PINES, INDIAN_PINES_CREDIT, load_indian_pines  # noqa: E402
from engine.infer.style import paletted_qml, style_class_band  # noqa: E402

gdal.UseExceptions()
PIXEL_SIZE = 20.0  # nominal AVIRIS ground sampling distance of this flight, metres
CUBE_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "ZLEVEL=9", "INTERLEAVE=BAND"]
LABEL_OPTIONS = ["COMPRESS=DEFLATE"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    args = parser.parse_args()
    scene = load_indian_pines(args.data_root)
    out = BUNDLED_INDIAN_PINES
    out.mkdir(parents=True, exist_ok=True)
    rows, cols, bands = scene.cube.shape
    geotransform = (0.0, PIXEL_SIZE, 0.0, rows * PIXEL_SIZE, 0.0, -PIXEL_SIZE)

    if scene.cube.max() > np.iinfo(np.int16).max:
        raise SystemExit("cube values do not fit int16")
    ds = gdal.GetDriverByName("GTiff").Create(
        str(out / "indian_pines.tif"), cols, rows, bands, gdal.GDT_Int16, CUBE_OPTIONS
    )
    ds.SetGeoTransform(geotransform)
    ds.SetMetadata(
        {
            "SOURCE": INDIAN_PINES_CREDIT,
            "GEOREFERENCING": "none: nominal 20 m pixel grid without a CRS",
            "UNITS": "AVIRIS radiance, scaled integers as distributed",
        }
    )
    for b, name in enumerate(scene.band_names):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(scene.cube[:, :, b].astype(np.int16))
        band.SetDescription(name)
    ds = None

    labels = {
        "indian_pines_train.tif": scene.train_labels,
        "indian_pines_test.tif": scene.test_labels,
        "indian_pines_gt.tif": scene.train_labels + scene.test_labels,
    }
    for name, values in labels.items():
        path = out / name
        ds = gdal.GetDriverByName("GTiff").Create(
            str(path), cols, rows, 1, gdal.GDT_Byte, LABEL_OPTIONS
        )
        ds.SetGeoTransform(geotransform)
        ds.SetMetadata({"SOURCE": INDIAN_PINES_CREDIT, "SPLIT": scene.split})
        band = ds.GetRasterBand(1)
        band.WriteArray(values.astype(np.uint8))
        style_class_band(band, scene.classes)
        band.SetDescription("label (0 = unlabelled)")
        ds = None
        path.with_suffix(".qml").write_text(paletted_qml(scene.classes), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
