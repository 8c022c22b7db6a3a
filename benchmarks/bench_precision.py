"""Whole-scene inference by precision: fp32 against int8, side by side in one process.

Every variant classifies all 21,025 pixels of the bundled Indian Pines scene with the engine
(``classify_raster``: tiles, class map and confidence GeoTIFFs), batches of 64, ``--workers``
single-threaded ONNX Runtime calls in flight; the variants take turns, best of
``--repeats``. Variants, all made from the shipped model:

* ``fp32-before``: the reference for the ratios, the shipped weights exported as before
  2026-11-24, every token through every block (``all_tokens_export``).
* ``fp32``: ``models/factoformer_indian_pines.onnx``, whose last block of each branch
  computes the cls token's output only (the only one the classifier reads).
* ``int8``: ``python -m engine quantize`` (dynamic quantisation of MatMul/Gemm).
* ``int8-static``: for comparison only, static quantisation of the same layers (QDQ,
  per-tensor min-max scales calibrated on the 695 training pixels, never test pixels).

Printed per variant: pixels/s of wall time and of process CPU time, ratio to fp32-before, OA on the
9,671 test pixels, the share of the scene's pixels that keep the fp32-before class, and the share
that keep their class when the batch size is 37 instead of 64 (int8 quantises activations
with one scale per batch, so a pixel's class can depend on its batch). The fp32
limit is a large float32 matmul's rate (torch, ``--workers`` threads, measured in the same
run) divided by the model's matmul FLOPs per pixel, counted from its architecture.

Usage: python benchmarks/bench_precision.py [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import SHIPPED_MODEL  # noqa: E402
from engine.data.scenes import BUNDLED_INDIAN_PINES  # noqa: E402

SCENE = BUNDLED_INDIAN_PINES / "indian_pines.tif"
PIXELS = 145 * 145
BATCH = 64
BEFORE = "fp32-before"  # the ratios' reference: every token through the last block


def matmul_flops_per_pixel(arch: dict, cls_only_last: bool = True) -> tuple[float, float]:
    """(all matmul FLOPs, attention-score FLOPs QK^T and AV) of one FactoFormer pixel.

    Pixel branch: P*P tokens (each pixel's spectrum) + cls; band branch: one token per band
    (its P*P patch) + cls. Per block: qkv, Q K^T, A V, projection, two MLP layers; then the
    fusion and head layers. ``cls_only_last``: the last block of each branch asks only the
    cls token's query (keys and values of all tokens), as the engine exports it. A
    multiply-add counts 2 FLOPs.
    """
    p2, bands = arch["patch_size"] ** 2, arch["num_bands"]
    total = attention = 0.0
    for tokens, width, dim, depth, hidden in (
        (p2, bands, arch["pixel_dim"], arch["pixel_depth"], arch["pixel_mlp_hidden"]),
        (bands, p2, arch["band_dim"], arch["band_depth"], arch["band_mlp_hidden"]),
    ):
        n = tokens + 1
        total += tokens * width * dim
        for block in range(depth):
            q = 1 if cls_only_last and block == depth - 1 else n  # queries asked
            scores = 2 * q * n * dim
            total += n * dim * 2 * dim + q * dim * dim + scores + q * (dim * dim + 2 * dim * hidden)
            attention += scores
    fused = arch["pixel_dim"] + arch["band_dim"]
    total += fused * arch["fusion_dim"] + arch["fusion_dim"] * arch["num_classes"]
    return 2 * total, 2 * attention


def all_tokens_export(source: Path, path: Path) -> Path:
    """The model as exported before the cls-only last block: every token through every
    block (same weights, read back from ``source``)."""
    import torch

    from engine.export.model_file import read_metadata
    from engine.export.onnx import export_network
    from engine.export.onnx_weights import factoformer_from_onnx
    from engine.models import FactoFormer

    class AllTokens(FactoFormer):
        def forward_features(self, patches):  # type: ignore[no-untyped-def]
            cls = [
                encoder.forward_features(encoder.embed_tokens(tokens))[:, 0]
                for encoder, tokens in (
                    (self.pixel_encoder, self.pixel_tokens(patches)),
                    (self.band_encoder, self.band_tokens(patches)),
                )
            ]
            return self.fusion(torch.cat(cls, dim=1))

    proto, meta = read_metadata(source)
    trained = factoformer_from_onnx(proto, meta)
    network = AllTokens(trained.config)
    network.load_state_dict(trained.state_dict())
    return export_network(network, meta, path)


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of an n x n matmul with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def static_int8(source: Path, path: Path) -> Path:
    """Static QDQ int8 of MatMul/Gemm, scales calibrated on the scene's training pixels."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from engine.data.prepared import PreparedScene
    from engine.data.scenes import load_indian_pines
    from engine.export.model_file import read_metadata, write_model

    _, meta = read_metadata(source)
    scene = load_indian_pines()
    rows, cols, _ = scene.pixels(scene.train_labels)  # training pixels only
    patches = PreparedScene.from_scene(scene, 7, meta.normalization).extractor(rows, cols)

    class TrainingPixels(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(patches[i : i + BATCH] for i in range(0, len(patches), BATCH))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {meta.input_name: batch}

    raw = path.with_name("static_raw.onnx")
    logging.disable(logging.WARNING)  # the quantiser's pre-processing advice
    quantize_static(
        source,
        raw,
        TrainingPixels(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    logging.disable(logging.NOTSET)
    import onnx

    details = {"method": "static QDQ, min-max on training pixels (benchmark only)"}
    return write_model(
        onnx.load(str(raw)), dataclasses.replace(meta, precision="int8", quantization=details), path
    )


def time_classify(model, out: Path, batch_size: int = BATCH) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one whole-scene classification."""
    from engine.infer.classify import classify_raster

    wall, cpu = time.perf_counter(), time.process_time()
    classify_raster(
        SCENE, model, out, confidence=out.with_name(f"{out.stem}_conf.tif"), batch_size=batch_size
    )
    return time.perf_counter() - wall, time.process_time() - cpu


def test_accuracy(model) -> float:
    from engine.data.prepared import PreparedScene
    from engine.data.scenes import load_indian_pines
    from engine.evaluation import evaluate_labels

    scene = load_indian_pines()
    prepared = PreparedScene.from_scene(scene, 7, model.metadata.normalization)
    return evaluate_labels(model.map_logits, prepared, scene.test_labels, BATCH).overall_accuracy


def read_classes(path: Path) -> np.ndarray:
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings per variant")
    parser.add_argument("--workers", type=int, default=2, help="ONNX Runtime calls in flight")
    args = parser.parse_args()

    from engine.export.precision import quantize_model
    from engine.infer.model import OnnxClassifier

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            BEFORE: all_tokens_export(SHIPPED_MODEL, tmp / "all_tokens.onnx"),
            "fp32": SHIPPED_MODEL,
            "int8": quantize_model(SHIPPED_MODEL, tmp / "int8.onnx"),
            "int8-static": static_int8(SHIPPED_MODEL, tmp / "int8_static.onnx"),
        }
        models = {name: OnnxClassifier(path, workers=args.workers) for name, path in files.items()}
        peak = matmul_peak(args.workers)
        wall = {name: float("inf") for name in models}
        cpu = dict(wall)
        for _ in range(args.repeats):
            for name, model in models.items():
                w, c = time_classify(model, tmp / f"{name}.tif")
                wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
        maps = {name: read_classes(tmp / f"{name}.tif") for name in models}
        same = {name: float((maps[name] == maps[BEFORE]).mean()) for name in models}
        batch_stable = {}
        for name, model in models.items():
            time_classify(model, tmp / f"{name}_b37.tif", batch_size=37)
            batch_stable[name] = float((read_classes(tmp / f"{name}_b37.tif") == maps[name]).mean())
        oa = {name: test_accuracy(model) for name, model in models.items()}
    load_after = os.getloadavg()[0]

    arch = models["fp32"].metadata.architecture
    before_flops, _ = matmul_flops_per_pixel(arch, cls_only_last=False)
    flops, attention = matmul_flops_per_pixel(arch)
    print(
        f"Whole-scene inference by precision, Indian Pines {PIXELS} pixels, batch {BATCH}, "
        f"{args.workers} single-threaded ONNX Runtime calls, best of {args.repeats}"
    )
    print(f"load average (1 min) before {load_before:.1f}, after {load_after:.1f}")
    header = f"{'variant':12s} {'px/s':>7s} {'ratio':>6s} {'px/CPU-s':>9s} {'ratio':>6s}"
    print(header + f" {'test OA %':>9s} {'same class':>10s} {'batch 37':>9s}")
    for name in models:
        print(
            f"{name:12s} {PIXELS / wall[name]:7.0f} {wall[BEFORE] / wall[name]:6.2f} "
            f"{PIXELS / cpu[name]:9.0f} {cpu[BEFORE] / cpu[name]:6.2f} "
            f"{100 * oa[name]:9.2f} {100 * same[name]:9.2f}% {100 * batch_stable[name]:8.2f}%"
        )
    limit = peak / flops
    print(
        f"matmul FLOPs per pixel {flops / 1e6:.1f} M, {before_flops / 1e6:.1f} M before "
        f"(attention scores QK^T and AV {attention / 1e6:.1f} M = "
        f"{100 * attention / flops:.0f} %, float32 in every variant)"
    )
    print(
        f"fp32 matmul peak ({args.workers} threads, torch 2048^2) {peak / 1e9:.0f} GFLOP/s -> "
        f"fp32 limit {limit:.0f} px/s; fp32 reaches {100 * PIXELS / wall['fp32'] / limit:.0f} %"
    )


if __name__ == "__main__":
    main()
