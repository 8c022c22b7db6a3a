"""Dask from Processing: ``factoformer:classify_many`` and ``classify`` with ``SCHEDULER``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import read_raster, write_raster
from linear_model import band1_values, write_linear_model
from qgis.core import QgsProcessingException

distributed = pytest.importorskip("distributed")

CLASSES = 3


@pytest.fixture()
def run(processing_plugin, monkeypatch):
    import processing

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return processing.run


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return write_linear_model(tmp_path_factory.mktemp("linear") / "linear.onnx", CLASSES)


def known_scene(path, seed: int):
    """A 2-band raster and the classes the linear model must give it."""
    truth = np.random.default_rng(seed).integers(1, CLASSES + 1, (12, 15))
    band1 = band1_values(truth, CLASSES)
    write_raster(path, np.stack([band1, np.zeros_like(band1)]))
    return truth


def test_classify_many_writes_a_styled_map_per_raster(run, linear, tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    truths = {f"s{i}": known_scene(folder / f"s{i}.tif", i) for i in range(2)}
    extra = tmp_path / "extra.tif"
    truths["extra"] = known_scene(extra, 7)
    out = tmp_path / "out"
    results = run(
        "factoformer:classify_many",
        {
            "INPUTS": [str(extra)],
            "FOLDER": str(folder),
            "PATTERN": "*.tif",
            "MODEL": str(linear),
            "CONFIDENCE": True,
            "OUTPUT_FOLDER": str(out),
            "WORKERS": 2,
        },
    )
    assert results["CLASSIFIED"] == 3 and results["OUTPUT_FOLDER"] == str(out)
    for stem, truth in truths.items():
        np.testing.assert_array_equal(read_raster(out / f"{stem}_classes.tif"), truth)
        assert (out / f"{stem}_classes.qml").exists()
        assert (out / f"{stem}_confidence.tif").exists()


def test_classify_many_names_the_raster_that_failed(run, linear, tmp_path):
    truth = known_scene(tmp_path / "good.tif", 0)
    write_raster(tmp_path / "one_band.tif", np.zeros((1, 8, 8), np.float32))
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=r"one_band.tif: .*expects 2 bands"):
        run(
            "factoformer:classify_many",
            {"FOLDER": str(tmp_path), "MODEL": str(linear), "OUTPUT_FOLDER": str(out)},
        )
    np.testing.assert_array_equal(read_raster(out / "good_classes.tif"), truth)
    assert not (out / "one_band_classes.tif").exists()


def test_classify_on_a_running_scheduler(run, linear, tmp_path):
    truth = known_scene(tmp_path / "scene.tif", 3)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
    ) as cluster:
        results = run(
            "factoformer:classify",
            {
                "INPUT": str(tmp_path / "scene.tif"),
                "MODEL": str(linear),
                "OUTPUT": str(tmp_path / "classes.tif"),
                "SCHEDULER": cluster.scheduler_address,
            },
        )
    assert results["CLASSIFIED_PIXELS"] == truth.size and results["MODEL_ID"] == "linear"
    np.testing.assert_array_equal(read_raster(tmp_path / "classes.tif"), truth)
    assert (tmp_path / "classes.qml").exists()


def test_classify_many_into_a_temporary_folder(run, linear, tmp_path):
    truth = known_scene(tmp_path / "only.tif", 5)
    results = run(
        "factoformer:classify_many",
        {
            "INPUTS": [str(tmp_path / "only.tif")],
            "MODEL": str(linear),
            "OUTPUT_FOLDER": "TEMPORARY_OUTPUT",
        },
    )
    out = Path(results["OUTPUT_FOLDER"])
    assert results["CLASSIFIED"] == 1 and out != tmp_path
    np.testing.assert_array_equal(read_raster(out / "only_classes.tif"), truth)
