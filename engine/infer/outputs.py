"""Output GeoTIFFs written under a temporary name and moved into place only on success."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from osgeo import gdal

from ..errors import OutputError

gdal.UseExceptions()

GTIFF_OPTIONS = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "BIGTIFF=IF_SAFER",
)
GTIFF_SUFFIXES = (".tif", ".tiff")


def check_destination(path: str | os.PathLike[str], protected: Sequence[Path] = ()) -> Path:
    """Validate an output path before any work is done; returns it as an absolute Path.

    Raises:
        OutputError: not a .tif, folder missing or not writable, or the path is one of
            ``protected`` (the input raster, the model...).
    """
    path = Path(path).absolute()
    if path.suffix.lower() not in GTIFF_SUFFIXES:
        raise OutputError(f"output must be a GeoTIFF (.tif), got {path.name}")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if path.is_dir():
        raise OutputError(f"output path is a folder: {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"output file exists and is read-only: {path}")
    for other in protected:
        if path == Path(other).absolute() or (
            path.exists() and Path(other).exists() and os.path.samefile(path, other)
        ):
            raise OutputError(f"output {path.name} would overwrite an input file")
    return path


def sidecars(path: Path) -> tuple[Path, Path]:
    """The GDAL PAM file and the QGIS default style that belong to a raster."""
    return Path(str(path) + ".aux.xml"), path.with_suffix(".qml")


class StagedGeoTiff:
    """A tiled, compressed GeoTIFF built beside its destination under a hidden name.

    Nothing appears at the destination until :meth:`commit`; :meth:`discard` removes
    every trace. A previous file at the destination survives until the commit.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        bands: int,
        data_type: int,
        geotransform: tuple[float, ...] | None,
        projection: str,
    ) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial.tif")
        try:
            self.dataset = gdal.GetDriverByName("GTiff").Create(
                str(self.tmp), width, height, bands, data_type, list(GTIFF_OPTIONS)
            )
        except RuntimeError as exc:
            self._remove_tmp()
            raise OutputError(f"cannot create {path}: {str(exc).splitlines()[0]}") from None
        if geotransform is not None:
            self.dataset.SetGeoTransform(geotransform)
        if projection:
            self.dataset.SetProjection(projection)

    def band(self, index: int) -> gdal.Band:
        return self.dataset.GetRasterBand(index)

    def close(self) -> None:
        if self.dataset is not None:
            self.dataset.FlushCache()
            self.dataset = None

    def commit(self, qml: str | None = None) -> Path:
        """Close the file and move it and its sidecars to the destination."""
        self.close()
        try:
            for stale in sidecars(self.path):  # stale sidecars would restyle the new file
                if stale.exists():
                    stale.unlink()
            aux = Path(str(self.tmp) + ".aux.xml")
            os.replace(self.tmp, self.path)
            if aux.exists():
                os.replace(aux, Path(str(self.path) + ".aux.xml"))
            if qml is not None:
                qml_path = self.path.with_suffix(".qml")
                qml_tmp = qml_path.with_name(f".{qml_path.name}.partial")
                qml_tmp.write_text(qml, encoding="utf-8")
                os.replace(qml_tmp, qml_path)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file; the destination is left untouched."""
        self.dataset = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        for p in (self.tmp, Path(str(self.tmp) + ".aux.xml")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
