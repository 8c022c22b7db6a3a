"""Training in QGIS: factoformer:pretrain -> train (from polygons) -> classify -> assess
through processing.run, on the bundled Indian Pines scene with polygons made from its
training split; training in a separate process, refused without PyTorch, cancelled cleanly."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, BUNDLED_TEST, REPO, read_raster
from osgeo import gdal, ogr
from test_qgis_process import qgis_env  # noqa: F401 (fixture: a profile with the plugin)

from engine.data.validation import carve_validation
from engine.data.vector_labels import rasterise_labels
from engine.infer.model import OnnxClassifier
from engine.metrics import classification_metrics

BUNDLED_TRAIN = REPO / "resources" / "indian_pines" / "indian_pines_train.tif"
NO_TORCH = "/usr/bin/python3 -S"  # Debian's Python without site packages: no PyTorch
STYLED = {1: ("Alfalfa", "#ff0000"), 2: ("Corn no-till", "#00ff00")}


def polygonise(labels, path):
    """The labelled pixels of ``labels`` as polygons with an integer field ``crop``."""
    src = gdal.Open(str(labels))
    band = src.GetRasterBand(1)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("fields", src.GetSpatialRef(), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0)  # the band as its own mask: 0 = unlabelled
    ds = None
    return path


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Indian Pines training split as 519 polygons (one per 4-connected field)."""
    return polygonise(BUNDLED_TRAIN, tmp_path_factory.mktemp("fields") / "fields.gpkg")


@pytest.fixture()
def run(processing_plugin, monkeypatch):
    import processing

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return processing.run


