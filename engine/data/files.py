"""Raster names as GDAL reads them, and the files behind them, compared as the OS sees them.

A GDAL name is kept as the exact string given: ``/vsizip//data/x.zip/a.tif``,
``/vsicurl/https://...`` and subdataset names such as ``NETCDF:"f.nc":var`` or
``HDF5:"f.h5"://cube`` are not file paths, and ``pathlib`` would change them (it collapses
the ``//`` of ``/vsizip//data/x.zip``, turning an absolute archive path into a relative one).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

from osgeo import gdal

SUBDATASET = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # NETCDF:..., HDF5:... but not C:\...
ARCHIVES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")
ENVI_DATA_SUFFIXES = (".bsq", ".bil", ".bip", ".dat", ".raw", ".img", ".sli", "")
MAX_NESTED_VRTS = 64


class GdalName(str):
    """A raster name passed to GDAL verbatim, with the short :attr:`name` messages show."""

    @property
    def name(self) -> str:
        return short_name(self)


def is_virtual(name: str) -> bool:
    """True for a GDAL virtual file (``/vsi...``) or subdataset name, not a plain path."""
    return name.startswith("/vsi") or bool(SUBDATASET.match(name))


def short_name(name: str) -> str:
    """The last path component of a GDAL name (a subdataset name is returned whole)."""
    if SUBDATASET.match(name):
        return name
    return os.path.basename(name.rstrip("/\\")) or name


def open_failure_reason(path: str) -> str | None:
    """Why an existing local ``path`` that GDAL could not open is no raster, when known."""
    if os.path.isdir(path):
        return f"{path} is a folder, not a raster file: choose the raster file inside it"
    stem, suffix = os.path.splitext(path)
    if suffix.lower() in ENVI_DATA_SUFFIXES and not _envi_header(path):
        header = os.path.basename(stem) + ".hdr"
        return (
            f"cannot open {path}: GDAL does not recognise it, and if it is ENVI data there is "
            f"no .hdr beside it ({header}); keep the ENVI header next to its data file"
        )
    return None


def _envi_header(path: str) -> bool:
    folder = os.path.dirname(path) or "."
    stem = os.path.splitext(os.path.basename(path))[0]
    wanted = {f"{stem}.hdr".lower(), f"{os.path.basename(path)}.hdr".lower()}
    try:
        return any(entry.lower() in wanted for entry in os.listdir(folder))
    except OSError:
        return False


def dataset_files(ds: gdal.Dataset) -> list[str]:
    """Every local file a dataset reads: GDAL's file list (the raster, ENVI header,
    ``.aux.xml``, external masks, VRT sources), the sources of nested VRTs, and the
    archive behind a ``/vsizip/``-style name. Remote and in-memory files are left out."""
    names: list[str] = []
    seen: set[str] = set()
    pending = list(ds.GetFileList() or [])
    nested = 0
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        names.append(name)
        if name.lower().endswith(".vrt") and name != ds.GetDescription():
            nested += 1
            if nested <= MAX_NESTED_VRTS:
                pending.extend(_file_list(name))
    return list(dict.fromkeys(f for name in names for f in _local_files(name)))


def _file_list(name: str) -> list[str]:
    try:
        return list(gdal.Open(name).GetFileList() or [])
    except RuntimeError:  # an unreadable nested source: GDAL reports it when reading
        return []


def _local_files(name: str) -> Iterator[str]:
    """The local file(s) behind a name from a GDAL file list."""
    archive = next((prefix for prefix in ARCHIVES if name.startswith(prefix)), None)
    if archive is not None:
        inner = name[len(archive) :]
        if inner.startswith("{") and "}" in inner:  # /vsizip/{/path/x.zip}/a.tif
            yield inner[1 : inner.index("}")]
            return
        parts = inner.split("/")
        for i in range(1, len(parts) + 1):
            candidate = "/".join(parts[:i])
            if candidate and os.path.isfile(candidate):
                yield candidate
                return
    elif not name.startswith("/vsi"):
        yield name


def style_file(path: str) -> str:
    """The QGIS default style (``.qml``) that QGIS loads for a raster file."""
    return os.path.splitext(path)[0] + ".qml"


class FileSet:
    """Files compared as the filesystem sees them: after ``..`` and symlinks are resolved,
    case-folded where the OS folds case, and by device and inode (hard links)."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._by_inode: dict[tuple[int, int], str] = {}

    def add(self, path: str | os.PathLike[str], label: str) -> None:
        """Remember ``path`` (existing or not) with a label saying what it is."""
        self._by_key.setdefault(path_key(path), label)
        inode = _inode(path)
        if inode is not None:
            self._by_inode.setdefault(inode, label)

    def add_all(self, paths: Iterable[str], label: str) -> None:
        for path in paths:
            self.add(path, label)

    def find(self, path: str | os.PathLike[str]) -> str | None:
        """The label of a remembered file that ``path`` is (or will be), else None."""
        label = self._by_key.get(path_key(path))
        if label is None:
            inode = _inode(path)
            label = self._by_inode.get(inode) if inode is not None else None
        return label


def path_key(path: str | os.PathLike[str]) -> str:
    """An absolute path with ``..`` and symlinks resolved (as far as they exist)."""
    return os.path.normcase(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inode(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None  # some filesystems report 0
