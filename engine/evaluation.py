"""Accuracy of any patch classifier (PyTorch or ONNX) on a scene's labelled pixels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .data.prepared import PreparedScene
from .data.scenes import Scene
from .metrics import ClassificationMetrics, classification_metrics

LogitsFn = Callable[[np.ndarray], np.ndarray]  # (n, bands, p, p) -> (n, classes)


def predict_pixels(
    logits: LogitsFn,
    prepared: PreparedScene,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Class values (1..N) of the pixels (rows[i], cols[i])."""
    out = np.empty(len(rows), dtype=np.int64)
    for first in range(0, len(rows), batch_size):
        sl = slice(first, first + batch_size)
        out[sl] = logits(prepared.extractor(rows[sl], cols[sl])).argmax(axis=1) + 1
    return out


def evaluate_labels(
    logits: LogitsFn, prepared: PreparedScene, labels: np.ndarray, batch_size: int = 256
) -> ClassificationMetrics:
    """Metrics of the classifier on the labelled pixels (value > 0) of ``labels``."""
    rows, cols, values = Scene.pixels(labels)
    predicted = predict_pixels(logits, prepared, rows, cols, batch_size)
    return classification_metrics(values, predicted, prepared.scene.num_classes)