@pytest.fixture()
def styled_layer(fields):
    """The polygons as a QGIS layer with a categorized style on ``crop`` (two categories)."""
    from qgis.core import (
        QgsCategorizedSymbolRenderer,
        QgsRendererCategory,
        QgsSymbol,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtGui import QColor

    layer = QgsVectorLayer(f"{fields}|layername=fields", "fields", "ogr")
    assert layer.isValid()
    categories = []
    for value, (name, colour) in STYLED.items():
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        categories.append(QgsRendererCategory(value, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer("crop", categories))
    return layer


@pytest.fixture(scope="module")
def pretrained(plugin_module, qgis_processing, tmp_path_factory):
    """A pretraining run of two steps per branch on the bundled scene."""
    import processing

    folder = tmp_path_factory.mktemp("pretrain") / "run"
    plugin = plugin_module.classFactory(None)
    plugin.initProcessing()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OMP_NUM_THREADS", "1")
            results = processing.run(
                "factoformer:pretrain",
                {
                    "INPUT": [str(BUNDLED_SCENE)],
                    "OUTPUT": str(folder),
                    "BRANCH": 0,  # both
                    "MAX_STEPS": 2,
                    "BATCH_SIZE": 32,
                },
            )
    finally:
        plugin.unload()
    assert results["OUTPUT"] == str(folder)
    return folder


def test_pretrain_writes_both_branches_with_their_loss(pretrained):
    for branch in ("pixel", "band"):
        summary = json.loads((pretrained / branch / "pretraining.json").read_text())
        assert (pretrained / branch / "encoder.pt").is_file()
        assert summary["steps"] == 2 and summary["final_loss"] > 0


def test_train_from_polygons_then_classify_and_assess(
    run, styled_layer, fields, pretrained, tmp_path
):
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def report_loss(self, label, fraction, loss):
            self.losses.append((label, fraction, loss))

    feedback = Recorder()
    model = tmp_path / "my model.onnx"
    results = run(
        "factoformer:train",
        {
            "INPUT": str(BUNDLED_SCENE),
            "TRAINING": styled_layer,
            "CLASS_FIELD": "crop",
            "PRETRAINED": str(pretrained),
            "EPOCHS": 1,
            "BATCH_SIZE": 64,
            "SEED": 0,
            "OUTPUT": str(model),
        },
        feedback=feedback,
    )
    assert results["OUTPUT"] == str(model) and results["MODEL_ID"] == "my-model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my model.onnx"]  # nothing staged left
    assert feedback.losses and all(np.isfinite(loss) for _, _, loss in feedback.losses)
    assert "whole polygons" in feedback.textLog()

    # Validation: the same polygons the engine holds out by polygon (seed 0, 20 %), and no
    # polygon has pixels on both sides.
    burnt = rasterise_labels(fields, str(BUNDLED_SCENE), "crop")
    carved = carve_validation([burnt.labels], 0.2, 0, [burnt.regions])
    validation, train = carved.validation[0] > 0, carved.train[0] > 0
    assert results["VALIDATION_PIXELS"] == int(validation.sum())
    assert not set(np.unique(burnt.regions[validation])) & set(np.unique(burnt.regions[train]))
    assert validation.sum() != int(0.2 * (burnt.labels > 0).sum())  # whole polygons, not pixels

    meta = OnnxClassifier(model).metadata
    assert [c.value for c in meta.classes] == list(range(1, 17))  # the layer's class values
    for value, (name, colour) in STYLED.items():
        assert (meta.classes[value - 1].name, meta.classes[value - 1].color) == (name, colour)
    assert meta.classes[2].name == "Class 3"
    assert meta.training["pretraining"]["branches"].keys() == {"pixel", "band"}

    classes = tmp_path / "classes.tif"
    run(
        "factoformer:classify",
        {"INPUT": str(BUNDLED_SCENE), "MODEL": str(model), "OUTPUT": str(classes)},
    )
    report = tmp_path / "report.html"
    assessed = run(
        "factoformer:assess",
        {"INPUT": str(classes), "REFERENCE": str(BUNDLED_TEST), "OUTPUT": str(report)},
    )
    metrics = classification_metrics(read_raster(BUNDLED_TEST), read_raster(classes), 16)
    assert metrics.total == 9671
    assert assessed["OA"] == metrics.overall_accuracy
    assert assessed["KAPPA"] == pytest.approx(metrics.kappa, abs=1e-12)
    assert "Alfalfa" in report.read_text()


def test_training_without_torch_is_refused_and_classify_still_works(
    run, fields, monkeypatch, tmp_path
):
    from qgis.core import QgsProcessingException

    monkeypatch.setenv("FACTOFORMER_PYTHON", NO_TORCH)
    model = tmp_path / "model.onnx"
    with pytest.raises(
        QgsProcessingException, match="/usr/bin/python3 -S -m pip install torch"
    ) as err:
        run(
            "factoformer:train",
            {
                "INPUT": str(BUNDLED_SCENE),
                "TRAINING": str(fields),
                "CLASS_FIELD": "crop",
                "OUTPUT": str(model),
            },
        )
    assert "\n" not in str(err.value) and "needs PyTorch" in str(err.value)
    with pytest.raises(QgsProcessingException, match="pip install torch"):
        run(
            "factoformer:pretrain", {"INPUT": [str(BUNDLED_SCENE)], "OUTPUT": str(tmp_path / "pre")}
        )
    assert list(tmp_path.iterdir()) == []
    crop, classes = tmp_path / "crop.tif", tmp_path / "classes.tif"
    gdal.Translate(str(crop), str(BUNDLED_SCENE), srcWin=[0, 0, 16, 16])
    done = run("factoformer:classify", {"INPUT": str(crop), "OUTPUT": str(classes)})
    assert done["CLASSIFIED_PIXELS"] == 256 and classes.exists()


def test_cancel_stops_the_process_and_leaves_nothing(run, fields, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelOnFirstLoss(QgsProcessingFeedback):
        def report_loss(self, label, fraction, loss):
            self.cancel()

    model = tmp_path / "model.onnx"
    model.write_bytes(b"an older model")  # kept as it was
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run(
            "factoformer:train",
            {
                "INPUT": str(BUNDLED_SCENE),
                "TRAINING": str(fields),
                "CLASS_FIELD": "crop",
                "EPOCHS": 50,
                "OUTPUT": str(model),
            },
            feedback=CancelOnFirstLoss(),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert model.read_bytes() == b"an older model"


def test_vector_training_needs_its_class_field(run, fields, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="needs its class field"):
        run(
            "factoformer:train",
            {
                "INPUT": str(BUNDLED_SCENE),
                "TRAINING": str(fields),
                "OUTPUT": str(tmp_path / "m.onnx"),
            },
        )
    assert list(tmp_path.iterdir()) == []


def test_patch_size_reaches_the_model_and_is_refused_where_it_does_not_apply(run, tmp_path):
    from qgis.core import QgsProcessingException

    common = {"INPUT": str(BUNDLED_SCENE), "TRAINING": str(BUNDLED_TRAIN), "MAX_STEPS": 1}
    model = tmp_path / "p5.onnx"
    run("factoformer:train", {**common, "PATCH_SIZE": 5, "OUTPUT": str(model)})
    assert OnnxClassifier(model).metadata.patch_size == 5
    with pytest.raises(QgsProcessingException, match="--patch-size do not apply to --model rf"):
        run(
            "factoformer:train",
            {**common, "MODEL_TYPE": 2, "PATCH_SIZE": 3, "OUTPUT": str(tmp_path / "rf.onnx")},
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p5.onnx"]


# --- through qgis_process -------------------------------------------------------------------


def test_workflow_through_qgis_process(qgis_env, fields, tmp_path):  # noqa: F811
    """Pretrain, train, classify and assess as a shell user would: paths relative to the
    folder qgis_process is started in."""
    from test_qgis_process import _run_json

    env = {**qgis_env, "OMP_NUM_THREADS": "1"}

    def run_json(algorithm, *params):
        return _run_json(env, algorithm, *params, cwd=tmp_path)

    shutil.copy(BUNDLED_SCENE, tmp_path / "scene.tif")
    polygons = os.path.relpath(fields, tmp_path)
    pretrained = run_json(
        "factoformer:pretrain",
        "INPUT=scene.tif",
        "OUTPUT=pre",
        "BRANCH=0",
        "MAX_STEPS=1",
        "BATCH_SIZE=32",
    )
    pre = tmp_path / "pre"
    assert Path(pretrained["OUTPUT"]).is_absolute()  # where it is, not where it was asked for
    assert Path(pretrained["OUTPUT"]).resolve() == pre.resolve()
    assert (pre / "pixel" / "encoder.pt").is_file() and (pre / "band" / "encoder.pt").is_file()
    trained = run_json(
        "factoformer:train",
        "INPUT=scene.tif",
        f"TRAINING={polygons}",
        "CLASS_FIELD=crop",
        "PRETRAINED=pre",
        "EPOCHS=1",
        "BATCH_SIZE=64",
        "OUTPUT=model.onnx",
    )
    model = tmp_path / "model.onnx"
    assert model.is_file() and trained["VALIDATION_PIXELS"] > 0
    assert Path(trained["OUTPUT"]).is_absolute()
    assert Path(trained["OUTPUT"]).resolve() == model.resolve()
    classes, report = tmp_path / "classes.tif", tmp_path / "report.html"
    run_json("factoformer:classify", "INPUT=scene.tif", "MODEL=model.onnx", "OUTPUT=classes.tif")
    assessed = run_json(
        "factoformer:assess", "INPUT=classes.tif", f"REFERENCE={BUNDLED_TEST}", "OUTPUT=report.html"
    )
    metrics = classification_metrics(read_raster(BUNDLED_TEST), read_raster(classes), 16)
    assert assessed["OA"] == metrics.overall_accuracy and report.is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging


# --- the dock's Train tab -------------------------------------------------------------------


def test_dock_trains_in_the_background_and_picks_the_new_model(
    plugin_module, qgis_iface, qgis_processing, styled_layer, monkeypatch, tmp_path
):

    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    scene = QgsRasterLayer(str(BUNDLED_SCENE), "Indian Pines")
    QgsProject.instance().addMapLayers([scene, styled_layer])
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    panel = plugin.dock.train_panel
    try:
        panel.raster_combo.setLayer(scene)
        panel.training_combo.setLayer(styled_layer)
        assert panel.field_combo.currentField() == "crop"  # the field the style uses
        assert not panel.run_button.isEnabled() and "model file" in panel.status.text()
        model = tmp_path / "dock model.onnx"
        panel.output_widget.setFilePath(str(model))
        panel.epochs_spin.setValue(1)
        assert panel.run_button.isEnabled()
        panel.run()
        deadline = time.monotonic() + 300
        while panel.task is not None and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.05)
        QgsApplication.processEvents()
        assert panel.task is None and model.is_file(), panel.status.text()
        assert plugin.dock.model_widget.filePath() == str(model)
        assert "dock-model" in plugin.dock.model_info.text()  # the picker shows its card
        assert panel.curve.points and panel.loss_label.text().startswith("Loss ")
        assert panel.progress.value() == 100
        assert panel.status.text().startswith(f"Trained {model}; validation OA ")
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()


def test_training_algorithms_have_the_issue_parameters_with_help(processing_plugin):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    train = registry.algorithmById("factoformer:train")
    names = [p.name() for p in train.parameterDefinitions()]
    assert sorted(names) == sorted(
        [
            "INPUT",
            "TRAINING",
            "CLASS_FIELD",
            "PRETRAINED",
            "MODEL_TYPE",
            "EPOCHS",
            "BATCH_SIZE",
            "MAX_STEPS",
            "SEED",
            "PATCH_SIZE",
            "VALIDATION_SHARE",
            "OUTPUT",
        ]
    )
    assert train.parameterDefinition("MODEL_TYPE").options() == [
        "factoformer",
        "cnn3d",
        "rf",
        "svm",
        "maskedsst",  # appended: the indices of the older types keep their meaning
    ]
    for algorithm in (train, registry.algorithmById("factoformer:pretrain")):
        for param in algorithm.parameterDefinitions():
            assert param.help(), f"{algorithm.id()} {param.name()} has no help text"


def test_train_tab_says_how_to_install_torch(
    plugin_module, qgis_iface, qgis_processing, styled_layer, monkeypatch, tmp_path
):

    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    monkeypatch.setenv("FACTOFORMER_PYTHON", NO_TORCH)
    scene = QgsRasterLayer(str(BUNDLED_SCENE), "Indian Pines")
    QgsProject.instance().addMapLayers([scene, styled_layer])
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    panel = plugin.dock.train_panel
    try:
        panel.raster_combo.setLayer(scene)
        panel.training_combo.setLayer(styled_layer)
        panel.output_widget.setFilePath(str(tmp_path / "m.onnx"))
        panel.run()
        deadline = time.monotonic() + 120
        while panel.task is not None and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.05)
        assert "install it with: /usr/bin/python3 -S -m pip install torch" in panel.status.text()
        assert panel.run_button.isEnabled() and list(tmp_path.iterdir()) == []
    finally:
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()


def test_pretrain_cancel_stops_the_process(run, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelOnFirstLoss(QgsProcessingFeedback):
        def report_loss(self, label, fraction, loss):
            self.cancel()

    folder = tmp_path / "pre"
    start = time.monotonic()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run(
            "factoformer:pretrain",
            {"INPUT": [str(BUNDLED_SCENE)], "OUTPUT": str(folder), "EPOCHS": 50},
            feedback=CancelOnFirstLoss(),
        )
    assert time.monotonic() - start < 120  # 50 epochs would take hours
    assert not list(folder.rglob("encoder.pt"))  # no branch was finished
