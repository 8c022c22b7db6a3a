"""Output GeoTIFFs written under a temporary name and moved into place only on success."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from osgeo import gdal

from ..data.files import FileSet
from ..errors import OutputError, first_line
from ..system import process_alive

gdal.UseExceptions()

GTIFF_OPTIONS = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "BIGTIFF=IF_SAFER",
)
GTIFF_SUFFIXES = (".tif", ".tiff")
OUTPUT_LABELS = {
    "class_map": "class map",
    "confidence": "confidence",
    "probabilities": "probabilities",
}

# Staged files: ".<stem>.<pid>-<token>.partial.tif", holding STAGING_KEY = "<host> <pid> <token>"
# in the STAGING_DOMAIN metadata from the moment they are created (kept in the final file).
STAGED_NAME = re.compile(r"^\..*\.(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})\.partial\.tif$")
STAGING_DOMAIN = "FACTOFORMER"
STAGING_KEY = "STAGING"
# Staged folders (the blocks Dask workers write): ".<stem>.<pid>-<token>.blocks", holding
# the same marker in a file named STAGING_KEY.
STAGED_FOLDER = re.compile(r"^\..*\.(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})\.blocks$")
DISCARD_SECONDS = 10.0  # how long a staged folder's removal is retried


def check_destinations(
    requested: Mapping[str, str | os.PathLike[str] | None], reads: FileSet
) -> dict[str, Path]:
    """Validate the requested outputs before any work is done; returns absolute paths.

    Each output writes its raster, its ``.aux.xml`` and its ``.qml`` style. None of these
    may be a file the run reads (``reads``: inputs, their sidecars and styles, the model),
    nor a file another output writes, compared after resolving ``..``, symlinks and
    hard links.

    Raises:
        OutputError: an invalid destination (see :func:`check_destination`) or a collision.
    """
    paths = {kind: check_destination(p) for kind, p in requested.items() if p}
    written = FileSet()
    for kind, path in paths.items():
        label = f"{OUTPUT_LABELS.get(kind, kind)} {path.name}"
        for file in (path, *sidecars(path)):
            role = reads.find(file)
            if role is not None:
                raise OutputError(
                    f"output {path.name} would overwrite an input file: {file.name}, {role}; "
                    "choose another output name"
                )
            other = written.find(file)
            if other is not None:
                raise OutputError(
                    f"{label} and {other} would both write {file.name}; outputs need distinct "
                    "paths and names"
                )
        written.add_all([str(f) for f in (path, *sidecars(path))], label)
    return paths


def check_destination(path: str | os.PathLike[str]) -> Path:
    """Validate one output path; returns it as an absolute Path.

    Raises:
        OutputError: not a .tif, folder missing or not writable, a folder, or read-only.
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
    return path


def check_free_space(sizes: Mapping[Path, int]) -> None:
    """Refuse when a destination filesystem lacks room for the outputs written to it.

    ``sizes``: output path -> upper bound of its size in bytes. Outputs on the same
    filesystem are added up.

    Raises:
        OutputError: naming the folder, the room needed and the room free.
    """
    needed: dict[int, tuple[Path, int]] = {}
    for path, size in sizes.items():
        device = os.stat(path.parent).st_dev
        folder, total = needed.get(device, (path.parent, 0))
        needed[device] = (folder, total + size)
    for folder, total in needed.values():
        free = shutil.disk_usage(folder).free
        if total > free:
            raise OutputError(
                f"not enough free space in {folder}: the outputs need up to "
                f"{_human_bytes(total)}, {_human_bytes(free)} free"
            )


def _human_bytes(size: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size, power = size / 1024, power + 1
    return f"{size:.0f} bytes" if power == 0 else f"{size:.1f} {units[power]}"


def remove_stale_staging(folder: Path) -> list[Path]:
    """Delete the staged outputs an interrupted run (SIGKILL, crash, power loss) left in
    ``folder``, with their sidecars; returns the staged rasters removed.

    A file is ours only if its name has the staging pattern, GDAL reads in it the staging
    marker with this host's name and the process id and token of its name, and that
    process no longer exists. Anything else is left alone.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if STAGED_FOLDER.match(entry.name) and entry.is_dir(follow_symlinks=False):
            _remove_stale_folder(Path(entry.path))
            continue
        match = STAGED_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or process_alive(pid):
            continue  # a run in progress, possibly in this very process
        if _staging_marker(entry.path) != _marker(pid, match["token"]):
            continue
        path = Path(entry.path)
        for file in (path, *sidecars(path)):
            try:
                file.unlink(missing_ok=True)
            except OSError:
                break
        else:
            removed.append(path)
    return removed


def _remove_stale_folder(path: Path) -> None:
    """Delete a staged folder whose run is gone and whose marker file proves it ours."""
    match = STAGED_FOLDER.match(path.name)
    pid = int(match["pid"])
    if pid == os.getpid() or process_alive(pid):
        return
    try:
        marker = (path / STAGING_KEY).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return
    if marker == _marker(pid, match["token"]):
        shutil.rmtree(path, ignore_errors=True)


def _marker(pid: int, token: str) -> str:
    """The staging marker: this machine (hashed: a shared folder sees several) and the run."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]
    return f"{host} {pid} {token}"


def _staging_marker(path: str) -> str | None:
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY, allowed_drivers=["GTiff"])
        return ds.GetMetadataItem(STAGING_KEY, STAGING_DOMAIN)
    except RuntimeError:  # not a readable GeoTIFF: not provably ours
        return None


