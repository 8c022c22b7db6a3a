"""Export a trained FactoFormer (or 3D-CNN) to a self-describing ONNX file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from ..metadata import DENSE, ModelMetadata
from ..models import FactoFormer, Kernels
from ..models.registry import spec_for_config
from ..training.checkpoint import Checkpoint, load_checkpoint, load_metrics
from .model_file import write_model

OPSET = 17  # first opset with LayerNormalization
INPUT_NAME = "patches"
OUTPUT_NAME = "logits"


def build_metadata(
    checkpoint: Checkpoint,
    model_id: str,
    model_version: str = "1.0.0",
    metrics: dict[str, Any] | None = None,
    description: str = "",
) -> ModelMetadata:
    """Metadata of an exported checkpoint (metrics: e.g. the run's test metrics)."""
    return ModelMetadata(
        model_id=model_id,
        model_version=model_version,
        description=description,
        model_type=checkpoint.model_type,
        architecture=checkpoint.config.to_dict(),
        band_names=checkpoint.band_names,
        wavelengths_nm=checkpoint.wavelengths_nm,
        fwhm_nm=checkpoint.fwhm_nm,
        raster_bands=checkpoint.raster_bands,
        raster_band_count=checkpoint.raster_band_count,
        normalization=checkpoint.normalization,
        patch_size=checkpoint.config.patch_size,
        classes=checkpoint.classes,
        training=checkpoint.training,
        metrics=metrics or {},
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        **prediction_fields(checkpoint.config),
    )


def prediction_fields(config: Any) -> dict[str, Any]:
    """What a dense model's metadata adds: every pixel of a ``tile_size`` tile is predicted,
    the bands are read in blocks of ``spectral_block`` after ``band_padding`` zero bands
    (added inside the graph). Nothing for centre-pixel models."""
    if spec_for_config(config).family != "dense":
        return {}
    return {
        "prediction": DENSE,
        "tile_size": config.tile_size,
        "spectral_block": config.spectral_block,
        "band_padding": config.band_padding,
    }


def metadata_from_run(
    run_dir: str | os.PathLike[str],
    model_id: str,
    model_version: str = "1.0.0",
    description: str = "",
) -> tuple[Checkpoint, ModelMetadata]:
    """Checkpoint and metadata of a training run, with its validation and test metrics."""
    ckpt = load_checkpoint(run_dir)
    run_dir = Path(run_dir)
    found = load_metrics(run_dir if run_dir.is_dir() else run_dir.parent)
    metrics = {
        split: {k: v for k, v in found[split].items() if k != "confusion_matrix"}
        for split in ("validation", "test")
        if found.get(split)
    }
    return ckpt, build_metadata(ckpt, model_id, model_version, metrics, description)


def export_onnx(
    checkpoint: Checkpoint,
    metadata: ModelMetadata,
    path: str | os.PathLike[str],
    portable: bool = False,
) -> Path:
    """Write the checkpoint's model as ONNX (see :func:`export_network`)."""
    return export_network(checkpoint.model, metadata, path, portable)


def export_network(
    trained: torch.nn.Module,
    metadata: ModelMetadata,
    path: str | os.PathLike[str],
    portable: bool = False,
) -> Path:
    """Write a network as ONNX with a dynamic batch axis and ``metadata`` embedded.

    By default a FactoFormer's attention is one ``com.microsoft.MultiHeadAttention`` node
    per block, which ONNX Runtime runs 1.4x faster on CPU; ``portable=True`` uses standard
    ONNX ops only. The file is checked with the ONNX checker before it is moved into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = trained.config
    factoformer = isinstance(trained, FactoFormer)
    contrib = not portable and factoformer  # attention nodes
    if factoformer:
        model = FactoFormer(c, Kernels(ort_attention=contrib))
    else:
        model = spec_for_config(c).build(c)
    model.load_state_dict(trained.state_dict())
    model.eval()
    example = torch.zeros(2, c.num_bands, c.patch_size, c.patch_size)
    tmp = path.with_name(f".{path.name}.partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            custom_opsets={"com.microsoft": 1} if contrib else {},
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    tmp.unlink()
    return write_model(proto, metadata, path)


def max_logit_difference(
    checkpoint: Checkpoint, onnx_path: str | os.PathLike[str], patches: np.ndarray
) -> float:
    """Largest |logit| difference between PyTorch and ONNX Runtime on ``patches``."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = checkpoint.model.eval()(torch.from_numpy(patches)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: patches})[0]
    return float(np.abs(expected - actual).max())
