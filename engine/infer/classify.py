"""Tiled classification of a raster with an ONNX model, streamed to GeoTIFF outputs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from ..data.bands import SELECT, BandPlan, plan_bands
from ..data.files import FileSet, GdalName, dataset_files, style_file
from ..data.gdal_log import gdal_messages_logged
from ..data.normalization import PHYSICAL
from ..data.patches import pad_symmetric
from ..data.raster import BandInfo, band_info, open_raster, read_window
from ..errors import (
    InferenceError,
    InputDataError,
    OutputError,
    first_line,
)
from ..metadata import DENSE
from ..progress import Feedback, SilentFeedback, check_cancelled, warn
from . import preflight
from .inputs import RangeMonitor, open_mask, read_user_mask
from .model import OnnxClassifier, softmax
from .outputs import (
    StagedGeoTiff,
    check_destinations,
    check_free_space,
    commit_outputs,
    remove_stale_staging,
)
from .predictors import make_predictor
from .style import paletted_qml, style_class_band
from .windows import HaloWindow, Window, tile_raster, tile_size_for_budget, with_halo

PROBABILITY_NODATA = -1.0
DEFAULT_BATCH_SIZE = 64
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024


@dataclass
class ClassificationReport:
    """What a classification run produced."""

    class_map: Path
    confidence: Path | None
    probabilities: Path | None
    model_id: str
    width: int
    height: int
    classified_pixels: int = 0
    nodata_pixels: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    band_plan: str = ""

    @property
    def pixels_per_second(self) -> float:
        return self.classified_pixels / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_map": str(self.class_map),
            "confidence": str(self.confidence) if self.confidence else None,
            "probabilities": str(self.probabilities) if self.probabilities else None,
            "model_id": self.model_id,
            "width": self.width,
            "height": self.height,
            "classified_pixels": self.classified_pixels,
            "nodata_pixels": self.nodata_pixels,
            "class_counts": self.class_counts,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "band_plan": self.band_plan,
        }


@dataclass
class RasterSource:
    """An opened input: the raster, the bands read from it, their plan and the user mask."""

    name: GdalName
    ds: gdal.Dataset
    info: BandInfo
    plan: BandPlan
    mask_ds: gdal.Dataset | None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the raster."""
        return self.ds.RasterYSize, self.ds.RasterXSize


