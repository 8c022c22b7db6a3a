"""Styling of class rasters without QGIS: GDAL colour table, category names, QML sidecar."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from osgeo import gdal

from ..data.classes import ClassInfo

NODATA_NAME = "No data"


def color_table(classes: Sequence[ClassInfo]) -> gdal.ColorTable:
    """Palette with entry 0 transparent black and each class's colour at its value."""
    table = gdal.ColorTable()
    table.SetColorEntry(0, (0, 0, 0, 0))
    for c in classes:
        table.SetColorEntry(c.value, (*c.rgb(), 255))
    return table


def category_names(classes: Sequence[ClassInfo]) -> list[str]:
    """Names indexed by raster value: 0 is "No data", gaps are empty strings."""
    names = [""] * (max(c.value for c in classes) + 1)
    names[0] = NODATA_NAME
    for c in classes:
        names[c.value] = c.name
    return names


def style_class_band(band: gdal.Band, classes: Sequence[ClassInfo]) -> None:
    """Attach palette, category names, no-data 0 and a description to a class band."""
    band.SetRasterColorTable(color_table(classes))
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetRasterCategoryNames(category_names(classes))
    band.SetNoDataValue(0)
    band.SetDescription("class")


def paletted_qml(classes: Sequence[ClassInfo]) -> str:
    """QGIS layer style (``.qml``) with a paletted renderer listing exactly ``classes``.

    QGIS loads ``<raster basename>.qml`` as the default style, so the layer shows only the
    real classes with their names, instead of the 256 entries of a GeoTIFF palette.
    """
    entries = "\n".join(
        f'        <paletteEntry value="{c.value}" color={quoteattr(c.color)} alpha="255" '
        f"label={quoteattr(c.name)}/>"
        for c in classes
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  <pipe>
    <provider>
      <resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
