"""Accuracy assessment of a class map against reference labels (no QGIS).

The error matrix has map classes as rows and reference classes as columns (the
convention of Olofsson et al. 2014). Reference pixels whose map pixel holds no class
(0 or no-data) are counted as errors in OA, PA, AA and kappa, exactly as
:func:`engine.metrics.classification_metrics` does, and are left out of the
area-adjusted (stratified) estimates, which need a map class as stratum.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr

from .data.raster import open_raster
from .data.vector_labels import field_position, open_layer
from .errors import InputDataError

gdal.UseExceptions()
ogr.UseExceptions()

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
_ROWS_PER_BLOCK = 512


@dataclass(frozen=True)
class StratifiedEstimate:
    """Area-adjusted accuracy and class areas (Olofsson et al. 2014, eqs. 2-11).

    ``proportions`` is p_ij = W_i n_ij / n_i. (rows map, columns reference); a map class
    without reference samples contributes nothing. Intervals are 95 % half-widths.
    """

    proportions: np.ndarray
    overall_accuracy: float
    overall_accuracy_ci: float
    users_accuracy: np.ndarray
    users_accuracy_ci: np.ndarray
    producers_accuracy: np.ndarray
    producers_accuracy_ci: np.ndarray
    area_proportion: np.ndarray
    area_proportion_ci: np.ndarray


def stratified_estimate(counts: np.ndarray, mapped: np.ndarray) -> StratifiedEstimate:
    """Stratified estimators from sample ``counts`` (map x reference) and ``mapped`` sizes.

    ``mapped[i]`` is the mapped area (or pixel count) of class i; W_i = mapped_i / sum.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(mapped, dtype=np.float64) / max(float(np.sum(mapped)), 1.0)
    n_i = counts.sum(axis=1)
    sampled = n_i > 0
    share = np.divide(counts, n_i[:, None], out=np.zeros_like(counts), where=sampled[:, None])
    p = weights[:, None] * share
    ua = np.where(sampled, np.diag(share), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_term = share * (1 - share) / np.maximum(n_i - 1, 1)[:, None]  # per cell, eq. 10
        ua_var = np.where(sampled, np.diag(var_term), np.nan)
        pa = np.diag(p) / p.sum(axis=0)
    oa_var = float(np.nansum(weights**2 * ua_var))  # eq. 5
    cell_var = weights[:, None] ** 2 * var_term  # W_i^2 s_ij (1 - s_ij) / (n_i. - 1)
    area_var = cell_var.sum(axis=0)  # eq. 10
    own = np.diag(cell_var)
    with np.errstate(invalid="ignore", divide="ignore"):  # eq. 7, with W_i for N_i.
        pa_var = ((1 - pa) ** 2 * own + pa**2 * (area_var - own)) / p.sum(axis=0) ** 2
    return StratifiedEstimate(
        proportions=p,
        overall_accuracy=float(np.trace(p)),
        overall_accuracy_ci=Z95 * oa_var**0.5,
        users_accuracy=ua,
        users_accuracy_ci=Z95 * np.sqrt(ua_var),
        producers_accuracy=pa,
        producers_accuracy_ci=Z95 * np.sqrt(pa_var),
        area_proportion=p.sum(axis=0),
        area_proportion_ci=Z95 * np.sqrt(area_var),
    )


@dataclass(frozen=True)
class Assessment:
    """Counts of one assessment and every figure derived from them.

    counts: (k, k) reference pixels per (map class, reference class); unclassified: (k,)
    reference pixels of each class that the map left without class; mapped: (k,) pixels
    of each class in the whole map; pixel_area_ha: None when the CRS is not projected in
    metres (``area_note`` says why).
    """

    values: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[str | None, ...]
    counts: np.ndarray
    unclassified: np.ndarray
    mapped: np.ndarray
    pixel_area_ha: float | None
    area_note: str

    @property
    def reference_total(self) -> np.ndarray:
        """(k,) reference pixels per class, unclassified ones included."""
        return self.counts.sum(axis=0) + self.unclassified

    @property
    def total(self) -> int:
        return int(self.reference_total.sum())

    @property
    def overall_accuracy(self) -> float:
        return float(np.trace(self.counts) / max(self.total, 1))

    @property
    def producers_accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.counts) / self.reference_total

    @property
    def users_accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.counts) / self.counts.sum(axis=1)

    @property
    def f1(self) -> np.ndarray:
        """Harmonic mean of UA and PA, i.e. 2 n_ii / (map total + reference total)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2 * np.diag(self.counts) / (self.counts.sum(axis=1) + self.reference_total)

    @property
    def average_accuracy(self) -> float:
        return float(np.nanmean(self.producers_accuracy))

    @property
    def kappa(self) -> float:
        n = self.total
        if n == 0:
            return float("nan")
        expected = float(self.counts.sum(axis=1) @ self.reference_total) / (n * n)
        return (self.overall_accuracy - expected) / (1 - expected) if expected < 1 else 1.0

    @property
    def mapped_area_ha(self) -> np.ndarray | None:
        return None if self.pixel_area_ha is None else self.mapped * self.pixel_area_ha

    @property
    def stratified(self) -> StratifiedEstimate:
        return stratified_estimate(self.counts, self.mapped)


def assess(
    class_map: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    class_field: str | None = None,
    layer: str | int | None = None,
) -> Assessment:
    """Assess ``class_map`` against a label raster, or a vector file when ``class_field``.

    A vector reference (any OGR source) is rasterised
    onto the map's grid (pixel centres inside polygons, the pixel under each point).
    ``layer`` names (or, as an int, numbers) one of its layers; default the first.
    """
    map_ds = open_raster(class_map)
    map_ds.GetGeoTransform()  # GDAL 3.6 GTiff loads the .aux.xml (category names) lazily
    names, colors = _class_table(map_ds.GetRasterBand(1))
    if class_field:
        ref_ds = _rasterise(reference, class_field, layer, map_ds, names)
    else:
        ref_ds = open_raster(reference)
        _check_same_grid(map_ds, ref_ds, os.path.basename(os.fspath(reference)))
    joint, mapped_all = _count(map_ds, ref_ds)
    present = sorted(v for v in set(mapped_all) | {r for _, r in joint} if v > 0)
    index = {v: i for i, v in enumerate(present)}
    k = len(present)
    counts, unclassified = np.zeros((k, k), np.int64), np.zeros(k, np.int64)
    for (m, r), n in joint.items():
        if m in index:
            counts[index[m], index[r]] += n
        else:
            unclassified[index[r]] += n
    if counts.sum() + unclassified.sum() == 0:
        raise InputDataError("the reference labels no pixel of the class map (no overlap)")
    area, note = pixel_area_ha(map_ds)
    return Assessment(
        values=tuple(present),
        names=tuple(names.get(v) or f"class {v}" for v in present),
        colors=tuple(colors.get(v) for v in present),
        counts=counts,
        unclassified=unclassified,
        mapped=np.array([mapped_all.get(v, 0) for v in present], np.int64),
        pixel_area_ha=area,
        area_note=note,
    )


def pixel_area_ha(ds: gdal.Dataset) -> tuple[float | None, str]:
    """Pixel area in hectares when the CRS is projected in metres, else (None, reason)."""
    srs = ds.GetSpatialRef()
    if srs is None or not srs.IsProjected():
        return None, "not projected"
    if abs(srs.GetLinearUnits() - 1.0) > 1e-9:
        return None, f"projected in {srs.GetLinearUnitsName()}, not metres"
    gt = ds.GetGeoTransform()
    return abs(gt[1] * gt[5] - gt[2] * gt[4]) / 1e4, "hectares"


def _class_table(band: gdal.Band) -> tuple[dict[int, str], dict[int, str]]:
    """Names and #rrggbb colours of a class band (value 0 is no class)."""
    names = {v: n for v, n in enumerate(band.GetCategoryNames() or []) if n and v > 0}
    table = band.GetColorTable()
    colors = {}
    if table is not None:
        for v in range(1, table.GetCount()):
            r, g, b, _ = table.GetColorEntry(v)
            colors[v] = f"#{r:02x}{g:02x}{b:02x}"
    return names, colors


