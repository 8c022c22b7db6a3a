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

from ..data.patches import PatchExtractor, pad_symmetric
from ..data.raster import BandInfo, band_info, open_raster
from ..errors import (
    BandMismatchError,
    InputDataError,
    OutputError,
    RasterReadError,
    first_line,
)
from ..metadata import ModelMetadata
from ..progress import Feedback, SilentFeedback, check_cancelled
from .model import OnnxClassifier, softmax
from .outputs import StagedGeoTiff, check_destination, commit_outputs
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
        }


def check_bands(meta: ModelMetadata, info: BandInfo, raster_name: str) -> None:
    """Refuse a raster whose bands do not match the model (count, then wavelengths)."""
    if info.count != meta.num_bands:
        raise BandMismatchError(
            f"model {meta.model_id} expects {meta.num_bands} bands but {raster_name} has "
            f"{info.count}"
        )
    if meta.wavelengths_nm and info.wavelengths_nm:
        diff = np.abs(np.asarray(meta.wavelengths_nm) - np.asarray(info.wavelengths_nm))
        worst = int(diff.argmax())
        if diff[worst] > WAVELENGTH_TOLERANCE_NM:
            raise BandMismatchError(
                f"band {worst + 1} of {raster_name} is at {info.wavelengths_nm[worst]:.1f} nm but "
                f"model {meta.model_id} expects {meta.wavelengths_nm[worst]:.1f} nm "
                f"(tolerance {WAVELENGTH_TOLERANCE_NM:g} nm)"
            )


class TiledClassifier:
    """Classifies rasters tile by tile with bounded memory.

    Each tile is read with a halo of ``patch_size // 2`` pixels, normalised with the
    model's statistics, padded symmetrically where the halo leaves the raster, cut into
    one patch per valid pixel and classified in batches. No-data pixels (band no-data
    value, NaN/inf, or zero in the optional mask) get class 0 and never reach the model;
    inside a patch they are replaced by the model's fill spectrum.

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
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.model = model
        self.meta = model.metadata
        self.batch_size = batch_size
        self.halo = self.meta.patch_size // 2
        self.tile_size = tile_size or tile_size_for_budget(
            self.meta.num_bands, self.halo, memory_budget
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

        All outputs appear together at the end, or not at all (error or cancel).
        """
        feedback = feedback or SilentFeedback()
        start = time.monotonic()
        raster = Path(raster)
        ds = open_raster(raster)
        info = band_info(ds)
        check_bands(self.meta, info, raster.name)
        width, height = ds.RasterXSize, ds.RasterYSize
        p = self.meta.patch_size
        if width < p or height < p:
            raise InputDataError(
                f"{raster.name} is {width}x{height} pixels; model {self.meta.model_id} needs at "
                f"least {p}x{p} (its patch size)"
            )
        mask_ds = self._open_mask(mask, width, height) if mask else None
        destinations = self._destinations(output, confidence, probabilities, raster, mask)
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
            class_type = gdal.GDT_Byte if self.meta.num_classes <= 255 else gdal.GDT_UInt16
            staged["class_map"] = StagedGeoTiff(
                report.class_map, width, height, 1, class_type, geotransform, projection
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
            for tile in tile_raster(width, height, self.tile_size):
                check_cancelled(feedback)
                window = with_halo(tile, self.halo, width, height)
                classes = self._classify_tile(
                    ds, info, mask_ds, window, staged, feedback, done, width * height
                )
                counts += np.bincount(classes.ravel(), minlength=counts.size)
                done += tile.size
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
        output: str | os.PathLike[str],
        confidence: str | os.PathLike[str] | None,
        probabilities: str | os.PathLike[str] | None,
        raster: Path,
        mask: str | os.PathLike[str] | None,
    ) -> dict[str, Path]:
        protected = [raster, self.model.path] + ([Path(mask)] if mask else [])
        requested = {"class_map": output, "confidence": confidence, "probabilities": probabilities}
        paths = {k: check_destination(v, protected) for k, v in requested.items() if v}
        if len(set(paths.values())) != len(paths):
            raise OutputError("class map, confidence and probabilities need distinct output paths")
        return paths

    @staticmethod
    def _open_mask(mask: str | os.PathLike[str], width: int, height: int) -> gdal.Dataset:
        mask_ds = open_raster(mask)
        if (mask_ds.RasterXSize, mask_ds.RasterYSize) != (width, height):
            raise InputDataError(
                f"mask {Path(mask).name} is {mask_ds.RasterXSize}x{mask_ds.RasterYSize} pixels, "
                f"the raster {width}x{height}"
            )
        return mask_ds

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
    ) -> np.ndarray:
        """Classify one tile, write it to every output and return its class values."""
        tile, read = window.tile, window.read
        try:
            block = ds.ReadAsArray(read.col_off, read.row_off, read.width, read.height)
        except RuntimeError as exc:
            raise RasterReadError(
                f"cannot read {Path(ds.GetDescription()).name} at pixel ({read.col_off}, "
                f"{read.row_off}): {first_line(exc)}"
            ) from None
        block = block.reshape(info.count, read.height, read.width)  # (bands, rows, cols)
        valid = self._valid_pixels(block, info, mask_ds, window)
        r0, c0 = tile.row_off - read.row_off, tile.col_off - read.col_off
        core_valid = valid[r0 : r0 + tile.height, c0 : c0 + tile.width]
        classes = np.zeros((tile.height, tile.width), dtype=np.uint16)
        probs = np.full(
            (self.meta.num_classes, tile.height, tile.width), PROBABILITY_NODATA, dtype=np.float32
        )
        rows, cols = np.nonzero(core_valid)
        if rows.size:
            normalized = self.meta.normalization.apply(block, band_axis=0)
            normalized[:, ~valid] = self.meta.normalization.fill[:, None]
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

    @staticmethod
    def _valid_pixels(
        block: np.ndarray, info: BandInfo, mask_ds: gdal.Dataset | None, window: HaloWindow
    ) -> np.ndarray:
        """(rows, cols) bool: False where any band is no-data or non-finite, or mask is 0."""
        valid = np.ones(block.shape[1:], dtype=bool)
        for b, nodata in enumerate(info.nodata):
            if nodata is not None and not np.isnan(nodata):  # NaN no-data: caught below
                valid &= block[b] != nodata
        if block.dtype.kind == "f":
            valid &= np.isfinite(block).all(axis=0)
        if mask_ds is not None:
            read = window.read
            mask_band = mask_ds.GetRasterBand(1)
            values = mask_band.ReadAsArray(read.col_off, read.row_off, read.width, read.height)
            valid &= values != 0
            mask_nodata = mask_band.GetNoDataValue()
            if mask_nodata is not None:
                valid &= values != mask_nodata
        return valid


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
