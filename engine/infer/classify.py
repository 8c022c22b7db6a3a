"""Tiled classification of a raster with an ONNX model, streamed to GeoTIFF outputs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal

from ..data.files import FileSet, GdalName, dataset_files, style_file
from ..data.gdal_log import gdal_messages_logged
from ..data.normalization import PHYSICAL
from ..data.patches import PatchExtractor, pad_symmetric
from ..data.raster import BandInfo, band_info, open_raster, read_window
from ..errors import (
    BandMismatchError,
    InferenceError,
    InputDataError,
    OutputError,
    first_line,
)
from ..metadata import ModelMetadata
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
from .style import paletted_qml, style_class_band
from .windows import HaloWindow, tile_raster, tile_size_for_budget, with_halo

WAVELENGTH_TOLERANCE_NM = 5.0
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
        }


def check_bands(meta: ModelMetadata, info: BandInfo, raster_name: str) -> BandInfo:
    """The raster bands the model reads; refuses a mismatch (count, then wavelengths).

    A model that lists the band numbers it reads (``bands.raster_band_numbers``: bands left
    out in training because they were flagged bad or empty) gets those bands. Otherwise
    bands flagged bad (``bbl``) are left out; a raster whose bands match the model only with
    a bad band included is refused, naming that band.
    """
    all_bands, info = info, _model_bands(meta, info, raster_name)
    if info.count != meta.num_bands:
        if all_bands.count == meta.num_bands:
            bad = all_bands.bad.index(True)
            raise BandMismatchError(
                f"band {all_bands.numbers[bad]} ({all_bands.names[bad]}) of {raster_name} is "
                f"flagged bad in its ENVI header (bbl) but model {meta.model_id} needs all "
                f"{meta.num_bands} bands"
            )
        flagged = all_bands.count - info.count
        raise BandMismatchError(
            f"model {meta.model_id} expects {meta.num_bands} bands but {raster_name} has "
            f"{info.count}" + (f" good bands ({flagged} flagged bad in bbl)" if flagged else "")
        )
    if meta.wavelengths_nm and info.wavelengths_nm:
        diff = np.abs(np.asarray(meta.wavelengths_nm) - np.asarray(info.wavelengths_nm))
        worst = int(diff.argmax())
        if diff[worst] > WAVELENGTH_TOLERANCE_NM:
            raise BandMismatchError(
                f"band {info.numbers[worst]} of {raster_name} is at "
                f"{info.wavelengths_nm[worst]:.1f} nm but model {meta.model_id} expects "
                f"{meta.wavelengths_nm[worst]:.1f} nm (tolerance {WAVELENGTH_TOLERANCE_NM:g} nm)"
            )
    return info


def _model_bands(meta: ModelMetadata, info: BandInfo, raster_name: str) -> BandInfo:
    """The bands the model's metadata lists by number, else the bands not flagged bad."""
    if meta.raster_bands is None:
        return info.good()
    if info.count != meta.raster_band_count or not set(meta.raster_bands) <= set(info.numbers):
        raise BandMismatchError(
            f"model {meta.model_id} reads {meta.num_bands} of the {meta.raster_band_count} "
            f"bands of its training rasters, but {raster_name} has {info.count} bands"
        )
    return info.subset([info.numbers.index(n) for n in meta.raster_bands])


