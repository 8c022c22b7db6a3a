"""Read a FactoFormer's weights back from its exported ONNX graph (data only, no code runs).

Used to re-export a model with a newer exporter (e.g. a faster graph) without its
training run: the graph's initializers are the weights. Named initializers map directly
to state-dict entries; the exporter folds each ``nn.Linear`` weight into an anonymous,
transposed ``MatMul`` constant, which is identified by the bias its product is added to
(``<layer>.bias``). ``Gemm`` nodes carry their weight's own name.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..config import FactoFormerConfig
from ..errors import ModelLoadError
from ..metadata import ModelMetadata
from ..models import FactoFormer
from ..training.checkpoint import Checkpoint
from .model_file import read_metadata


def factoformer_from_onnx(proto: onnx.ModelProto, metadata: ModelMetadata) -> FactoFormer:
    """The FactoFormer whose weights ``proto`` holds (eval mode).

    Raises:
        ModelLoadError: the graph is not a FactoFormer export, or its weights do not fill
            the architecture its metadata describes.
    """
    if metadata.model_type != "FactoFormer":
        raise ModelLoadError(f"{metadata.model_id} is a {metadata.model_type}, not a FactoFormer")
    model = FactoFormer(FactoFormerConfig.from_dict(metadata.architecture)).eval()
    state = onnx_state_dict(proto)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing or any(state[k].shape != v.shape for k, v in expected.items() if k in state):
        raise ModelLoadError(
            f"{metadata.model_id}: the ONNX weights do not match its architecture "
            f"(missing: {', '.join(missing[:3]) or 'none'})"
        )
    model.load_state_dict({k: state[k] for k in expected})
    return model


def checkpoint_from_onnx(path: str) -> Checkpoint:
    """A FactoFormer ONNX file as a checkpoint (weights, bands, statistics, classes), for
    tools that need the PyTorch model of a shipped file without its training run."""
    proto, meta = read_metadata(path)
    return Checkpoint(
        model=factoformer_from_onnx(proto, meta),
        normalization=meta.normalization,
        classes=meta.classes,
        band_names=meta.band_names,
        wavelengths_nm=meta.wavelengths_nm,
        training=meta.training,
        fwhm_nm=meta.fwhm_nm,
        raster_bands=meta.raster_bands,
        raster_band_count=meta.raster_band_count,
    )


def onnx_state_dict(proto: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """State-dict entries recovered from the graph's initializers (see module docstring)."""
    arrays = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = {name: arr for name, arr in arrays.items() if not name.startswith("onnx::")}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in proto.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays:
            continue
        bias = _bias_added_to(node.output[0], consumers, arrays)
        if bias is not None:
            state[bias.removesuffix(".bias") + ".weight"] = arrays[node.input[1]].T
    return {name: torch.from_numpy(np.array(arr)) for name, arr in state.items()}


def _bias_added_to(
    output: str, consumers: dict[str, list[onnx.NodeProto]], arrays: dict[str, np.ndarray]
) -> str | None:
    """Name of the ``*.bias`` initializer an ``Add`` adds to ``output``, if any."""
    for node in consumers.get(output, []):
        if node.op_type == "Add":
            names = [n for n in node.input if n != output and n.endswith(".bias")]
            if names and names[0] in arrays:
                return names[0]
    return None
