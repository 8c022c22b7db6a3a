"""OA, AA and kappa against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from engine.metrics import classification_metrics


def test_metrics_on_hand_computed_confusion_matrix():
    # Reference/prediction pairs giving the confusion matrix [[3, 1], [2, 4]].
    reference = np.array([1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0])
    predicted = np.array([1, 1, 1, 2, 1, 1, 2, 2, 2, 2, 1, 2])
    m = classification_metrics(reference, predicted, num_classes=2)
    assert m.confusion.tolist() == [[3, 1], [2, 4]]
    assert m.overall_accuracy == pytest.approx(0.7)
    assert m.per_class_accuracy.tolist() == pytest.approx([0.75, 4 / 6])
    assert m.average_accuracy == pytest.approx((0.75 + 4 / 6) / 2)
    # po = 0.7, pe = (5*4 + 5*6) / 100 = 0.5 -> kappa = 0.4
    assert m.kappa == pytest.approx(0.4)


def test_unclassified_pixels_count_as_errors():
    m = classification_metrics(np.array([1, 1, 2, 2]), np.array([1, 0, 2, 2]), num_classes=2)
    assert m.total == 4
    assert m.overall_accuracy == pytest.approx(0.75)
    assert m.per_class_accuracy.tolist() == pytest.approx([0.5, 1.0])
    assert m.unclassified.tolist() == [1, 0]


def test_classes_without_reference_are_left_out_of_aa():
    m = classification_metrics(np.array([1, 1]), np.array([1, 3]), num_classes=3)
    assert np.isnan(m.per_class_accuracy[1])
    assert m.average_accuracy == pytest.approx(0.5)
    assert m.to_dict()["per_class_accuracy"][1] is None


def test_reference_class_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="class 3"):
        classification_metrics(np.array([3]), np.array([1]), num_classes=2)
