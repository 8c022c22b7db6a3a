"""A hand-built ONNX classifier whose answer is known in advance (no training needed).

The model reads band 1 of each patch's centre pixel, normalised to x in [0, 1] (minimum 0,
maximum 1), and scores class k (k = 0..N-1) as ``(N - 1) * k * x - k**2 / 2``: the best
class is k = round(x * (N - 1)), so a pixel whose band-1 value is j / (N - 1) gets class
j + 1. Any number of classes, bands and patch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_linear_model(
    path: Path,
    num_classes: int,
    num_bands: int = 2,
    patch_size: int = 3,
    colors: list[str] | None = None,
    model_id: str = "linear",
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from engine.data.classes import make_classes
    from engine.data.normalization import MinMaxNormalization
    from engine.metadata import ModelMetadata

    half = patch_size // 2
    k = np.arange(num_classes, dtype=np.float32)
    weights = np.zeros((num_bands, num_classes), dtype=np.float32)
    weights[0] = (num_classes - 1) * k
    consts = {
        "starts": np.array([half, half], dtype=np.int64),
        "ends": np.array([half + 1, half + 1], dtype=np.int64),
        "axes": np.array([2, 3], dtype=np.int64),
        "weights": weights,
        "bias": -(k**2) / 2,
    }
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["patches", "starts", "ends", "axes"], ["centre"]),
            helper.make_node("Flatten", ["centre"], ["spectra"], axis=1),
            helper.make_node("MatMul", ["spectra", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
        ],
        "linear",
        [
            helper.make_tensor_value_info(
                "patches", TensorProto.FLOAT, ["batch", num_bands, patch_size, patch_size]
            )
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        initializer=[numpy_helper.from_array(v, name) for name, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    names = [f"Class {i + 1}" for i in range(num_classes)]
    meta = ModelMetadata(
        model_id=model_id,
        model_version="1.0.0",
        architecture={
            "num_bands": num_bands,
            "num_classes": num_classes,
            "patch_size": patch_size,
        },
        band_names=tuple(f"band {b + 1}" for b in range(num_bands)),
        wavelengths_nm=None,
        normalization=MinMaxNormalization(
            np.zeros(num_bands, np.float32),
            np.ones(num_bands, np.float32),
            np.full(num_bands, 0.5, np.float32),
        ),
        patch_size=patch_size,
        classes=make_classes(names) if colors is None else _raw_classes(names, colors),
        training={"dataset": "none (hand-built)"},
    )
    props = meta.to_properties()
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _raw_classes(names: list[str], colors: list[str]):
    """Class entries that bypass ClassInfo's own checks (to write invalid metadata)."""

    class Entry:
        def __init__(self, value: int, name: str, color: str) -> None:
            self.value, self.name, self.color = value, name, color

        def to_dict(self) -> dict:
            return {"value": self.value, "name": self.name, "color": self.color}

    return tuple(Entry(i + 1, n, c) for i, (n, c) in enumerate(zip(names, colors, strict=True)))


def band1_values(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Band-1 values that make the model answer ``classes`` (1..N) at each pixel."""
    return ((classes - 1) / (num_classes - 1)).astype(np.float32)
