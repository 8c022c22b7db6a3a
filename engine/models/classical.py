"""Random forest and RBF SVM on pixel spectra: fitting, and conversion to ONNX.

Both classify single pixels from their normalised spectrum (the same min-max statistics as
the other models). Hyperparameters are chosen by stratified k-fold cross-validation on the
training pixels only, over the small grids of each config (documented in
``docs/baselines.md``). The fitted estimator becomes an ONNX graph that takes what the
engine feeds every model, ``(batch, bands, 1, 1)`` patches, and returns the natural
logarithm of the class probabilities (floored at :data:`PROBABILITY_FLOOR`): the engine's
softmax then gives back the probabilities themselves, and its argmax the most probable
class. Inference needs ONNX Runtime only; scikit-learn and skl2onnx are needed here.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..data.training_set import LabelledPixels
from ..errors import InputDataError
from ..progress import Feedback, SilentFeedback, check_cancelled

# Probabilities below this become this before the logarithm: a forest gives many classes
# probability 0 and log(0) is not a finite score. softmax(log p) differs from p by at most
# num_classes * 1e-9.
PROBABILITY_FLOOR = 1e-9
INPUT_NAME = "patches"
OUTPUT_NAME = "logits"
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class RandomForestConfig:
    """A random forest of ``n_estimators`` trees; ``max_features`` is searched.

    ``max_features`` is what each split may look at: ``"sqrt"`` or ``"log2"`` of the band
    count, or a share of the bands (0.3).
    """

    num_bands: int
    num_classes: int
    n_estimators: int = 200
    max_features_grid: tuple[str | float, ...] = ("sqrt", "log2", 0.3)
    cv_folds: int = 5
    patch_size: ClassVar[int] = 1
    model_type: ClassVar[str] = "RandomForest"  # metadata model_type

    def grid(self, spectra: np.ndarray) -> list[dict[str, Any]]:
        """The candidate hyperparameters, in search order."""
        return [{"max_features": m} for m in self.max_features_grid]

    def estimator(self, params: dict[str, Any], seed: int, threads: int, final: bool):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators, random_state=seed, n_jobs=threads, **params
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "patch_size": self.patch_size}


@dataclass(frozen=True)
class SVMConfig:
    """An RBF support vector machine; ``C`` and ``gamma`` are searched.

    ``gamma_grid`` holds multiples of scikit-learn's ``"scale"`` value,
    ``1 / (bands * variance of the training spectra)``, so the grid suits any band count.
    The final model adds Platt-scaled probabilities (libsvm's pairwise coupling).
    """

    num_bands: int
    num_classes: int
    c_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    gamma_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    cv_folds: int = 5
    patch_size: ClassVar[int] = 1
    model_type: ClassVar[str] = "SVM"  # metadata model_type

    def grid(self, spectra: np.ndarray) -> list[dict[str, Any]]:
        """The candidate hyperparameters, in search order (gamma as absolute values)."""
        scale = 1.0 / (spectra.shape[1] * float(spectra.var()) or 1.0)
        return [{"C": c, "gamma": g * scale} for c in self.c_grid for g in self.gamma_grid]

    def estimator(self, params: dict[str, Any], seed: int, threads: int, final: bool):
        from sklearn.svm import SVC

        # probability=True only on the final fit: scikit-learn 1.9 deprecates the argument
        # itself (see to_onnx), and CV fits do not need probabilities.
        extra = {"probability": True} if final else {}
        return SVC(kernel="rbf", random_state=seed, **extra, **params)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "patch_size": self.patch_size}


ClassicalConfig = RandomForestConfig | SVMConfig


@dataclass
class ClassicalFit:
    """A fitted estimator, the chosen hyperparameters and the search that chose them."""

    estimator: Any
    params: dict[str, Any]
    search: list[dict[str, Any]] = field(default_factory=list)  # per candidate: CV accuracy
    folds: int = 0
    seconds: float = 0.0  # search and final fit
    notes: list[str] = field(default_factory=list)


def spectra(pixels: LabelledPixels) -> np.ndarray:
    """(n, bands) float32 normalised spectra of all the pixels, in order."""
    return pixels.patches(np.arange(len(pixels)))[:, :, 0, 0]


def fit_classical(
    config: ClassicalConfig,
    pixels: LabelledPixels,
    seed: int = 0,
    threads: int = 1,
    feedback: Feedback | None = None,
) -> ClassicalFit:
    """Choose hyperparameters by stratified CV on ``pixels``, then fit on all of them.

    The candidate with the best mean fold accuracy wins (the first one on ties). The
    folds are shuffled with ``seed``, which also seeds the estimator.
    """
    from sklearn.model_selection import StratifiedKFold

    feedback = feedback or SilentFeedback()
    start = time.monotonic()
    x, y = spectra(pixels), pixels.targets(np.arange(len(pixels)))
    counts = np.bincount(y)
    present = counts[counts > 0]
    if present.size < 2:
        raise InputDataError("the training pixels must hold at least 2 classes")
    folds = max(2, min(config.cv_folds, int(present.min())))
    notes = []
    if folds < config.cv_folds:
        notes.append(
            f"a class has only {int(present.min())} training pixels: {folds}-fold "
            f"cross-validation instead of {config.cv_folds}-fold"
        )
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    candidates = config.grid(x)
    total = len(candidates) * folds + 1
    search = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" below folds
        splits = list(splitter.split(x, y))
    for i, params in enumerate(candidates):
        scores = []
        for j, (fit_idx, score_idx) in enumerate(splits):
            check_cancelled(feedback)
            model = config.estimator(params, seed, threads, final=False)
            model.fit(x[fit_idx], y[fit_idx])
            scores.append(float((model.predict(x[score_idx]) == y[score_idx]).mean()))
            feedback.set_progress((i * folds + j + 1) / total)
        accuracy = {"cv_accuracy": float(np.mean(scores)), "cv_std": float(np.std(scores))}
        search.append({**_plain(params), **accuracy})
    best = max(range(len(candidates)), key=lambda k: (search[k]["cv_accuracy"], -k))
    check_cancelled(feedback)
    estimator = config.estimator(candidates[best], seed, threads, final=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=True), see to_onnx
        estimator.fit(x, y)
    feedback.set_progress(1.0)
    return ClassicalFit(
        estimator, _plain(candidates[best]), search, folds, time.monotonic() - start, notes
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready hyperparameters."""
    return {k: v if isinstance(v, str) else float(v) for k, v in params.items()}


def to_onnx(estimator: Any, num_bands: int, num_classes: int) -> onnx.ModelProto:
    """The estimator as a graph ``patches (batch, bands, 1, 1) -> logits (batch, classes)``.

    ``logits`` are ``log(max(p, PROBABILITY_FLOOR))`` of the estimator's ``predict_proba``,
    one column per class 0..num_classes-1 (classes without training pixels get
    probability 0). skl2onnx writes the forest as one TreeEnsembleClassifier and the SVM
    as one SVMClassifier with libsvm's probability estimates.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates SVC(probability=True) (removed in 1.11; the pinned
        # version keeps it): skl2onnx converts it exactly, a calibration wrapper it does not.
        warnings.simplefilter("ignore", FutureWarning)
        core = convert_sklearn(
            estimator,
            initial_types=[("engine_spectra", FloatTensorType([None, num_bands]))],
            options={id(estimator): {"zipmap": False}},
            target_opset=ONNX_OPSETS,
        )
    probabilities = next(o.name for o in core.graph.output if o.name != "label")
    graph = core.graph
    nodes = [
        helper.make_node("Reshape", [INPUT_NAME, "engine_shape"], ["engine_spectra"]),
        *graph.node,
    ]
    constants = [
        numpy_helper.from_array(np.array([-1, num_bands], np.int64), "engine_shape"),
        numpy_helper.from_array(np.array(PROBABILITY_FLOOR, np.float32), "engine_floor"),
    ]
    columns = _class_columns(estimator.classes_, num_classes)
    if columns is not None:  # a class without training pixels: a column of zeros
        constants.append(numpy_helper.from_array(columns, "engine_columns"))
        constants.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "engine_zero"))
        nodes += [
            helper.make_node("Shape", [probabilities], ["engine_pshape"], start=0, end=1),
            helper.make_node("Concat", ["engine_pshape", "engine_one"], ["engine_zshape"], axis=0),
            helper.make_node("Expand", ["engine_zero", "engine_zshape"], ["engine_zeros"]),
            helper.make_node("Concat", [probabilities, "engine_zeros"], ["engine_padded"], axis=1),
            helper.make_node("Gather", ["engine_padded", "engine_columns"], ["engine_all"], axis=1),
        ]
        constants.append(numpy_helper.from_array(np.array([1], np.int64), "engine_one"))
        probabilities = "engine_all"
    nodes += [
        helper.make_node("Max", [probabilities, "engine_floor"], ["engine_floored"]),
        helper.make_node("Log", ["engine_floored"], [OUTPUT_NAME]),
    ]
    new_graph = helper.make_graph(
        nodes,
        "classical",
        [_tensor(INPUT_NAME, ["batch", num_bands, 1, 1])],
        [_tensor(OUTPUT_NAME, ["batch", num_classes])],
        initializer=[*graph.initializer, *constants],
    )
    model = helper.make_model(new_graph, opset_imports=list(core.opset_import))
    model.ir_version = core.ir_version
    onnx.checker.check_model(model)
    return model


def _class_columns(classes: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Column of each class 0..num_classes-1 in the estimator's output (missing classes
    point at an extra zero column); None when every class is there in order."""
    classes = [int(c) for c in classes]
    if classes == list(range(num_classes)):
        return None
    where = {c: i for i, c in enumerate(classes)}
    return np.array([where.get(c, len(classes)) for c in range(num_classes)], np.int64)


def _tensor(name: str, shape: list[str | int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def estimator_probabilities(estimator: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(n, num_classes) ``predict_proba`` of ``x``, with zero columns for absent classes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        found = estimator.predict_proba(x)
    out = np.zeros((x.shape[0], num_classes), np.float64)
    out[:, [int(c) for c in estimator.classes_]] = found
    return out
