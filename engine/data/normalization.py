"""Per-band min-max normalisation whose statistics travel with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PHYSICAL = "physical"  # GDAL scale/offset applied: raw * scale + offset (what loaders return)
RAW = "raw"  # the stored numbers, scale/offset ignored (models exported before schema 2)
VALUE_KINDS = (PHYSICAL, RAW)


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
        values: which values the statistics describe: :data:`PHYSICAL` (GDAL scale and
            offset applied, as every scene loader does) or :data:`RAW` (older models).
    """

    minimum: np.ndarray
    maximum: np.ndarray
    fill: np.ndarray
    values: str = PHYSICAL

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
            "values": self.values,
            "minimum": [float(v) for v in self.minimum],
            "maximum": [float(v) for v in self.maximum],
            "fill": [float(v) for v in self.fill],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinMaxNormalization:
        """Statistics from :meth:`to_dict`; a dict without ``values`` describes raw values."""
        if values.get("method") != "minmax":
            raise ValueError(f"unsupported normalisation method {values.get('method')!r}")
        kind = values.get("values", RAW)
        if kind not in VALUE_KINDS:
            raise ValueError(f"normalisation values must be one of {VALUE_KINDS}, not {kind!r}")
        arrays = [np.asarray(values[k], dtype=np.float32) for k in ("minimum", "maximum", "fill")]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError("normalisation minimum, maximum and fill must be equal-length lists")
        return cls(*arrays, values=kind)

    def problems(self) -> list[str]:
        """What makes these statistics unusable (non-finite values, maximum below minimum)."""
        found = []
        for name in ("minimum", "maximum", "fill"):
            bad = np.flatnonzero(~np.isfinite(getattr(self, name)))
            if bad.size:
                found.append(f"normalisation {name} of band {bad[0] + 1} is not finite")
        below = np.flatnonzero(self.maximum < self.minimum)
        if below.size:
            found.append(f"normalisation maximum of band {below[0] + 1} is below its minimum")
        return found
