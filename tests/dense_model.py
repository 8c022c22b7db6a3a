"""A tiny dense ONNX model (every pixel of a tile gets logits), exported from PyTorch.

It stands in for a MaskedSST in inference tests: input ``patches`` (N, bands, T, T),
output ``logits`` (N, classes, T, T), metadata ``prediction: "dense"``. A 1x1 convolution
mixes the bands, a 3x3 convolution with zero padding mixes neighbours, so a pixel's logits
depend on its neighbours and on where it lies in the tile (the tile border sees zeros):
inference without overlap and blending would show seams every T pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def build_dense_net(num_bands: int, num_classes: int, seed: int = 0, hidden: int = 8):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(num_bands, hidden, 1),
        nn.Tanh(),
        nn.Conv2d(hidden, num_classes, 3, padding=1),
    )
    with torch.no_grad():  # scores a few units apart, so the classes differ across the scene
        for conv in (net[0], net[2]):
            conv.weight.mul_(4.0)
    return net.eval()


def write_dense_model(
    path: Path,
    num_bands: int = 12,
    num_classes: int = 3,
    tile_size: int = 8,
    wavelengths_nm: list[float] | None = None,
    normalization=None,
    seed: int = 0,
    model_id: str = "dense",
) -> Path:
    """Export the net with dense-model metadata (min-max statistics default to 0..1)."""
    import onnx
    import torch

    from engine.data.classes import make_classes
    from engine.data.normalization import MinMaxNormalization
    from engine.metadata import ModelMetadata

    net = build_dense_net(num_bands, num_classes, seed)
    example = torch.zeros(2, num_bands, tile_size, tile_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["patches"],
            output_names=["logits"],
            dynamic_axes={"patches": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    if normalization is None:
        normalization = MinMaxNormalization(
            np.zeros(num_bands, np.float32),
            np.ones(num_bands, np.float32),
            np.full(num_bands, 0.5, np.float32),
        )
    meta = ModelMetadata(
        model_id=model_id,
        model_version="1.0.0",
        model_type="MaskedSST",
        architecture={
            "num_bands": num_bands,
            "num_classes": num_classes,
            "tile_size": tile_size,
            "net": "1x1 conv, tanh, 3x3 conv (test stand-in)",
        },
        band_names=tuple(f"band {b + 1}" for b in range(num_bands)),
        wavelengths_nm=tuple(wavelengths_nm) if wavelengths_nm else None,
        normalization=normalization,
        patch_size=tile_size,
        prediction="dense",
        tile_size=tile_size,
        classes=make_classes([f"Class {i + 1}" for i in range(num_classes)]),
        training={"dataset": "none (random weights)"},
    )
    proto = onnx.load(str(path))
    for key, value in meta.to_properties().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path
