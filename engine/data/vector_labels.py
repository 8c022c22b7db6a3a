"""Training labels from a polygon or point layer: rasterised onto an image's grid.

Each labelled pixel also knows the feature (polygon or point) it came from, so that a
validation set can be carved by whole polygons (:func:`~engine.data.validation.carve_validation`
with ``regions``) instead of by pixels. Any vector format OGR reads is accepted; features
in another CRS are reprojected onto the image's grid by GDAL.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from ..errors import InputDataError
from .classes import DEFAULT_COLORS
from .raster import open_raster

MAX_CLASS = 65535
INTEGER_FIELDS = (ogr.OFTInteger, ogr.OFTInteger64)
# value (an int for integer fields, the text for text fields) -> (name, colour or None)
ClassStyles = dict[object, tuple[str, str | None]]


@dataclass
class VectorLabels:
    """Class values and feature ids of an image's pixels, burnt from a vector layer.

    Attributes:
        labels: (rows, cols) int32 class ids 1..N, 0 = unlabelled.
        regions: (rows, cols) int64 feature ids (1 + the feature's position in the layer),
            0 where no feature lies; one id never spans two classes.
        classes: class id -> (name, colour ``#rrggbb``), for every id 1..N.
        features: features burnt (with a class value and a geometry).
    """

    labels: np.ndarray
    regions: np.ndarray
    classes: dict[int, tuple[str, str]]
    features: int


def open_layer(source: str | os.PathLike[str], layer: str | int | None = None) -> tuple:
    """(data source, layer) of an OGR source; ``layer`` names or numbers it (default first).

    The data source is returned too: the layer is only valid while it lives.
    """
    path = os.fspath(source)
    try:
        vector = ogr.Open(path)
    except RuntimeError:
        vector = None
    if vector is None:
        raise InputDataError(f"cannot open {Path(path).name} as a vector layer")
    try:
        by_index = not isinstance(layer, str)
        found = vector.GetLayer(layer or 0) if by_index else vector.GetLayerByName(layer)
    except RuntimeError:
        found = None
    if found is None:
        raise InputDataError(f"{Path(path).name} has no layer {layer!r}")
    return vector, found


def field_position(layer: ogr.Layer, field: str) -> int:
    """Index of ``field`` in ``layer``; refuses a missing field naming those there are."""
    defn = layer.GetLayerDefn()
    position = defn.GetFieldIndex(field)
    if position < 0:
        names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        raise InputDataError(
            f"{layer.GetName()} has no field {field!r} (fields: {', '.join(names) or 'none'})"
        )
    return position


def read_class_styles(path: str | os.PathLike[str]) -> ClassStyles:
    """Rows ``value,name[,colour]`` of a CSV, in order; values are the field's values
    (integers, or the text of a text field). A header row ``value,...`` is skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"class table not found: {path}")
    styles: ClassStyles = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not cells or not cells[0] or (number == 1 and cells[0].lower() == "value"):
                continue
            name = cells[1] if len(cells) > 1 and cells[1] else cells[0]
            colour = cells[2].lower() if len(cells) > 2 and cells[2] else None
            if colour is not None and not (len(colour) == 7 and colour.startswith("#")):
                raise InputDataError(f"{path.name} line {number}: colour {colour!r} is not #rrggbb")
            key: object = int(cells[0]) if cells[0].lstrip("+-").isdigit() else cells[0]
            styles[key] = (name, colour)
    return styles


def rasterise_labels(
    source: str | os.PathLike[str],
    image: gdal.Dataset | str | os.PathLike[str],
    field: str,
    layer: str | int | None = None,
    styles: ClassStyles | None = None,
) -> VectorLabels:
    """Burn a polygon/point layer's class field onto ``image``'s grid.

    Polygons label the pixels whose centres they contain, points the pixel under them;
    where features overlap the later one wins. An integer field's values are the class
    ids (names and colours from ``styles``, else ``Class N`` and the default palette); a
    text field's values become class names, numbered 1..N in the order of ``styles`` and
    then alphabetically.
    """
    image = image if isinstance(image, gdal.Dataset) else open_raster(image)
    vector, lyr = open_layer(source, layer)
    position = field_position(lyr, field)
    kind = lyr.GetLayerDefn().GetFieldDefn(position).GetType()
    raw = []
    for feature in lyr:
        if feature.IsFieldSetAndNotNull(position) and feature.GetGeometryRef() is not None:
            raw.append((feature.GetField(position), feature.GetGeometryRef().Clone()))
    if not raw:
        raise InputDataError(f"{lyr.GetName()} has no feature with a geometry and a {field} value")
    styles = styles or {}
    if kind in INTEGER_FIELDS or kind == ogr.OFTReal:
        ids = [_integer_class(value, field) for value, _ in raw]
        classes = _classes(max(ids), {k: v for k, v in styles.items() if isinstance(k, int)})
    else:
        ids, classes = _named_classes([str(value).strip() for value, _ in raw], styles)
    labels, regions = _burn(image, lyr.GetSpatialRef(), ids, [g for _, g in raw])
    name = lyr.GetName()
    del lyr, vector  # the layer first: it is only valid while its data source lives
    if not labels.any():
        raise InputDataError(
            f"no feature of {name} covers a pixel centre of "
            f"{Path(image.GetDescription()).name}; check that they overlap (and their CRS)"
        )
    return VectorLabels(labels, regions, classes, len(raw))


def write_label_raster(
    labels: VectorLabels,
    image: gdal.Dataset,
    path: str | os.PathLike[str],
    regions_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the labels as a GeoTIFF on ``image``'s grid with class names and a colour table
    (which :func:`~engine.data.labels.resolve_classes` reads), and optionally the feature
    ids beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = max(labels.classes)
    kind = gdal.GDT_Byte if count <= 255 else gdal.GDT_UInt16
    ds = _like(image, path, kind)
    band = ds.GetRasterBand(1)
    band.WriteArray(labels.labels)
    band.SetNoDataValue(0)
    band.SetCategoryNames(["unlabelled"] + [labels.classes[v][0] for v in range(1, count + 1)])
    table = gdal.ColorTable()
    table.SetColorEntry(0, (0, 0, 0, 0))
    for value, (_, colour) in labels.classes.items():
        table.SetColorEntry(value, tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5)) + (255,))
    band.SetColorTable(table)
    ds = None
    if regions_path is not None:
        ds = _like(image, Path(regions_path), gdal.GDT_UInt32)
        ds.GetRasterBand(1).WriteArray(labels.regions.astype(np.uint32))
        ds = None
    return path


