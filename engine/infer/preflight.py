"""Checks made before a classification reads a pixel: output type, disk room, memory, time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from osgeo import gdal

from ..errors import InputDataError, ModelMetadataError
from ..system import available_memory

MAX_BYTE_CLASSES = 255
MAX_CLASSES = 65535  # UInt16 class map (0 = no-data); also the GeoTIFF band limit
CONSERVATIVE_PIXELS_PER_SECOND = 200.0  # the shipped 200-band model does ~1,200 on 2 cores
LONG_RUN_SECONDS = 3600.0
ONNX_BYTES_PER_INPUT_BYTE = 20  # ONNX Runtime's working memory per patch (~50 MB per 64)
FILE_OVERHEAD_BYTES = 1 << 20  # headers, tile index, sidecars


def class_map_type(num_classes: int, model_id: str) -> int:
    """GDAL type of the class map: Byte up to 255 classes, UInt16 up to 65535.

    Raises:
        ModelMetadataError: more classes than a UInt16 class map can hold.
    """
    if num_classes > MAX_CLASSES:
        raise ModelMetadataError(
            f"model {model_id} has {num_classes} classes; a class map holds at most "
            f"{MAX_CLASSES} (UInt16, 0 = no-data)"
        )
    return gdal.GDT_Byte if num_classes <= MAX_BYTE_CLASSES else gdal.GDT_UInt16


def output_sizes(
    paths: Mapping[str, Path], width: int, height: int, num_classes: int
) -> dict[Path, int]:
    """Upper bound of each output's size in bytes: uncompressed pixels plus overhead."""
    class_bytes = 1 if num_classes <= MAX_BYTE_CLASSES else 2
    per_pixel = {"class_map": class_bytes, "confidence": 4, "probabilities": 4 * num_classes}
    return {
        path: int(width * height * per_pixel[kind] * 1.01) + FILE_OVERHEAD_BYTES
        for kind, path in paths.items()
    }


def working_memory(
    num_bands: int,
    num_classes: int,
    patch_size: int,
    tile_size: int,
    batch_size: int,
    workers: int,
) -> int:
    """Bytes a run holds at once: one tile's blocks and per-class scores, batches in flight."""
    halo_edge = tile_size + 2 * (patch_size // 2)
    tile = 3 * 4 * num_bands * halo_edge**2 + (4 * num_classes + 8) * tile_size**2
    patch = 4 * num_bands * patch_size**2 * (1 + ONNX_BYTES_PER_INPUT_BYTE)
    in_flight = (workers + 1) * batch_size * (patch + 8 * num_classes)
    return tile + in_flight


def check_memory(needed: int) -> None:
    """Refuse a run that needs more memory than the machine has available now.

    Raises:
        InputDataError: with the memory needed and available.
    """
    free = available_memory()
    if free is not None and needed > free:
        raise InputDataError(
            f"not enough memory: this run needs about {needed / 2**20:.0f} MiB, "
            f"{free / 2**20:.0f} MiB available; lower the batch size or close other programs"
        )


def duration_message(pixels: int, masked: bool = False) -> str | None:
    """A note on the expected duration when it is long (at a conservative speed).

    With a mask only the masked pixels are classified, so the figure is an upper bound.
    """
    seconds = pixels / CONSERVATIVE_PIXELS_PER_SECOND
    if seconds < LONG_RUN_SECONDS:
        return None
    what = "pixels to classify"
    if masked:
        what = "pixels in the raster; the mask may leave far fewer to classify"
    return (
        f"{pixels} {what}: this may take up to about {seconds / 3600:.1f} hours "
        f"(estimated at {CONSERVATIVE_PIXELS_PER_SECOND:.0f} pixels/s)"
    )


def check_batch_size(batch_size: int) -> None:
    """Raises :class:`InputDataError` unless the batch size is a positive integer."""
    if batch_size < 1:
        raise InputDataError(f"batch size must be at least 1, got {batch_size}")
