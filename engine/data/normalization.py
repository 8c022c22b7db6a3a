"""Per-band min-max normalisation whose statistics travel with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MinMaxNormalization:
    """Maps each band linearly so that the training scene's range becomes [0, 1].

    FactoFormer normalises each band by the minimum and maximum of the whole training
    scene. The same statistics are applied to every raster the model classifies.

    Attributes:
        minimum: (bands,) per-band minimum of the training scene.
        maximum: (bands,) per-band maximum of the training scene.
        fill: (bands,) normalised value used for no-data pixels inside a patch's context
            (the training scene's mean spectrum).
    """

    minimum: np.ndarray
    maximum: np.ndarray
    fill: np.ndarray

    @classmethod
    def fit(cls, cube: np.ndarray, valid: np.ndarray | None = None) -> MinMaxNormalization:
        """Statistics of a (bands, rows, cols) cube over its valid pixels."""
        pixels = cube.reshape(cube.shape[0], -1).T
        if valid is not None:
            pixels = pixels[valid.reshape(-1)]
        pixels = pixels.astype(np.float64)
        minimum = pixels.min(axis=0)
        maximum = pixels.max(axis=0)
        span = np.where(maximum > minimum, maximum - minimum, 1.0)
        fill = (pixels.mean(axis=0) - minimum) / span
        return cls(minimum.astype(np.float32), maximum.astype(np.float32), fill.astype(np.float32))

    @property
    def num_bands(self) -> int:
        return int(self.minimum.shape[0])

    def apply(self, values: np.ndarray, band_axis: int = 0) -> np.ndarray:
        """Normalise an array whose ``band_axis`` holds the bands; returns float32."""
        shape = [1] * values.ndim
        shape[band_axis] = self.num_bands
        minimum = self.minimum.reshape(shape)
        span = np.where(self.maximum > self.minimum, self.maximum - self.minimum, np.float32(1))
        return (values.astype(np.float32) - minimum) / span.astype(np.float32).reshape(shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "minmax",
            "minimum": [float(v) for v in self.minimum],
            "maximum": [float(v) for v in self.maximum],
            "fill": [float(v) for v in self.fill],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinMaxNormalization:
        if values.get("method") != "minmax":
            raise ValueError(f"unsupported normalisation method {values.get('method')!r}")
        arrays = [np.asarray(values[k], dtype=np.float32) for k in ("minimum", "maximum", "fill")]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError("normalisation minimum, maximum and fill must be equal-length lists")
        return cls(*arrays)
