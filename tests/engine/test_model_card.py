"""The model card: what the dock's picker shows about a model, from its metadata alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.data.classes import ClassInfo
from engine.data.normalization import MinMaxNormalization
from engine.metadata import ModelMetadata
from engine.model_card import accuracy_lines, bands_text, card_html


def metadata(**changes) -> ModelMetadata:
    bands = 3
    meta = ModelMetadata(
        model_id="potsdam",
        model_version="1.0.0",
        architecture={"num_bands": bands, "num_classes": 2, "patch_size": 1},
        band_names=("b1", "b2", "b3"),
        wavelengths_nm=(2445.2, 418.4, 1000.0),
        normalization=MinMaxNormalization(
            np.zeros(bands, np.float32), np.ones(bands, np.float32), np.zeros(bands, np.float32)
        ),
        patch_size=1,
        classes=(ClassInfo(1, "Roof <b>", "#ff0000"), ClassInfo(2, "Water", "#0000ff")),
        training={"dataset": "enmap_train"},
        metrics={
            "validation": {"overall_accuracy": 0.5, "average_accuracy": 0.25, "pixels": 40},
            "test": {"overall_accuracy": 0.8123, "average_accuracy": 0.7, "kappa": 0.66},
        },
    )
    return dataclasses.replace(meta, **changes)


def test_bands_give_count_and_wavelength_range_or_say_they_are_matched_by_count():
    assert bands_text(metadata()) == "3 bands, 418–2445 nm"
    no_wavelengths = bands_text(metadata(wavelengths_nm=None))
    assert no_wavelengths == "3 bands (no wavelengths: matched by band count)"


def test_accuracy_lists_each_split_with_the_measures_it_holds():
    assert accuracy_lines(metadata().metrics) == [
        "Test: OA 81.2 %, AA 70.0 %, kappa 66.0 %",
        "Validation: OA 50.0 %, AA 25.0 % (40 pixels)",
    ]
    assert accuracy_lines({}) == []
    assert accuracy_lines({"test": {"pixels": 3}}) == []


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_card_shows_classes_with_swatches_escaped_names_and_precision(precision):
    card = card_html(metadata(precision=precision))
    assert "<span style='color:#ff0000'>&#9632;</span>&nbsp;Roof &lt;b&gt;" in card
    assert "<span style='color:#0000ff'>&#9632;</span>&nbsp;Water" in card
    assert f"Precision: {precision}" in card
    assert "Trained on enmap_train" in card
    assert "3 bands, 418–2445 nm" in card and "Test: OA 81.2 %" in card
    assert "<b>potsdam</b>" in card and "Roof <b>" not in card


@pytest.mark.parametrize(
    ("name", "model_type", "prediction"),
    [("factoformer", "FactoFormer", "centre"), ("maskedsst", "MaskedSST", "dense")],
)
def test_the_shipped_enmap_models_describe_their_sensor_and_classes(name, model_type, prediction):
    from helpers import REPO

    from engine.infer.model import OnnxClassifier

    meta = OnnxClassifier(REPO / "models" / f"{name}_enmap_potsdam.onnx").metadata
    assert meta.model_type == model_type and meta.prediction == prediction
    assert [c.name for c in meta.classes] == [
        "roof",
        "pavement",
        "low vegetation",
        "tree",
        "soil",
        "water",
    ]
    assert meta.num_bands == 218 and len(meta.wavelengths_nm) == 218
    assert 418 < meta.wavelengths_nm[0] < 419 and 2445 < meta.wavelengths_nm[-1] < 2446
