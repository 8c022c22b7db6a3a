"""Labelled hyperspectral scenes: the benchmark scenes and any raster + label raster pair."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetNotFoundError, InputDataError
from .classes import (
    HOUSTON2013_CLASSES,
    INDIAN_PINES_CLASSES,
    PAVIA_UNIVERSITY_CLASSES,
    ClassInfo,
    make_classes,
)
from .labels import read_aligned_labels
from .raster import (
    BandInfo,
    band_info,
    category_names,
    open_raster,
    read_label_raster,
    read_window,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_INDIAN_PINES = REPO_ROOT / "resources" / "indian_pines"
INDIAN_PINES_CREDIT = (
    "AVIRIS Indian Pines, 1992-06-12 (Baumgardner, Biehl, Landgrebe, Purdue University, "
    "doi:10.4231/R7RX991C), 200-band corrected cube as distributed by GIC UPV/EHU; fixed "
    "train/test split of Hong et al. (miniGCN, TGRS 2021; SpectralFormer, TGRS 2022)"
)


@dataclass
class Scene:
    """A hyperspectral cube with training and test labels.

    Attributes:
        name: short identifier, e.g. ``indian_pines``.
        cube: (rows, cols, bands) physical values: GDAL scale/offset applied (float32) when
            the raster has them, else the stored values in their own dtype.
        train_labels: (rows, cols) int32 class values, 0 = not a training pixel.
        test_labels: (rows, cols) int32 class values, 0 = not a test pixel; None if absent.
        classes: class table; values 1..N match the label rasters.
        band_names: one name per band.
        wavelengths_nm: centre wavelength per band, or None when unknown.
        valid: (rows, cols) bool, False where data is missing (no-data value, NaN/inf, GDAL
            mask band); None means all valid.
        source: provenance / credit line.
        split: which train/test split the label maps are.
    """

    name: str
    cube: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray | None
    classes: tuple[ClassInfo, ...]
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None = None
    valid: np.ndarray | None = None
    source: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        rows, cols, bands = self.cube.shape
        for label_name in ("train_labels", "test_labels"):
            labels = getattr(self, label_name)
            if labels is None:
                continue
            if labels.shape != (rows, cols):
                raise InputDataError(
                    f"{self.name}: {label_name} is {labels.shape[0]}x{labels.shape[1]} pixels "
                    f"but the cube is {rows}x{cols}"
                )
            if labels.max(initial=0) > len(self.classes):
                raise InputDataError(
                    f"{self.name}: {label_name} holds class {labels.max()} but only "
                    f"{len(self.classes)} classes are named"
                )
        if len(self.band_names) != bands:
            raise InputDataError(
                f"{self.name}: {len(self.band_names)} band names for {bands} bands"
            )
        if not (self.train_labels > 0).any():
            raise InputDataError(f"{self.name}: the training labels contain no labelled pixel")

    @property
    def num_bands(self) -> int:
        return int(self.cube.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @staticmethod
    def pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, class values) of the labelled pixels of a label map, row-major."""
        rows, cols = np.nonzero(labels)
        return rows, cols, labels[rows, cols]


def load_indian_pines(data_root: str | os.PathLike[str] | None = None) -> Scene:
    """Indian Pines (AVIRIS, 145x145 pixels, 200 bands, 16 classes) with the fixed split.

    The split (695 training / 9671 test pixels; 50 per class for classes 1-13, 15 for
    14-16) is D. Hong's miniGCN/SpectralFormer split, in *its* class order
    (:data:`INDIAN_PINES_CLASSES`).

    Args:
        data_root: folder laid out like ``shared/data`` (``indian_pines/*.mat`` and the
            split TIFFs). None reads the GeoTIFFs bundled in ``resources/indian_pines``.
    """
    if data_root is None:
        folder = BUNDLED_INDIAN_PINES
        cube_path = folder / "indian_pines.tif"
        _require(cube_path, "the bundled Indian Pines scene; run `make resources` in a checkout")
        cube, _, info = _read_raster_cube(cube_path)
        names = info.names
        train = read_label_raster(folder / "indian_pines_train.tif")
        test = read_label_raster(folder / "indian_pines_test.tif")
    else:
        folder = Path(data_root) / "indian_pines"
        cube_path = folder / "Indian_pines_corrected.mat"
        _require(cube_path, "Indian Pines cube (GIC Indian_pines_corrected.mat)")
        cube = _load_mat(cube_path, "indian_pines_corrected")
        names = indian_pines_band_names()
        train = read_label_raster(_require(folder / "IndianTR123_temp123.tif", "IP train split"))
        test = read_label_raster(_require(folder / "IndianTE123_temp123.tif", "IP test split"))
    return Scene(
        name="indian_pines",
        cube=cube,
        train_labels=train,
        test_labels=test,
        classes=INDIAN_PINES_CLASSES,
        band_names=tuple(names),
        source=INDIAN_PINES_CREDIT,
        split="Hong et al. fixed split (IndianTR123/IndianTE123), 695 train / 9671 test",
    )


def indian_pines_band_names() -> list[str]:
    """Names of the 200 corrected bands, by original AVIRIS channel (1-based).

    The corrected cube drops channels 104-108, 150-163 and 220 (water absorption).
    """
    removed = set(range(104, 109)) | set(range(150, 164)) | {220}
    return [f"AVIRIS channel {c}" for c in range(1, 221) if c not in removed]