def _count(map_ds: gdal.Dataset, ref_ds: gdal.Dataset) -> tuple[dict, dict]:
    """Joint (map, reference) counts over labelled pixels and map class counts, by block."""
    mband, rband = map_ds.GetRasterBand(1), ref_ds.GetRasterBand(1)
    joint: dict[tuple[int, int], int] = {}
    mapped: dict[int, int] = {}
    for row in range(0, map_ds.RasterYSize, _ROWS_PER_BLOCK):
        rows = min(_ROWS_PER_BLOCK, map_ds.RasterYSize - row)
        m = _classes(mband, row, rows)
        r = _classes(rband, row, rows)
        for v, n in zip(*np.unique(m, return_counts=True), strict=True):
            mapped[int(v)] = mapped.get(int(v), 0) + int(n)
        keep = r > 0
        pairs = np.stack([m[keep], r[keep]])
        if pairs.size:
            uniq, n = np.unique(pairs, axis=1, return_counts=True)
            for (a, b), c in zip(uniq.T, n, strict=True):
                joint[(int(a), int(b))] = joint.get((int(a), int(b)), 0) + int(c)
    return joint, mapped


def _classes(band: gdal.Band, row: int, rows: int) -> np.ndarray:
    """Integer classes of a block; no-data, NaN and negative values become 0."""
    data = band.ReadAsArray(0, row, band.XSize, rows)
    valid = np.isfinite(data) if data.dtype.kind == "f" else np.ones(data.shape, bool)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        valid &= data != nodata
    if data.dtype.kind == "f" and (data[valid] != np.round(data[valid])).any():
        raise InputDataError(f"{band.GetDataset().GetDescription()}: class values must be integers")
    return np.where(valid & (data > 0), data, 0).astype(np.int64)


