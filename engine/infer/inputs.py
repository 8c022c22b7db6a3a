"""Checks on what a run classifies: the user mask's grid, input values against training."""

from __future__ import annotations

import os

import numpy as np
from osgeo import gdal, osr

from ..data.normalization import Normalization
from ..data.raster import open_raster
from ..errors import InputDataError

FAR_OUTSIDE = 0.25  # a value this fraction of the training span beyond the training range
LARGE_SHARE = 0.25  # warn when at least this share of the valid pixels is far outside
EARLY_PIXELS = 10_000  # valid pixels seen before warning in the middle of a run


def open_mask(path: str | os.PathLike[str], ds: gdal.Dataset) -> gdal.Dataset:
    """Open a user mask and check it lies on the raster's grid; one-line errors."""
    mask = open_raster(path)
    name, raster = os.path.basename(os.fspath(path)), os.path.basename(ds.GetDescription())
    if mask.RasterCount != 1:
        raise InputDataError(
            f"mask {name} has {mask.RasterCount} bands; a mask needs exactly 1 (0 = skip pixel)"
        )
    size, expected = (mask.RasterXSize, mask.RasterYSize), (ds.RasterXSize, ds.RasterYSize)
    if size != expected:
        raise InputDataError(
            f"mask {name} is {size[0]}x{size[1]} pixels, the raster {expected[0]}x{expected[1]}"
        )
    mask_srs, raster_srs = mask.GetSpatialRef(), ds.GetSpatialRef()
    if mask_srs is not None and raster_srs is not None and not _same_crs(mask_srs, raster_srs):
        raise InputDataError(
            f"mask {name} is in another CRS ({_crs_name(mask_srs)}) than {raster} "
            f"({_crs_name(raster_srs)}); reproject it onto the raster's grid"
        )
    shift = _grid_shift(mask, ds)
    if shift > 0.5:
        raise InputDataError(
            f"mask {name} is not on the grid of {raster}: its corners are up to {shift:.1f} "
            "pixels off; resample it onto the raster's grid"
        )
    return mask


def read_user_mask(mask: gdal.Dataset, col: int, row: int, width: int, height: int) -> np.ndarray:
    """(height, width) bool: True where the mask lets the pixel be classified (not 0/no-data)."""
    band = mask.GetRasterBand(1)
    values = band.ReadAsArray(col, row, width, height)
    keep = values != 0
    nodata = band.GetNoDataValue()
    if nodata is not None:
        keep &= values != nodata
    if values.dtype.kind == "f":
        keep &= np.isfinite(values)
    return keep


def _same_crs(a: osr.SpatialReference, b: osr.SpatialReference) -> bool:
    return bool(a.IsSame(b, ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"]))


def _crs_name(srs: osr.SpatialReference) -> str:
    code = srs.GetAuthorityCode(None)
    return f"{srs.GetAuthorityName(None)}:{code}" if code else srs.GetName() or "unnamed"


def _grid_shift(mask: gdal.Dataset, ds: gdal.Dataset) -> float:
    """Largest distance, in raster pixels, between corresponding corners of the two grids.

    0 when either dataset has no geotransform (only the pixel grid can be compared).
    """
    mask_gt = mask.GetGeoTransform(can_return_null=True)
    raster_gt = ds.GetGeoTransform(can_return_null=True)
    if mask_gt is None or raster_gt is None:
        return 0.0
    inverse = gdal.InvGeoTransform(raster_gt)
    if inverse is None:
        return 0.0
    worst = 0.0
    for col in (0, ds.RasterXSize):
        for row in (0, ds.RasterYSize):
            x, y = gdal.ApplyGeoTransform(mask_gt, col, row)
            c, r = gdal.ApplyGeoTransform(inverse, x, y)
            worst = max(worst, abs(c - col), abs(r - row))
    return worst


class RangeMonitor:
    """Counts valid pixels whose values lie far outside the model's training range.

    A pixel is far outside when more than half of its bands, normalised with the model's
    statistics, lie more than ``FAR_OUTSIDE`` times the band's training range below its
    training minimum or above its maximum (for min-max statistics: below ``-FAR_OUTSIDE``
    or above ``1 + FAR_OUTSIDE``). Typical causes: 8-bit data given to a model trained on
    16-bit radiance, or reflectance 0-1 given to a model trained on reflectance x 10000.
    """

    def __init__(self, normalization: Normalization, model_id: str, raster: str) -> None:
        self.normalization = normalization
        span = normalization.upper - normalization.lower
        self.below = (normalization.lower - FAR_OUTSIDE * span)[:, None, None]
        self.above = (normalization.upper + FAR_OUTSIDE * span)[:, None, None]
        self.model_id = model_id
        self.raster = raster
        self.valid = 0
        self.far = 0
        self.low = np.inf
        self.high = -np.inf
        self.warned = False

    def add(self, values: np.ndarray, normalized: np.ndarray, valid: np.ndarray) -> None:
        """Account for (bands, rows, cols) input and normalised values where ``valid``."""
        if not valid.any():
            return
        outside = (normalized < self.below) | (normalized > self.above)
        far = 2 * outside.sum(axis=0, dtype=np.int32) > normalized.shape[0]
        self.valid += int(valid.sum())
        self.far += int((far & valid).sum())
        self.low = min(self.low, float(values.min(axis=0)[valid].min()))
        self.high = max(self.high, float(values.max(axis=0)[valid].max()))

    def counts(self) -> tuple[int, int, float, float]:
        """(valid, far outside, lowest, highest value) so far, for :meth:`merge`."""
        return self.valid, self.far, self.low, self.high

    def merge(self, counts: tuple[int, int, float, float]) -> None:
        """Add another monitor's :meth:`counts` (a block of the raster read elsewhere)."""
        valid, far, low, high = counts
        self.valid, self.far = self.valid + valid, self.far + far
        self.low, self.high = min(self.low, low), max(self.high, high)

    def warning(self, final: bool = False) -> str | None:
        """The warning to report, once, when a large share of pixels is far outside.

        Before the end of a run (``final`` False) it waits for :data:`EARLY_PIXELS`.
        """
        if self.warned or self.valid == 0 or (not final and self.valid < EARLY_PIXELS):
            return None
        share = self.far / self.valid
        if share < LARGE_SHARE:
            return None
        self.warned = True
        norm = self.normalization
        return (
            f"{100 * share:.0f}% of the {self.valid} valid pixels of {self.raster} read so far "
            f"lie far outside the values model {self.model_id} was trained on: input values "
            f"{self.low:g} to {self.high:g}, training {float(norm.minimum.min()):g} to "
            f"{float(norm.maximum.max()):g} ({norm.values} values); the classes are unreliable. "
            "Check the raster's units (scale/offset; e.g. reflectance 0-1 against x10000, "
            "8-bit against 16-bit)"
        )
