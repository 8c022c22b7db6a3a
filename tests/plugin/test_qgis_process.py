"""Batch use through qgis_process, with the plugin installed from the built zip."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, REPO, SHARED_DATA, read_raster, write_raster
from osgeo import gdal

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


@pytest.fixture(scope="module")
def qgis_env(plugin_zip, tmp_path_factory) -> dict[str, str]:
    """A throwaway QGIS profile with the plugin unzipped into it and enabled."""
    profile_root = tmp_path_factory.mktemp("qgis-profile")
    plugins = profile_root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_CUSTOM_CONFIG_PATH=str(profile_root),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        XDG_RUNTIME_DIR=str(tmp_path_factory.mktemp("xdg")),
    )
    env.pop("QGIS_PLUGINPATH", None)
    subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "factoformer"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (Path(env["XDG_RUNTIME_DIR"])).chmod(0o700)
    return env


def _qgis_process(env, *args, timeout=600, cwd=None):
    return subprocess.run(
        [QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def _run_json(env, algorithm, *params, cwd=None) -> dict:
    """``qgis_process --json run ALGORITHM -- PARAMS``: asserts success, returns its results."""
    proc = _qgis_process(env, "--json", "run", algorithm, "--", *params, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)["results"]


def test_algorithm_is_listed_with_help(qgis_env):
    listing = _qgis_process(qgis_env, "list")
    assert "factoformer:classify" in listing.stdout
    helptext = _qgis_process(qgis_env, "help", "factoformer:classify")
    assert helptext.returncode == 0
    assert "BATCH_SIZE" in helptext.stdout and "shipped Indian Pines model" in helptext.stdout


def test_json_run_on_the_bundled_scene(qgis_env, tmp_path):
    out, conf = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    proc = _qgis_process(
        qgis_env,
        "--json",
        "run",
        "factoformer:classify",
        "--",
        f"INPUT={BUNDLED_SCENE}",
        f"OUTPUT={out}",
        f"CONFIDENCE={conf}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # nothing else may be printed on stdout
    assert result["results"]["OUTPUT"] == str(out)
    gdal_lines = re.findall(r"^(?:ERROR|Warning) \d+:.*$", proc.stdout + proc.stderr, re.M)
    assert not gdal_lines  # GDAL's own message lines never leak for inputs we accept
    assert result["results"]["CLASSIFIED_PIXELS"] == 145 * 145
    assert result["results"]["MODEL_ID"] == "factoformer-indian-pines"
    classes = read_raster(out)
    assert classes.shape == (145, 145) and set(np.unique(classes)) <= set(range(1, 17))
    assert out.with_suffix(".qml").exists() and conf.exists()


def test_wrong_band_count_fails_with_a_clear_message_and_no_output(qgis_env, tmp_path):
    raster = write_raster(tmp_path / "ten_bands.tif", np.ones((10, 16, 16), dtype=np.int16))
    out = tmp_path / "never.tif"
    proc = _qgis_process(
        qgis_env, "run", "factoformer:classify", "--", f"INPUT={raster}", f"OUTPUT={out}"
    )
    assert proc.returncode != 0
    assert "expects 200 bands but ten_bands.tif has 10" in proc.stdout + proc.stderr
    # QGIS may cache statistics of the input in ten_bands.tif.aux.xml; nothing of ours remains
    assert not [p.name for p in tmp_path.iterdir() if "never" in p.name]


def test_a_vrt_source_is_never_overwritten(qgis_env, tmp_path):
    data = tmp_path / "data.tif"
    gdal.Translate(str(data), str(BUNDLED_SCENE), srcWin=[0, 0, 20, 20])
    vrt = tmp_path / "scene.vrt"
    gdal.Translate(str(vrt), str(data), format="VRT")
    before = data.read_bytes()
    proc = _qgis_process(
        qgis_env, "run", "factoformer:classify", "--", f"INPUT={vrt}", f"OUTPUT={data}"
    )
    assert proc.returncode != 0
    assert "would overwrite an input file: data.tif, read by input scene.vrt" in (
        proc.stdout + proc.stderr
    )
    assert data.read_bytes() == before


def test_ctrl_c_cancels_and_keeps_the_old_output(qgis_env, tmp_path):
    """qgis_process (3.22) turns SIGINT into a cancel request that the algorithm honours."""
    out = tmp_path / "classes.tif"
    out.write_bytes(b"previous result")
    proc = subprocess.Popen(
        [QGIS_PROCESS, "run", "factoformer:classify", "--", f"INPUT={BUNDLED_SCENE}"]
        + [f"OUTPUT={out}", "BATCH_SIZE=16"],
        env=qgis_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".*.partial.tif")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # classifying now
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Cancelled by the user; no output was written." in stdout + stderr
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif"]


def test_gdal_names_given_as_text_reach_gdal_unchanged(qgis_env, tmp_path):
    from linear_model import band1_values, write_linear_model

    classes = np.arange(9 * 11).reshape(9, 11) % 3 + 1
    band1 = band1_values(classes, 3)
    scene = write_raster(tmp_path / "scene.tif", np.stack([band1, np.zeros_like(band1)]))
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(scene, "inside/scene.tif")
    model = write_linear_model(tmp_path / "linear.onnx", 3)
    out = tmp_path / "from_zip.tif"
    proc = _qgis_process(
        qgis_env,
        "run",
        "factoformer:classify",
        "--",
        f"INPUT=/vsizip/{archive}/inside/scene.tif",  # "/vsizip//tmp/...": a double slash
        f"MODEL={model}",
        f"OUTPUT={out}",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert np.array_equal(read_raster(out), classes)


def test_random_forest_model_runs_unchanged(qgis_env, tmp_path):
    """A forest of 4 trees, converted to ONNX, classifies like any model of the plugin."""
    from engine.data.scenes import load_indian_pines
    from engine.data.training_set import TrainingSet
    from engine.infer.classify import classify_raster
    from engine.models.classical import RandomForestConfig
    from engine.training.classical import export_classical, run_classical

    data = TrainingSet.from_scene(load_indian_pines(), 1)
    config = RandomForestConfig(200, 16, n_estimators=4, max_features_grid=("sqrt",), cv_folds=2)
    run = run_classical(data, config, seed=0, output_dir=tmp_path / "run")
    model = export_classical(run.output_dir, tmp_path / "rf.onnx", "rf-tiny")
    out, conf = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    result = _run_json(
        qgis_env,
        "factoformer:classify",
        f"INPUT={BUNDLED_SCENE}",
        f"MODEL={model}",
        f"OUTPUT={out}",
        f"CONFIDENCE={conf}",
    )
    assert result["MODEL_ID"] == "rf-tiny" and result["CLASSIFIED_PIXELS"] == 145 * 145
    engine_out = tmp_path / "engine.tif"
    classify_raster(BUNDLED_SCENE, model, engine_out, confidence=tmp_path / "engine_conf.tif")
    assert np.array_equal(read_raster(out), read_raster(engine_out))
    assert np.array_equal(read_raster(conf), read_raster(tmp_path / "engine_conf.tif"))
    assert out.with_suffix(".qml").exists()


def test_dense_tile_model_runs_unchanged(qgis_env, tmp_path):
    """A dense model (every pixel of 8x8 tiles, blended) runs like any model of the plugin."""
    from dense_model import write_dense_model
    from helpers import WAVELENGTHS, synthetic_cube

    from engine.data.normalization import MinMaxNormalization
    from engine.infer.classify import classify_raster

    cube = synthetic_cube(rows=29, cols=35)[0]
    raster = write_raster(tmp_path / "scene.tif", cube, wavelengths_nm=WAVELENGTHS)
    norm = MinMaxNormalization.fit(cube)
    model = write_dense_model(tmp_path / "dense.onnx", 12, 3, 8, WAVELENGTHS, norm)
    out, prob = tmp_path / "classes.tif", tmp_path / "probabilities.tif"
    result = _run_json(
        qgis_env,
        "factoformer:classify",
        f"INPUT={raster}",
        f"MODEL={model}",
        f"OUTPUT={out}",
        f"PROBABILITIES={prob}",
        "BATCH_SIZE=320",
    )
    assert result["MODEL_ID"] == "dense" and result["CLASSIFIED_PIXELS"] == 29 * 35
    engine_out, engine_prob = tmp_path / "engine.tif", tmp_path / "engine_prob.tif"
    classify_raster(raster, model, engine_out, probabilities=engine_prob)
    assert np.array_equal(read_raster(out), read_raster(engine_out))
    assert np.allclose(read_raster(prob), read_raster(engine_prob), atol=1e-6)
    assert out.with_suffix(".qml").exists()


def test_assess_returns_oa_in_json(qgis_env, tmp_path):
    """factoformer:assess of a classified crop against its test labels, as a script runs it."""
    from helpers import BUNDLED_TEST, SHIPPED_MODEL

    from engine.infer.classify import classify_raster
    from engine.metrics import classification_metrics

    scene, labels, classes = (tmp_path / n for n in ("scene.tif", "labels.tif", "classes.tif"))
    gdal.Translate(str(scene), str(BUNDLED_SCENE), srcWin=[32, 80, 24, 24])
    gdal.Translate(str(labels), str(BUNDLED_TEST), srcWin=[32, 80, 24, 24])
    classify_raster(scene, SHIPPED_MODEL, classes)
    out = tmp_path / "report.html"
    proc = _qgis_process(
        qgis_env, "--json", "run", "factoformer:assess", "--",
        f"INPUT={classes}", f"REFERENCE={labels}", f"OUTPUT={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    expected = classification_metrics(read_raster(labels), read_raster(classes), 16)
    assert results["OA"] == pytest.approx(expected.overall_accuracy, abs=1e-12)
    assert out.exists() and out.with_suffix(".json").exists()


def test_classify_many_in_batch_on_two_local_workers(qgis_env, tmp_path):
    """The batch algorithm through qgis_process: a folder of rasters on a local Dask
    cluster of 2 workers, one styled map each, equal to the engine's single-process maps.
    Paths are relative to the folder qgis_process starts in, as a shell user gives them."""
    pytest.importorskip("distributed")
    from linear_model import band1_values, write_linear_model

    from engine.infer.classify import classify_raster

    model = write_linear_model(tmp_path / "linear.onnx", 3)
    folder, out = tmp_path / "scenes", tmp_path / "maps"
    folder.mkdir()
    for i in range(3):
        truth = np.random.default_rng(i).integers(1, 4, (12, 15))
        band1 = band1_values(truth, 3)
        write_raster(folder / f"scene{i}.tif", np.stack([band1, np.zeros_like(band1)]))
    result = _run_json(
        qgis_env,
        "factoformer:classify_many",
        "FOLDER=scenes",
        "PATTERN=*.tif",
        "MODEL=linear.onnx",
        "OUTPUT_FOLDER=maps",
        "WORKERS=2",
        cwd=tmp_path,
    )
    assert result["CLASSIFIED"] == 3
    for i in range(3):
        single = tmp_path / f"single{i}.tif"
        classify_raster(folder / f"scene{i}.tif", model, single)
        assert np.array_equal(read_raster(out / f"scene{i}_classes.tif"), read_raster(single))
        assert (out / f"scene{i}_classes.qml").exists()


ENMAP_TILES = SHARED_DATA / "enmap_potsdam_tiles"


@pytest.mark.skipif(
    not ENMAP_TILES.is_dir(),
    reason=f"EnMAP tiles {ENMAP_TILES} are absent (only in the development checkout)",
)
@pytest.mark.parametrize("model", ["factoformer_enmap_potsdam", "maskedsst_enmap_potsdam"])
def test_shipped_enmap_model_maps_an_enmap_test_tile(qgis_env, tmp_path, model):
    """Each shipped EnMAP model (FactoFormer; the dense MaskedSST) reads an EnMAP L2A tile
    by wavelength (218 of its 224 bands) and writes a styled land-cover map that mostly
    agrees with the tile's labels."""
    tile = ENMAP_TILES / "images" / "enmap_potsdam_tile_96_32.tif"  # test list, 480 labels
    out = tmp_path / "landcover.tif"
    result = _run_json(
        qgis_env,
        "factoformer:classify",
        f"INPUT={tile}",
        f"MODEL={REPO / 'models' / f'{model}.onnx'}",
        f"OUTPUT={out}",
    )
    assert result["MODEL_ID"] == model.replace("_", "-")
    classes, labels = read_raster(out), read_raster(ENMAP_TILES / "labels" / tile.name)
    assert set(np.unique(classes)) <= set(range(1, 7))
    labelled = labels > 0
    assert (classes[labelled] == labels[labelled]).mean() > 0.7
    style = out.with_suffix(".qml").read_text()
    assert all(name in style for name in ("roof", "low vegetation", "water"))
