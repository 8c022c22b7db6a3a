"""Label rasters: reading them on their image's grid, and the class table they imply."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from osgeo import gdal, osr

from ..errors import InputDataError
from .classes import DEFAULT_COLORS, ClassInfo
from .raster import category_names, open_raster, read_label_raster

HALF_PIXEL = 0.5


def read_aligned_labels(path: str | os.PathLike[str], image: gdal.Dataset) -> np.ndarray:
    """Read a label raster (see :func:`read_label_raster`) that must lie on ``image``'s grid.

    Same size, same CRS, and the same geotransform within half a pixel; a label raster
    or image without georeferencing is compared by size only. Otherwise the refusal
    names the offset in pixels.
    """
    ds = open_raster(path)
    check_aligned(ds, image, Path(path).name, Path(image.GetDescription()).name)
    return read_label_raster(path)


def check_aligned(labels: gdal.Dataset, image: gdal.Dataset, name: str, image_name: str) -> None:
    """Refuse ``labels`` unless it lies on ``image``'s pixel grid; one-line reasons."""
    size, expected = (
        (labels.RasterXSize, labels.RasterYSize),
        (image.RasterXSize, image.RasterYSize),
    )
    if size != expected:
        raise InputDataError(
            f"label raster {name} is {size[0]}x{size[1]} pixels but {image_name} is "
            f"{expected[0]}x{expected[1]}; labels must lie on the image's grid"
        )
    srs, image_srs = labels.GetSpatialRef(), image.GetSpatialRef()
    if srs is not None and image_srs is not None:
        if not srs.IsSame(image_srs, ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"]):
            raise InputDataError(
                f"label raster {name} is in {_crs_name(srs)} but {image_name} in "
                f"{_crs_name(image_srs)}; reproject the labels onto the image's grid"
            )
    gt, image_gt = (
        labels.GetGeoTransform(can_return_null=True),
        image.GetGeoTransform(can_return_null=True),
    )
    if gt is None or image_gt is None:
        return
    inverse = gdal.InvGeoTransform(image_gt)
    if inverse is None:
        return
    # Where each corner of the label raster falls on the image's pixel grid.
    offsets = []
    for col, row in ((0, 0), (size[0], 0), (0, size[1]), (size[0], size[1])):
        c, r = gdal.ApplyGeoTransform(inverse, *gdal.ApplyGeoTransform(gt, col, row))
        offsets.append((c - col, r - row))
    worst = max(offsets, key=lambda o: max(abs(o[0]), abs(o[1])))
    if max(abs(worst[0]), abs(worst[1])) > HALF_PIXEL:
        dc, dr = offsets[0]
        raise InputDataError(
            f"label raster {name} is offset from {image_name} by {dc:+.1f} columns and "
            f"{dr:+.1f} rows (up to {max(abs(worst[0]), abs(worst[1])):.1f} pixels at a corner); "
            "labels must lie on the image's grid within half a pixel"
        )


def _crs_name(srs: osr.SpatialReference) -> str:
    code = srs.GetAuthorityCode(None)
    return f"{srs.GetAuthorityName(None)}:{code}" if code else (srs.GetName() or "an unnamed CRS")


def read_classes_csv(path: str | os.PathLike[str]) -> dict[int, tuple[str, str | None]]:
    """Rows ``value,name[,colour]`` (optional header; value 0 ignored) -> {value: (name, colour)}.

    Colours are ``#rrggbb``; an empty colour means the default palette.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"class table not found: {path}")
    table: dict[int, tuple[str, str | None]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if number == 1 and not _is_int(cells[0]):
                continue  # header
            if len(cells) < 2 or not _is_int(cells[0]):
                raise InputDataError(
                    f"{path.name} line {number}: expected value,name[,colour], not "
                    f"{','.join(row)!r}"
                )
            value, name = int(cells[0]), cells[1]
            color = cells[2] if len(cells) > 2 and cells[2] else None
            if color is not None and not _is_color(color):
                raise InputDataError(f"{path.name} line {number}: colour {color!r} is not #rrggbb")
            if value < 0:
                raise InputDataError(f"{path.name} line {number}: class value {value} is negative")
            if value in table:
                raise InputDataError(f"{path.name} line {number}: class value {value} repeats")
            if value > 0:
                table[value] = (name or f"Class {value}", color.lower() if color else None)
    if not table:
        raise InputDataError(f"{path.name} lists no class (rows value,name[,colour])")
    return table


def label_raster_classes(path: str | os.PathLike[str]) -> dict[int, tuple[str, str | None]]:
    """Names and colours a label raster carries: its ``.qml`` sidecar (QGIS paletted or
    pseudocolour style), else its category names and colour table. {} when it has none."""
    qml = qml_classes(path)
    if qml:
        return qml
    ds = open_raster(path)
    names = category_names(path) or []
    table = ds.GetRasterBand(1).GetColorTable()
    colors: dict[int, str] = {}
    if table is not None:
        for value in range(1, table.GetCount()):
            r, g, b = table.GetColorEntry(value)[:3]
            colors[value] = f"#{r:02x}{g:02x}{b:02x}"
    values = {v for v in range(1, len(names)) if names[v]} | set(colors)
    return {
        v: (names[v] if v < len(names) and names[v] else f"Class {v}", colors.get(v))
        for v in values
    }


def qml_classes(path: str | os.PathLike[str]) -> dict[int, tuple[str, str | None]]:
    """Classes of the QGIS style sidecar of a raster (``name.qml`` or ``name.tif.qml``)."""
    path = Path(path)
    for qml in (path.with_suffix(".qml"), path.with_name(path.name + ".qml")):
        if qml.is_file():
            break
    else:
        return {}
    try:
        root = ElementTree.parse(qml).getroot()
    except ElementTree.ParseError as exc:
        raise InputDataError(f"cannot read the style {qml.name}: {exc}") from None
    found: dict[int, tuple[str, str | None]] = {}
    # Paletted renderer: <paletteEntry value= color= label=>; pseudocolour: <item value= ...>.
    for entry in (*root.iter("paletteEntry"), *root.iter("item")):
        value = entry.get("value", "")
        if not _is_int(value.split(".")[0]) or float(value) != int(float(value)):
            continue
        v = int(float(value))
        color = entry.get("color")
        if v > 0 and v not in found:
            found[v] = (entry.get("label") or f"Class {v}", color if _is_color(color) else None)
    return found


def class_table(
    num_classes: int, named: dict[int, tuple[str, str | None]]
) -> tuple[ClassInfo, ...]:
    """Classes 1..max(num_classes, named): given names/colours, else ``Class N`` and the
    default palette."""
    count = max([num_classes, *named])
    out = []
    for v in range(1, count + 1):
        name, color = named.get(v, (f"Class {v}", None))
        out.append(ClassInfo(v, name, color or DEFAULT_COLORS[(v - 1) % len(DEFAULT_COLORS)]))
    return tuple(out)


def resolve_classes(
    num_classes: int,
    label_files: Sequence[str | os.PathLike[str]],
    classes_csv: str | os.PathLike[str] | None = None,
) -> tuple[tuple[ClassInfo, ...], str]:
    """The class table of a training run and a log line saying where it came from.

    A ``classes_csv`` wins; else the first label raster that carries names or colours
    (``.qml`` sidecar, category names, colour table); else ``Class N``.
    """
    if classes_csv is not None:
        named = read_classes_csv(classes_csv)
        if max(named) < num_classes:
            raise InputDataError(
                f"the labels hold class {num_classes} but {Path(classes_csv).name} lists classes "
                f"up to {max(named)}"
            )
        return class_table(num_classes, named), f"class names and colours from {classes_csv}"
    for path in label_files:
        # A GeoTIFF palette has 256 entries: only the values the labels use count.
        named = {v: c for v, c in label_raster_classes(path).items() if v <= num_classes}
        if named:
            classes = class_table(num_classes, named)
            return classes, f"class names and colours from {Path(path).name} ({_listing(classes)})"
    classes = class_table(num_classes, {})
    return classes, (
        f"no class names found (no --classes CSV; no .qml, category names or colour table "
        f"with the labels): the model will show 'Class 1' ... 'Class {num_classes}'"
    )


def _listing(classes: Sequence[ClassInfo]) -> str:
    return ", ".join(f"{c.value} {c.name}" for c in classes)


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _is_color(text: str | None) -> bool:
    if not text or len(text) != 7 or not text.startswith("#"):
        return False
    return all(ch in "0123456789abcdefABCDEF" for ch in text[1:])


def renamed_classes(
    classes: Sequence[ClassInfo], table: str | os.PathLike[str]
) -> tuple[ClassInfo, ...]:
    """The model's classes with the names (and colours) of a class table CSV.

    Raises:
        InputDataError: the table does not list exactly the model's class values.
    """
    named = read_classes_csv(table)
    values = {c.value for c in classes}
    if set(named) != values:
        raise InputDataError(
            f"{Path(table).name} lists classes {sorted(named)}, the model has {sorted(values)}"
        )
    return tuple(
        ClassInfo(c.value, named[c.value][0], named[c.value][1] or c.color) for c in classes
    )
