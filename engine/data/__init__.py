"""Scenes, rasters, normalisation and patch extraction (no torch, no QGIS)."""

from .classes import ClassInfo, make_classes
from .normalization import MinMaxNormalization
from .patches import PatchExtractor, pad_symmetric
from .scenes import SCENES, Scene, load_indian_pines, load_raster_scene

__all__ = [
    "SCENES",
    "ClassInfo",
    "MinMaxNormalization",
    "PatchExtractor",
    "Scene",
    "load_indian_pines",
    "load_raster_scene",
    "make_classes",
    "pad_symmetric",
]
