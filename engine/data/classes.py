"""Class tables (value, name, colour) of the benchmark scenes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class ClassInfo:
    """One land-cover class: raster value (1..N), display name and ``#rrggbb`` colour."""

    value: int
    name: str
    color: str

    def __post_init__(self) -> None:
        if not isinstance(self.color, str) or not _COLOR.fullmatch(self.color):
            raise ValueError(
                f"class {self.value} ({self.name}) has colour {self.color!r}, not #rrggbb"
            )

    def rgb(self) -> tuple[int, int, int]:
        """Colour as an (r, g, b) tuple of 0-255 integers."""
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "name": self.name, "color": self.color}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClassInfo:
        return cls(int(values["value"]), str(values["name"]), str(values["color"]))


def make_classes(
    names: Sequence[str], colors: Sequence[str] | None = None
) -> tuple[ClassInfo, ...]:
    """Class table with values 1..N; colours default to :data:`DEFAULT_COLORS`, cycled."""
    colors = colors or [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(len(names))]
    return tuple(ClassInfo(i + 1, n, c) for i, (n, c) in enumerate(zip(names, colors, strict=True)))


# 20 well-separated colours for scenes without their own palette.
DEFAULT_COLORS = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#808080",
)

# Indian Pines in the order of the fixed SpectralFormer/miniGCN split (D. Hong), which is
# NOT the GIC order of Indian_pines_gt.mat. GIC value of each class: 2, 3, 4, 5, 6, 8, 10,
# 11, 12, 13, 14, 15, 16, 1, 7, 9 (shared/data/README.md).
INDIAN_PINES_CLASSES = make_classes(
    [
        "Corn-notill",
        "Corn-mintill",
        "Corn",
        "Grass-pasture",
        "Grass-trees",
        "Hay-windrowed",
        "Soybean-notill",
        "Soybean-mintill",
        "Soybean-clean",
        "Wheat",
        "Woods",
        "Buildings-Grass-Trees-Drives",
        "Stone-Steel-Towers",
        "Alfalfa",
        "Grass-pasture-mowed",
        "Oats",
    ],
    [
        "#e6a817",
        "#f4d03f",
        "#9a7d0a",
        "#82e0aa",
        "#27ae60",
        "#a04000",
        "#5dade2",
        "#2e86c1",
        "#1b4f72",
        "#f5cba7",
        "#145a32",
        "#7f8c8d",
        "#c0392b",
        "#a569bd",
        "#17a589",
        "#e59866",
    ],
)

# GIC value (1..16) -> value in the SpectralFormer split order above.
INDIAN_PINES_GIC_TO_SPLIT = {
    2: 1,
    3: 2,
    4: 3,
    5: 4,
    6: 5,
    8: 6,
    10: 7,
    11: 8,
    12: 9,
    13: 10,
    14: 11,
    15: 12,
    16: 13,
    1: 14,
    7: 15,
    9: 16,
}

PAVIA_UNIVERSITY_CLASSES = make_classes(
    [
        "Asphalt",
        "Meadows",
        "Gravel",
        "Trees",
        "Painted metal sheets",
        "Bare soil",
        "Bitumen",
        "Self-blocking bricks",
        "Shadows",
    ],
    [
        "#bfbfbf",
        "#3cb44b",
        "#c8a96e",
        "#145a32",
        "#f032e6",
        "#9a6324",
        "#4b0082",
        "#e6194b",
        "#000000",
    ],
)

HOUSTON2013_CLASSES = make_classes(
    [
        "Healthy grass",
        "Stressed grass",
        "Synthetic grass",
        "Trees",
        "Soil",
        "Water",
        "Residential",
        "Commercial",
        "Road",
        "Highway",
        "Railway",
        "Parking lot 1",
        "Parking lot 2",
        "Tennis court",
        "Running track",
    ],
)