def load_pavia_university(data_root: str | os.PathLike[str], cube: str | os.PathLike[str]) -> Scene:
    """Pavia University (ROSIS, 610x340, 103 bands, 9 classes), fixed 3921/40002 split.

    Args:
        data_root: folder laid out like ``shared/data`` (holds the split maps).
        cube: ``PaviaU.mat`` (key ``paviaU``) or any GDAL raster of the 103-band cube.
    """
    folder = Path(data_root) / "pavia_university"
    return Scene(
        name="pavia_university",
        cube=_load_cube(cube, "paviaU", "Pavia University cube (GIC PaviaU.mat)"),
        train_labels=_load_mat(_require(folder / "TRpaviaU.mat", "PU train split"), "TRpaviaU"),
        test_labels=_load_mat(_require(folder / "TSpaviaU.mat", "PU test split"), "TSpaviaU"),
        classes=PAVIA_UNIVERSITY_CLASSES,
        band_names=tuple(f"Band {i}" for i in range(1, 104)),
        source="ROSIS Pavia University, P. Gamba, University of Pavia (via GIC UPV/EHU)",
        split="Hong et al. fixed split (TRpaviaU/TSpaviaU), 3921 train / 40002 test",
    )


def load_houston2013(data_root: str | os.PathLike[str], cube: str | os.PathLike[str]) -> Scene:
    """Houston 2013 (CASI, 349x1905, 144 bands, 15 classes), standard DFC 2013 split.

    The cube may not be redistributed; point ``cube`` at your own copy.
    """
    folder = Path(data_root) / "houston2013"
    return Scene(
        name="houston2013",
        cube=_load_cube(cube, None, "Houston 2013 144-band cube (GRSS DFC 2013)"),
        train_labels=_load_mat(_require(folder / "TRLabel.mat", "Houston train split"), "TRLabel"),
        test_labels=_load_mat(_require(folder / "TSLabel.mat", "Houston test split"), "TSLabel"),
        classes=HOUSTON2013_CLASSES,
        band_names=tuple(f"Band {i}" for i in range(1, 145)),
        source="Houston 2013, University of Houston / NCALM, IEEE GRSS DFC 2013",
        split="GRSS DFC 2013 standard split, 2832 train / 12197 test",
    )


def load_raster_scene(
    raster: str | os.PathLike[str],
    train_labels: str | os.PathLike[str],
    test_labels: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Scene:
    """Any GDAL raster with a training label raster (and optionally a test one).

    The cube is read as inference reads it: physical values (GDAL scale/offset applied),
    alpha bands and bands flagged bad in an ENVI ``bbl`` left out, and pixels whose data
    is missing (no-data value, NaN/inf, GDAL mask band) marked invalid. Label rasters hold
    class values 1..N (0 or no-data = unlabelled) on the raster's grid.
    Class names come from the training label raster's category names when it has them.
    For several rasters, bands without data and class tables, see
    :func:`~engine.data.training_set.load_training_set`.
    """
    cube, valid, info = _read_raster_cube(raster)
    image = open_raster(raster)
    train = read_aligned_labels(train_labels, image)
    test = read_aligned_labels(test_labels, image) if test_labels is not None else None
    num_classes = int(max(train.max(), test.max() if test is not None else 0))
    names = category_names(train_labels)
    if names and len(names) > num_classes and all(names[1 : num_classes + 1]):
        class_names = names[1 : num_classes + 1]
    else:
        class_names = [f"Class {v}" for v in range(1, num_classes + 1)]
    label_files = {"train": train_labels, "test": test_labels}
    scene = Scene(
        name=name or Path(raster).stem,
        cube=cube,
        train_labels=train,
        test_labels=test,
        classes=make_classes(class_names),
        band_names=info.names,
        wavelengths_nm=info.wavelengths_nm,
        valid=None if valid.all() else valid,
        source=str(raster),
        split=", ".join(f"{k} {Path(v).name}" for k, v in label_files.items() if v),
    )
    for labels, what in ((train, "training"), (test, "test")):
        if labels is not None and (labels > 0)[~valid].any():
            raise InputDataError(f"some {what} pixels are no-data in {raster}; fix the labels")
    return scene


SCENES: dict[str, Callable[..., Scene]] = {
    "indian_pines": load_indian_pines,
    "pavia_university": load_pavia_university,
    "houston2013": load_houston2013,
}


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found at {path}")
    return path


def _load_mat(path: Path, key: str | None) -> np.ndarray:
    """A variable of a MATLAB file; a cube file's only 3-D variable if ``key`` is absent."""
    from scipy.io import loadmat  # only needed for the .mat benchmark files

    data = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    if key in data:
        array = data[key]
    else:
        cubes = [v for v in data.values() if getattr(v, "ndim", 0) == 3]
        if len(cubes) != 1:
            raise DatasetNotFoundError(f"{path} has no variable {key!r} (found {sorted(data)})")
        array = cubes[0]
    return array.astype(np.int32) if array.ndim == 2 else array


def _load_cube(path: str | os.PathLike[str], mat_key: str | None, what: str) -> np.ndarray:
    """(rows, cols, bands) cube from a .mat file or any GDAL raster (physical values)."""
    path = _require(Path(path), what)
    if path.suffix.lower() == ".mat":
        return _load_mat(path, mat_key)
    return _read_raster_cube(path)[0]


def _read_raster_cube(
    path: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray, BandInfo]:
    """(rows, cols, bands) physical values, (rows, cols) has-data mask and the bands read.

    Uses :func:`read_window`, the reader inference uses, so training and inference see the
    same values; bands flagged bad in an ENVI ``bbl`` are left out.
    """
    ds = open_raster(path)
    info = band_info(ds).good()
    if info.count == 0:
        raise InputDataError(f"{path}: every band is flagged bad (bbl) or is an alpha band")
    cube, valid = read_window(ds, info, 0, 0, ds.RasterXSize, ds.RasterYSize)
    return np.moveaxis(cube, 0, -1), valid, info
