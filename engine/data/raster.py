"""GDAL raster access: opening, band descriptions, wavelengths, no-data and labels."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import RasterReadError, first_line
from .files import is_virtual, open_failure_reason

gdal.UseExceptions()

# Factors to nanometres for the units GDAL/ENVI headers use.
_WAVELENGTH_UNITS_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "micrometer": 1e3,
    "micrometers": 1e3,
    "micrometre": 1e3,
    "micrometres": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimeters": 1e6,
}


@dataclass(frozen=True)
class BandInfo:
    """What a raster says about its bands."""

    count: int
    names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None  # None unless every band has one
    nodata: tuple[float | None, ...]


def open_raster(path: str | os.PathLike[str]) -> gdal.Dataset:
    """Open a raster read-only, or raise :class:`RasterReadError` with a one-line reason."""
    path = os.fspath(path)  # a string, verbatim: GDAL names (/vsizip//..., HDF5:...) included
    if not is_virtual(path) and not os.path.exists(path):
        raise RasterReadError(f"raster not found: {path}")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        reason = None if is_virtual(path) else open_failure_reason(path)
        raise RasterReadError(
            reason or f"cannot open {path} as a raster: {first_line(exc)}"
        ) from None
    if ds is None or ds.RasterCount == 0:
        subdatasets = ds.GetSubDatasets() if ds is not None else []
        if subdatasets:
            raise RasterReadError(
                f"{path} holds {len(subdatasets)} subdatasets; give one of them, e.g. "
                f"{subdatasets[0][0]}"
            )
        raise RasterReadError(f"{path} contains no raster bands")
    return ds


def band_info(ds: gdal.Dataset) -> BandInfo:
    """Band names, centre wavelengths (nm) and per-band no-data values of a dataset."""
    names, wavelengths, nodata = [], [], []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        names.append(band.GetDescription() or f"Band {i}")
        wavelengths.append(_band_wavelength_nm(ds, band, i))
        nodata.append(band.GetNoDataValue())
    complete = all(w is not None for w in wavelengths)
    return BandInfo(
        count=ds.RasterCount,
        names=tuple(names),
        wavelengths_nm=tuple(float(w) for w in wavelengths) if complete else None,  # type: ignore[arg-type]
        nodata=tuple(nodata),
    )


def _band_wavelength_nm(ds: gdal.Dataset, band: gdal.Band, index: int) -> float | None:
    """Centre wavelength of one band in nm, from the metadata conventions GDAL exposes."""
    imagery = band.GetMetadata("IMAGERY") or {}
    if "CENTRAL_WAVELENGTH_UM" in imagery:
        return float(imagery["CENTRAL_WAVELENGTH_UM"]) * 1e3
    for domain in ("", "ENVI"):
        md = band.GetMetadata(domain) or {}
        if "wavelength" in md:
            units = md.get("wavelength_units") or ds.GetMetadataItem("wavelength_units", domain)
            return _to_nm(float(md["wavelength"]), units)
    envi = ds.GetMetadata("ENVI") or {}
    if "wavelength" in envi:
        values = [float(v) for v in re.findall(r"[-+0-9.eE]+", envi["wavelength"])]
        if len(values) == ds.RasterCount:
            return _to_nm(values[index - 1], envi.get("wavelength_units"))
    return None


def _to_nm(value: float, units: str | None) -> float:
    if units:
        factor = _WAVELENGTH_UNITS_TO_NM.get(units.strip().lower())
        if factor is not None:
            return value * factor
    return value * 1e3 if value < 100 else value  # unitless: small values are micrometres


def read_label_raster(path: str | os.PathLike[str]) -> np.ndarray:
    """Read band 1 of a label raster as int32 (0 = unlabelled, no-data -> 0)."""
    ds = open_raster(path)
    band = ds.GetRasterBand(1)
    labels = band.ReadAsArray()
    nodata = band.GetNoDataValue()
    out = np.zeros(labels.shape, dtype=np.int32)
    valid = np.isfinite(labels) if labels.dtype.kind == "f" else np.ones(labels.shape, bool)
    if nodata is not None:
        valid &= labels != nodata
    out[valid] = labels[valid].astype(np.int32)
    if (out < 0).any():
        raise RasterReadError(f"{path}: label values must be >= 0 (0 = unlabelled)")
    return out


def category_names(path: str | os.PathLike[str]) -> list[str] | None:
    """Category names of band 1 (index = raster value), or None when the raster has none."""
    ds = open_raster(path)
    ds.GetGeoTransform()  # GDAL 3.6 GTiff loads the .aux.xml lazily, not for category names
    names = ds.GetRasterBand(1).GetCategoryNames()
    return list(names) if names else None
