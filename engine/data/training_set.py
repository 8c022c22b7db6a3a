"""Training data from one or several rasters, each with its own label rasters (no mosaic).

:func:`load_training_set` reads every tile the way inference reads a raster (physical
values, missing data masked), drops the bands that are flagged bad or hold no data,
normalises all tiles with one set of statistics and collects the labelled pixels of each
split as :class:`LabelledPixels`, from which the trainer draws batches by index; patches
are cut lazily from each tile.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import InputDataError
from .classes import ClassInfo
from .labels import read_aligned_labels, resolve_classes
from .normalization import (
    MINMAX,
    STANDARD,
    MinMaxNormalization,
    Normalization,
    StandardNormalization,
    check_method,
    fit_normalization,
)
from .patches import PatchExtractor
from .raster import BandInfo, band_info, open_raster, read_window
from .scenes import Scene
from .validation import carve_validation
from .vrt import band_items

SPLITS = ("train", "validation", "test")
WAVELENGTH_TOLERANCE_NM = 5.0
# Raw values that are no-data in practice; a band minimum equal to one was not flagged.
NODATA_SENTINELS = (-32768.0, -32767.0, -10000.0, -9999.0)
HUGE = 1e30  # |value| at or above this is a float fill value (e.g. -3.4e38)
STAT_SAMPLE = 200_000  # valid pixels sampled to look for a leaked no-data value
# A band minimum shared by at least MIN_SHARE of the valid pixels and lying below the other
# values by more than GAP_SHARE times their 1-99 % span is suspect. (Reflectance clipped to 0
# in absorption bands, as over water in EnMAP L2A, lies about 0.25 spans below the rest.)
MIN_SHARE = 1e-3
GAP_SHARE = 1.0
CSV_COLUMNS = {
    "raster": ("raster", "image"),
    "train_labels": ("train_labels", "labels", "mask"),
    "validation_labels": ("validation_labels",),
    "test_labels": ("test_labels",),
}


@dataclass(frozen=True)
class TileFiles:
    """One raster and its label rasters (any may be absent except the raster).

    ``train_regions`` optionally gives each training pixel's region (e.g. the polygon it
    was burnt from, see :mod:`~engine.data.vector_labels`): a validation share is then
    carved by whole regions.
    """

    raster: Path
    train_labels: Path | None = None
    validation_labels: Path | None = None
    test_labels: Path | None = None
    train_regions: Path | None = None

    def labels(self, split: str) -> Path | None:
        return getattr(self, f"{split}_labels")


def read_tile_csv(path: str | os.PathLike[str]) -> list[TileFiles]:
    """Tiles listed in a CSV: header ``raster,train_labels[,validation_labels][,test_labels]``.

    Relative paths are relative to the CSV's folder; an empty cell means no such labels.
    ``image`` and ``mask`` (EnMAP-Box SpecDeepMap lists) are accepted for ``raster`` and
    ``train_labels``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"tile list not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputDataError(f"{path.name} is empty; expected a header raster,train_labels,...")
    header = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in rows[0]]
    columns = {}
    for key, names in CSV_COLUMNS.items():
        found = [i for i, h in enumerate(header) if h in names]
        if found:
            columns[key] = found[0]
    if "raster" not in columns:
        raise InputDataError(
            f"{path.name} has no 'raster' column; its header must read "
            "raster,train_labels[,validation_labels][,test_labels]"
        )
    tiles = []
    for number, row in enumerate(rows[1:], start=2):
        cells = {k: row[i].strip() if i < len(row) else "" for k, i in columns.items()}
        if not cells["raster"]:
            raise InputDataError(f"{path.name} line {number}: no raster")
        resolved = {k: path.parent / v if v else None for k, v in cells.items()}
        tiles.append(TileFiles(**resolved))
    if not tiles:
        raise InputDataError(f"{path.name} lists no tiles")
    return tiles


