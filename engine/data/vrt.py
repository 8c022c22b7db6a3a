"""Band metadata that ``gdalbuildvrt`` leaves in a mosaic's source files.

``gdalbuildvrt`` keeps each band's no-data value, scale and offset but drops its
description and metadata items (``wavelength``, ``fwhm``, ``bbl``...). The engine reads
those from the VRT's source files instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from xml.etree import ElementTree

from osgeo import gdal

DOMAINS = ("ENVI", "")  # later domains win
DESCRIPTION = "description"
ENVI_LISTS = ("wavelength", "fwhm", "bbl")


def band_items(ds: gdal.Dataset) -> list[dict[str, str]]:
    """Per band (index 0 = band 1): its metadata items and ``description``.

    Items come from the band's default and ENVI domains and, for an ENVI header's
    per-band lists (``wavelength``, ``fwhm``, ``bbl``), from the dataset. A VRT band takes
    the items it lacks from the first of its source bands; a band is flagged bad (``bbl``
    0) when any of its source bands is.
    """
    inherited = _source_items(ds)
    header = _envi_lists(ds)
    out = []
    for number in range(1, ds.RasterCount + 1):
        own = {**header[number - 1], **_items(ds.GetRasterBand(number))}
        sources = inherited.get(number, [])
        merged = {**(sources[0] if sources else {}), **own}
        if any(flagged_bad(s) for s in sources) and "bbl" not in own:
            merged["bbl"] = "0"
        out.append(merged)
    return out


def _envi_lists(ds: gdal.Dataset) -> list[dict[str, str]]:
    """Per band, the values of the ENVI header lists that have one value per band."""
    envi = ds.GetMetadata("ENVI") or {}
    out: list[dict[str, str]] = [{} for _ in range(ds.RasterCount)]
    for key in ENVI_LISTS:
        values = re.findall(r"[^{},\s]+", envi.get(key, ""))
        if len(values) == ds.RasterCount:
            for items, value in zip(out, values, strict=True):
                items[key] = value
                if "wavelength_units" in envi:
                    items["wavelength_units"] = envi["wavelength_units"]
    return out


def _items(band: gdal.Band) -> dict[str, str]:
    items: dict[str, str] = {}
    for domain in DOMAINS:
        items.update(band.GetMetadata(domain) or {})
    if band.GetDescription():
        items[DESCRIPTION] = band.GetDescription()
    return items


def flagged_bad(items: dict[str, str]) -> bool:
    """True when a band's items flag it bad (``bbl`` 0)."""
    try:
        return float(items.get("bbl", "1")) == 0
    except ValueError:
        return False


def source_bands(ds: gdal.Dataset) -> dict[int, list[tuple[str, int]]]:
    """VRT band number -> (file, band number) of each of its sources; {} if not a VRT."""
    if ds.GetDriver().ShortName != "VRT":
        return {}
    xml = ds.GetMetadata("xml:VRT")
    if not xml:
        return {}
    root = ElementTree.fromstring(xml[0])
    base = Path(ds.GetDescription()).parent
    out: dict[int, list[tuple[str, int]]] = {}
    for band in root.iter("VRTRasterBand"):
        number = int(band.get("band", "0"))
        for source in band:
            name, source_band = source.find("SourceFilename"), source.find("SourceBand")
            if name is None or not name.text:
                continue
            path = name.text
            if name.get("relativeToVRT") == "1" and not os.path.isabs(path):
                path = str(base / path)
            text = source_band.text if source_band is not None and source_band.text else "1"
            if text.isdigit():
                out.setdefault(number, []).append((path, int(text)))
    return out


def _source_items(ds: gdal.Dataset) -> dict[int, list[dict[str, str]]]:
    """VRT band number -> the items of each of its source bands (each file read once)."""
    per_file: dict[str, list[dict[str, str]]] = {}
    out: dict[int, list[dict[str, str]]] = {}
    for number, sources in source_bands(ds).items():
        for path, source_band in sources:
            if path not in per_file:
                try:  # a source may itself be a VRT
                    per_file[path] = band_items(gdal.Open(path, gdal.GA_ReadOnly))
                except RuntimeError:
                    per_file[path] = []  # reading the pixels will report it
            if 1 <= source_band <= len(per_file[path]):
                out.setdefault(number, []).append(per_file[path][source_band - 1])
    return out
