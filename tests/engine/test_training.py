"""Smoke training through the CLI, reproducibility and safe checkpoint loading."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import REPO, TINY_CONFIG

from engine.config import FactoFormerConfig, TrainingRecipe
from engine.data.prepared import PreparedScene
from engine.data.scenes import load_raster_scene
from engine.errors import ModelLoadError
from engine.training.checkpoint import load_checkpoint
from engine.training.trainer import train


def test_cli_smoke_training_writes_a_complete_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "train",
            "--epochs",
            "1",
            "--max-steps",
            "3",
            "--output-dir",
            str(out),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test: OA" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["parameters"] == 148_620
    assert config["training"]["recipe"]["learning_rate"] == 3e-4  # paper recipe for IP
    assert config["training"]["steps"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert test["pixels"] == 9671 and len(test["confusion_matrix"]) == 16
    matrix = test["confusion_matrix"]
    correct = sum(matrix[i][i] for i in range(16))
    assert sum(map(sum, matrix)) == 9671
    assert test["overall_accuracy"] == pytest.approx(correct / 9671)
    ckpt = load_checkpoint(out)
    assert len(ckpt.band_names) == 200 and ckpt.classes[0].name == "Corn-notill"


def _train_synthetic(files, seed: int, epochs: int = 3):
    scene = load_raster_scene(files["raster"], files["train"], files["test"])
    config = FactoFormerConfig(**TINY_CONFIG)
    recipe = TrainingRecipe(epochs=epochs, learning_rate=1e-3, batch_size=16, seed=seed)
    return train(PreparedScene.from_scene(scene, 7), recipe, config, show_progress=False)


def test_training_is_reproducible_and_learns(synthetic_scene_files):
    a = _train_synthetic(synthetic_scene_files, seed=3)
    b = _train_synthetic(synthetic_scene_files, seed=3)
    c = _train_synthetic(synthetic_scene_files, seed=4)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.history[-1]["loss"] < a.history[0]["loss"]
    assert len(a.history) == 3 and a.steps == 3 * 5  # 80 training pixels / batch 16


def test_training_never_reads_test_labels(synthetic_scene_files):
    """Identical weights whether the scene carries its test labels or not."""
    files = synthetic_scene_files
    config = FactoFormerConfig(**TINY_CONFIG)
    recipe = TrainingRecipe(epochs=2, learning_rate=1e-3, batch_size=16, seed=5)
    with_test = load_raster_scene(files["raster"], files["train"], files["test"])
    without_test = load_raster_scene(files["raster"], files["train"], None)
    assert with_test.test_labels is not None and without_test.test_labels is None
    a = train(PreparedScene.from_scene(with_test, 7), recipe, config, show_progress=False)
    b = train(PreparedScene.from_scene(without_test, 7), recipe, config, show_progress=False)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_step_lr_schedule_follows_the_recipe(synthetic_scene_files):
    result = _train_synthetic(synthetic_scene_files, seed=0, epochs=20)
    rates = [h["learning_rate"] for h in result.history]
    assert rates[1] == pytest.approx(1e-3)  # step = epochs // 10 = 2
    assert rates[2] == pytest.approx(9e-4) and rates[19] == pytest.approx(1e-3 * 0.9**9)


class _Payload:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['PWNED_FILE'], 'w').write('x')",))


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED_FILE", str(marker))
    bad = tmp_path / "checkpoint.pt"
    torch.save({"format": "factoformer-checkpoint/1", "state_dict": _Payload()}, bad)
    with pytest.raises(ModelLoadError, match="weights only"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(ModelLoadError, match="not a FactoFormer checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ModelLoadError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
