"""Whole-scene inference speed and memory: eager PyTorch vs the tiled ONNX engine.

Both classify every pixel of the bundled Indian Pines scene (145 x 145 x 200) with the
same FactoFormer weights, in separate processes (peak memory per variant):

* ``eager``: the PyTorch model in eval mode over lazily built patches, batch 256
  (how a research script predicts a scene; no file output).
* ``onnx``: ``TiledClassifier`` with ONNX Runtime (contrib attention, one single-threaded
  call per core, batches of 64), writing the styled class map and confidence GeoTIFFs.
* ``onnx-portable``: the same with a standard-ops-only ONNX export.
* ``maskedsst``: ``TiledClassifier`` with a dense MaskedSST (8x8 tiles at stride 4, blended;
  batches of 64 tiles), same outputs. Its weights come from ``--dense-run`` (a MaskedSST
  training run); without one, an untrained MaskedSST of the paper's size for the scene
  (200 bands, 16 classes, random weights: the speed does not depend on them).

Weights: the shipped model's (read back from its ONNX file), or a training run's (``--run``).
``--size N`` adds a second table: the ``onnx`` and ``maskedsst`` variants on an N x N x 200
int16 GeoTIFF (the bundled scene tiled), every pixel classified, one run each.

Usage: python benchmarks/bench_inference.py [--run runs/indian_pines-seed0] [--repeats 2]
    [--dense-run runs/maskedsst-ip] [--variants onnx maskedsst] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIPPED_MODEL = ROOT / "models" / "factoformer_indian_pines.onnx"

REFERENCE_PIXELS_PER_SECOND = 181.0  # official FactoFormer code, eager, same machine kind
PIXELS = 145 * 145
VARIANTS = ("eager", "onnx-portable", "onnx", "maskedsst")


def weights(run_dir: Path | None):
    """The FactoFormer checkpoint benchmarked: a training run's, else the shipped model's
    (its weights read back from the ONNX file)."""
    from engine.export.onnx_weights import checkpoint_from_onnx
    from engine.training.checkpoint import load_checkpoint

    return load_checkpoint(run_dir) if run_dir else checkpoint_from_onnx(str(SHIPPED_MODEL))


def export_variant(variant: str, run_dir: Path | None, dense_run: Path | None, path: Path) -> Path:
    """The ONNX model a variant runs, exported to ``path``."""
    from engine.export.onnx import build_metadata, export_onnx, metadata_from_run

    if variant != "maskedsst":
        ckpt = weights(run_dir)
        meta = build_metadata(ckpt, "bench")
        return export_onnx(ckpt, meta, path, portable=variant.endswith("portable"))
    if dense_run is not None:
        ckpt, meta = metadata_from_run(dense_run, "bench-maskedsst")
        return export_onnx(ckpt, meta, path)
    import torch

    from engine.config import MaskedSSTConfig
    from engine.models.maskedsst import MaskedSST
    from engine.training.checkpoint import Checkpoint

    base = weights(run_dir)  # the scene's bands, statistics and classes
    torch.manual_seed(0)
    config = MaskedSSTConfig(num_bands=base.config.num_bands, num_classes=base.config.num_classes)
    ckpt = Checkpoint(
        MaskedSST(config).eval(),
        base.normalization,
        base.classes,
        base.band_names,
        base.wavelengths_nm,
        training={"dataset": "none: untrained, for timing only"},
    )
    return export_onnx(ckpt, build_metadata(ckpt, "bench-maskedsst-untrained"), path)


def run_variant(
    variant: str,
    run_dir: Path | None,
    repeats: int,
    dense_run: Path | None = None,
    raster: Path | None = None,
) -> dict:
    """Best time of ``repeats`` classifications of the bundled scene (or ``raster``)."""
    import numpy as np
    from osgeo import gdal

    from engine.data.scenes import BUNDLED_INDIAN_PINES

    scene_path = raster or BUNDLED_INDIAN_PINES / "indian_pines.tif"
    ds = gdal.Open(str(scene_path))
    pixels = ds.RasterXSize * ds.RasterYSize
    ds = None
    best = float("inf")
    if variant == "eager":
        import torch

        from engine.data.prepared import PreparedScene
        from engine.data.scenes import load_indian_pines
        from engine.evaluation import predict_pixels
        from engine.training.trainer import configure_cpu, torch_logits

        configure_cpu()
        ckpt = weights(run_dir)
        rows, cols = (a.ravel() for a in np.indices((145, 145)))
        for _ in range(repeats):
            start = time.perf_counter()
            prepared = PreparedScene.from_scene(load_indian_pines(), 7, ckpt.normalization)
            predict_pixels(torch_logits(ckpt.model), prepared, rows, cols, batch_size=256)
            best = min(best, time.perf_counter() - start)
        threads = torch.get_num_threads()
    else:
        from engine.infer.classify import TiledClassifier
        from engine.infer.model import OnnxClassifier

        with tempfile.TemporaryDirectory() as tmp:
            model = OnnxClassifier(
                export_variant(variant, run_dir, dense_run, Path(tmp) / "m.onnx")
            )
            for i in range(repeats):
                start = time.perf_counter()
                TiledClassifier(model).classify(
                    scene_path, Path(tmp) / f"c{i}.tif", confidence=Path(tmp) / f"p{i}.tif"
                )
                best = min(best, time.perf_counter() - start)
        threads = model.workers  # concurrent single-threaded ONNX Runtime calls
    return {
        "variant": variant,
        "pixels": pixels,
        "pixels_per_second": pixels / best,
        "seconds": best,
        "threads": threads,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def write_large(folder: Path, size: int) -> Path:
    """The bundled scene tiled into a size x size x 200 int16 GeoTIFF (tiled, pixel-interleaved)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_distributed import write_large as write_tiled

    return write_tiled(folder, size, step=1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, help="training run whose weights are used (default: the shipped model)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings")
    parser.add_argument(
        "--dense-run",
        type=Path,
        help="MaskedSST training run for the maskedsst row (default: untrained, same size)",
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--size", type=int, help="also classify a size x size x 200 raster (onnx, maskedsst)"
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--raster", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        row = run_variant(args.variant, args.run, args.repeats, args.dense_run, args.raster)
        print(json.dumps(row))
        return
    rows = {name: run_in_process(name, args) for name in args.variants}
    print_rows(f"Whole-scene inference, Indian Pines {PIXELS} pixels, best of {args.repeats}", rows)
    print_ratios(rows, args)
    if args.size:
        with tempfile.TemporaryDirectory() as tmp:
            raster = write_large(Path(tmp), args.size)
            large = {
                name: run_in_process(name, args, raster, repeats=1)
                for name in args.variants
                if name in ("onnx", "maskedsst")
            }
        title = f"Large raster, {args.size} x {args.size} x 200 int16 on disk, one run each"
        print_rows(title, large)


def run_in_process(
    variant: str, args: argparse.Namespace, raster: Path | None = None, repeats: int | None = None
) -> dict:
    """One variant in its own process (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--variant", variant]
    cmd += ["--repeats", str(repeats or args.repeats)]
    for flag, value in (("--run", args.run), ("--dense-run", args.dense_run), ("--raster", raster)):
        if value:
            cmd += [flag, str(value)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_rows(title: str, rows: dict[str, dict]) -> None:
    print(title)
    print(f"{'variant':14s} {'pixels/s':>9s} {'seconds':>8s} {'threads':>8s} {'max RSS (GB)':>13s}")
    for name, row in rows.items():
        print(
            f"{name:14s} {row['pixels_per_second']:9.0f} {row['seconds']:8.1f} "
            f"{row['threads']:8d} {row['max_rss_gb']:13.2f}"
        )


def print_ratios(rows: dict[str, dict], args: argparse.Namespace) -> None:
    speed = {name: row["pixels_per_second"] for name, row in rows.items()}
    if "onnx" in speed and "eager" in speed:
        print(f"onnx engine vs eager PyTorch: {speed['onnx'] / speed['eager']:.2f}x")
    if "onnx" in speed:
        print(
            f"onnx engine vs reference eager figure ({REFERENCE_PIXELS_PER_SECOND:.0f} "
            f"pixels/s): {speed['onnx'] / REFERENCE_PIXELS_PER_SECOND:.1f}x"
        )
    if "maskedsst" in speed and "onnx" in speed:
        weights = args.dense_run or "untrained"
        print(
            f"maskedsst ({weights}) vs onnx FactoFormer: {speed['maskedsst'] / speed['onnx']:.2f}x"
        )


if __name__ == "__main__":
    main()
