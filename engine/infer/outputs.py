"""Output GeoTIFFs written under a temporary name and moved into place only on success."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from osgeo import gdal

from ..errors import OutputError, first_line

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

    Nothing appears at the destination until :func:`commit_outputs`; :meth:`discard`
    removes every trace. A previous file at the destination survives until the commit.
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
        self.dataset: gdal.Dataset | None = None
        try:
            self.dataset = gdal.GetDriverByName("GTiff").Create(
                str(self.tmp), width, height, bands, data_type, list(GTIFF_OPTIONS)
            )
        except RuntimeError as exc:
            self.discard()
            raise OutputError(f"cannot create {path}: {first_line(exc)}") from None
        if geotransform is not None:
            self.dataset.SetGeoTransform(geotransform)
        if projection:
            self.dataset.SetProjection(projection)

    def band(self, index: int) -> gdal.Band:
        return self.dataset.GetRasterBand(index)

    def finish(self, qml: str | None = None) -> None:
        """Write everything to the temporary files: raster, GDAL sidecar, QGIS style.

        Raises:
            OutputError: a write failed (disk full, I/O error); the destination is untouched.
        """
        try:
            self.dataset.FlushCache()
        except RuntimeError as exc:
            raise OutputError(f"cannot write {self.path}: {first_line(exc)}") from None
        error = self._close()
        if error:
            raise OutputError(f"cannot write {self.path}: {error}")
        if qml is not None:
            try:
                sidecars(self.tmp)[1].write_text(qml, encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def moves(self) -> list[tuple[Path | None, Path]]:
        """(staged file or None, destination) for the raster and each sidecar.

        None means the destination must not exist after the commit (a stale sidecar of
        an older file would restyle or misdescribe the new one).
        """
        staged = zip(sidecars(self.tmp), sidecars(self.path), strict=True)
        return [(self.tmp, self.path)] + [(s if s.exists() else None, d) for s, d in staged]

    def discard(self) -> None:
        """Close and delete the temporary files; the destination is left untouched."""
        self._close()  # errors do not matter: the files are deleted
        for p in (self.tmp, *sidecars(self.tmp)):
            p.unlink(missing_ok=True)

    def _close(self) -> str | None:
        """Close the dataset; returns the first error GDAL reported while closing, if any.

        GDAL 3.6 reports a failed close (e.g. disk full) only as an exception raised in
        the dataset's destructor, which Python would print and drop; it is caught here.
        """
        errors: list[str] = []
        previous_hook = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: errors.append(first_line(unraisable.exc_value))
        try:
            self.dataset = None  # the last reference: GDAL closes the file here
        finally:
            sys.unraisablehook = previous_hook
        return errors[0] if errors else None


def commit_outputs(outputs: Sequence[StagedGeoTiff]) -> None:
    """Move finished outputs and their sidecars into place: all of them, or none.

    Existing files at the destinations are set aside first and restored if any move
    fails, so an error leaves the previous results as they were.

    Raises:
        OutputError: a move failed; the staged files are left for the caller to discard.
    """
    set_aside: list[tuple[Path, Path]] = []  # (hidden copy, original destination)
    placed: list[Path] = []
    try:
        for out in outputs:
            for staged, destination in out.moves():
                if destination.exists():
                    hidden = destination.with_name(
                        f".{destination.name}.{uuid.uuid4().hex[:8]}.old"
                    )
                    os.replace(destination, hidden)
                    set_aside.append((hidden, destination))
                if staged is not None:
                    os.replace(staged, destination)
                    placed.append(destination)
    except OSError as exc:
        for destination in placed:
            destination.unlink(missing_ok=True)
        for hidden, destination in reversed(set_aside):
            os.replace(hidden, destination)
        raise OutputError(
            f"cannot move the results into place ({exc.strerror or exc}); nothing was changed"
        ) from None
    for hidden, _ in set_aside:
        hidden.unlink(missing_ok=True)
