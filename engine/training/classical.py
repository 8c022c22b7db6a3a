"""Random forest / SVM runs: fit, convert to ONNX, check, test, write the run folder.

A run folder holds ``model.onnx`` (the converted model with its full metadata; no pickle,
so loading it runs no code), ``config.json`` (config, search, provenance) and
``metrics.json`` (validation and test metrics). ``export`` copies the ONNX file with the
model id, version and description asked for.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..data.labels import renamed_classes
from ..data.training_set import TrainingSet
from ..errors import InputDataError, ModelLoadError
from ..evaluation import evaluate_pixels
from ..export.model_file import read_metadata, write_model
from ..infer.model import softmax
from ..metadata import ModelMetadata
from ..metrics import ClassificationMetrics
from ..models.classical import (
    INPUT_NAME,
    OUTPUT_NAME,
    ClassicalConfig,
    ClassicalFit,
    estimator_probabilities,
    fit_classical,
    spectra,
    to_onnx,
)
from ..progress import Feedback
from .checkpoint import CHECKPOINT_NAME

MODEL_NAME = "model.onnx"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"


@dataclass
class ClassicalRun:
    """A fitted and converted model, its metrics and where it was written."""

    fit: ClassicalFit
    proto: onnx.ModelProto
    metadata: ModelMetadata
    metrics: ClassificationMetrics | None
    validation: ClassificationMetrics | None = None
    output_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.fit.seconds


def run_classical(
    data: TrainingSet,
    config: ClassicalConfig,
    seed: int = 0,
    output_dir: str | os.PathLike[str] | None = None,
    threads: int = 1,
    feedback: Feedback | None = None,
    model_id: str | None = None,
) -> ClassicalRun:
    """Fit on ``data``'s training pixels, convert, then measure the ONNX graph.

    The converted graph is checked against scikit-learn on the training pixels (largest
    probability difference and share of equal classes, recorded in the metadata); the
    validation and test metrics are those of the ONNX graph, as the engine runs it.
    """
    if data.train is None:
        raise InputDataError(f"{data.name}: no training pixel")
    if data.patch_size != config.patch_size:
        raise ValueError(f"{config.model_type} reads single pixels, not {data.patch_size}² patches")
    fit = fit_classical(config, data.train, seed, threads, feedback)
    proto = to_onnx(fit.estimator, data.num_bands, data.num_classes)
    logits = graph_logits(proto)
    check = agreement(fit, logits, spectra(data.train), data.num_classes)
    metrics = evaluate_pixels(logits, data.test, data.num_classes) if data.test else None
    validation = None
    if data.validation is not None:
        validation = evaluate_pixels(logits, data.validation, data.num_classes)
    names = [c.name for c in data.classes]
    measured = {
        split: {k: v for k, v in m.to_dict(names).items() if k != "confusion_matrix"}
        for split, m in (("validation", validation), ("test", metrics))
        if m is not None
    }
    meta = ModelMetadata(
        model_id=model_id or f"{config.model_type.lower()}-{data.name}-seed{seed}",
        model_version="1.0.0",
        description="",
        model_type=config.model_type,
        architecture={
            "estimator": type(fit.estimator).__name__,
            **config.to_dict(),
            "hyperparameters": fit.params,
        },
        band_names=data.band_names,
        wavelengths_nm=data.wavelengths_nm,
        fwhm_nm=data.fwhm_nm,
        **_band_selection(data),
        normalization=data.normalization,
        patch_size=config.patch_size,
        classes=data.classes,
        training=training_record(data, fit, seed, check),
        metrics=measured,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        output_kind="log_probabilities",
    )
    run = ClassicalRun(fit, proto, meta, metrics, validation, notes=list(fit.notes))
    if output_dir is not None:
        run.output_dir = save_classical_run(output_dir, run)
    return run


def graph_logits(proto: onnx.ModelProto):  # -> MapLogits
    """Maps batches of patches to the graph's logits with ONNX Runtime (one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def map_logits(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for patches in batches:
            yield session.run([OUTPUT_NAME], {INPUT_NAME: patches})[0]

    return map_logits


def agreement(fit: ClassicalFit, logits, x: np.ndarray, num_classes: int) -> dict[str, Any]:
    """ONNX graph (through the engine's softmax) vs scikit-learn on spectra ``x``."""
    onnx_p = softmax(np.concatenate(list(logits([x[:, :, None, None]]))))
    sk_p = estimator_probabilities(fit.estimator, x, num_classes)
    return {
        "pixels": int(x.shape[0]),
        "max_probability_difference": float(np.abs(onnx_p - sk_p).max()),
        "same_class": float((onnx_p.argmax(1) == sk_p.argmax(1)).mean()),
    }


def training_record(
    data: TrainingSet, fit: ClassicalFit, seed: int, check: dict[str, Any]
) -> dict[str, Any]:
    """Provenance: data, split, search, seed, time, ONNX check and software."""
    import skl2onnx
    import sklearn

    return {
        "dataset": data.name,
        "source": data.source,
        "split": data.split,
        "train_pixels": len(data.train) if data.train is not None else 0,
        "seed": seed,
        "pretraining": None,
        "search": {
            "method": f"stratified {fit.folds}-fold cross-validation on the training pixels",
            "candidates": fit.search,
            "chosen": fit.params,
        },
        "onnx_check": check,
        "seconds": round(fit.seconds, 2),
        "notes": data.notes + data.warnings + fit.notes,
        "software": {
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
    }


def _band_selection(data: TrainingSet) -> dict[str, Any]:
    subset = data.bands.is_subset
    return {
        "raster_bands": data.bands.numbers if subset else None,
        "raster_band_count": data.bands.count if subset else None,
    }


def save_classical_run(output_dir: str | os.PathLike[str], run: ClassicalRun) -> Path:
    """Write ``model.onnx``, ``config.json`` and ``metrics.json``; returns the folder."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_model(run.proto, run.metadata, out / MODEL_NAME)
    config = {
        "model_type": run.metadata.model_type,
        "model": run.metadata.architecture,
        "training": run.metadata.training,
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    names = [c.name for c in run.metadata.classes]
    metrics = {
        split: m.to_dict(names)
        for split, m in (("validation", run.validation), ("test", run.metrics))
        if m is not None
    }
    (out / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def is_classical_run(path: str | os.PathLike[str]) -> bool:
    """True for a run folder written by :func:`save_classical_run`: its model is the ONNX
    file itself. A network's run keeps its checkpoint, beside any ONNX file exported into it."""
    return (Path(path) / MODEL_NAME).is_file() and not (Path(path) / CHECKPOINT_NAME).is_file()


def export_classical(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model_id: str,
    model_version: str = "1.0.0",
    description: str = "",
    classes_csv: str | os.PathLike[str] | None = None,
) -> Path:
    """Copy the run's ONNX model to ``output`` with a new id, version and description, and
    the class names (and colours) of ``classes_csv`` when given."""
    source = Path(run_dir) / MODEL_NAME
    if not source.is_file():
        raise ModelLoadError(f"{run_dir} is not a random forest / SVM run folder (no {MODEL_NAME})")
    proto, meta = read_metadata(source)
    meta = dataclasses.replace(
        meta, model_id=model_id, model_version=model_version, description=description
    )
    if classes_csv is not None:
        meta = dataclasses.replace(meta, classes=renamed_classes(meta.classes, classes_csv))
    return write_model(proto, meta, output)
