"""The 3D-CNN baseline: size, training through the shared loop, export and classification."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import REPO, read_raster

from engine.config import CNN3D_RECIPES
from engine.data.scenes import load_raster_scene
from engine.data.training_set import TrainingSet
from engine.export.onnx import export_onnx, max_logit_difference, metadata_from_run
from engine.infer.model import OnnxClassifier
from engine.models import count_parameters
from engine.models.cnn3d import CNN3D, CNN3DConfig
from engine.training.checkpoint import load_checkpoint
from engine.training.run import run_training


def expected_parameters(bands: int, classes: int, patch: int = 7) -> int:
    """Li et al.'s network counted by hand: weights + biases of each layer."""
    conv1 = 16 * (1 * 7 * 3 * 3) + 16  # 1 -> 16 channels, kernel (7, 3, 3)
    conv2 = 32 * (16 * 3 * 3 * 3) + 32  # 16 -> 32 channels, kernel (3, 3, 3)
    # band axis: padded by 1 on each side, so each kernel of depth k removes k - 3 values
    depth = (bands + 2 - 7 + 1) + 2 - 3 + 1
    side = patch - 2 - 2  # two unpadded 3x3 spatial kernels
    return conv1 + conv2 + (32 * depth * side * side) * classes + classes


@pytest.mark.parametrize(
    ("bands", "classes", "total"),
    [(200, 16, 918_064), (50, 20, 279_860), (200, 8, 466_472)],  # IP; Houston / EnMAP (B.5)
)
def test_parameter_count(bands, classes, total):
    assert expected_parameters(bands, classes) == total
    model = CNN3D(CNN3DConfig(bands, classes))
    assert count_parameters(model) == total
    assert model(torch.zeros(3, bands, 7, 7)).shape == (3, classes)


def test_layers_are_li_et_al():
    model = CNN3D(CNN3DConfig(30, 4))
    assert (model.conv1.kernel_size, model.conv1.padding) == ((7, 3, 3), (1, 0, 0))
    assert (model.conv2.kernel_size, model.conv2.padding) == ((3, 3, 3), (1, 0, 0))
    assert (model.conv1.out_channels, model.conv2.out_channels) == (16, 32)
    assert not any(isinstance(m, torch.nn.modules.pooling._MaxPoolNd) for m in model.modules())
    for layer in (model.conv1, model.conv2, model.head):
        assert torch.count_nonzero(layer.bias) == 0
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier uniform
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_bands": 4, "num_classes": 3}, "at least 5 bands"),
        ({"num_bands": 10, "num_classes": 3, "patch_size": 3}, "odd number >= 5"),
        ({"num_bands": 10, "num_classes": 3, "patch_size": 6}, "odd number >= 5"),
    ],
)
def test_config_refuses_shapes_the_network_cannot_take(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CNN3DConfig(**kwargs)


@pytest.fixture(scope="module")
def trained(synthetic_scene_files, tmp_path_factory):
    """One epoch of the li2017 recipe on the synthetic scene, exported."""
    files = synthetic_scene_files
    scene = load_raster_scene(files["raster"], files["train"], files["test"], name="synthetic")
    data = TrainingSet.from_scene(scene, 7)
    folder = tmp_path_factory.mktemp("cnn3d")
    recipe = replace(CNN3D_RECIPES["li2017"], epochs=1)
    run = run_training(data, recipe, folder / "run", CNN3DConfig(12, 3), show_progress=False)
    ckpt, meta = metadata_from_run(run.output_dir, "cnn3d-test")
    return run, data, ckpt, export_onnx(ckpt, meta, folder / "cnn3d.onnx")


def test_trains_with_sgd_through_the_shared_loop(trained):
    run, data, ckpt, _ = trained
    assert isinstance(ckpt.model, CNN3D) and ckpt.model_type == "CNN3D"
    assert run.result.steps == -(-len(data.train) // 100)  # one epoch of batches of 100
    state = torch.load(run.output_dir / "training_state.pt", weights_only=True)
    group = state["optimizer"]["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.9, 5e-4)
    assert all("momentum_buffer" in s for s in state["optimizer"]["state"].values())
    for name, tensor in ckpt.model.state_dict().items():
        assert torch.equal(tensor, run.result.model.state_dict()[name])


def test_onnx_matches_torch(trained):
    _, data, ckpt, onnx_path = trained
    model = OnnxClassifier(onnx_path)
    assert model.metadata.model_type == "CNN3D"
    assert model.metadata.architecture == CNN3DConfig(12, 3).to_dict()
    patches = data.test.patches(np.arange(len(data.test)))
    assert max_logit_difference(ckpt, onnx_path, patches) < 1e-4


def test_cli_trains_exports_and_classifies(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    scene_args = ["--raster", files["raster"], "--train-labels", files["train"]]
    scene_args += ["--test-labels", files["test"], "--validation-share", "0"]

    def cli(*args):
        command = [sys.executable, "-m", "engine", *map(str, args)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    run = tmp_path / "run"
    trained = cli("train", "--model", "cnn3d", *scene_args, "--max-steps", 2, "--output-dir", run)
    assert "recipe 'li2017': 2 steps" in trained.stderr and "SGD momentum 0.9" in trained.stderr
    model = tmp_path / "cnn3d.onnx"
    cli("export", run, "--output", model, "--model-id", "cnn3d-cli")
    assert cli("info", model).stdout.startswith("CNN3D cnn3d-cli v1.0.0")
    out = tmp_path / "classes.tif"
    cli("classify", files["raster"], "--model", model, "--output", out, "--quiet")

    # the class map is the checkpoint's own argmax on every pixel's 7x7 patch
    ckpt = load_checkpoint(run)
    scene = load_raster_scene(files["raster"], files["train"], name="synthetic")
    data = TrainingSet.from_scene(scene, 7, ckpt.normalization)
    rows, cols = np.indices(scene.train_labels.shape).reshape(2, -1)
    patches = data.extractors[0](rows, cols)
    with torch.no_grad():
        expected = ckpt.model(torch.from_numpy(patches)).argmax(1).numpy() + 1
    assert np.array_equal(read_raster(out).ravel(), expected)
