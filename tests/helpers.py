"""Helpers that write small real rasters and train tiny real models for the tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BUNDLED_SCENE = REPO / "resources" / "indian_pines" / "indian_pines.tif"
BUNDLED_TEST = REPO / "resources" / "indian_pines" / "indian_pines_test.tif"
SHIPPED_MODEL = REPO / "models" / "factoformer_indian_pines.onnx"
GEOTRANSFORM = (500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0)
GDAL_TYPES = {
    np.dtype("uint8"): gdal.GDT_Byte,
    np.dtype("int16"): gdal.GDT_Int16,
    np.dtype("uint16"): gdal.GDT_UInt16,
    np.dtype("float32"): gdal.GDT_Float32,
}

gdal.UseExceptions()


def write_raster(
    path: Path,
    data: np.ndarray,
    nodata: float | None = None,
    wavelengths_nm: list[float] | None = None,
    driver: str = "GTiff",
    georeferenced: bool = True,
    options: list[str] | None = None,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array with EPSG:32633 georeferencing."""
    data = data if data.ndim == 3 else data[None]
    bands, rows, cols = data.shape
    ds = gdal.GetDriverByName(driver).Create(
        str(path), cols, rows, bands, GDAL_TYPES[data.dtype], options or []
    )
    if georeferenced:
        ds.SetGeoTransform(GEOTRANSFORM)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(data[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if wavelengths_nm is not None:
            band.SetMetadataItem("wavelength", str(wavelengths_nm[b]))
            band.SetMetadataItem("wavelength_units", "nm")
            band.SetDescription(f"band {b + 1} ({wavelengths_nm[b]:g} nm)")
    ds = None
    return path


def read_raster(path: Path) -> np.ndarray:
    """All bands as an array: (rows, cols) for one band, else (bands, rows, cols)."""
    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def synthetic_cube(rows: int = 24, cols: int = 30, bands: int = 12, seed: int = 0):
    """A cube of three spectrally distinct vertical stripes; returns (cube, class map).

    cube: (bands, rows, cols) int16 reflectance-like values; classes: (rows, cols) 1..3.
    """
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.repeat(np.arange(1, 4), -(-cols // 3))[None, :cols], rows, axis=0)
    x = np.linspace(0, 1, bands)
    spectra = np.stack([1000 + 3000 * x, 4000 - 2500 * x, 2000 + 1500 * np.sin(6 * x)])
    cube = spectra[classes - 1].transpose(2, 0, 1) + rng.normal(0, 80, (bands, rows, cols))
    return cube.astype(np.int16), classes.astype(np.int32)


WAVELENGTHS = [450.0 + 40.0 * i for i in range(12)]


@contextlib.contextmanager
def unwritable_folder(parent: Path):
    """A folder nobody can write to, root included (chmod, else chattr +i, else /proc/sys)."""
    folder = parent / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    immutable = False
    try:
        if os.access(folder, os.W_OK):  # root ignores permission bits
            chattr = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
            immutable = chattr.returncode == 0
        if os.access(folder, os.W_OK):
            yield Path("/proc/sys")  # kernel-enforced, read-only for every user
        else:
            yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)


# A small FactoFormer (12 bands, 3 classes) that trains in seconds.
TINY_CONFIG = {
    "num_bands": 12,
    "num_classes": 3,
    "pixel_dim": 16,
    "pixel_depth": 1,
    "pixel_heads": 2,
    "band_dim": 8,
    "band_depth": 1,
    "band_heads": 2,
    "fusion_dim": 16,
}


def write_scaled(path: Path, raw: np.ndarray, factor: int = 2, shift: int = 0, **kwargs) -> Path:
    """Store ``raw * factor + shift`` with the GDAL scale/offset that give back ``raw``."""
    stored = raw.astype(np.int32) * factor + shift
    write_raster(path, stored.astype(raw.dtype), **kwargs)
    ds = gdal.Open(str(path), gdal.GA_Update)
    for b in range(1, ds.RasterCount + 1):
        ds.GetRasterBand(b).SetScale(1.0 / factor)
        ds.GetRasterBand(b).SetOffset(-shift / factor)
    ds = None
    return path


def edit_model_metadata(src: Path, dst: Path, edit) -> Path:
    """Copy an ONNX model, passing its parsed metadata (key -> value) through ``edit``."""
    import json

    import onnx

    proto = onnx.load(str(src))
    values = {p.key: json.loads(p.value) for p in proto.metadata_props}
    edit(values)
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(dst))
    return dst


def write_tile(path, data, col_offset=0, row_offset=0, nodata=None, band_items=None, **kwargs):
    """A raster on the grid of GEOTRANSFORM shifted by whole pixels, with per-band metadata
    items (e.g. EnMAP's wavelength, fwhm and bbl)."""
    write_raster(path, data, nodata=nodata, **kwargs)
    ds = gdal.Open(str(path), gdal.GA_Update)
    x0, dx, _, y0, _, dy = GEOTRANSFORM
    ds.SetGeoTransform((x0 + col_offset * dx, dx, 0.0, y0 + row_offset * dy, 0.0, dy))
    for b, items in enumerate(band_items or []):
        ds.GetRasterBand(b + 1).SetMetadata({k: str(v) for k, v in items.items()})
    ds = None
    return path


def enmap_like_items(wavelengths=WAVELENGTHS, bad=()):
    """wavelength, fwhm and bbl per band (bands ``bad``, 1-based, flagged), as EnMAP L2A
    GeoTIFFs carry them."""
    return [
        {
            "wavelength": w,
            "wavelength_units": "Nanometers",
            "fwhm": 10 + i,
            "bbl": int(i + 1 not in bad),
        }
        for i, w in enumerate(wavelengths)
    ]
