"""Per-band input normalisations (min-max, standardisation) whose statistics travel with
the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

PHYSICAL = "physical"  # GDAL scale/offset applied: raw * scale + offset (what loaders return)
RAW = "raw"  # the stored numbers, scale/offset ignored (models exported before schema 2)
VALUE_KINDS = (PHYSICAL, RAW)
MINMAX, STANDARD = "minmax", "standard"
METHODS = (MINMAX, STANDARD)
METHOD_NAMES = {MINMAX: "min-max", STANDARD: "standardisation (mean, std)"}


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
    method: ClassVar[str] = MINMAX

    @classmethod
    def fit(cls, cube: np.ndarray, valid: np.ndarray | None = None) -> MinMaxNormalization:
        """Statistics of a (bands, rows, cols) cube over its valid pixels."""
        pixels = _valid_pixels(cube, valid)
        minimum = pixels.min(axis=0)
        maximum = pixels.max(axis=0)
        span = np.where(maximum > minimum, maximum - minimum, 1.0)
        fill = (pixels.mean(axis=0) - minimum) / span
        return cls(minimum.astype(np.float32), maximum.astype(np.float32), fill.astype(np.float32))

    @property
    def num_bands(self) -> int:
        return int(self.minimum.shape[0])

    @property
    def lower(self) -> np.ndarray:
        """(bands,) the training minimum, normalised: 0."""
        return np.zeros(self.num_bands, dtype=np.float32)

    @property
    def upper(self) -> np.ndarray:
        """(bands,) the training maximum, normalised: 1."""
        return np.ones(self.num_bands, dtype=np.float32)

    def apply(self, values: np.ndarray, band_axis: int = 0) -> np.ndarray:
        """Normalise an array whose ``band_axis`` holds the bands; returns float32."""
        shape = _band_shape(values.ndim, band_axis, self.num_bands)
        minimum = self.minimum.reshape(shape)
        span = np.where(self.maximum > self.minimum, self.maximum - self.minimum, np.float32(1))
        return (values.astype(np.float32) - minimum) / span.astype(np.float32).reshape(shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "values": self.values,
            "minimum": [float(v) for v in self.minimum],
            "maximum": [float(v) for v in self.maximum],
            "fill": [float(v) for v in self.fill],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinMaxNormalization:
        """Statistics from :meth:`to_dict`; a dict without ``values`` describes raw values."""
        if values.get("method") != MINMAX:
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


@dataclass(frozen=True)
class StandardNormalization:
    """Maps each band to zero mean and unit standard deviation over the training pixels.

    MaskedSST's official input: its per-token LayerNorm then sees each token's spectrum
    relative to the training scene's mean spectrum. The training range is kept for the
    check of a raster's values against it.

    Attributes:
        mean, std: (bands,) per-band mean and standard deviation of the training pixels
            (a constant band gets std 1).
        minimum, maximum: (bands,) per-band range of the training pixels.
        values: :data:`PHYSICAL` or :data:`RAW`, as for :class:`MinMaxNormalization`.
    """

    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    values: str = PHYSICAL
    method: ClassVar[str] = STANDARD

    @classmethod
    def fit(cls, cube: np.ndarray, valid: np.ndarray | None = None) -> StandardNormalization:
        """Statistics of a (bands, rows, cols) cube over its valid pixels."""
        pixels = _valid_pixels(cube, valid)
        return cls.from_moments(
            pixels.min(axis=0), pixels.max(axis=0), pixels.mean(axis=0), pixels.std(axis=0)
        )

    @classmethod
    def from_moments(
        cls, minimum: np.ndarray, maximum: np.ndarray, mean: np.ndarray, std: np.ndarray
    ) -> StandardNormalization:
        """From per-band range, mean and standard deviation (float64 or float32)."""
        std = np.where(std > 0, std, 1.0)
        arrays = (mean, std, minimum, maximum)
        return cls(*(np.asarray(a, dtype=np.float32) for a in arrays))

    @property
    def num_bands(self) -> int:
        return int(self.mean.shape[0])

    @property
    def fill(self) -> np.ndarray:
        """(bands,) the normalised training mean spectrum: zeros."""
        return np.zeros(self.num_bands, dtype=np.float32)

    @property
    def lower(self) -> np.ndarray:
        """(bands,) the training minimum, normalised."""
        return (self.minimum - self.mean) / self.std

    @property
    def upper(self) -> np.ndarray:
        """(bands,) the training maximum, normalised."""
        return (self.maximum - self.mean) / self.std

    def apply(self, values: np.ndarray, band_axis: int = 0) -> np.ndarray:
        """Normalise an array whose ``band_axis`` holds the bands; returns float32."""
        shape = _band_shape(values.ndim, band_axis, self.num_bands)
        return (values.astype(np.float32) - self.mean.reshape(shape)) / self.std.reshape(shape)

    def to_dict(self) -> dict[str, Any]:
        lists = {k: [float(v) for v in getattr(self, k)] for k in _STANDARD_ARRAYS}
        return {"method": self.method, "values": self.values, **lists}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StandardNormalization:
        """Statistics from :meth:`to_dict`."""
        kind = values.get("values", PHYSICAL)
        if kind not in VALUE_KINDS:
            raise ValueError(f"normalisation values must be one of {VALUE_KINDS}, not {kind!r}")
        arrays = [np.asarray(values[k], dtype=np.float32) for k in _STANDARD_ARRAYS]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError(
                "normalisation mean, std, minimum and maximum must be equal-length lists"
            )
        return cls(*arrays, values=kind)

    def problems(self) -> list[str]:
        """What makes these statistics unusable (non-finite values, std not positive,
        maximum below minimum)."""
        found = []
        for name in _STANDARD_ARRAYS:
            bad = np.flatnonzero(~np.isfinite(getattr(self, name)))
            if bad.size:
                found.append(f"normalisation {name} of band {bad[0] + 1} is not finite")
        below = np.flatnonzero(~(self.std > 0))
        if below.size:
            found.append(f"normalisation std of band {below[0] + 1} is not positive")
        below = np.flatnonzero(self.maximum < self.minimum)
        if below.size:
            found.append(f"normalisation maximum of band {below[0] + 1} is below its minimum")
        return found


_STANDARD_ARRAYS = ("mean", "std", "minimum", "maximum")
# Either normalisation: both offer fill, lower, upper, apply, to_dict, problems.
Normalization = MinMaxNormalization | StandardNormalization
_CLASSES = {MINMAX: MinMaxNormalization, STANDARD: StandardNormalization}


def check_method(method: str) -> None:
    """Refuse a normalisation method other than :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"normalisation method must be one of {METHODS}, not {method!r}")


def fit_normalization(
    method: str, cube: np.ndarray, valid: np.ndarray | None = None
) -> Normalization:
    """``method``'s statistics of a (bands, rows, cols) cube over its valid pixels."""
    check_method(method)
    return _CLASSES[method].fit(cube, valid)


def normalization_from_dict(values: dict[str, Any]) -> Normalization:
    """The normalisation a ``to_dict`` describes (its ``method``)."""
    method = values.get("method")
    if method not in _CLASSES:
        raise ValueError(f"unsupported normalisation method {method!r}")
    return _CLASSES[method].from_dict(values)


def _valid_pixels(cube: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """(pixels, bands) float64 values of a (bands, rows, cols) cube where ``valid``."""
    pixels = cube.reshape(cube.shape[0], -1).T
    if valid is not None:
        pixels = pixels[valid.reshape(-1)]
    return pixels.astype(np.float64)


def _band_shape(ndim: int, band_axis: int, bands: int) -> list[int]:
    """The shape that broadcasts a (bands,) vector along ``band_axis`` of ``ndim`` axes."""
    shape = [1] * ndim
    shape[band_axis] = bands
    return shape
