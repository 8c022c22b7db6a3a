"""Accuracy metrics of a classification: OA, AA, Cohen's kappa, per-class accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics computed from a confusion matrix (rows = reference, columns = predicted).

    Per-class accuracy is the producer's accuracy (recall). AA averages it over classes
    that have reference pixels. Reference pixels that got no class at all (no-data in the
    map) are kept in ``unclassified`` and count as errors.
    """

    confusion: np.ndarray  # (classes, classes) int64
    unclassified: np.ndarray  # (classes,) int64: reference pixels predicted as no class

    @property
    def support(self) -> np.ndarray:
        """(classes,) reference pixels per class."""
        return self.confusion.sum(axis=1) + self.unclassified

    @property
    def total(self) -> int:
        return int(self.support.sum())

    @property
    def overall_accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.total, 1))

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """(classes,) recall; NaN for classes without reference pixels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / self.support.astype(np.float64)

    @property
    def average_accuracy(self) -> float:
        return float(np.nanmean(self.per_class_accuracy))

    @property
    def kappa(self) -> float:
        """Cohen's kappa; "no class" is an extra predicted category that no reference has."""
        n = self.total
        if n == 0:
            return float("nan")
        observed = np.trace(self.confusion) / n
        expected = float(self.confusion.sum(axis=0) @ self.support) / (n * n)
        return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict: accuracies as fractions in [0, 1] and the confusion matrix."""
        per_class = [None if np.isnan(v) else float(v) for v in self.per_class_accuracy]
        out: dict[str, Any] = {
            "overall_accuracy": self.overall_accuracy,
            "average_accuracy": self.average_accuracy,
            "kappa": self.kappa,
            "pixels": self.total,
            "per_class_accuracy": per_class,
            "confusion_matrix": self.confusion.tolist(),
            "unclassified": self.unclassified.tolist(),
        }
        if class_names is not None:
            out["class_names"] = list(class_names)
        return out

    def summary(self) -> str:
        """One line with OA, AA and kappa in percent."""
        return (
            f"OA {100 * self.overall_accuracy:.2f}  AA {100 * self.average_accuracy:.2f}  "
            f"kappa {100 * self.kappa:.2f}  ({self.total} pixels)"
        )


def classification_metrics(
    reference: np.ndarray, predicted: np.ndarray, num_classes: int
) -> ClassificationMetrics:
    """Metrics of ``predicted`` against ``reference`` (class values 1..num_classes).

    Pixels with reference 0 are ignored. Predictions outside 1..num_classes (0 = no-data)
    count as "unclassified" errors.
    """
    reference = np.asarray(reference).ravel().astype(np.int64)
    predicted = np.asarray(predicted).ravel().astype(np.int64)
    keep = reference > 0
    reference, predicted = reference[keep] - 1, predicted[keep] - 1
    if reference.size and reference.max() >= num_classes:
        raise ValueError(f"reference holds class {reference.max() + 1} but there are {num_classes}")
    predicted = np.where((predicted >= 0) & (predicted < num_classes), predicted, num_classes)
    counts = np.bincount(
        reference * (num_classes + 1) + predicted, minlength=num_classes * (num_classes + 1)
    ).reshape(num_classes, num_classes + 1)
    return ClassificationMetrics(counts[:, :num_classes], counts[:, num_classes])
