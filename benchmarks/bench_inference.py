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

Usage: python benchmarks/bench_inference.py [--run runs/indian_pines-seed0] [--repeats 2]
    [--dense-run runs/maskedsst-ip] [--variants onnx maskedsst]
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

REFERENCE_PIXELS_PER_SECOND = 181.0  # official FactoFormer code, eager, same machine kind
PIXELS = 145 * 145
VARIANTS = ("eager", "onnx-portable", "onnx", "maskedsst")


def export_variant(variant: str, run_dir: Path, dense_run: Path | None, path: Path) -> Path:
    """The ONNX model a variant runs, exported to ``path``."""
    from engine.export.onnx import build_metadata, export_onnx, metadata_from_run

    if variant != "maskedsst":
        ckpt, meta = metadata_from_run(run_dir, "bench")
        return export_onnx(ckpt, meta, path, portable=variant.endswith("portable"))
    if dense_run is not None:
        ckpt, meta = metadata_from_run(dense_run, "bench-maskedsst")
        return export_onnx(ckpt, meta, path)
    import torch

    from engine.config import MaskedSSTConfig
    from engine.models.maskedsst import MaskedSST
    from engine.training.checkpoint import Checkpoint, load_checkpoint

    base = load_checkpoint(run_dir)  # the scene's bands, statistics and classes
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


def run_variant(variant: str, run_dir: Path, repeats: int, dense_run: Path | None = None) -> dict:
    import numpy as np

    from engine.data.scenes import BUNDLED_INDIAN_PINES

    scene_path = BUNDLED_INDIAN_PINES / "indian_pines.tif"
    best = float("inf")
    if variant == "eager":
        import torch

        from engine.data.prepared import PreparedScene
        from engine.data.scenes import load_indian_pines
        from engine.evaluation import predict_pixels
        from engine.training.checkpoint import load_checkpoint
        from engine.training.trainer import configure_cpu, torch_logits

        configure_cpu()
        ckpt = load_checkpoint(run_dir)
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
        "pixels_per_second": PIXELS / best,
        "seconds": best,
        "threads": threads,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        type=Path,
        default=ROOT / "runs" / "indian_pines-seed0",
        help="training run folder whose weights are used",
    )
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings")
    parser.add_argument(
        "--dense-run",
        type=Path,
        help="MaskedSST training run for the maskedsst row (default: untrained, same size)",
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.run, args.repeats, args.dense_run)))
        return
    rows = {}
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--variant", variant, "--run", str(args.run)]
        cmd += ["--repeats", str(args.repeats)]
        if args.dense_run:
            cmd += ["--dense-run", str(args.dense_run)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rows[variant] = json.loads(out.strip().splitlines()[-1])
    print(f"Whole-scene inference, Indian Pines {PIXELS} pixels, best of {args.repeats}")
    print(f"{'variant':14s} {'pixels/s':>9s} {'seconds':>8s} {'threads':>8s} {'max RSS (GB)':>13s}")
    for name, row in rows.items():
        print(
            f"{name:14s} {row['pixels_per_second']:9.0f} {row['seconds']:8.1f} "
            f"{row['threads']:8d} {row['max_rss_gb']:13.2f}"
        )
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