def sidecars(path: Path) -> tuple[Path, Path]:
    """The GDAL PAM file and the QGIS default style that belong to a raster."""
    return Path(str(path) + ".aux.xml"), path.with_suffix(".qml")


class StagedGeoTiff:
    """A tiled, compressed GeoTIFF built beside its destination under a hidden name.

    Nothing appears at the destination until :func:`commit_outputs`; :meth:`discard`
    removes every trace. A previous file at the destination survives until the commit.
    The hidden file carries this process's id in its name and a staging marker in its
    metadata from the start, so that :func:`remove_stale_staging` can recognise it if the
    process is killed before cleaning up.
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
        pid, token = os.getpid(), uuid.uuid4().hex[:8]
        self.tmp = path.with_name(f".{path.stem}.{pid}-{token}.partial.tif")
        self.dataset: gdal.Dataset | None = None
        options = list(GTIFF_OPTIONS) + (["INTERLEAVE=BAND"] if bands > 1 else [])
        try:
            self.dataset = gdal.GetDriverByName("GTiff").Create(
                str(self.tmp), width, height, bands, data_type, options
            )
            self.dataset.SetMetadataItem(STAGING_KEY, _marker(pid, token), STAGING_DOMAIN)
            self.dataset.FlushCache()  # the marker is on disk before any pixel is written
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
        flush_error = None
        try:
            self.dataset.FlushCache()
        except RuntimeError as exc:  # keep the text only: its traceback holds the dataset open
            flush_error = first_line(exc)
        close_error = self._close()  # closed even after a failed flush (Windows deletes)
        if flush_error or close_error:
            raise OutputError(f"cannot write {self.path}: {flush_error or close_error}")
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


class StagedFolder:
    """A hidden folder beside ``destination`` for a run's intermediate files (the blocks
    Dask workers write), named and marked like a staged raster so that
    :func:`remove_stale_staging` removes it if the run is killed; :meth:`discard` removes it.
    """

    def __init__(self, destination: Path) -> None:
        pid, token = os.getpid(), uuid.uuid4().hex[:8]
        self.path = destination.with_name(f".{destination.stem}.{pid}-{token}.blocks")
        try:
            self.path.mkdir()
            (self.path / STAGING_KEY).write_text(_marker(pid, token), encoding="ascii")
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot create {self.path}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        """Remove the folder. A worker still finishing a cancelled block may add a file
        while it is being removed, so removal is retried until the folder is gone (after
        that no worker can write: none creates the folder) or ``DISCARD_SECONDS`` pass."""
        deadline = time.monotonic() + DISCARD_SECONDS
        shutil.rmtree(self.path, ignore_errors=True)
        while self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
            shutil.rmtree(self.path, ignore_errors=True)


def commit_outputs(outputs: Sequence[StagedGeoTiff]) -> None:
    """Move finished outputs and their sidecars into place: all of them, or none.

    Existing files at the destinations are set aside first and restored if any move
    fails or the process is interrupted (KeyboardInterrupt, a signal turned into an
    exception), so the previous results stay as they were.

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
                        f".{destination.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old"
                    )
                    os.replace(destination, hidden)
                    set_aside.append((hidden, destination))
                if staged is not None:
                    os.replace(staged, destination)
                    placed.append(destination)
    except BaseException as exc:
        for destination in placed:
            destination.unlink(missing_ok=True)
        for hidden, destination in reversed(set_aside):
            os.replace(hidden, destination)
        if not isinstance(exc, OSError):
            raise
        raise OutputError(
            f"cannot move the results into place ({exc.strerror or exc}); nothing was changed"
        ) from None
    for hidden, _ in set_aside:
        hidden.unlink(missing_ok=True)
