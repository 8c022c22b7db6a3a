"""A model's card as rich text, from its metadata alone (the dock's model picker shows it).

Pure: no QGIS, no file access, no model code. Every value from the metadata is escaped,
since class names come from users' layers.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .metadata import ModelMetadata

SPLITS = (("test", "Test"), ("validation", "Validation"))
MEASURES = (("overall_accuracy", "OA"), ("average_accuracy", "AA"), ("kappa", "kappa"))


def card_html(meta: ModelMetadata) -> str:
    """Bands, classes with colour swatches, accuracy and precision of ``meta`` as HTML."""
    lines = [
        f"<b>{escape(meta.model_id)}</b> ({escape(meta.model_type)} {escape(meta.model_version)})",
        escape(_data(meta)),
        escape(bands_text(meta)),
        *accuracy_lines(meta.metrics),
        f"Precision: {escape(meta.precision)}",
        "Classes: " + ", ".join(_swatch(c.color) + escape(c.name) for c in meta.classes),
    ]
    return "<br>".join(line for line in lines if line)


def bands_text(meta: ModelMetadata) -> str:
    """``"218 bands, 418–2445 nm"``, or the band count when no wavelengths are recorded."""
    count = f"{meta.num_bands} bands"
    if not meta.wavelengths_nm:
        return count + " (no wavelengths: matched by band count)"
    return f"{count}, {min(meta.wavelengths_nm):.0f}–{max(meta.wavelengths_nm):.0f} nm"


def accuracy_lines(metrics: dict[str, Any]) -> list[str]:
    """One line per split the metadata holds: OA, AA and kappa in %, where present."""
    lines = []
    for split, label in SPLITS:
        found = metrics.get(split) or {}
        parts = [
            f"{name} {100 * float(found[key]):.1f} %" for key, name in MEASURES if key in found
        ]
        if parts:
            pixels = f" ({int(found['pixels'])} pixels)" if "pixels" in found else ""
            lines.append(f"{label}: {', '.join(parts)}{pixels}")
    return lines


def _data(meta: ModelMetadata) -> str:
    dataset = meta.training.get("dataset")
    return meta.description or (f"Trained on {dataset}" if dataset else "")


def _swatch(color: str) -> str:
    return f"<span style='color:{escape(color)}'>&#9632;</span>&nbsp;"
