"""GDAL raster access: band descriptions, wavelengths, physical values, missing data, labels."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..errors import InputDataError, RasterReadError, first_line
from .files import is_virtual, open_failure_reason
from .vrt import DESCRIPTION, band_items, flagged_bad

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
    """What a raster says about its spectral bands (alpha bands are not spectral bands).

    Attributes:
        count: number of bands described.
        names: one name per band.
        wavelengths_nm: centre wavelengths; None unless every band has one.
        nodata: per-band no-data value (raw units) or None.
        numbers: GDAL band numbers (1-based) of these bands in the dataset.
        scale, offset: per-band GDAL scale and offset: physical = raw * scale + offset.
        bad: per band, True when the ENVI header's bad-band list (``bbl``) flags it.
        masks: per band, which GDAL mask band marks its missing pixels: ``"none"`` (all
            valid, or no-data value only, handled through ``nodata``), ``"dataset"``
            (per-dataset mask or alpha band) or ``"band"`` (the band's own mask).
        alpha: GDAL number of the dataset's alpha band (0 = transparent = missing), or None.
    """

    count: int
    names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None
    nodata: tuple[float | None, ...]
    numbers: tuple[int, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    bad: tuple[bool, ...]
    masks: tuple[str, ...]
    alpha: int | None = None

    @property
    def scaled(self) -> bool:
        """True when some band's scale/offset makes physical values differ from raw ones."""
        return any(s != 1 for s in self.scale) or any(o != 0 for o in self.offset)

    def subset(self, positions: Sequence[int]) -> BandInfo:
        """The bands at ``positions`` (0-based positions in this description)."""
        pick = list(positions)
        wavelengths = self.wavelengths_nm
        return BandInfo(
            count=len(pick),
            names=tuple(self.names[i] for i in pick),
            wavelengths_nm=tuple(wavelengths[i] for i in pick) if wavelengths else None,
            nodata=tuple(self.nodata[i] for i in pick),
            numbers=tuple(self.numbers[i] for i in pick),
            scale=tuple(self.scale[i] for i in pick),
            offset=tuple(self.offset[i] for i in pick),
            bad=tuple(self.bad[i] for i in pick),
            masks=tuple(self.masks[i] for i in pick),
            alpha=self.alpha,
        )

    def good(self) -> BandInfo:
        """The bands not flagged bad in the ENVI bad-band list."""
        return self.subset([i for i, bad in enumerate(self.bad) if not bad])


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
    """Describe the spectral bands of a dataset (every band except alpha bands).

    Raises :class:`InputDataError` for complex-valued bands and a malformed ``bbl``.
    """
    name = os.path.basename(ds.GetDescription())
    bad = _envi_bad_bands(ds, name)
    items = band_items(ds)  # band metadata, a VRT's taken from its source files
    alpha = [
        i
        for i in range(1, ds.RasterCount + 1)
        if ds.GetRasterBand(i).GetColorInterpretation() == gdal.GCI_AlphaBand
    ]
    numbers = [i for i in range(1, ds.RasterCount + 1) if i not in alpha]
    names, wavelengths, nodata, scale, offset, masks = [], [], [], [], [], []
    for i in numbers:
        band = ds.GetRasterBand(i)
        if gdal.DataTypeIsComplex(band.DataType):
            raise InputDataError(
                f"band {i} of {name} is complex-valued ({gdal.GetDataTypeName(band.DataType)}); "
                "classify real values (e.g. the amplitude) instead"
            )
        names.append(band.GetDescription() or items[i - 1].get(DESCRIPTION) or f"Band {i}")
        wavelengths.append(_band_wavelength_nm(ds, band, i) or _item_wavelength_nm(items[i - 1]))
        nodata.append(band.GetNoDataValue())
        scale.append(float(band.GetScale() if band.GetScale() is not None else 1.0))
        offset.append(float(band.GetOffset() or 0.0))
        masks.append(_mask_kind(band.GetMaskFlags()))
    complete = all(w is not None for w in wavelengths)
    return BandInfo(
        count=len(numbers),
        names=tuple(names),
        wavelengths_nm=tuple(float(w) for w in wavelengths) if complete else None,  # type: ignore[arg-type]
        nodata=tuple(nodata),
        numbers=tuple(numbers),
        scale=tuple(scale),
        offset=tuple(offset),
        bad=tuple((bool(bad) and bad[i - 1]) or flagged_bad(items[i - 1]) for i in numbers),
        masks=tuple(masks),
        alpha=alpha[0] if alpha else None,
    )


def _mask_kind(flags: int) -> str:
    """Which GDAL mask band, if any, must be read for a band with these mask flags."""
    if flags & gdal.GMF_ALL_VALID or flags == gdal.GMF_NODATA:
        return "none"  # a per-band no-data value is compared directly
    return "dataset" if flags & gdal.GMF_PER_DATASET else "band"


def _envi_bad_bands(ds: gdal.Dataset, name: str) -> list[bool] | None:
    """Per band, True when the ENVI header's ``bbl`` marks it bad (0); None without a bbl."""
    bbl = (ds.GetMetadata("ENVI") or {}).get("bbl")
    if not bbl:
        return None
    values = re.findall(r"[-+0-9.eE]+", bbl)
    if len(values) != ds.RasterCount:
        raise InputDataError(
            f"the bad-band list (bbl) of {name} has {len(values)} values for {ds.RasterCount} bands"
        )
    return [float(v) == 0 for v in values]


def read_window(
    ds: gdal.Dataset,
    info: BandInfo,
    col: int,
    row: int,
    width: int,
    height: int,
    physical: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Read the bands of ``info`` in a window; returns (values, has_data).

    values: (bands, height, width); physical values (``raw * scale + offset``, float32)
    when ``physical`` and a band is scaled, else the raw values in their own dtype.
    has_data: (height, width) bool, False where a band's data is missing: its no-data
    value, a NaN/infinite value, or a zero in a GDAL mask band (per-dataset, per-band
    or alpha).
    """
    try:
        block = ds.ReadAsArray(col, row, width, height, band_list=list(info.numbers))
        block = block.reshape(info.count, height, width)
        has_data = _has_data(ds, info, block, col, row, width, height)
    except RuntimeError as exc:
        raise RasterReadError(
            f"cannot read {os.path.basename(ds.GetDescription())} at pixel ({col}, {row}): "
            f"{first_line(exc)}"
        ) from None
    if physical and info.scaled:
        block = to_physical(block, info)
        has_data &= np.isfinite(block).all(axis=0)  # a scale can overflow float32
    return block, has_data


def to_physical(block: np.ndarray, info: BandInfo) -> np.ndarray:
    """float32 ``raw * scale + offset`` of a (bands, ...) block, per band."""
    shape = (info.count,) + (1,) * (block.ndim - 1)
    out = block.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf -> missing data
        out *= np.asarray(info.scale, dtype=np.float32).reshape(shape)
        out += np.asarray(info.offset, dtype=np.float32).reshape(shape)
    return out


def _has_data(
    ds: gdal.Dataset, info: BandInfo, block: np.ndarray, col: int, row: int, w: int, h: int
) -> np.ndarray:
    has_data = np.ones(block.shape[1:], dtype=bool)
    for b, nodata in enumerate(info.nodata):
        if nodata is not None and not np.isnan(nodata):  # NaN no-data: caught below
            has_data &= block[b] != nodata
    if block.dtype.kind == "f":
        has_data &= np.isfinite(block).all(axis=0)
    sources = [n for n, kind in zip(info.numbers, info.masks, strict=True) if kind == "band"]
    if "dataset" in info.masks:
        sources.append(info.numbers[info.masks.index("dataset")])
    if info.alpha is not None:  # GDAL makes alpha the mask only for 2- and 4-band rasters
        has_data &= ds.GetRasterBand(info.alpha).ReadAsArray(col, row, w, h) != 0
    for number in sources:
        has_data &= ds.GetRasterBand(number).GetMaskBand().ReadAsArray(col, row, w, h) != 0
    return has_data


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


def _item_wavelength_nm(items: dict[str, str]) -> float | None:
    """Wavelength (nm) from a band's ``wavelength``/``wavelength_units`` items, if any."""
    try:
        return _to_nm(float(items["wavelength"]), items.get("wavelength_units"))
    except (KeyError, ValueError):
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
