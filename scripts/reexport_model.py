"""Re-export a FactoFormer ONNX model with the current exporter, from its own weights.

Reads the weights back from the ONNX graph (no training run needed, no code executed),
exports them again with the engine's current graph (e.g. the last block computing only the
cls token) and keeps the metadata. Before replacing anything it classifies a raster with
both files and refuses (exit code 3) unless every pixel keeps its class and confidences
agree within ``--tolerance``. The output is written atomically; by default it replaces
the input.

Usage: python scripts/reexport_model.py models/factoformer_indian_pines.onnx
    [--output NEW.onnx] [--raster resources/indian_pines/indian_pines.tif]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osgeo import gdal  # noqa: E402

from engine.errors import EngineError  # noqa: E402
from engine.export.model_file import read_metadata  # noqa: E402
from engine.export.onnx import export_network  # noqa: E402
from engine.export.onnx_weights import factoformer_from_onnx  # noqa: E402
from engine.infer.classify import classify_raster  # noqa: E402

SCENE = ROOT / "resources" / "indian_pines" / "indian_pines.tif"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--output", type=Path, help="default: replace the input")
    parser.add_argument("--raster", type=Path, default=SCENE, help="raster for the check")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest confidence gap")
    args = parser.parse_args()
    try:
        proto, metadata = read_metadata(args.model)
        network = factoformer_from_onnx(proto, metadata)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or args.model
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        fresh = export_network(network, metadata, Path(tmp) / "model.onnx")
        same, gap = compare(args.model, fresh, args.raster, Path(tmp))
        print(
            f"{args.raster.name}: {same:.4%} of pixels keep their class, confidence gap {gap:.2e}"
        )
        if same < 1.0 or gap > args.tolerance:
            print("error: the re-exported model disagrees; nothing written", file=sys.stderr)
            return 3
        os.replace(fresh, output)
    print(f"wrote {output}")
    return 0


def compare(old: Path, new: Path, raster: Path, tmp: Path) -> tuple[float, float]:
    """Share of pixels with the same class, and the largest confidence gap, old vs new."""
    maps = []
    for name, model in (("old", old), ("new", new)):
        classes, confidence = tmp / f"{name}.tif", tmp / f"{name}_confidence.tif"
        classify_raster(raster, model, classes, confidence=confidence)
        maps.append([gdal.Open(str(p)).ReadAsArray() for p in (classes, confidence)])
    (old_classes, old_conf), (new_classes, new_conf) = maps
    return float(np.mean(old_classes == new_classes)), float(np.abs(old_conf - new_conf).max())


if __name__ == "__main__":
    sys.exit(main())
