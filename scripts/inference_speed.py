"""Whole-scene inference speed of an ONNX model, measured as the baselines study measures it.

Usage: python scripts/inference_speed.py MODEL.onnx --name factoformer [--output FILE.json]

Classifies the bundled Indian Pines scene (145 x 145 pixels) with the engine (batches of
64, one single-threaded ONNX Runtime call per core) and records pixels per second, for
models whose study results carry no speed (FactoFormer, MaskedSST). The speed does not
depend on the weights, so any trained model of the architecture will do (e.g. the shipped
one). Writes the JSON read by ``scripts/baselines_table.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.infer.classify import DEFAULT_BATCH_SIZE, classify_raster  # noqa: E402
from engine.infer.model import OnnxClassifier  # noqa: E402
from engine.pretraining.run import hardware  # noqa: E402

BUNDLED_SCENE = ROOT / "resources" / "indian_pines" / "indian_pines.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--name", required=True, help="model name in the tables (factoformer)")
    parser.add_argument("--output", type=Path, help="default: results/speed/<name>.json")
    args = parser.parse_args()
    output = args.output or ROOT / "results" / "speed" / f"{args.name}.json"
    classifier = OnnxClassifier(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        report = classify_raster(BUNDLED_SCENE, classifier, Path(tmp) / "classes.tif")
    record = {
        "model": args.name,
        "model_type": classifier.metadata.model_type,
        "onnx": args.model.name,
        "inference": {
            "raster": BUNDLED_SCENE.name,
            "pixels": report.classified_pixels,
            "seconds": round(report.seconds, 3),
            "pixels_per_second": round(report.pixels_per_second, 1),
            "batch_size": DEFAULT_BATCH_SIZE,
            "onnx_runtime_calls_in_flight": classifier.workers,
        },
        "hardware": hardware(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{args.name}: {report.pixels_per_second:.0f} px/s -> {output}")


if __name__ == "__main__":
    main()
