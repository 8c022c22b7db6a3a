"""Shared fixtures: tiny real models trained here, real rasters written with GDAL."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import (
    SHARED_DATA,
    SHIPPED_MODEL,
    TINY_CONFIG,
    WAVELENGTHS,
    synthetic_cube,
    write_raster,
)  # noqa: E402

requires_shared = pytest.mark.skipif(
    not (SHARED_DATA / "indian_pines").is_dir(),
    reason=f"benchmark data folder {SHARED_DATA} is absent (only in the development checkout)",
)


@dataclass
class TrainedFixture:
    """A trained run: its folder, the exported ONNX file and the scene it was trained on."""

    run_dir: Path
    onnx: Path
    scene: object


def _train_and_export(scene, out: Path, config=None, steps: int = 4, model_id: str = "tiny"):
    from engine.config import TrainingRecipe
    from engine.data.prepared import PreparedScene
    from engine.evaluation import evaluate_labels
    from engine.export.onnx import export_onnx, metadata_from_run
    from engine.training.checkpoint import save_run
    from engine.training.trainer import torch_logits, train

    prepared = PreparedScene.from_scene(scene, patch_size=7)
    recipe = TrainingRecipe(epochs=1, learning_rate=1e-3, max_steps=steps, seed=0)
    result = train(prepared, recipe, config=config, show_progress=False)
    metrics = None
    if scene.test_labels is not None:
        metrics = evaluate_labels(torch_logits(result.model), prepared, scene.test_labels)
    run_dir = save_run(out / "run", scene, recipe, result, metrics)
    ckpt, meta = metadata_from_run(run_dir, model_id)
    onnx_path = export_onnx(ckpt, meta, out / f"{model_id}.onnx")
    return TrainedFixture(run_dir, onnx_path, scene)


@pytest.fixture(scope="session")
def synthetic_scene_files(tmp_path_factory) -> dict[str, Path]:
    """A 12-band int16 GeoTIFF with wavelengths, plus train/test label rasters."""
    folder = tmp_path_factory.mktemp("synthetic")
    cube, classes = synthetic_cube()
    train = np.zeros_like(classes)
    train[::3, ::3] = classes[::3, ::3]
    test = np.where(train == 0, classes, 0)
    return {
        "raster": write_raster(folder / "scene.tif", cube, wavelengths_nm=WAVELENGTHS),
        "train": write_raster(folder / "train.tif", train.astype(np.uint8)),
        "test": write_raster(folder / "test.tif", test.astype(np.uint8)),
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, synthetic_scene_files) -> TrainedFixture:
    """A small FactoFormer (12 bands with wavelengths, 3 classes) trained for a few steps."""
    from engine.config import FactoFormerConfig
    from engine.data.scenes import load_raster_scene

    files = synthetic_scene_files
    scene = load_raster_scene(files["raster"], files["train"], files["test"], name="synthetic")
    config = FactoFormerConfig(**TINY_CONFIG)
    return _train_and_export(scene, tmp_path_factory.mktemp("tiny"), config, steps=30)


@pytest.fixture(scope="session")
def ip_smoke_model(tmp_path_factory) -> TrainedFixture:
    """The paper-sized FactoFormer trained for 4 steps on the bundled Indian Pines scene."""
    from engine.data.scenes import load_indian_pines

    return _train_and_export(
        load_indian_pines(), tmp_path_factory.mktemp("ip"), steps=4, model_id="ip-smoke"
    )


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The ONNX model shipped in models/ (a core file: its absence is a failure)."""
    assert SHIPPED_MODEL.is_file(), f"shipped model missing: {SHIPPED_MODEL}"
    return SHIPPED_MODEL
