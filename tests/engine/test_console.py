"""The installed ``factoformer`` command works from any folder, like ``python -m engine``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import read_raster

COMMAND = Path(sys.executable).parent / "factoformer"

pytestmark = pytest.mark.skipif(
    not COMMAND.is_file(), reason=f"{COMMAND} is not installed (scripts/setup.sh installs it)"
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_info_from_another_folder_names_the_shipped_model(tmp_path, shipped_model):
    done = _run(["info", str(shipped_model)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "factoformer-indian-pines" in done.stdout
    assert "bands: 200" in done.stdout


def test_classify_with_relative_paths_from_a_temporary_folder(
    tmp_path, tiny_model, synthetic_scene_files
):
    shutil.copy(synthetic_scene_files["raster"], tmp_path / "scene.tif")
    shutil.copy(tiny_model.onnx, tmp_path / "model.onnx")
    done = _run(
        [
            "classify",
            "scene.tif",
            "--model",
            "model.onnx",
            "--output",
            "out/classes.tif",
            "--quiet",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "folder" in done.stderr  # out/ does not exist yet
    (tmp_path / "out").mkdir()
    done = _run(
        [
            "classify",
            "scene.tif",
            "--model",
            "model.onnx",
            "--output",
            "out/classes.tif",
            "--quiet",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    classes = read_raster(tmp_path / "out" / "classes.tif")
    assert classes.shape[-2:] == read_raster(tmp_path / "scene.tif").shape[-2:]
    assert set(np.unique(classes)) <= {1, 2, 3}


def test_usage_names_the_command(tmp_path):
    done = _run(["--help"], cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: factoformer")
