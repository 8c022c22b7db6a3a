"""The Processing algorithm through processing.run: accuracy, styling, errors, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, BUNDLED_TEST, read_raster, unwritable_folder, write_raster
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
)

from engine.data.prepared import PreparedScene
from engine.data.scenes import load_indian_pines
from engine.evaluation import evaluate_labels
from engine.infer.model import OnnxClassifier
from engine.metrics import classification_metrics

ALG = "factoformer:classify"


@pytest.fixture(scope="module")
def ip_run(tmp_path_factory, plugin_module, qgis_processing, shipped_model):
    """The shipped model run on the whole bundled scene through processing.run."""
    import processing

    plugin = plugin_module.classFactory(None)
    plugin.initProcessing()
    out = tmp_path_factory.mktemp("ip") / "indian_pines_classes.tif"
    conf = out.with_name("indian_pines_confidence.tif")
    results = processing.run(
        ALG, {"INPUT": str(BUNDLED_SCENE), "OUTPUT": str(out), "CONFIDENCE": str(conf)}
    )
    plugin.unload()
    return results, out, conf


def test_class_map_accuracy_equals_engine_evaluation(ip_run, shipped_model):
    results, out, _ = ip_run
    assert results["CLASSIFIED_PIXELS"] == 145 * 145 and results["NODATA_PIXELS"] == 0
    assert results["MODEL_ID"] == "factoformer-indian-pines"
    model = OnnxClassifier(shipped_model)
    scene = load_indian_pines()
    prepared = PreparedScene.from_scene(scene, 7, model.metadata.normalization)
    engine_metrics = evaluate_labels(model.map_logits, prepared, scene.test_labels)
    map_metrics = classification_metrics(read_raster(BUNDLED_TEST), read_raster(out), 16)
    assert np.array_equal(map_metrics.confusion, engine_metrics.confusion)
    assert map_metrics.overall_accuracy == engine_metrics.overall_accuracy
    assert map_metrics.kappa == engine_metrics.kappa
    # and both equal what the model's metadata reports from training
    reported = model.metadata.metrics["test"]
    assert map_metrics.overall_accuracy == pytest.approx(reported["overall_accuracy"], abs=1e-9)


def test_output_loads_as_a_paletted_layer_with_exactly_the_model_classes(ip_run, shipped_model):
    _, out, conf = ip_run
    layer = QgsRasterLayer(str(out), "classes")
    assert layer.isValid()
    renderer = layer.renderer()  # keep the layer referenced while using its renderer
    assert renderer.type() == "paletted"
    classes = renderer.classes()
    expected = OnnxClassifier(shipped_model).metadata.classes
    assert [c.value for c in classes] == [c.value for c in expected]
    assert [c.label for c in classes] == [c.name for c in expected]
    assert [c.color.name() for c in classes] == [c.color for c in expected]
    confidence = read_raster(conf)
    assert confidence.dtype == np.float32 and (confidence > 0).all() and (confidence <= 1).all()


def test_rendered_map_shows_each_pixel_in_its_class_colour(ip_run):
    """Render the output as QGIS draws it: one screen pixel per raster pixel."""
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor, QImage

    _, out, _ = ip_run
    layer = QgsRasterLayer(str(out), "classes")
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(layer.width(), layer.height()))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage().convertToFormat(QImage.Format_ARGB32)
    bits = image.constBits()
    bits.setsize(image.byteCount())
    argb = np.frombuffer(bits, dtype=np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    colours = np.zeros(256, dtype=np.uint32)
    for c in layer.renderer().classes():
        colours[int(c.value)] = QColor(c.color).rgba()
    classes = read_raster(out)
    assert len(np.unique(classes)) == 16
    assert np.array_equal(argb[:, : layer.width()], colours[classes])


def _run(params, feedback=None):
    import processing

    return processing.run(ALG, params, feedback=feedback)


def test_wrong_band_count_raises_a_clear_processing_error(processing_plugin, tmp_path):
    raster = write_raster(tmp_path / "ten.tif", np.ones((10, 20, 20), dtype=np.int16))
    out = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException, match="expects 200 bands but ten.tif has 10"):
        _run({"INPUT": str(raster), "OUTPUT": str(out)})
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"\x08\x01garbage"])
def test_corrupt_model_raises_a_clear_processing_error(processing_plugin, tmp_path, content):
    model = tmp_path / "broken.onnx"
    model.write_bytes(content)
    with pytest.raises(QgsProcessingException, match="not a valid ONNX model"):
        _run({"INPUT": str(BUNDLED_SCENE), "MODEL": str(model), "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_unwritable_output_folder_raises_a_clear_error(processing_plugin, tmp_path):
    with unwritable_folder(tmp_path) as locked:
        with pytest.raises(QgsProcessingException, match="not writable"):
            _run({"INPUT": str(BUNDLED_SCENE), "OUTPUT": str(locked / "o.tif")})


def test_cancel_stops_the_run_and_leaves_no_output(processing_plugin, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: value > 25 and feedback.cancel())
    out = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        _run({"INPUT": str(BUNDLED_SCENE), "OUTPUT": str(out), "BATCH_SIZE": 64}, feedback)
    assert list(tmp_path.iterdir()) == []


def test_layer_loaded_by_processing_gets_the_class_style(processing_plugin, tmp_path):
    """What the toolbox does with "Open output file after running algorithm"."""
    import processing
    from osgeo import gdal
    from qgis.core import QgsProject

    crop = tmp_path / "crop.tif"
    gdal.Translate(str(crop), str(BUNDLED_SCENE), srcWin=[100, 100, 20, 20])
    try:
        results = processing.runAndLoadResults(
            ALG, {"INPUT": str(crop), "OUTPUT": str(tmp_path / "loaded.tif")}
        )
        loaded = QgsProject.instance().mapLayers().values()
        [layer] = [lyr for lyr in loaded if lyr.source() == results["OUTPUT"]]
        renderer = layer.renderer()
        assert renderer.type() == "paletted" and len(renderer.classes()) == 16
        assert renderer.classes()[0].label == "Corn-notill"
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_runs_as_a_modeler_child_algorithm(processing_plugin, tmp_path, qgis_processing):
    from osgeo import gdal
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    crop = tmp_path / "crop.tif"
    gdal.Translate(str(crop), str(BUNDLED_SCENE), srcWin=[20, 20, 24, 24])
    model = QgsProcessingModelAlgorithm("classify chain", "tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("scene", "Scene"), QgsProcessingModelParameter("scene")
    )
    child = QgsProcessingModelChildAlgorithm(ALG)
    child.setChildId("classify")
    child.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("scene")]
    )
    output = QgsProcessingModelOutput("classes", "Classes")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"classes": output})
    model.addChildAlgorithm(child)
    context = QgsProcessingContext()
    out = tmp_path / "model_out.tif"
    results, ok = model.run(
        {"scene": str(crop), "classify:classes": str(out)}, context, QgsProcessingFeedback()
    )
    assert ok, results
    assert read_raster(out).shape == (24, 24) and (read_raster(out) > 0).all()


def _bare_onnx(path):
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "bare",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("all-nodata", "no valid pixel"),
        ("smaller-than-patch", "5x5 pixels.*at least 7x7"),
        ("model-without-metadata", "no FactoFormer metadata"),
    ],
)
def test_other_bad_inputs_raise_one_line_errors(processing_plugin, tmp_path, case, message):
    raster = tmp_path / "in.tif"
    params = {"INPUT": str(raster), "OUTPUT": str(tmp_path / "out.tif")}
    if case == "all-nodata":
        write_raster(raster, np.full((200, 12, 12), -1, dtype=np.int16), nodata=-1)
    elif case == "smaller-than-patch":
        write_raster(raster, np.ones((200, 5, 5), dtype=np.int16))
    else:
        write_raster(raster, np.ones((200, 12, 12), dtype=np.int16))
        params["MODEL"] = str(_bare_onnx(tmp_path / "bare.onnx"))
    with pytest.raises(QgsProcessingException, match=message) as exc:
        _run(params)
    assert "\n" not in str(exc.value).strip()
    assert not (tmp_path / "out.tif").exists()


def test_dense_tile_model_through_processing_run(processing_plugin, tmp_path):
    """processing.run with a dense model gives the engine's map, styled as usual."""
    from dense_model import write_dense_model
    from helpers import WAVELENGTHS, synthetic_cube

    from engine.data.normalization import MinMaxNormalization
    from engine.infer.classify import classify_raster

    cube = synthetic_cube(rows=21, cols=26)[0]
    raster = write_raster(tmp_path / "scene.tif", cube, wavelengths_nm=WAVELENGTHS)
    norm = MinMaxNormalization.fit(cube)
    model = write_dense_model(tmp_path / "dense.onnx", 12, 3, 8, WAVELENGTHS, norm)
    out, conf = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    results = _run(
        {"INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out), "CONFIDENCE": str(conf)}
    )
    assert results["MODEL_ID"] == "dense" and results["CLASSIFIED_PIXELS"] == 21 * 26
    classify_raster(raster, model, tmp_path / "engine.tif", confidence=tmp_path / "engine_conf.tif")
    assert np.array_equal(read_raster(out), read_raster(tmp_path / "engine.tif"))
    assert np.array_equal(read_raster(conf), read_raster(tmp_path / "engine_conf.tif"))
    layer = QgsRasterLayer(str(out), "dense")
    assert layer.isValid() and out.with_suffix(".qml").exists()
