"""Accuracy of any patch classifier (PyTorch or ONNX) on a scene's labelled pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .data.prepared import PreparedScene
from .data.scenes import Scene
from .data.training_set import LabelledPixels
from .metrics import ClassificationMetrics, classification_metrics

# Maps batches of (n, bands, p, p) patches to their (n, classes) logits, in order.
MapLogits = Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]


def predict_pixels(
    map_logits: MapLogits,
    prepared: PreparedScene,
    rows: np.ndarray,
    cols: np.ndarray,
    batch_size: int = 64,
) -> np.ndarray:
    """Class values (1..N) of the pixels (rows[i], cols[i])."""
    starts = range(0, len(rows), batch_size)
    batches = (
        prepared.extractor(rows[i : i + batch_size], cols[i : i + batch_size]) for i in starts
    )
    out = np.empty(len(rows), dtype=np.int64)
    for first, logits in zip(starts, map_logits(batches), strict=True):
        out[first : first + batch_size] = logits.argmax(axis=1) + 1
    return out


def evaluate_labels(
    map_logits: MapLogits, prepared: PreparedScene, labels: np.ndarray, batch_size: int = 64
) -> ClassificationMetrics:
    """Metrics of the classifier on the labelled pixels (value > 0) of ``labels``."""
    rows, cols, values = Scene.pixels(labels)
    predicted = predict_pixels(map_logits, prepared, rows, cols, batch_size)
    return classification_metrics(values, predicted, prepared.scene.num_classes)


def evaluate_pixels(
    map_logits: MapLogits, pixels: LabelledPixels, num_classes: int, batch_size: int = 64
) -> ClassificationMetrics:
    """Metrics of the classifier on labelled pixels drawn from one or several tiles."""
    starts = range(0, len(pixels), batch_size)
    batches = (pixels.patches(np.arange(i, min(i + batch_size, len(pixels)))) for i in starts)
    predicted = np.concatenate([logits.argmax(axis=1) + 1 for logits in map_logits(batches)])
    return classification_metrics(pixels.values, predicted, num_classes)
