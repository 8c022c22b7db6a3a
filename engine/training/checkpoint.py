"""Training run folders: checkpoint (weights-only), config and metrics files."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import FactoFormerConfig, TrainingRecipe
from ..data.classes import ClassInfo
from ..data.normalization import Normalization, normalization_from_dict
from ..data.scenes import Scene
from ..data.training_set import TrainingSet
from ..errors import ModelLoadError
from ..metrics import ClassificationMetrics
from ..models import FactoFormer, count_parameters
from ..models.cnn3d import CNN3D, CNN3DConfig
from ..models.registry import spec_for_config, spec_for_type
from .loop import load_weights_only
from .trainer import TrainingResult

CHECKPOINT_FORMAT = "factoformer-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"


@dataclass
class Checkpoint:
    """A trained model with everything export needs to describe it."""

    model: FactoFormer | CNN3D
    normalization: Normalization
    classes: tuple[ClassInfo, ...]
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None
    training: dict[str, Any]
    fwhm_nm: tuple[float, ...] | None = None
    raster_bands: tuple[int, ...] | None = None  # raster bands read, when some are left out
    raster_band_count: int | None = None

    @property
    def config(self) -> FactoFormerConfig | CNN3DConfig:
        return self.model.config

    @property
    def model_type(self) -> str:
        """The metadata ``model_type`` (``FactoFormer``, ``CNN3D``)."""
        return spec_for_config(self.config).model_type


def training_record(
    scene: Scene | TrainingSet, recipe: TrainingRecipe, result: TrainingResult
) -> dict[str, Any]:
    """Provenance of a run: data, split, recipe, seed, time and software."""
    record = {
        "dataset": scene.name,
        "source": scene.source,
        "split": scene.split,
        "train_pixels": _train_pixels(scene),
        "recipe": recipe.to_dict(),
        "seed": recipe.seed,
        "pretraining": result.pretraining,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "software": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    if isinstance(scene, TrainingSet):  # own rasters: what loading and training decided
        record["rasters"] = len(scene.tiles)
        record["bands_left_out"] = {
            "flagged_bad": scene.bands.flagged,
            "no_data": scene.bands.empty,
        }
        record["validation"] = result.validation
        record["stopped"] = result.stopped
        record["notes"] = scene.notes + scene.warnings
    return record


def _train_pixels(scene: Scene | TrainingSet) -> int:
    if isinstance(scene, TrainingSet):
        return len(scene.train) if scene.train is not None else 0
    return int((scene.train_labels > 0).sum())


def save_run(
    output_dir: str | os.PathLike[str],
    scene: Scene,
    recipe: TrainingRecipe,
    result: TrainingResult,
    test_metrics: ClassificationMetrics | None,
    validation_metrics: ClassificationMetrics | None = None,
) -> Path:
    """Write ``checkpoint.pt``, ``config.json`` and ``metrics.json``; returns the folder."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    training = training_record(scene, recipe, result)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model_type": spec_for_config(result.model.config).model_type,
            "state_dict": result.model.state_dict(),
            "config": result.model.config.to_dict(),
            "normalization": result.normalization.to_dict(),
            "classes": [c.to_dict() for c in scene.classes],
            "band_names": list(scene.band_names),
            "wavelengths_nm": list(scene.wavelengths_nm) if scene.wavelengths_nm else None,
            "training": training,
            **_band_selection(scene),
        },
        out / CHECKPOINT_NAME,
    )
    config = {
        "model_type": spec_for_config(result.model.config).model_type,
        "model": result.model.config.to_dict(),
        "parameters": count_parameters(result.model),
        "training": training,
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    metrics: dict[str, Any] = {"history": result.history}
    if validation_metrics is not None:
        metrics["validation"] = validation_metrics.to_dict([c.name for c in scene.classes])
    if test_metrics is not None:
        metrics["test"] = test_metrics.to_dict([c.name for c in scene.classes])
    (out / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def _band_selection(scene: Scene | TrainingSet) -> dict[str, Any]:
    """FWHM and the raster bands read, for data that knows them."""
    if not isinstance(scene, TrainingSet):
        return {}
    subset = scene.bands.is_subset
    return {
        "fwhm_nm": list(scene.fwhm_nm) if scene.fwhm_nm else None,
        "raster_bands": list(scene.bands.numbers) if subset else None,
        "raster_band_count": scene.bands.count if subset else None,
    }


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint file (or a run folder) without executing any pickled code."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise ModelLoadError(f"checkpoint not found: {path}")
    data = load_weights_only(
        path,
        CHECKPOINT_FORMAT,
        "FactoFormer checkpoint",
        f"cannot load checkpoint {path} as weights only",
    )
    try:  # checkpoints written before other model types are FactoFormers
        spec = spec_for_type(data.get("model_type", "FactoFormer"))
        model = spec.build(spec.config_from_dict(data["config"]))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    model.load_state_dict(data["state_dict"])
    model.eval()
    wavelengths = data.get("wavelengths_nm")
    fwhm, raster_bands = data.get("fwhm_nm"), data.get("raster_bands")
    return Checkpoint(
        model=model,
        normalization=normalization_from_dict(data["normalization"]),
        classes=tuple(ClassInfo.from_dict(c) for c in data["classes"]),
        band_names=tuple(data["band_names"]),
        wavelengths_nm=tuple(wavelengths) if wavelengths else None,
        training=data["training"],
        fwhm_nm=tuple(fwhm) if fwhm else None,
        raster_bands=tuple(raster_bands) if raster_bands else None,
        raster_band_count=data.get("raster_band_count"),
    )


def load_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metrics.json`` of a run folder, or an empty dict."""
    path = Path(run_dir) / METRICS_NAME
    return json.loads(path.read_text()) if path.exists() else {}
