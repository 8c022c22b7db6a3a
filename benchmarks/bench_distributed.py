"""Dask scaling: 1 vs 2 local workers on a large raster and on 4 copies of the bundled scene.

Each case runs :func:`engine.infer.distributed.classify_scenes` with the shipped FactoFormer
model on a fresh ``LocalCluster`` of N worker processes, each with one thread and one
single-threaded ONNX Runtime call at a time (``--onnx-threads``), so N workers use N cores
and the scaling efficiency ``T1 / (N * TN)`` measures what distributing costs. Peak
memory per worker is the workers' largest resident set (VmHWM) at the end.

Cases:

* ``large``: a synthetic ``--size``² x 200 int16 GeoTIFF on disk (the bundled scene tiled,
  pixel-interleaved, 1.6 GiB at 2048²), written into a temporary folder. Every block is
  read in full, but only pixels on a 1-in-``--step``² grid are classified (a user mask),
  so the run fits a small machine; ``--step 1`` classifies every pixel.
* ``copies``: 4 copies of the bundled 145 x 145 scene, every pixel classified.

Usage: python benchmarks/bench_distributed.py [--size 2048] [--step 16] [--workers 1 2]
    [--cases large copies] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osgeo import gdal  # noqa: E402

from engine import SHIPPED_MODEL  # noqa: E402
from engine.infer.distributed import SceneRequest, classify_scenes  # noqa: E402

SCENE = ROOT / "resources" / "indian_pines" / "indian_pines.tif"
gdal.UseExceptions()


def write_large(folder: Path, size: int, step: int) -> tuple[Path, Path]:
    """The bundled scene tiled into a size x size x 200 int16 GeoTIFF, and its sample mask."""
    cube = gdal.Open(str(SCENE)).ReadAsArray()  # (200, 145, 145) int16
    bands = cube.shape[0]
    path, mask_path = folder / "large.tif", folder / "large_mask.tif"
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=PIXEL", "BIGTIFF=YES"]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, bands, gdal.GDT_Int16, options)
    reps = -(-size // cube.shape[2])
    for row in range(0, size, 256):
        rows = np.arange(row, min(row + 256, size)) % cube.shape[1]
        strip = np.tile(cube[:, rows, :], (1, 1, reps))[:, :, :size]
        ds.WriteRaster(
            0, row, size, len(rows), strip.tobytes(), band_list=list(range(1, bands + 1))
        )
    ds = None
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[::step, ::step] = 1
    out = gdal.GetDriverByName("GTiff").Create(str(mask_path), size, size, 1, gdal.GDT_Byte)
    out.GetRasterBand(1).WriteArray(mask)
    out = None
    return path, mask_path


def copies(folder: Path, count: int = 4) -> list[Path]:
    paths = [folder / f"copy{i}.tif" for i in range(count)]
    for path in paths:
        shutil.copyfile(SCENE, path)
    return paths


def worker_peak_rss() -> int:
    """Largest resident set of this process so far, in bytes: VmHWM on Linux (``ru_maxrss``
    would carry the parent's peak over ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_case(requests: list[SceneRequest], workers: int, onnx_threads: int) -> dict:
    """Classify ``requests`` on a fresh local cluster; time and the workers' peak memory."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        start = time.perf_counter()
        report = classify_scenes(
            requests,
            SHIPPED_MODEL,
            scheduler=cluster.scheduler_address,
            onnx_threads=onnx_threads,
        )
        seconds = time.perf_counter() - start
        with Client(cluster) as client:
            peaks = list(client.run(worker_peak_rss).values())
    if report.failures:
        raise SystemExit(f"failed: {report.failures}")
    pixels = sum(s.classified_pixels for s in report.scenes)
    return {
        "workers": workers,
        "seconds": round(seconds, 2),
        "classified_pixels": pixels,
        "pixels_per_second": round(pixels / seconds, 1),
        "blocks": report.blocks,
        "peak_worker_rss_mib": round(max(peaks) / 2**20),
    }


def requests_for(case: str, folder: Path, out: Path, size: int, step: int) -> list[SceneRequest]:
    if case == "large":
        raster, mask = write_large(folder, size, step)
        return [SceneRequest(str(raster), {"class_map": out / "large_classes.tif"}, str(mask))]
    return [
        SceneRequest(str(p), {"class_map": out / f"{p.stem}_classes.tif"}) for p in copies(folder)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="large raster edge (pixels)")
    parser.add_argument("--step", type=int, default=16, help="classify 1 pixel in step x step")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--cases", nargs="+", choices=("large", "copies"), default=["large", "copies"]
    )
    parser.add_argument("--onnx-threads", type=int, default=1, help="per worker (default 1)")
    parser.add_argument("--tmp", type=Path, help="folder for the temporary rasters")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        for case in args.cases:
            out = folder / f"out-{case}"
            out.mkdir()
            started = time.perf_counter()
            requests = requests_for(case, folder, out, args.size, args.step)
            print(f"{case}: inputs ready in {time.perf_counter() - started:.1f} s", flush=True)
            rows = []
            for workers in args.workers:
                row = {"case": case, **run_case(requests, workers, args.onnx_threads)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            base = rows[0]
            for row in rows[1:]:
                ratio = row["workers"] / base["workers"]
                row["scaling_efficiency"] = round(base["seconds"] / (ratio * row["seconds"]), 3)
                print(
                    f"{case}: {base['workers']} -> {row['workers']} workers: "
                    f"{base['seconds']:.1f} s -> {row['seconds']:.1f} s, scaling efficiency "
                    f"{100 * row['scaling_efficiency']:.0f} %, peak memory per worker "
                    f"{row['peak_worker_rss_mib']} MiB",
                    flush=True,
                )
            results += rows
            for request in requests:
                Path(request.input).unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
