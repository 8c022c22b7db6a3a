"""MaskedSST in QGIS: factoformer:pretrain and factoformer:train with MODEL_TYPE maskedsst,
then classify, through processing.run with the real engine process; pretraining runs made
for the other model refused; the dock's Train tab offers the type.

The full-size MaskedSST costs seconds per step on one core, so the runs take two steps of
two tiles on a 32 x 32 crop of the bundled scene (its training split as polygons)."""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, read_raster
from osgeo import gdal
from test_qgis_process import qgis_env  # noqa: F401 (fixture: a profile with the plugin)
from test_train import BUNDLED_TRAIN, polygonise

from engine.data.validation import carve_validation
from engine.data.vector_labels import rasterise_labels
from engine.infer.model import OnnxClassifier

WINDOW = [10, 10, 32, 32]  # x, y, width, height: 9 classes of the training split
SMALL = {"MAX_STEPS": 2, "BATCH_SIZE": 2, "SEED": 0}


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """The crop of the bundled scene, its training labels and those labels as polygons."""
    folder = tmp_path_factory.mktemp("crop")
    scene, labels = folder / "scene.tif", folder / "train.tif"
    gdal.Translate(str(scene), str(BUNDLED_SCENE), srcWin=WINDOW)
    gdal.Translate(str(labels), str(BUNDLED_TRAIN), srcWin=WINDOW)
    return {"scene": scene, "labels": labels, "fields": polygonise(labels, folder / "f.gpkg")}


@pytest.fixture()
def run(processing_plugin, monkeypatch):
    import processing

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return processing.run