@dataclass
class StagedRun:
    """A run's report and its staged outputs, hidden until :meth:`TiledClassifier.finish_run`."""

    report: ClassificationReport
    input_name: str
    staged: dict[str, StagedGeoTiff] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove every staged file; the destinations are left untouched."""
        for out in self.staged.values():
            out.discard()


class TiledClassifier:
    """Classifies rasters window by window with bounded memory.

    Each window is read with the halo of context the model's predictor needs (physical
    values, GDAL scale/offset applied, unless the model's statistics are in raw values),
    normalised with the model's statistics and padded symmetrically where the halo leaves
    the raster. The predictor (:mod:`engine.infer.predictors`: the centre pixel of a patch
    per pixel, or overlapping dense tiles blended) turns it into logits for the window's
    pixels; their softmax gives the class map, confidence and probabilities.

    Two kinds of pixels get class 0 and are not classified: pixels whose data is
    missing (band no-data value, NaN/inf, zero in a GDAL mask band or alpha band), which
    are replaced by the model's fill spectrum inside their neighbours' patches; and pixels
    the optional user mask excludes (0 or its no-data), whose real spectra stay as
    context for their neighbours, so masking a pixel never changes another pixel's class.

    Args:
        model: the ONNX classifier.
        batch_size: patches (tiles, for a dense model) per ONNX Runtime call.
        tile_size: edge in pixels of the windows read; None derives it from ``memory_budget``.
        memory_budget: bytes allowed for one window's float32 blocks.
        band_matching: ``strict``, ``select`` or ``resample``: how raster bands may become
            the model's bands (:func:`engine.data.bands.plan_bands`).
    """

    def __init__(
        self,
        model: OnnxClassifier,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tile_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        band_matching: str = SELECT,
    ) -> None:
        preflight.check_batch_size(batch_size)
        self.band_matching = band_matching
        self.model = model
        self.meta = model.metadata
        self.class_type = preflight.class_map_type(self.meta.num_classes, self.meta.model_id)
        self.batch_size = batch_size
        self.predictor = make_predictor(model, batch_size)
        self.halo = self.predictor.halo
        self.physical = self.meta.input_values == PHYSICAL
        self.tile_size = tile_size or tile_size_for_budget(
            self.meta.num_bands, self.halo, memory_budget, self.meta.num_classes
        )

    def classify(
        self,
        raster: str | os.PathLike[str],
        output: str | os.PathLike[str],
        confidence: str | os.PathLike[str] | None = None,
        probabilities: str | os.PathLike[str] | None = None,
        mask: str | os.PathLike[str] | None = None,
        feedback: Feedback | None = None,
    ) -> ClassificationReport:
        """Classify ``raster`` into ``output`` (and optional confidence/probability rasters).

        All outputs appear together at the end, or not at all (error or cancel). GDAL's
        own message lines go to the ``engine.gdal`` log, never to stderr.
        """
        with gdal_messages_logged():
            return self._classify(raster, output, confidence, probabilities, mask, feedback)

    def _classify(
        self,
        raster: str | os.PathLike[str],
        output: str | os.PathLike[str],
        confidence: str | os.PathLike[str] | None,
        probabilities: str | os.PathLike[str] | None,
        mask: str | os.PathLike[str] | None,
        feedback: Feedback | None,
    ) -> ClassificationReport:
        feedback = feedback or SilentFeedback()
        start = time.monotonic()
        source = self.open_input(raster, mask)
        requested = {"class_map": output, "confidence": confidence, "probabilities": probabilities}
        run = self.start_run(source, requested, feedback)
        try:
            counts = self._classify_windows(source, run, feedback)
            self.finish_run(run, counts, feedback)
        except BaseException:
            run.discard()
            raise
        run.report.seconds = time.monotonic() - start
        return run.report

    def open_input(
        self, raster: str | os.PathLike[str], mask: str | os.PathLike[str] | None = None
    ) -> RasterSource:
        """The raster (any GDAL name, passed verbatim: /vsizip//..., NETCDF:"f.nc":v), the
        bands to read, their plan and the mask, checked against the model."""
        name = GdalName(os.fspath(raster))
        return RasterSource(name, *self._open(name, mask))

    def start_run(
        self,
        source: RasterSource,
        requested: dict[str, str | os.PathLike[str] | None],
        feedback: Feedback,
    ) -> StagedRun:
        """Check the outputs (paths, disk room, memory), then stage and describe them.

        ``requested``: ``class_map`` and optional ``confidence``/``probabilities`` paths.
        Nothing appears at the destinations before :meth:`finish_run`.
        """
        ds = source.ds
        destinations = self._destinations(requested, ds, source.mask_ds)
        self._preflight(destinations, ds.RasterXSize, ds.RasterYSize, source.mask_ds, feedback)
        check_cancelled(feedback)
        report = ClassificationReport(
            class_map=destinations["class_map"],
            confidence=destinations.get("confidence"),
            probabilities=destinations.get("probabilities"),
            model_id=self.meta.model_id,
            width=ds.RasterXSize,
            height=ds.RasterYSize,
        )
        run = StagedRun(report, source.name.name)
        try:
            self._stage(destinations, ds, run.staged)
            self._describe_outputs(run.staged, source.name)
            self._warn_if_raw(source.info, source.name.name, feedback, report)
            report.band_plan = source.plan.description
        except BaseException:
            run.discard()
            raise
        return run

    def finish_run(self, run: StagedRun, counts: np.ndarray, feedback: Feedback) -> None:
        """Count the classes (refusing a raster without a valid pixel), then write every
        output and move them all into place together. The caller discards ``run`` on error."""
        self._count(counts, run.report, run.input_name)
        check_cancelled(feedback)
        for name, out in run.staged.items():
            out.finish(paletted_qml(self.meta.classes) if name == "class_map" else None)
        commit_outputs(list(run.staged.values()))

    def range_monitor(self, source: RasterSource) -> RangeMonitor:
        """Counts the pixels of ``source`` far outside the model's training range."""
        return RangeMonitor(self.meta.normalization, self.meta.model_id, source.name.name)

    def _open(
        self, raster: GdalName, mask: str | os.PathLike[str] | None
    ) -> tuple[gdal.Dataset, BandInfo, BandPlan, gdal.Dataset | None]:
        """The raster, the bands to read, their plan and the mask, checked against the model."""
        ds = open_raster(raster)
        bands = band_info(ds)
        plan = plan_bands(bands, self.meta, raster.name, self.band_matching)
        info = bands.subset(plan.indices)
        width, height = ds.RasterXSize, ds.RasterYSize
        p = self.meta.patch_size
        if width < p or height < p:
            what = "tile size" if self.meta.prediction == DENSE else "patch size"
            raise InputDataError(
                f"{raster.name} is {width}x{height} pixels; model {self.meta.model_id} needs at "
                f"least {p}x{p} (its {what})"
            )
        return ds, info, plan, open_mask(mask, ds) if mask else None

    def _destinations(
        self,
        requested: dict[str, str | os.PathLike[str] | None],
        ds: gdal.Dataset,
        mask_ds: gdal.Dataset | None,
    ) -> dict[str, Path]:
        """Checked output paths: none may touch a file the run reads, nor another output."""
        reads = FileSet()
        reads.add(self.model.path, "the model")
        for what, source in (("input", ds), ("mask", mask_ds)):
            if source is None:
                continue
            label = f"{what} {GdalName(source.GetDescription()).name}"
            files = dataset_files(source)
            reads.add_all(files, f"read by {label}")
            reads.add_all([style_file(f) for f in files], f"the QGIS style of {label}")
        return check_destinations(requested, reads)

    def _preflight(
        self,
        destinations: dict[str, Path],
        width: int,
        height: int,
        mask_ds: gdal.Dataset | None,
        feedback: Feedback,
    ) -> None:
        """Before any work: clear debris of killed runs, check disk room and memory, and
        state the expected duration first when it is long."""
        for folder in {path.parent for path in destinations.values()}:
            remove_stale_staging(folder)
        meta = self.meta
        check_free_space(preflight.output_sizes(destinations, width, height, meta.num_classes))
        preflight.check_memory(
            preflight.working_memory(
                meta.num_bands,
                meta.num_classes,
                meta.patch_size,
                min(self.tile_size, max(width, height)),
                self.batch_size,
                self.model.workers,
            )
        )
        message = preflight.duration_message(width * height, masked=mask_ds is not None)
        if message:
            warn(feedback, message)

    def _stage(
        self, destinations: dict[str, Path], ds: gdal.Dataset, staged: dict[str, StagedGeoTiff]
    ) -> None:
        """Create a staged GeoTIFF (hidden until committed) for each output, into ``staged``."""
        bands = {
            "class_map": (1, self.class_type),
            "confidence": (1, gdal.GDT_Float32),
            "probabilities": (self.meta.num_classes, gdal.GDT_Float32),
        }
        geotransform = ds.GetGeoTransform(can_return_null=True)
        for name, path in destinations.items():
            count, data_type = bands[name]
            staged[name] = StagedGeoTiff(
                path,
                ds.RasterXSize,
                ds.RasterYSize,
                count,
                data_type,
                geotransform,
                ds.GetProjection(),
            )

    def _warn_if_raw(
        self, info: BandInfo, raster: str, feedback: Feedback, report: ClassificationReport
    ) -> None:
        if info.scaled and not self.physical:
            self._report(
                f"model {self.meta.model_id} was trained on raw values (its metadata predates "
                f"physical units), so the scale/offset of {raster} are not applied",
                feedback,
                report,
            )

    @staticmethod
    def _report(message: str | None, feedback: Feedback, report: ClassificationReport) -> None:
        if message:
            report.warnings.append(message)
            warn(feedback, message)

    def _describe_outputs(self, staged: dict[str, StagedGeoTiff], raster: Path) -> None:
        meta = self.meta
        provenance = {
            "FACTOFORMER_MODEL_ID": meta.model_id,
            "FACTOFORMER_MODEL_VERSION": meta.model_version,
            "FACTOFORMER_MODEL_FILE": self.model.path.name,
            "FACTOFORMER_INPUT": raster.name,
            "FACTOFORMER_CLASSES": json.dumps([c.to_dict() for c in meta.classes]),
        }
        for out in staged.values():
            out.dataset.SetMetadata(provenance)
        style_class_band(staged["class_map"].band(1), meta.classes)
        if "confidence" in staged:
            band = staged["confidence"].band(1)
            band.SetDescription("confidence (probability of the predicted class)")
            band.SetNoDataValue(PROBABILITY_NODATA)
        if "probabilities" in staged:
            for c in meta.classes:
                band = staged["probabilities"].band(c.value)
                band.SetDescription(c.name)
                band.SetNoDataValue(PROBABILITY_NODATA)

    def _classify_windows(
        self, source: RasterSource, run: StagedRun, feedback: Feedback
    ) -> np.ndarray:
        """Read, predict and write every window; returns the pixel count of each class value."""
        height, width = source.shape
        total = width * height
        counts = np.zeros(self.meta.num_classes + 1, dtype=np.int64)
        monitor = self.range_monitor(source)
        done = 0
        for tile in tile_raster(width, height, self.tile_size):
            check_cancelled(feedback)
            classes, probs, valid = self.classify_tile(source, tile, monitor, feedback, done)
            self.write_tile(run.staged, tile, tile_layers(classes, probs, valid, run.staged))
            counts += np.bincount(classes.ravel(), minlength=counts.size)
            done += tile.size
            self._report(monitor.warning(final=done == total), feedback, run.report)
            feedback.set_progress(done / total)
        return counts

    def classify_tile(
        self,
        source: RasterSource,
        tile: Window,
        monitor: RangeMonitor,
        feedback: Feedback,
        done: int = 0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class values (0: not classified), probabilities (-1) and the classified pixels
        of one tile of the raster's tile grid; ``done``: pixels finished before it (progress)."""
        height, width = source.shape
        window = with_halo(tile, self.halo, width, height)
        padded, valid = self._read(
            source.ds, source.info, source.plan, source.mask_ds, window, monitor
        )
        logits = None
        if padded is not None:
            logits = self._predict(padded, valid, tile, (height, width), feedback, done)
        classes, probs = self._scores(logits, valid, tile, source.ds)
        return classes, probs, valid

    def _read(
        self,
        ds: gdal.Dataset,
        info: BandInfo,
        plan: BandPlan,
        mask_ds: gdal.Dataset | None,
        window: HaloWindow,
        monitor: RangeMonitor,
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """The window's pixels to classify and its normalised block with the full halo.

        Missing pixels get the fill spectrum in the block; pixels the user mask excludes
        keep their spectra (context) but are not to be classified. The block is None when
        the window has no pixel to classify. A resampling plan's weights apply to the
        values read (physical ones unless the model's statistics are raw), before
        normalisation; a pixel missing in any band read is missing.
        """
        tile, read = window.tile, window.read
        block, has_data = read_window(
            ds, info, read.col_off, read.row_off, read.width, read.height, self.physical
        )
        if plan.weights is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # missing pixels: filled below
                block = np.tensordot(plan.weights, block.astype(np.float32), axes=1)
        r0, c0 = tile.row_off - read.row_off, tile.col_off - read.col_off
        core = (slice(r0, r0 + tile.height), slice(c0, c0 + tile.width))
        valid = has_data[core].copy()  # a copy: masked pixels stay context in has_data
        if mask_ds is not None:
            valid &= read_user_mask(mask_ds, tile.col_off, tile.row_off, tile.width, tile.height)
        if not valid.any():
            return None, valid
        normalized = self.meta.normalization.apply(block, band_axis=0)
        monitor.add(block[(slice(None), *core)], normalized[(slice(None), *core)], valid)
        normalized[:, ~has_data] = self.meta.normalization.fill[:, None]
        return pad_symmetric(normalized, window.pad_before, window.pad_after), valid

    def _predict(
        self,
        padded: np.ndarray,
        valid: np.ndarray,
        tile: Window,
        raster_shape: tuple[int, int],
        feedback: Feedback,
        done: int,
    ) -> np.ndarray:
        """The predictor's logits for a window, with progress and cancel after each batch."""
        total = raster_shape[0] * raster_shape[1]

        def progress(fraction: float) -> None:
            check_cancelled(feedback)
            feedback.set_progress((done + fraction * tile.size) / total)

        origin = (tile.row_off, tile.col_off)
        return self.predictor.predict(padded, valid, origin, raster_shape, progress)

    def _scores(
        self, logits: np.ndarray | None, valid: np.ndarray, tile: Window, ds: gdal.Dataset
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class values (0: not classified) and probabilities (-1) of a window's pixels."""
        classes = np.zeros((tile.height, tile.width), dtype=np.uint16)
        probs = np.full(
            (self.meta.num_classes, tile.height, tile.width), PROBABILITY_NODATA, dtype=np.float32
        )
        if logits is None:
            return classes, probs
        rows, cols = np.nonzero(valid)
        scores = logits[:, rows, cols].T
        self._check_finite(scores, tile.col_off + cols, tile.row_off + rows, ds)
        pixel_probs = softmax(scores)
        classes[rows, cols] = pixel_probs.argmax(axis=1) + 1
        probs[:, rows, cols] = pixel_probs.T
        return classes, probs

    @staticmethod
    def write_tile(
        staged: dict[str, StagedGeoTiff], tile: Window, layers: dict[str, list[np.ndarray]]
    ) -> None:
        """Write a window's layers (see :func:`tile_layers`) into every staged output."""
        for name, out in staged.items():
            try:
                for band, values in enumerate(layers[name], start=1):
                    out.band(band).WriteArray(values, tile.col_off, tile.row_off)
            except RuntimeError as exc:
                raise OutputError(f"cannot write {out.path.name}: {first_line(exc)}") from None

    def _count(self, counts: np.ndarray, report: ClassificationReport, raster: str) -> None:
        """Fill the report's pixel counts; refuses a raster without a valid pixel."""
        report.nodata_pixels = int(counts[0])
        report.classified_pixels = int(counts[1:].sum())
        report.class_counts = {c.name: int(counts[c.value]) for c in self.meta.classes}
        if report.classified_pixels == 0:
            raise InputDataError(f"{raster} has no valid pixel: every pixel is no-data")

    def _check_finite(
        self, scores: np.ndarray, cols: np.ndarray, rows: np.ndarray, ds: gdal.Dataset
    ) -> None:
        """Refuse NaN/infinite scores: they would silently become class 1."""
        finite = np.isfinite(scores).all(axis=1)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise InferenceError(
                f"model {self.meta.model_id} gave non-finite scores (NaN or infinite) for pixel "
                f"({cols[i]}, {rows[i]}) of {Path(ds.GetDescription()).name}; its values may be "
                "far outside the model's training range"
            )


def tile_layers(
    classes: np.ndarray, probs: np.ndarray, valid: np.ndarray, outputs: Iterable[str]
) -> dict[str, list[np.ndarray]]:
    """The band arrays each of ``outputs`` (``class_map``, ``confidence``,
    ``probabilities``) gets for a window."""
    outputs = set(outputs)
    layers = {"class_map": [classes]}
    if "confidence" in outputs:
        layers["confidence"] = [np.where(valid, probs.max(axis=0), PROBABILITY_NODATA)]
    if "probabilities" in outputs:
        layers["probabilities"] = list(probs)
    return layers


def classify_raster(
    raster: str | os.PathLike[str],
    model: str | os.PathLike[str] | OnnxClassifier,
    output: str | os.PathLike[str],
    confidence: str | os.PathLike[str] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    mask: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feedback: Feedback | None = None,
    band_matching: str = SELECT,
) -> ClassificationReport:
    """Classify a raster with an ONNX model file; see :class:`TiledClassifier`."""
    classifier = model if isinstance(model, OnnxClassifier) else OnnxClassifier(model)
    tiled = TiledClassifier(classifier, batch_size=batch_size, band_matching=band_matching)
    return tiled.classify(raster, output, confidence, probabilities, mask, feedback)