def tiles_from_paths(
    rasters: Sequence[str | os.PathLike[str]],
    train_labels: Sequence[str | os.PathLike[str]] = (),
    validation_labels: Sequence[str | os.PathLike[str]] = (),
    test_labels: Sequence[str | os.PathLike[str]] = (),
) -> list[TileFiles]:
    """Pair rasters with label rasters given in the same order; each entry may be a glob
    (``tiles/*.tif``), expanded in sorted order."""
    lists = {"raster": _expand(rasters, "raster")}
    given = {"train": train_labels, "validation": validation_labels, "test": test_labels}
    for split, entries in given.items():
        paths = _expand(entries, f"{split} labels")
        if paths and len(paths) != len(lists["raster"]):
            raise InputDataError(
                f"{len(lists['raster'])} rasters but {len(paths)} {split} label rasters; give "
                "one per raster, in the same order"
            )
        lists[f"{split}_labels"] = paths
    count = len(lists["raster"])
    return [TileFiles(**{k: (v[i] if v else None) for k, v in lists.items()}) for i in range(count)]


def _expand(entries: Sequence[str | os.PathLike[str]], what: str) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        text = os.fspath(entry)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputDataError(f"no {what} matches {text}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    return out


@dataclass(frozen=True)
class BandSelection:
    """Which bands of the rasters a model uses.

    Attributes:
        numbers: GDAL band numbers (1-based) read, in order.
        count: spectral bands each raster has (alpha bands excluded).
        flagged: band numbers left out because they are flagged bad (``bbl``).
        empty: band numbers left out because a tile holds no valid value in them.
    """

    numbers: tuple[int, ...]
    count: int
    flagged: tuple[int, ...] = ()
    empty: tuple[int, ...] = ()

    @property
    def is_subset(self) -> bool:
        """True when some of the rasters' bands are left out."""
        return self.numbers != tuple(range(1, self.count + 1))


class LabelledPixels:
    """Labelled pixels of one split over several tiles; patches are cut on demand.

    Args:
        extractors: one patch extractor per tile (normalised, padded).
        tile, rows, cols: (n,) tile index and position of each pixel.
        values: (n,) class values 1..N.
    """

    def __init__(
        self,
        extractors: Sequence[PatchExtractor],
        tile: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
    ) -> None:
        self.extractors = list(extractors)
        self.tile, self.rows, self.cols = tile, rows, cols
        self.values = values.astype(np.int64)

    def __len__(self) -> int:
        return int(self.values.size)

    def patches(self, indices: np.ndarray) -> np.ndarray:
        """(n, bands, p, p) float32 patches of the pixels ``indices``, in that order."""
        indices = np.asarray(indices)
        first = self.extractors[0]
        bands, p = first.padded.shape[0], first.patch_size
        out = np.empty((indices.size, bands, p, p), dtype=np.float32)
        tiles = self.tile[indices]
        for t in np.unique(tiles):
            where = np.flatnonzero(tiles == t)
            pick = indices[where]
            out[where] = self.extractors[t](self.rows[pick], self.cols[pick])
        return out

    def targets(self, indices: np.ndarray) -> np.ndarray:
        """(n,) int64 class indices 0..N-1 of the pixels ``indices``."""
        return self.values[np.asarray(indices)] - 1

    def class_counts(self, num_classes: int) -> np.ndarray:
        """(num_classes,) pixels per class."""
        return np.bincount(self.values, minlength=num_classes + 1)[1:]


@dataclass
class TrainingSet:
    """Normalised tiles and the labelled pixels of each split, ready for training.

    ``splits`` holds ``train``, ``validation`` and ``test`` when they have pixels. ``notes``
    are what the log should say (bands dropped, where class names came from...);
    ``warnings`` are doubts about the data that did not stop loading.
    """

    name: str
    tiles: tuple[TileFiles, ...]
    extractors: list[PatchExtractor]
    normalization: Normalization
    classes: tuple[ClassInfo, ...]
    bands: BandSelection
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None
    fwhm_nm: tuple[float, ...] | None
    patch_size: int
    splits: dict[str, LabelledPixels]
    source: str = ""
    split: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_bands(self) -> int:
        return len(self.band_names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train(self) -> LabelledPixels | None:
        return self.splits.get("train")

    @property
    def validation(self) -> LabelledPixels | None:
        return self.splits.get("validation")

    @property
    def test(self) -> LabelledPixels | None:
        return self.splits.get("test")

    def summary(self) -> str:
        """One line: tiles, bands, classes and pixels per split."""
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.splits.items())
        return (
            f"{len(self.tiles)} raster{'s' if len(self.tiles) != 1 else ''}, "
            f"{self.num_bands} bands, {self.num_classes} classes; labelled pixels: {counts}"
        )

    @classmethod
    def from_scene(
        cls,
        scene: Scene,
        patch_size: int,
        normalization: Normalization | None = None,
        validation_share: float = 0.0,
        seed: int = 0,
        normalization_method: str = MINMAX,
    ) -> TrainingSet:
        """One benchmark :class:`Scene` (all its bands), with ``normalization`` or else
        ``normalization_method``'s statistics fitted on it."""
        values = np.moveaxis(scene.cube, -1, 0)
        valid = scene.valid if scene.valid is not None else np.ones(values.shape[1:], bool)
        labels = {"train": scene.train_labels, "test": scene.test_labels}
        tile = _Tile(
            TileFiles(Path(scene.name)),
            values,
            valid,
            {k: v for k, v in labels.items() if v is not None},
        )
        notes: list[str] = []
        if validation_share > 0:
            _carve([tile], validation_share, seed, notes)
        # Statistics exactly as PreparedScene fits them (benchmark results stay bit-identical).
        if normalization is None:
            normalization = fit_normalization(normalization_method, values, scene.valid)
        extractor = _extractor(tile, normalization, patch_size)
        n = scene.num_bands
        return cls(
            name=scene.name,
            tiles=(tile.files,),
            extractors=[extractor],
            normalization=normalization,
            classes=scene.classes,
            bands=BandSelection(tuple(range(1, n + 1)), n),
            band_names=scene.band_names,
            wavelengths_nm=scene.wavelengths_nm,
            fwhm_nm=None,
            patch_size=patch_size,
            splits=_splits([tile], [extractor]),
            source=scene.source,
            split=scene.split,
            notes=notes,
        )


def load_training_set(
    tiles: Sequence[TileFiles],
    patch_size: int = 7,
    *,
    classes_csv: str | os.PathLike[str] | None = None,
    validation_share: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    normalization: Normalization | None = None,
    classes: Sequence[ClassInfo] | None = None,
    band_numbers: Sequence[int] | None = None,
    normalization_method: str = MINMAX,
) -> TrainingSet:
    """Read labelled rasters for training (or, with a model's statistics, for evaluation).

    Bands flagged bad (ENVI ``bbl``, GDAL band metadata ``bbl``, also in the source files
    of a VRT mosaic) or without any valid value in a tile are left out; the statistics are
    fitted on the valid pixels of the used bands of every tile with training labels.

    Args:
        tiles: rasters with their label rasters.
        patch_size: odd patch edge.
        classes_csv: ``value,name,colour`` table; else names from the label rasters.
        validation_share: without validation labels, this share of each class's training
            pixels becomes the validation set, by whole connected regions (0: none).
        seed: for the validation carving.
        name: the data set's name (default: the first raster's name).
        normalization, classes, band_numbers: a model's statistics, class table and raster
            bands, to evaluate that model (the bands are then not chosen from the data).
        normalization_method: the statistics to fit without ``normalization``
            (:data:`~.normalization.MINMAX` or :data:`~.normalization.STANDARD`).
    """
    if not tiles:
        raise InputDataError("no raster given")
    notes: list[str] = []
    warnings: list[str] = []
    surveys = [_survey(t) for t in tiles]
    bands = _select_bands(surveys, band_numbers, notes)
    infos = [s.info.subset([s.info.numbers.index(n) for n in bands.numbers]) for s in surveys]
    loaded = [_load(s.files, info) for s, info in zip(surveys, infos, strict=True)]
    _check_overlaps(loaded)
    if validation_share > 0:
        if any("validation" in t.labels for t in loaded):
            notes.append("validation pixels from the validation label rasters")
        else:
            _carve(loaded, validation_share, seed, notes)
    _drop_nodata_labels(loaded, notes)
    if normalization is None:
        if not any("train" in t.labels for t in loaded):
            raise InputDataError("no training labels given: give a label raster per raster")
        normalization = _fit([t for t in loaded if "train" in t.labels], normalization_method)
        warnings.extend(_leaked_nodata(loaded, infos, bands))
    elif normalization.num_bands != len(bands.numbers):
        raise InputDataError(
            f"the model's statistics have {normalization.num_bands} bands, the rasters "
            f"{len(bands.numbers)} used bands"
        )
    num_classes = max((int(v.max(initial=0)) for t in loaded for v in t.labels.values()), default=0)
    if num_classes == 0:
        raise InputDataError("the label rasters hold no labelled pixel (class values 1..N)")
    if classes is None:
        if num_classes < 2 and classes_csv is None:
            raise InputDataError(
                "the labels hold only class 1; a classifier needs at least 2 classes"
            )
        label_files = [p for f in tiles for s in SPLITS if (p := f.labels(s)) is not None]
        classes, note = resolve_classes(num_classes, label_files, classes_csv)
        notes.append(note)
    elif num_classes > len(classes):
        raise InputDataError(
            f"the labels hold class {num_classes} but the model knows {len(classes)} classes"
        )
    first = surveys[0].info.subset([surveys[0].info.numbers.index(n) for n in bands.numbers])
    if first.wavelengths_nm is None:
        notes.append(
            "the rasters carry no wavelengths: the model will be checked by band count only, "
            "not by wavelength"
        )
    extractors = [_extractor(t, normalization, patch_size) for t in loaded]
    splits = _splits(loaded, extractors)
    if normalization is None and "train" not in splits:  # training, not evaluating a model
        raise InputDataError("the training labels hold no labelled pixel on valid data")
    return TrainingSet(
        name=name or tiles[0].raster.stem,
        tiles=tuple(tiles),
        extractors=extractors,
        normalization=normalization,
        classes=tuple(classes),
        bands=bands,
        band_names=first.names,
        wavelengths_nm=first.wavelengths_nm,
        fwhm_nm=_fwhm(surveys[0], bands),
        patch_size=patch_size,
        splits=splits,
        source=", ".join(str(t.raster) for t in tiles),
        split=_describe_split(tiles, validation_share),
        notes=notes,
        warnings=warnings,
    )


@dataclass
class _Survey:
    """What one raster says about its bands before its pixels are used."""

    files: TileFiles
    info: BandInfo  # every spectral band
    items: list[dict[str, str]]  # metadata items per spectral band
    flagged: np.ndarray  # (bands,) bool
    empty: np.ndarray  # (bands,) bool: no valid value in this raster


@dataclass
class _Tile:
    files: TileFiles
    values: np.ndarray  # (bands, rows, cols) physical values of the used bands
    valid: np.ndarray  # (rows, cols) bool
    labels: dict[str, np.ndarray]  # split -> (rows, cols) int32 class values
    regions: np.ndarray | None = None  # (rows, cols) region id of each training pixel


def _survey(files: TileFiles) -> _Survey:
    ds = open_raster(files.raster)
    info = band_info(ds)
    all_items = band_items(ds)
    items = [all_items[n - 1] for n in info.numbers]
    flagged = np.array(info.bad, dtype=bool)  # ENVI bbl or band metadata bbl
    raw, _ = read_window(ds, info, 0, 0, ds.RasterXSize, ds.RasterYSize, physical=False)
    return _Survey(files, info, items, flagged, ~_band_has_data(ds, info, raw))


def _band_has_data(ds: gdal.Dataset, info: BandInfo, raw: np.ndarray) -> np.ndarray:
    """(bands,) bool: the band has at least one value that is not missing."""
    out = np.zeros(info.count, dtype=bool)
    for b in range(info.count):
        ok = np.isfinite(raw[b]) if raw.dtype.kind == "f" else np.ones(raw.shape[1:], bool)
        nodata = info.nodata[b]
        if nodata is not None and not np.isnan(nodata):
            ok &= raw[b] != nodata
        if info.masks[b] == "band":
            ok &= ds.GetRasterBand(info.numbers[b]).GetMaskBand().ReadAsArray() != 0
        out[b] = ok.any()
    return out


def _select_bands(
    surveys: Sequence[_Survey], band_numbers: Sequence[int] | None, notes: list[str]
) -> BandSelection:
    first = surveys[0]
    for s in surveys[1:]:
        _check_same_bands(first, s)
    numbers = np.array(first.info.numbers)
    flagged = np.logical_or.reduce([s.flagged for s in surveys])
    empty = np.logical_or.reduce([s.empty for s in surveys]) & ~flagged
    if band_numbers is not None:
        missing = sorted(set(band_numbers) - set(numbers.tolist()))
        if missing:
            raise InputDataError(
                f"the model reads band {missing[0]}, which {first.files.raster.name} does not have"
            )
        for s in surveys:
            for n in band_numbers:
                if s.empty[list(numbers).index(n)]:
                    raise InputDataError(
                        f"band {n} of {s.files.raster.name} holds no valid value but the model "
                        "uses it"
                    )
        return BandSelection(tuple(band_numbers), first.info.count)
    keep = ~(flagged | empty)
    if not keep.any():
        raise InputDataError(
            f"every band of {first.files.raster.name} is flagged bad or holds no valid value"
        )
    selection = BandSelection(
        tuple(int(n) for n in numbers[keep]),
        first.info.count,
        tuple(int(n) for n in numbers[flagged]),
        tuple(int(n) for n in numbers[empty]),
    )
    if selection.flagged:
        notes.append(
            f"left out {len(selection.flagged)} bands flagged bad (bbl): "
            f"{_ranges(selection.flagged)}"
        )
    if selection.empty:
        where = [s.files.raster.name for s in surveys if (s.empty & ~flagged).any()]
        notes.append(
            f"left out {len(selection.empty)} bands without any valid value (in "
            f"{', '.join(where[:3])}{'...' if len(where) > 3 else ''}): {_ranges(selection.empty)}"
        )
    if selection.is_subset:
        notes.append(
            f"the model uses {len(selection.numbers)} of the {selection.count} bands; "
            "inference reads the same bands"
        )
    return selection


def _check_same_bands(first: _Survey, other: _Survey) -> None:
    a, b = first.info, other.info
    if a.count != b.count:
        raise InputDataError(
            f"{other.files.raster.name} has {b.count} bands but {first.files.raster.name} "
            f"{a.count}; every raster must have the same bands"
        )
    if a.wavelengths_nm and b.wavelengths_nm:
        diff = np.abs(np.subtract(a.wavelengths_nm, b.wavelengths_nm))
        worst = int(diff.argmax())
        if diff[worst] > WAVELENGTH_TOLERANCE_NM:
            raise InputDataError(
                f"band {b.numbers[worst]} of {other.files.raster.name} is at "
                f"{b.wavelengths_nm[worst]:.1f} nm but at {a.wavelengths_nm[worst]:.1f} nm in "
                f"{first.files.raster.name}; every raster must have the same bands"
            )


def _load(files: TileFiles, info: BandInfo) -> _Tile:
    ds = open_raster(files.raster)
    values, valid = read_window(ds, info, 0, 0, ds.RasterXSize, ds.RasterYSize)
    labels = {}
    for split in SPLITS:
        path = files.labels(split)
        if path is not None:
            labels[split] = read_aligned_labels(path, ds)
    regions = None
    if files.train_regions is not None:
        regions = read_aligned_labels(files.train_regions, ds).astype(np.int64)
    return _Tile(files, values, valid, labels, regions)


def _check_overlaps(tiles: Sequence[_Tile]) -> None:
    """Refuse a pixel that is in two splits (training on test pixels, for one)."""
    for t in tiles:
        for i, a in enumerate(SPLITS):
            for b in SPLITS[i + 1 :]:
                if a in t.labels and b in t.labels:
                    both = int(((t.labels[a] > 0) & (t.labels[b] > 0)).sum())
                    if both:
                        raise InputDataError(
                            f"{both} pixels of {t.files.raster.name} are labelled in both the "
                            f"{a} and the {b} labels; the splits must not overlap"
                        )


def _carve(tiles: Sequence[_Tile], share: float, seed: int, notes: list[str]) -> None:
    with_train = [t for t in tiles if "train" in t.labels]
    by_region = bool(with_train) and all(t.regions is not None for t in with_train)
    regions = [t.regions for t in with_train] if by_region else None
    carved = carve_validation([t.labels["train"] for t in with_train], share, seed, regions)
    for t, train, validation in zip(with_train, carved.train, carved.validation, strict=True):
        t.labels["train"], t.labels["validation"] = train, validation
    moved = sum(int((v > 0).sum()) for v in carved.validation)
    unit = "whole polygons" if by_region else "whole connected regions"
    notes.append(
        f"validation: {moved} training pixels ({100 * share:g}% of each class, {unit}, "
        f"seed {seed}) are held out to monitor training"
    )
    if carved.single_region_classes:
        notes.append(
            f"classes with one {'polygon' if by_region else 'connected region'} stay entirely "
            f"in training, without validation pixels: "
            f"{', '.join(map(str, carved.single_region_classes))}"
        )


def _drop_nodata_labels(tiles: Sequence[_Tile], notes: list[str]) -> None:
    for t in tiles:
        for split, labels in t.labels.items():
            lost = (labels > 0) & ~t.valid
            if lost.any():
                notes.append(
                    f"{int(lost.sum())} {split} pixels of {t.files.raster.name} lie on no-data "
                    "pixels and are left out"
                )
                labels[lost] = 0


def _fit(tiles: Sequence[_Tile], method: str) -> Normalization:
    """``method``'s statistics over the valid pixels of all ``tiles`` (float64 sums)."""
    check_method(method)
    bands = tiles[0].values.shape[0] if tiles else 0
    low = np.full(bands, np.inf)
    high = np.full(bands, -np.inf)
    total = np.zeros(bands)
    squares = np.zeros(bands)
    count = 0
    for t in tiles:
        n = int(t.valid.sum())
        if n == 0:
            continue
        for b in range(bands):  # one band at a time: no float64 copy of the whole cube
            band = t.values[b][t.valid]
            low[b] = min(low[b], float(band.min()))
            high[b] = max(high[b], float(band.max()))
            total[b] += float(band.sum(dtype=np.float64))
            if method == STANDARD:
                squares[b] += float(np.square(band, dtype=np.float64).sum())
        count += n
    if count == 0:
        raise InputDataError(
            "the training rasters have no valid pixel in the used bands (every pixel is no-data)"
        )
    mean = total / count
    if method == STANDARD:
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return StandardNormalization.from_moments(low, high, mean, std)
    span = np.where(high > low, high - low, 1.0)
    fill = (mean - low) / span
    return MinMaxNormalization(
        low.astype(np.float32), high.astype(np.float32), fill.astype(np.float32)
    )


def _leaked_nodata(
    tiles: Sequence[_Tile], infos: Sequence[BandInfo], bands: BandSelection
) -> list[str]:
    """Refuse a band whose minimum is a no-data sentinel; warn about values that look like
    undeclared fill: the same value in every band of a pixel, or a repeated band minimum
    far below the band's other values.

    Only tiles with training labels count (their pixels make the statistics).
    """
    used = [(t, i) for t, i in zip(tiles, infos, strict=True) if "train" in t.labels]
    for t, info in used:
        if not t.valid.any():
            continue
        for b in range(info.count):
            value = float(t.values[b][t.valid].min())
            raw = (value - info.offset[b]) / info.scale[b] if info.scale[b] else value
            if abs(raw) >= HUGE or any(abs(raw - s) < 0.5 for s in NODATA_SENTINELS):
                raise InputDataError(
                    f"band {info.numbers[b]} ({info.names[b]}) of {t.files.raster.name} has the "
                    f"value {raw:g}, which looks like a no-data value the raster does not "
                    f"declare; declare it (gdal_edit.py -a_nodata {raw:g} "
                    f"{t.files.raster.name}) or flag the band bad"
                )
    warnings = _constant_pixels([t for t, _ in used])
    sample = _sample_valid([t for t, _ in used])
    for b in range(sample.shape[1]):
        column = sample[:, b]
        low = column.min()
        at_low = column == low
        rest = column[~at_low]
        if at_low.mean() < MIN_SHARE or rest.size < 100:
            continue
        p1, p99 = np.percentile(rest, [1, 99])
        if p1 - low > GAP_SHARE * max(p99 - p1, 1e-12):
            warnings.append(
                f"band {bands.numbers[b]} ({infos[0].names[b]}): {100 * at_low.mean():.1f}% of "
                f"the valid pixels are exactly {low:g}, far below the other values "
                f"({p1:g} to {p99:g}); if {low:g} means no data, declare it as the no-data value"
            )
    return warnings


def _constant_pixels(tiles: Sequence[_Tile]) -> list[str]:
    """Warn about valid pixels with the same value in every band (a fill value, usually)."""
    out = []
    for t in tiles:
        same = t.valid.copy()
        for band in t.values[1:]:
            same &= band == t.values[0]
        if t.values.shape[0] > 1 and same.any():
            found = np.unique(t.values[0][same])
            out.append(
                f"{int(same.sum())} valid pixels of {t.files.raster.name} have the same value "
                f"({', '.join(f'{v:g}' for v in found[:3])}) in every used band; if that means "
                "no data, declare it as the no-data value (gdal_edit.py -a_nodata)"
            )
    return out


def _sample_valid(tiles: Sequence[_Tile]) -> np.ndarray:
    """(n, bands) float64 valid pixels, evenly strided, at most :data:`STAT_SAMPLE`."""
    total = sum(int(t.valid.sum()) for t in tiles)
    step = max(1, total // STAT_SAMPLE)
    parts = []
    for t in tiles:
        pick = np.flatnonzero(t.valid.ravel())[::step]
        parts.append(t.values.reshape(t.values.shape[0], -1)[:, pick].T)
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 0))


