"""Random forest and RBF SVM: search, ONNX agreement with scikit-learn, and the engine path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import BUNDLED_SCENE, REPO, read_raster

from engine.data.scenes import load_indian_pines
from engine.data.training_set import TrainingSet
from engine.infer.classify import classify_raster
from engine.infer.model import OnnxClassifier, softmax
from engine.models.classical import (
    PROBABILITY_FLOOR,
    RandomForestConfig,
    SVMConfig,
    estimator_probabilities,
    fit_classical,
    spectra,
    to_onnx,
)
from engine.training.classical import export_classical, run_classical

# A forest of a few trees and a one-point SVM grid keep the module in seconds.
TINY_RF = {"n_estimators": 8, "max_features_grid": ("sqrt",), "cv_folds": 3}
TINY_SVM = {"c_grid": (100.0,), "gamma_grid": (1.0,), "cv_folds": 3}
# ONNX Runtime's SVMClassifier evaluates the kernel in float32: its probabilities differ
# from libsvm's double precision ones by up to ~1e-4 (3e-4 measured with C = 1000).
SVM_PROBABILITY_TOLERANCE = 1e-3


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "engine", *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pines() -> TrainingSet:
    """The bundled Indian Pines scene as single normalised spectra."""
    return TrainingSet.from_scene(load_indian_pines(), 1)


@pytest.fixture(scope="module")
def runs(pines, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classical")
    configs = {
        "rf": RandomForestConfig(pines.num_bands, pines.num_classes, **TINY_RF),
        "svm": SVMConfig(pines.num_bands, pines.num_classes, **TINY_SVM),
    }
    return {name: run_classical(pines, c, 0, folder / name) for name, c in configs.items()}


def _decided(reference: np.ndarray, margin: float) -> np.ndarray:
    """Pixels whose two most probable classes differ by more than ``margin`` (no near-tie)."""
    top = np.sort(reference, axis=1)
    return top[:, -1] - top[:, -2] > margin


@pytest.mark.parametrize(("name", "tolerance"), [("rf", 1e-4), ("svm", SVM_PROBABILITY_TOLERANCE)])
def test_onnx_agrees_with_scikit_learn_on_real_pixels(pines, runs, name, tolerance):
    run = runs[name]
    model = OnnxClassifier(run.output_dir / "model.onnx")
    assert model.metadata.model_type == ("RandomForest" if name == "rf" else "SVM")
    assert model.metadata.output_kind == "log_probabilities"
    x = spectra(pines.test)
    onnx_probabilities = softmax(model.logits(x[:, :, None, None]))  # as the engine does
    reference = estimator_probabilities(run.fit.estimator, x, pines.num_classes)
    assert np.abs(onnx_probabilities - reference).max() < tolerance
    decided = _decided(reference, 2 * tolerance)
    assert decided.mean() > 0.8  # 8 trees vote in eighths: ties are common
    assert np.array_equal(onnx_probabilities.argmax(1)[decided], reference.argmax(1)[decided])
    # on near-ties the engine still picks one of the tied classes
    best = reference.max(axis=1)
    picked = reference[np.arange(len(x)), onnx_probabilities.argmax(1)]
    assert np.all(picked >= best - 2 * tolerance)
    check = run.metadata.training["onnx_check"]
    assert check["pixels"] == len(pines.train) and check["max_probability_difference"] < tolerance


def test_search_matches_scikit_learn_grid_search(pines):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    grid = {"c_grid": (1.0, 100.0), "gamma_grid": (0.1, 1.0, 10.0), "cv_folds": 3}
    config = SVMConfig(pines.num_bands, pines.num_classes, **grid)
    fit = fit_classical(config, pines.train, seed=3)
    x, y = spectra(pines.train), pines.train.targets(np.arange(len(pines.train)))
    scale = 1.0 / (x.shape[1] * x.var())  # scikit-learn's gamma="scale"
    grid = {"C": [1.0, 100.0], "gamma": [0.1 * scale, scale, 10 * scale]}
    folds = StratifiedKFold(3, shuffle=True, random_state=3)
    oracle = GridSearchCV(SVC(), grid, cv=folds).fit(x, y)
    ours = sorted((c["C"], c["gamma"], c["cv_accuracy"]) for c in fit.search)
    theirs = sorted(
        (p["C"], p["gamma"], s)
        for p, s in zip(
            oracle.cv_results_["params"], oracle.cv_results_["mean_test_score"], strict=True
        )
    )
    assert np.allclose(ours, theirs)
    assert fit.params["C"] == oracle.best_params_["C"]
    assert fit.params["gamma"] == pytest.approx(oracle.best_params_["gamma"])
    assert fit.folds == 3 and len(fit.search) == 6


def test_class_without_training_pixels_gets_probability_zero():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 3], 20)  # class 2 of 0..3 has no training pixel
    x = (rng.normal(size=(60, 5)) + y[:, None]).astype(np.float32)
    forest = RandomForestClassifier(5, random_state=0).fit(x, y)
    model = to_onnx(forest, 5, 4)
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"patches": x[:, :, None, None]})[0]
    assert logits.shape == (60, 4)
    assert np.allclose(logits[:, 2], np.log(np.float32(PROBABILITY_FLOOR)))
    expected = np.zeros((60, 4))
    expected[:, [0, 1, 3]] = forest.predict_proba(x)
    assert np.abs(softmax(logits) - expected).max() < 1e-6


def test_classify_bundled_scene_with_exported_forest(pines, runs, tmp_path):
    """The engine's tiled classifier gives scikit-learn's classes on every pixel."""
    run = runs["rf"]
    model = export_classical(run.output_dir, tmp_path / "rf.onnx", "rf-test", "2.0.0", "tiny")
    meta = OnnxClassifier(model).metadata
    assert (meta.model_id, meta.model_version, meta.description) == ("rf-test", "2.0.0", "tiny")
    assert meta.metrics["test"]["pixels"] == len(pines.test)
    table = tmp_path / "classes.csv"
    table.write_text("".join(f"{v},field {v}\n" for v in range(1, 17)))
    renamed = export_classical(run.output_dir, tmp_path / "named.onnx", "rf", classes_csv=table)
    assert [c.name for c in OnnxClassifier(renamed).metadata.classes] == [
        f"field {v}" for v in range(1, 17)
    ]
    out, confidence = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    report = classify_raster(BUNDLED_SCENE, model, out, confidence=confidence)
    assert report.classified_pixels == 145 * 145
    scene = load_indian_pines()
    cube = pines.normalization.apply(np.moveaxis(scene.cube, -1, 0), band_axis=0)
    reference = estimator_probabilities(run.fit.estimator, cube.reshape(200, -1).T, 16)
    decided = _decided(reference, 1e-4)
    classes = read_raster(out).ravel()
    assert np.array_equal(classes[decided], reference.argmax(1)[decided] + 1)
    assert np.allclose(read_raster(confidence).ravel(), reference.max(axis=1), atol=1e-4)


def test_cli_model_names_are_the_registry():
    from engine.cli import MODEL_NAMES
    from engine.models.registry import MODELS

    assert MODEL_NAMES == tuple(MODELS)


@pytest.mark.parametrize(("model", "extra"), [("rf", ["--trees", "5"]), ("svm", [])])
def test_cli_fits_evaluates_exports_and_classifies(synthetic_scene_files, tmp_path, model, extra):
    files = synthetic_scene_files
    scene_args = ["--raster", files["raster"], "--train-labels", files["train"]]
    scene_args += ["--test-labels", files["test"]]
    run = tmp_path / "run"
    fitted = cli(
        "train",
        "--model",
        model,
        *extra,
        *scene_args,
        "--validation-share",
        "0",
        "--output-dir",
        run,
        "--quiet",
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "cross-validation on the training pixels: chose" in fitted.stdout
    stored = json.loads((run / "metrics.json").read_text())["test"]
    assert f"test: OA {100 * stored['overall_accuracy']:.2f}" in fitted.stdout

    evaluated = cli("evaluate", run, *scene_args)  # the run folder: its converted model
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith(f"test: OA {100 * stored['overall_accuracy']:.2f}")

    onnx_file = tmp_path / f"{model}.onnx"
    exported = cli("export", run, "--output", onnx_file, "--model-id", f"{model}-cli")
    assert exported.returncode == 0, exported.stderr
    kind = {"rf": "RandomForest", "svm": "SVM"}[model]
    assert cli("info", onnx_file).stdout.startswith(f"{kind} {model}-cli v1.0.0")

    out = tmp_path / "classes.tif"
    done = cli("classify", files["raster"], "--model", onnx_file, "--output", out, "--quiet")
    assert done.returncode == 0, done.stderr
    # the tiled classifier's map agrees with the evaluation made right after fitting
    truth, classes = read_raster(files["test"]), read_raster(out)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (truth[truth > 0] - 1, classes[truth > 0] - 1), 1)
    assert confusion.tolist() == stored["confusion_matrix"]


def test_cli_refuses_network_options_for_classical_models(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    args = ["--raster", files["raster"], "--train-labels", files["train"]]
    done = cli("train", "--model", "svm", *args, "--epochs", "3", "--trees", "4")
    assert done.returncode != 0
    assert done.stderr.strip() == "error: --epochs, --trees do not apply to --model svm"


def test_inference_needs_neither_scikit_learn_nor_torch(runs, tmp_path):
    """The CLI classifies with a forest while importing scikit-learn or torch would fail."""
    out = tmp_path / "classes.tif"
    code = (
        "import sys\n"
        "for name in ('sklearn', 'skl2onnx', 'torch'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "from engine.cli import main\n"
        f"sys.exit(main(['classify', {str(BUNDLED_SCENE)!r}, '--model',"
        f" {str(runs['rf'].output_dir / 'model.onnx')!r}, '--output', {str(out)!r}, '--quiet']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert read_raster(out).shape == (145, 145)
