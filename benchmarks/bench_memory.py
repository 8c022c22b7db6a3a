"""Peak memory of tiled classification against raster size: it must not grow with the raster.

Builds square 200-band int16 GeoTIFFs of increasing size by repeating the bundled Indian
Pines cube, and classifies each with the shipped model in its own process (class map and
confidence written to disk), recording the peak resident memory, once with GDAL's default
block cache (5 % of RAM) and once with ``GDAL_CACHEMAX`` = 256 MB. A mask keeps one pixel in
``stride`` x ``stride`` so the run takes seconds, not hours; every tile is still read,
normalised, padded and written, and the model's batches have the same size as in a full run.

Usage: python benchmarks/bench_memory.py [--sizes 1024 3072] [--stride 32] [--workdir DIR]
The largest default raster takes 3.8 GB of disk in the work folder (deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_mosaic(path: Path, size: int) -> None:
    """A size x size GeoTIFF tiling the bundled scene, written one strip at a time."""
    import numpy as np
    from osgeo import gdal

    from engine.data.scenes import BUNDLED_INDIAN_PINES

    gdal.UseExceptions()
    source = gdal.Open(str(BUNDLED_INDIAN_PINES / "indian_pines.tif"))
    cube = source.ReadAsArray()  # (200, 145, 145) int16
    bands, block, _ = cube.shape
    repeats = -(-size // block)
    strip = np.tile(cube, (1, 1, repeats))[:, :, :size]  # (bands, 145, size)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, bands, gdal.GDT_Int16, ["TILED=YES", "BIGTIFF=YES"]
    )
    ds.SetGeoTransform((0.0, 20.0, 0.0, 20.0 * size, 0.0, -20.0))
    for row in range(0, size, block):
        rows = min(block, size - row)
        ds.WriteRaster(0, row, size, rows, strip[:, :rows].tobytes())
    ds = None


def write_mask(path: Path, size: int, stride: int) -> None:
    import numpy as np
    from osgeo import gdal

    mask = np.zeros((size, size), dtype=np.uint8)
    mask[::stride, ::stride] = 1
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).WriteArray(mask)
    ds = None


def peak_rss_gb() -> float:
    """This process's peak resident memory since it started (VmHWM).

    Unlike ``ru_maxrss``, VmHWM is not inherited from the parent's image across fork+exec;
    the parent here has just written a large raster.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    raise RuntimeError("no VmHWM in /proc/self/status")


def classify(raster: Path, mask: Path, out_dir: Path) -> dict:
    from osgeo import gdal

    from engine.infer.classify import TiledClassifier
    from engine.infer.model import OnnxClassifier

    classifier = TiledClassifier(OnnxClassifier(ROOT / "models" / "factoformer_indian_pines.onnx"))
    start = time.perf_counter()
    report = classifier.classify(
        raster, out_dir / "classes.tif", confidence=out_dir / "confidence.tif", mask=mask
    )
    return {
        "seconds": time.perf_counter() - start,
        "classified_pixels": report.classified_pixels,
        "tile_size": classifier.tile_size,
        "gdal_cache_gb": gdal.GetCacheMax() / 1024**3,
        "max_rss_gb": peak_rss_gb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 3072])
    parser.add_argument("--stride", type=int, default=32, help="classify one pixel in stride^2")
    parser.add_argument("--workdir", type=Path, help="where the rasters go (default: temp)")
    parser.add_argument("--cache-mb", type=int, default=256, help="the smaller GDAL cache")
    parser.add_argument("--classify", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.classify:
        print(json.dumps(classify(*args.classify)))
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for size in args.sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            raster, mask = folder / "cube.tif", folder / "mask.tif"
            write_mosaic(raster, size)
            write_mask(mask, size, args.stride)
            cmd = [sys.executable, __file__, "--classify", str(raster), str(mask), str(folder)]
            for cache in (None, f"{args.cache_mb}MB"):
                env = dict(os.environ, **({"GDAL_CACHEMAX": cache} if cache else {}))
                out = subprocess.run(
                    cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env
                ).stdout
                row = json.loads(out.strip().splitlines()[-1])
                row.update(size=size, raster_gb=raster.stat().st_size / 1024**3)
                rows.append(row)
            raster.unlink()
    print(f"Tiled classification, shipped model, mask keeps 1 pixel in {args.stride}x{args.stride}")
    print(
        f"{'raster (px)':>12s} {'int16 GB':>9s} {'float32 GB':>11s} {'GDAL cache GB':>14s} "
        f"{'tile':>5s} {'classified':>11s} {'seconds':>8s} {'max RSS (GB)':>13s}"
    )
    for row in rows:
        print(
            f"{row['size']:>5d} x {row['size']:<5d} {row['raster_gb']:9.2f} "
            f"{2 * row['raster_gb']:11.2f} {row['gdal_cache_gb']:14.2f} {row['tile_size']:5d} "
            f"{row['classified_pixels']:11d} "
            f"{row['seconds']:8.1f} {row['max_rss_gb']:13.2f}"
        )
    for label, small, large in (("default", rows[0], rows[-2]), ("small", rows[1], rows[-1])):
        print(
            f"{label} GDAL cache: raster size ratio "
            f"{large['raster_gb'] / small['raster_gb']:.1f}x, "
            f"peak memory ratio {large['max_rss_gb'] / small['max_rss_gb']:.2f}x; largest "
            f"raster as float32 / peak memory {2 * large['raster_gb'] / large['max_rss_gb']:.1f}x"
        )


if __name__ == "__main__":
    main()