def recorder():
    """A Processing feedback that keeps the reported losses."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def report_loss(self, label, fraction, loss):
            self.losses.append((label, fraction, loss))

    return Recorder()


@pytest.fixture(scope="module")
def maskedsst_run(plugin_module, qgis_processing, crop, tmp_path_factory):
    """factoformer:pretrain with MODEL_TYPE maskedsst: two steps of two tiles."""
    import processing

    folder = tmp_path_factory.mktemp("pretrain") / "maskedsst"
    plugin = plugin_module.classFactory(None)
    plugin.initProcessing()
    feedback = recorder()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OMP_NUM_THREADS", "1")
            params = {"INPUT": [str(crop["scene"])], "OUTPUT": str(folder), **SMALL}
            results = processing.run(
                "factoformer:pretrain", {**params, "MODEL_TYPE": 1}, feedback=feedback
            )
    finally:
        plugin.unload()
    assert results["OUTPUT"] == str(folder)
    return folder, feedback.losses


@pytest.fixture()
def factoformer_run(tmp_path):
    """A folder laid out as factoformer:pretrain writes one (pixel/ and band/ branches)."""
    folder = tmp_path / "factoformer"
    for branch in ("pixel", "band"):
        (folder / branch).mkdir(parents=True)
        (folder / branch / "encoder.pt").write_bytes(b"weights")
        (folder / branch / "pretraining.json").write_text(json.dumps({"branch": branch}))
    return folder


def test_pretrain_maskedsst_writes_a_backbone_with_its_loss(maskedsst_run):
    folder, losses = maskedsst_run
    summary = json.loads((folder / "pretraining.json").read_text())
    assert (folder / "encoder.pt").is_file() and not (folder / "pixel").exists()
    assert summary["model_type"] == "MaskedSST" and summary["steps"] == 2
    assert summary["recipe"]["batch_size"] == 2
    assert losses and {label for label, _, _ in losses} == {"pretrain maskedsst"}
    assert all(np.isfinite(loss) for _, _, loss in losses)


def test_train_maskedsst_from_polygons_then_classify(run, crop, maskedsst_run, tmp_path):
    folder, _ = maskedsst_run
    feedback = recorder()
    model = tmp_path / "dense model.onnx"
    results = run(
        "factoformer:train",
        {
            "INPUT": str(crop["scene"]),
            "TRAINING": str(crop["fields"]),
            "CLASS_FIELD": "crop",
            "MODEL_TYPE": 4,
            "PRETRAINED": str(folder),
            "VALIDATION_SHARE": 0.2,
            "OUTPUT": str(model),
            **SMALL,
        },
        feedback=feedback,
    )
    assert results["OUTPUT"] == str(model) and results["MODEL_ID"] == "dense-model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense model.onnx"]
    assert feedback.losses and {label for label, _, _ in feedback.losses} == {"train"}
    assert "2 steps (1 epochs of " in feedback.textLog()  # the budget, in batches of 2 tiles

    # Validation held out by whole polygons, as for every model.
    burnt = rasterise_labels(str(crop["fields"]), str(crop["scene"]), "crop")
    carved = carve_validation([burnt.labels], 0.2, 0, [burnt.regions])
    validation, train = carved.validation[0] > 0, carved.train[0] > 0
    assert results["VALIDATION_PIXELS"] == int(validation.sum()) > 0
    assert not set(np.unique(burnt.regions[validation])) & set(np.unique(burnt.regions[train]))

    labels = read_raster(crop["labels"])
    class_ids = sorted(int(v) for v in np.unique(labels[labels > 0]))
    meta = OnnxClassifier(model).metadata
    assert meta.prediction == "dense" and meta.model_type == "MaskedSST"
    assert meta.tile_size == 8
    # Integer class values are the class ids (those between them become classes too).
    assert [c.value for c in meta.classes] == list(range(1, class_ids[-1] + 1))
    assert meta.training["pretraining"]["model_type"] == "MaskedSST"

    classes = tmp_path / "classes.tif"
    done = run(
        "factoformer:classify",
        {"INPUT": str(crop["scene"]), "MODEL": str(model), "OUTPUT": str(classes)},
    )
    assert done["CLASSIFIED_PIXELS"] == 32 * 32
    predicted = read_raster(classes)
    assert predicted.shape == (32, 32)
    assert set(np.unique(predicted)) <= {c.value for c in meta.classes}  # no 0: all valid
    style = ElementTree.parse(classes.with_suffix(".qml")).iter("paletteEntry")
    entries = [(int(e.get("value")), e.get("label"), e.get("color")) for e in style]
    assert entries == [(c.value, c.name, c.color) for c in meta.classes]  # QGIS's legend


def _refused(run, algorithm, params, tmp_path, match):
    from qgis.core import QgsProcessingException

    before = sorted(tmp_path.iterdir())
    start = time.monotonic()
    with pytest.raises(QgsProcessingException, match=match) as err:
        run(algorithm, params)
    assert time.monotonic() - start < 10  # refused before any training process starts
    assert "\n" not in str(err.value)
    assert sorted(tmp_path.iterdir()) == before  # nothing written
    return str(err.value)


def test_a_pretraining_run_of_the_other_model_is_refused(
    run, crop, maskedsst_run, factoformer_run, tmp_path
):
    folder, _ = maskedsst_run
    base = {
        "INPUT": str(crop["scene"]),
        "TRAINING": str(crop["fields"]),
        "CLASS_FIELD": "crop",
        "OUTPUT": str(tmp_path / "m.onnx"),
    }
    message = _refused(
        run,
        "factoformer:train",
        {**base, "MODEL_TYPE": 4, "PRETRAINED": str(factoformer_run)},
        tmp_path,
        "is a FactoFormer pretraining run",
    )
    assert message == (
        f"{factoformer_run} is a FactoFormer pretraining run (pixel/ and band/ branches); "
        "maskedsst needs a MaskedSST pretraining run (one encoder.pt backbone), made by "
        "Pre-train with MODEL_TYPE maskedsst"
    )
    for given in (factoformer_run / "pixel", factoformer_run / "band" / "encoder.pt"):
        params = {**base, "MODEL_TYPE": 4, "PRETRAINED": str(given)}
        _refused(run, "factoformer:train", params, tmp_path, "is a FactoFormer pretraining run")
    message = _refused(
        run,
        "factoformer:train",
        {**base, "PRETRAINED": str(folder)},  # MODEL_TYPE factoformer (default)
        tmp_path,
        "is a MaskedSST pretraining run",
    )
    assert "factoformer needs a FactoFormer pretraining run (pixel/ and band/" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    params = {**base, "MODEL_TYPE": 4, "PRETRAINED": str(empty)}
    _refused(run, "factoformer:train", params, tmp_path, "is not a finished pretraining run")
    params = {**base, "MODEL_TYPE": 1, "PRETRAINED": str(folder)}
    _refused(run, "factoformer:train", params, tmp_path, "not to cnn3d")


def test_pretrain_maskedsst_refuses_a_branch_choice(run, crop, tmp_path):
    params = {"INPUT": [str(crop["scene"])], "OUTPUT": str(tmp_path / "pre"), "MODEL_TYPE": 1}
    _refused(run, "factoformer:pretrain", {**params, "BRANCH": 0}, tmp_path, "BRANCH both applies")


def test_train_tab_offers_the_algorithms_model_types(
    plugin_module, qgis_iface, qgis_processing, tmp_path
):
    from qgis.core import QgsApplication

    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    panel = plugin.dock.train_panel
    try:
        train = QgsApplication.processingRegistry().algorithmById("factoformer:train")
        options = train.parameterDefinition("MODEL_TYPE").options()
        combo = panel.model_type_combo
        assert [combo.itemText(i) for i in range(combo.count())] == options
        panel.pretrained_widget.setFilePath(str(tmp_path))
        combo.setCurrentText("maskedsst")
        assert options[panel.parameters()["MODEL_TYPE"]] == "maskedsst"
        assert panel.parameters()["PRETRAINED"] == str(tmp_path)
        assert panel.epochs_spin.isEnabled()
        combo.setCurrentText("rf")  # no epochs, no pretraining
        assert not panel.epochs_spin.isEnabled() and not panel.pretrained_widget.isEnabled()
        assert panel.parameters()["PRETRAINED"] is None
    finally:
        plugin.unload()


def test_qgis_process_takes_maskedsst_as_model_type_4(
    qgis_env,  # noqa: F811 (the fixture imported above)
    crop,
    factoformer_run,
    tmp_path,
):
    from test_qgis_process import _qgis_process

    model = tmp_path / "m.onnx"
    done = _qgis_process(
        qgis_env,
        "run",
        "factoformer:train",
        "--",
        f"INPUT={crop['scene']}",
        f"TRAINING={crop['fields']}",
        "CLASS_FIELD=crop",
        "MODEL_TYPE=4",
        f"PRETRAINED={factoformer_run}",
        f"OUTPUT={model}",
    )
    assert done.returncode != 0 and not model.exists()
    assert "maskedsst needs a MaskedSST pretraining run" in done.stdout + done.stderr