class TiledClassifier:
    """Classifies rasters tile by tile with bounded memory.

    Each tile is read with a halo of ``patch_size // 2`` pixels (physical values, GDAL
    scale/offset applied, unless the model's statistics are in raw values), normalised
    with the model's statistics, padded symmetrically where the halo leaves the raster,
    cut into one patch per valid pixel and classified in batches.

    Two kinds of pixels get class 0 and never reach the model: pixels whose data is
    missing (band no-data value, NaN/inf, zero in a GDAL mask band or alpha band), which
    are replaced by the model's fill spectrum inside their neighbours' patches; and pixels
    the optional user mask excludes (0 or its no-data), whose real spectra stay as
    context for their neighbours, so masking a pixel never changes another pixel's class.

    Args:
        model: the ONNX classifier.
        batch_size: patches per ONNX Runtime call.
        tile_size: tile edge in pixels; None derives it from ``memory_budget``.
        memory_budget: bytes allowed for one tile's float32 blocks.
    """

    def __init__(
        self,
        model: OnnxClassifier,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tile_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        preflight.check_batch_size(batch_size)
        self.model = model
        self.meta = model.metadata
        self.class_type = preflight.class_map_type(self.meta.num_classes, self.meta.model_id)
        self.batch_size = batch_size
        self.halo = self.meta.patch_size // 2
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
        raster = GdalName(os.fspath(raster))  # verbatim: /vsizip//..., NETCDF:"f.nc":v
        ds = open_raster(raster)
        info = check_bands(self.meta, band_info(ds), raster.name)
        width, height = ds.RasterXSize, ds.RasterYSize
        p = self.meta.patch_size
        if width < p or height < p:
            raise InputDataError(
                f"{raster.name} is {width}x{height} pixels; model {self.meta.model_id} needs at "
                f"least {p}x{p} (its patch size)"
            )
        mask_ds = open_mask(mask, ds) if mask else None
        requested = {"class_map": output, "confidence": confidence, "probabilities": probabilities}
        destinations = self._destinations(requested, ds, mask_ds)
        self._preflight(destinations, width, height, feedback)
        check_cancelled(feedback)

        geotransform = ds.GetGeoTransform(can_return_null=True)
        projection = ds.GetProjection()
        report = ClassificationReport(
            class_map=destinations["class_map"],
            confidence=destinations.get("confidence"),
            probabilities=destinations.get("probabilities"),
            model_id=self.meta.model_id,
            width=width,
            height=height,
        )
        staged: dict[str, StagedGeoTiff] = {}
        try:
            staged["class_map"] = StagedGeoTiff(
                report.class_map, width, height, 1, self.class_type, geotransform, projection
            )
            if report.confidence:
                staged["confidence"] = StagedGeoTiff(
                    report.confidence, width, height, 1, gdal.GDT_Float32, geotransform, projection
                )
            if report.probabilities:
                staged["probabilities"] = StagedGeoTiff(
                    report.probabilities,
                    width,
                    height,
                    self.meta.num_classes,
                    gdal.GDT_Float32,
                    geotransform,
                    projection,
                )
            self._describe_outputs(staged, raster)
            counts = np.zeros(self.meta.num_classes + 1, dtype=np.int64)
            done = 0
            monitor = RangeMonitor(self.meta.normalization, self.meta.model_id, raster.name)
            self._warn_if_raw(info, raster.name, feedback, report)
            for tile in tile_raster(width, height, self.tile_size):
                check_cancelled(feedback)
                window = with_halo(tile, self.halo, width, height)
                classes = self._classify_tile(
                    ds, info, mask_ds, window, staged, feedback, done, width * height, monitor
                )
                counts += np.bincount(classes.ravel(), minlength=counts.size)
                done += tile.size
                self._report(monitor.warning(final=done == width * height), feedback, report)
                feedback.set_progress(done / (width * height))
            report.nodata_pixels = int(counts[0])
            report.classified_pixels = int(counts[1:].sum())
            report.class_counts = {c.name: int(counts[c.value]) for c in self.meta.classes}
            if report.classified_pixels == 0:
                raise InputDataError(f"{raster.name} has no valid pixel: every pixel is no-data")
            check_cancelled(feedback)
            for name, out in staged.items():
                out.finish(paletted_qml(self.meta.classes) if name == "class_map" else None)
            commit_outputs(list(staged.values()))
        except BaseException:
            for out in staged.values():
                out.discard()
            raise
        report.seconds = time.monotonic() - start
        return report

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
        self, destinations: dict[str, Path], width: int, height: int, feedback: Feedback
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
        message = preflight.duration_message(width * height)
        if message:
            warn(feedback, message)

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

    def _classify_tile(
        self,
        ds: gdal.Dataset,
        info: BandInfo,
        mask_ds: gdal.Dataset | None,
        window: HaloWindow,
        staged: dict[str, StagedGeoTiff],
        feedback: Feedback,
        done_before: int,
        total: int,
        monitor: RangeMonitor,
    ) -> np.ndarray:
        """Classify one tile, write it to every output and return its class values."""
        tile, read = window.tile, window.read
        block, has_data = read_window(
            ds, info, read.col_off, read.row_off, read.width, read.height, self.physical
        )
        r0, c0 = tile.row_off - read.row_off, tile.col_off - read.col_off
        core = (slice(r0, r0 + tile.height), slice(c0, c0 + tile.width))
        core_valid = has_data[core].copy()  # a copy: masked pixels stay context in has_data
        if mask_ds is not None:
            core_valid &= read_user_mask(
                mask_ds, tile.col_off, tile.row_off, tile.width, tile.height
            )
        classes = np.zeros((tile.height, tile.width), dtype=np.uint16)
        probs = np.full(
            (self.meta.num_classes, tile.height, tile.width), PROBABILITY_NODATA, dtype=np.float32
        )
        rows, cols = np.nonzero(core_valid)
        if rows.size:
            normalized = self.meta.normalization.apply(block, band_axis=0)
            monitor.add(block[(slice(None), *core)], normalized[(slice(None), *core)], core_valid)
            normalized[:, ~has_data] = self.meta.normalization.fill[:, None]
            extractor = PatchExtractor(
                pad_symmetric(normalized, window.pad_before, window.pad_after),
                self.meta.patch_size,
            )
            starts = range(0, rows.size, self.batch_size)
            index = [(rows[i : i + self.batch_size], cols[i : i + self.batch_size]) for i in starts]
            patches = (extractor(r, c) for r, c in index)
            done = done_before
            for (r, c), logits in zip(index, self.model.map_logits(patches), strict=True):
                check_cancelled(feedback)
                self._check_finite(logits, tile.col_off + c, tile.row_off + r, ds)
                batch_probs = softmax(logits)
                classes[r, c] = batch_probs.argmax(axis=1) + 1
                probs[:, r, c] = batch_probs.T
                done += r.size
                feedback.set_progress(done / total)
        layers = {"class_map": [classes], "probabilities": list(probs)}
        if "confidence" in staged:
            layers["confidence"] = [np.where(core_valid, probs.max(axis=0), PROBABILITY_NODATA)]
        for name, out in staged.items():
            try:
                for band, values in enumerate(layers[name], start=1):
                    out.band(band).WriteArray(values, tile.col_off, tile.row_off)
            except RuntimeError as exc:
                raise OutputError(f"cannot write {out.path.name}: {first_line(exc)}") from None
        return classes

    def _check_finite(
        self, logits: np.ndarray, cols: np.ndarray, rows: np.ndarray, ds: gdal.Dataset
    ) -> None:
        """Refuse NaN/infinite scores: they would silently become class 1."""
        finite = np.isfinite(logits).all(axis=1)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise InferenceError(
                f"model {self.meta.model_id} gave non-finite scores (NaN or infinite) for pixel "
                f"({cols[i]}, {rows[i]}) of {Path(ds.GetDescription()).name}; its values may be "
                "far outside the model's training range"
            )


def classify_raster(
    raster: str | os.PathLike[str],
    model: str | os.PathLike[str] | OnnxClassifier,
    output: str | os.PathLike[str],
    confidence: str | os.PathLike[str] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    mask: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feedback: Feedback | None = None,
) -> ClassificationReport:
    """Classify a raster with an ONNX model file; see :class:`TiledClassifier`."""
    classifier = model if isinstance(model, OnnxClassifier) else OnnxClassifier(model)
    return TiledClassifier(classifier, batch_size=batch_size).classify(
        raster, output, confidence, probabilities, mask, feedback
    )