def _like(image: gdal.Dataset, path: Path, kind: int) -> gdal.Dataset:
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), image.RasterXSize, image.RasterYSize, 1, kind, ["COMPRESS=DEFLATE"]
    )
    gt = image.GetGeoTransform(can_return_null=True)
    if gt is not None:
        ds.SetGeoTransform(gt)
    if image.GetSpatialRef() is not None:
        ds.SetSpatialRef(image.GetSpatialRef())
    return ds


def _burn(image: gdal.Dataset, srs, ids: list[int], geometries: list) -> tuple:
    """(labels, regions) of the features burnt in order onto ``image``'s grid."""
    memory = ogr.GetDriverByName("Memory").CreateDataSource("labels")
    layer = memory.CreateLayer("labels", srs, ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
    layer.CreateField(ogr.FieldDefn("rid", ogr.OFTInteger))
    for rid, (cls, geometry) in enumerate(zip(ids, geometries, strict=True), start=1):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("cls", cls)
        feature.SetField("rid", rid)
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    target = gdal.GetDriverByName("MEM").Create(
        "", image.RasterXSize, image.RasterYSize, 2, gdal.GDT_Int32
    )
    gt = image.GetGeoTransform(can_return_null=True)
    target.SetGeoTransform(gt if gt is not None else (0, 1, 0, 0, 0, 1))
    if image.GetSpatialRef() is not None:
        target.SetSpatialRef(image.GetSpatialRef())
    gdal.RasterizeLayer(target, [1], layer, options=["ATTRIBUTE=cls"])
    gdal.RasterizeLayer(target, [2], layer, options=["ATTRIBUTE=rid"])
    labels = target.GetRasterBand(1).ReadAsArray().astype(np.int32)
    regions = target.GetRasterBand(2).ReadAsArray().astype(np.int64)
    return labels, regions


def _integer_class(value: object, field: str) -> int:
    number = float(value)  # type: ignore[arg-type]
    if number != int(number) or not 1 <= number <= MAX_CLASS:
        raise InputDataError(
            f"{field} value {value} is not a class value (integers 1..{MAX_CLASS}); "
            "use a text field for class names"
        )
    return int(number)


def _classes(count: int, styles: ClassStyles) -> dict[int, tuple[str, str]]:
    """Ids 1..count with the styles' names/colours, else ``Class N`` and the default palette."""
    out = {}
    for v in range(1, count + 1):
        name, colour = styles.get(v, (f"Class {v}", None))
        out[v] = (name, colour or DEFAULT_COLORS[(v - 1) % len(DEFAULT_COLORS)])
    return out


def _named_classes(values: list[str], styles: ClassStyles) -> tuple[list[int], dict]:
    """Ids of text values: the styles' order first, then the other values alphabetically."""
    order = [str(k) for k in styles if str(k) in set(values)]
    order += sorted(set(values) - set(order), key=str.casefold)
    if len(order) > MAX_CLASS:
        raise InputDataError(f"{len(order)} class names; at most {MAX_CLASS} classes")
    index = {name: i for i, name in enumerate(order, start=1)}
    named = {k if isinstance(k, str) else str(k): v for k, v in styles.items()}
    classes = {}
    for name, i in index.items():
        label, colour = named.get(name, (name, None))
        classes[i] = (label or name, colour or DEFAULT_COLORS[(i - 1) % len(DEFAULT_COLORS)])
    return [index[v] for v in values], classes
