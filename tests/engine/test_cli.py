"""The engine's command line, run as users run it: ``python -m engine ...`` in a process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, read_raster, write_raster
from linear_model import band1_values, write_linear_model
from osgeo import gdal


def cli(*args: object, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def known_classes(rows: int = 9, cols: int = 11, num_classes: int = 3) -> np.ndarray:
    return np.arange(rows * cols).reshape(rows, cols) % num_classes + 1


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "linear": write_linear_model(folder / "linear.onnx", 3),
        "one_band": write_linear_model(folder / "one_band.onnx", 3, num_bands=1),
        "bad_colour": write_linear_model(
            folder / "bad_colour.onnx", 3, colors=["#ff0000", "red", "#00ff00"]
        ),
        "too_many_classes": write_linear_model(folder / "huge.onnx", 65536),
    }


@pytest.fixture()
def scene(tmp_path) -> Path:
    band1 = band1_values(known_classes(), 3)
    return write_raster(tmp_path / "scene.tif", np.stack([band1, np.zeros_like(band1)]))


def test_train_evaluate_export_and_info(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    scene_args = ["--raster", files["raster"], "--train-labels", files["train"]]
    scene_args += ["--test-labels", files["test"]]
    run = tmp_path / "run"
    trained = cli("train", *scene_args, "--max-steps", 2, "--output-dir", run, "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert "trained 2 steps in" in trained.stdout and str(run) in trained.stdout
    test_pixels = int((read_raster(files["test"]) > 0).sum())
    stored = json.loads((run / "metrics.json").read_text())["test"]
    assert stored["pixels"] == test_pixels == int(np.sum(stored["confusion_matrix"]))
    assert (run / "checkpoint.pt").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["num_bands"] == 12
    assert config["training"]["recipe"]["augment"] == "none"  # from scratch: no augmentation

    # evaluating the saved checkpoint reproduces the evaluation made right after training
    metrics = tmp_path / "metrics.json"
    evaluated = cli("evaluate", run, *scene_args, "--json", metrics)
    assert evaluated.returncode == 0, evaluated.stderr
    again = json.loads(metrics.read_text())
    assert again["confusion_matrix"] == stored["confusion_matrix"]
    assert evaluated.stdout.startswith(f"test: OA {100 * stored['overall_accuracy']:.2f}")
    assert len(evaluated.stdout.splitlines()) == 1 + 3  # summary + one line per class

    model = tmp_path / "model.onnx"
    exported = cli("export", run, "--output", model, "--model-id", "cli-test")
    assert exported.returncode == 0, exported.stderr
    info = cli("info", model)
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert lines[0] == "FactoFormer cli-test v1.0.0"
    assert "  bands: 12 with wavelengths" in lines and "  patch: 7x7, padding symmetric" in lines
    assert f"  test OA {100 * stored['overall_accuracy']:.2f}" in info.stdout
    assert len([line for line in lines if re.match(r"^ +[0-9]+ #[0-9a-f]{6} \S", line)]) == 3

    onnx_eval = cli("evaluate", model, *scene_args, "--split", "train")
    assert onnx_eval.returncode == 0, onnx_eval.stderr
    train_pixels = int((read_raster(files["train"]) > 0).sum())
    assert f"({train_pixels} pixels)" in onnx_eval.stdout.splitlines()[0]


def _one_line_error(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad colour", "class 2 (Class 2) has colour 'red', not #rrggbb"),
        ("batch size 0", "batch size must be at least 1, got 0"),
        ("batch size -3", "batch size must be at least 1, got -3"),
        ("too many classes", "65536 classes; a class map holds at most 65535"),
        ("input folder", "is a folder, not a raster file"),
        ("model folder", "is a folder; give the .onnx file inside it"),
        ("ENVI without header", "no .hdr beside it (cube.hdr)"),
        ("netCDF container", 'holds 2 subdatasets; give one of them, e.g. NETCDF:"'),
    ],
)
def test_bad_input_is_one_line_with_rc_2(models, scene, tmp_path, case, expected):
    raster, model, extra = scene, models["linear"], []
    if case == "bad colour":
        model = models["bad_colour"]
    elif case.startswith("batch size"):
        extra = ["--batch-size", case.split()[-1]]
    elif case == "too many classes":
        model = models["too_many_classes"]
    elif case == "input folder":
        raster = tmp_path / "scenes"
        raster.mkdir()
    elif case == "model folder":
        model = tmp_path / "models"
        model.mkdir()
    elif case == "ENVI without header":
        raster = write_raster(tmp_path / "cube.bsq", read_raster(scene), driver="ENVI")
        (tmp_path / "cube.hdr").unlink()
    else:
        raster = tmp_path / "two_variables.nc"
        gdal.Translate(str(raster), str(scene), format="netCDF")
    out = tmp_path / "out.tif"
    _one_line_error(cli("classify", raster, "--model", model, "--output", out, *extra), expected)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_gdal_names_reach_gdal_unchanged(models, scene, tmp_path):
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(scene, "inside/scene.tif")
    vsizip = f"/vsizip/{archive}/inside/scene.tif"  # "/vsizip//tmp/...": a double slash
    assert "//" in vsizip
    out = tmp_path / "from_zip.tif"
    done = cli("classify", vsizip, "--model", models["linear"], "--output", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read_raster(out), known_classes())

    # a subdataset name: one variable of a netCDF file, classified with a 1-band model
    nc = tmp_path / "bands.nc"
    gdal.Translate(str(nc), str(scene), format="netCDF")
    subdataset = f'NETCDF:"{nc}":Band1'
    out = tmp_path / "from_netcdf.tif"
    done = cli("classify", subdataset, "--model", models["one_band"], "--output", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read_raster(out), known_classes())
    assert "Warning" not in done.stderr and "ERROR" not in done.stderr