def _extractor(tile: _Tile, normalization: Normalization, patch_size: int) -> PatchExtractor:
    cube = np.ascontiguousarray(normalization.apply(tile.values, band_axis=0))
    cube[:, ~tile.valid] = normalization.fill[:, None]
    return PatchExtractor.from_cube(cube, patch_size)


def _splits(tiles: Sequence[_Tile], extractors: list[PatchExtractor]) -> dict[str, LabelledPixels]:
    out = {}
    for split in SPLITS:
        parts = []
        for i, t in enumerate(tiles):
            labels = t.labels.get(split)
            if labels is not None:
                rows, cols, values = Scene.pixels(labels)
                parts.append((np.full(rows.size, i), rows, cols, values))
        if parts and sum(p[0].size for p in parts):
            tile, rows, cols, values = (np.concatenate(x) for x in zip(*parts, strict=True))
            out[split] = LabelledPixels(extractors, tile, rows, cols, values)
    return out


def _fwhm(survey: _Survey, bands: BandSelection) -> tuple[float, ...] | None:
    """FWHM (nm) of the used bands when every one has it."""
    out = []
    for n in bands.numbers:
        items = survey.items[survey.info.numbers.index(n)]
        try:
            value = float(items["fwhm"])
        except (KeyError, ValueError):
            return None
        units = (items.get("wavelength_units") or "nm").strip().lower()
        out.append(value * 1e3 if units.startswith("micro") or units in ("um", "µm") else value)
    return tuple(out)


def _describe_split(tiles: Sequence[TileFiles], validation_share: float) -> str:
    parts = []
    for split in SPLITS:
        count = sum(t.labels(split) is not None for t in tiles)
        if count:
            parts.append(f"{split} labels on {count} raster{'s' if count != 1 else ''}")
    if validation_share > 0 and not any(t.validation_labels for t in tiles):
        parts.append(f"validation carved from training labels ({100 * validation_share:g}%)")
    return "; ".join(parts)


def _ranges(numbers: Sequence[int]) -> str:
    """``1-3, 7`` for (1, 2, 3, 7)."""
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(f"{start}" if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)
