"""Whole-scene inference speed and memory: eager PyTorch vs the tiled ONNX engine.

Both classify every pixel of the bundled Indian Pines scene (145 x 145 x 200) with the
same FactoFormer weights, in separate processes (peak memory per variant):

* ``eager``: the PyTorch model in eval mode over lazily built patches, batch 256
  (how a research script predicts a scene; no file output).
* ``onnx``: ``TiledClassifier`` with ONNX Runtime (contrib attention, one single-threaded
  call per core, batches of 64), writing the styled class map and confidence GeoTIFFs.
* ``onnx-portable``: the same with a standard-ops-only ONNX export.

Usage: python benchmarks/bench_inference.py [--run runs/indian_pines-seed0] [--repeats 2]
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


def run_variant(variant: str, run_dir: Path, repeats: int) -> dict:
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
        from engine.export.onnx import export_onnx, metadata_from_run
        from engine.infer.classify import TiledClassifier
        from engine.infer.model import OnnxClassifier

        with tempfile.TemporaryDirectory() as tmp:
            ckpt, meta = metadata_from_run(run_dir, "bench")
            path = export_onnx(
                ckpt, meta, Path(tmp) / "m.onnx", portable=variant.endswith("portable")
            )
            model = OnnxClassifier(path)
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
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.run, args.repeats)))
        return
    rows = {}
    for variant in ("eager", "onnx-portable", "onnx"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--run",
            str(args.run),
            "--repeats",
            str(args.repeats),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rows[variant] = json.loads(out.strip().splitlines()[-1])
    print(f"Whole-scene inference, Indian Pines {PIXELS} pixels, best of {args.repeats}")
    print(f"{'variant':14s} {'pixels/s':>9s} {'seconds':>8s} {'threads':>8s} {'max RSS (GB)':>13s}")
    for name, row in rows.items():
        print(
            f"{name:14s} {row['pixels_per_second']:9.0f} {row['seconds']:8.1f} "
            f"{row['threads']:8d} {row['max_rss_gb']:13.2f}"
        )
    onnx, eager = rows["onnx"]["pixels_per_second"], rows["eager"]["pixels_per_second"]
    print(f"onnx engine vs eager PyTorch: {onnx / eager:.2f}x")
    print(
        f"onnx engine vs reference eager figure ({REFERENCE_PIXELS_PER_SECOND:.0f} pixels/s): "
        f"{onnx / REFERENCE_PIXELS_PER_SECOND:.1f}x"
    )


if __name__ == "__main__":
    main()