def _check_same_grid(map_ds: gdal.Dataset, ref_ds: gdal.Dataset, name: str) -> None:
    """Refuse a reference raster whose grid differs from the map's by half a pixel or more."""
    size = (map_ds.RasterXSize, map_ds.RasterYSize)
    if (ref_ds.RasterXSize, ref_ds.RasterYSize) != size:
        raise InputDataError(
            f"{name} is {ref_ds.RasterXSize}x{ref_ds.RasterYSize} pixels but the class map is "
            f"{size[0]}x{size[1]}; resample the reference onto the map's grid"
        )
    a, b = map_ds.GetSpatialRef(), ref_ds.GetSpatialRef()
    if (a is None) != (b is None) or (a is not None and not a.IsSame(b)):
        raise InputDataError(f"{name} has a different CRS from the class map; reproject it")
    gm, gr = np.array(map_ds.GetGeoTransform()), np.array(ref_ds.GetGeoTransform())
    corners = [(0, 0), (size[0], 0), (0, size[1]), (size[0], size[1])]
    pixel = min(abs(gm[1]), abs(gm[5])) or 1.0
    for x, y in corners:
        dx = (gm[0] + x * gm[1] + y * gm[2]) - (gr[0] + x * gr[1] + y * gr[2])
        dy = (gm[3] + x * gm[4] + y * gm[5]) - (gr[3] + x * gr[4] + y * gr[5])
        if max(abs(dx), abs(dy)) > pixel / 2:
            raise InputDataError(
                f"{name} is not on the class map's grid (off by more than half a pixel); "
                "resample it onto the map's grid"
            )


def _rasterise(
    source: str | os.PathLike[str],
    field: str,
    layer_name: str | int | None,
    map_ds: gdal.Dataset,
    names: dict[int, str],
) -> gdal.Dataset:
    """An in-memory Int32 label raster on the map's grid burnt from a vector layer."""
    vector, layer = open_layer(source, layer_name)
    position = field_position(layer, field)
    by_name = {n.casefold(): v for v, n in names.items()}
    memory = ogr.GetDriverByName("Memory").CreateDataSource("reference")
    burnt = memory.CreateLayer("reference", layer.GetSpatialRef(), ogr.wkbUnknown)
    burnt.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
    for feature in layer:
        if not feature.IsFieldSetAndNotNull(position) or feature.GetGeometryRef() is None:
            continue
        out = ogr.Feature(burnt.GetLayerDefn())
        out.SetField("cls", _class_value(feature.GetField(position), field, by_name))
        out.SetGeometry(feature.GetGeometryRef().Clone())
        burnt.CreateFeature(out)
    target = gdal.GetDriverByName("MEM").Create(
        "", map_ds.RasterXSize, map_ds.RasterYSize, 1, gdal.GDT_Int32
    )
    target.SetGeoTransform(map_ds.GetGeoTransform())
    srs = map_ds.GetSpatialRef()
    if srs is not None:
        target.SetSpatialRef(srs)
    gdal.RasterizeLayer(target, [1], burnt, options=["ATTRIBUTE=cls"])
    return target


def _class_value(raw: object, field: str, by_name: dict[str, int]) -> int:
    """The class value of one feature: an integer as is, a text name via the map's names."""
    if isinstance(raw, str):
        value = by_name.get(raw.strip().casefold())
        if value is None and raw.strip().isdigit():  # a number stored as text
            return _class_value(int(raw), field, by_name)
        if value is None:
            known = ", ".join(sorted(by_name)) or "none: the class map has no class names"
            raise InputDataError(
                f"{field} value {raw!r} is not a class name of the class map (known: {known})"
            )
        return value
    if float(raw) != int(raw) or int(raw) < 1:  # type: ignore[arg-type]
        raise InputDataError(f"{field} value {raw} is not a class value (integers >= 1)")
    return int(raw)  # type: ignore[arg-type]
