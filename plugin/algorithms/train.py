"""Processing algorithm ``factoformer:train``: a raster and labelled polygons -> an ONNX model.

Training runs in a separate Python process (``python -m engine train``, then ``export``),
so QGIS's own settings (thread counts, allocator) never change and QGIS needs no PyTorch
until someone trains. The body turns parameters into engine arguments, relays progress
and loss, and puts the model in place only when everything succeeded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from .base import EngineAlgorithm
from .engine_process import CANCELLED, run_engine_command, thread_arguments, training_python
from .pretrained_runs import pretrained_arguments

# New types go at the end: scripts and saved models give MODEL_TYPE as an index.
MODEL_TYPES = ("factoformer", "cnn3d", "rf", "svm", "maskedsst")
# The types that take epochs, a batch size and a step budget, with the batch that
# BATCH_SIZE 0 stands for: patches (factoformer, cnn3d) or 8x8 tiles (maskedsst).
RECIPE_BATCH = {"factoformer": 32, "cnn3d": 32, "maskedsst": 8}

HELP = {
    "INPUT": "Hyperspectral raster to train on (any GDAL raster). Classifying other rasters "
    "later reads the same bands (bands flagged bad or without data are left out).",
    "TRAINING": "Training labels: a polygon or point layer with a class field (pixel centres "
    "inside polygons, the pixel under each point; reprojected onto the raster's grid), or a "
    "label raster on the raster's grid (class values 1..N, 0 = unlabelled).",
    "CLASS_FIELD": "Class field of a vector layer: integer class values (they become the "
    "model's class ids, so maps line up with your legend) or text names (numbered in the "
    "order of the layer's categorized style, then alphabetically). Names and colours come "
    "from the layer's categorized style when it classifies by this field, else a default "
    "palette.",
    "PRETRAINED": "Optional pretraining run folder made by 'Pre-train' with the same "
    "MODEL_TYPE: for factoformer a FactoFormer run (pixel/ and band/, or one branch's folder "
    "or encoder.pt file; the model starts from these branches), for maskedsst a MaskedSST "
    "run (encoder.pt; the model starts from its backbone, with a new head). A run made for "
    "the other model is refused. FactoFormer fine-tuning from a run flips and turns its "
    "training patches at random (dihedral augmentation, chosen on validation pixels).",
    "MODEL_TYPE": "factoformer (default): the transformer, one class per patch (7x7 unless "
    "PATCH_SIZE or PRETRAINED says otherwise); cnn3d: a "
    "3D-CNN; rf / svm: a random forest or RBF SVM on single-pixel spectra (hyperparameters "
    "by cross-validation; epochs, batch size and steps do not apply); maskedsst: the dense "
    "transformer that labels every pixel of 8x8 tiles (slower: about 2-3 s per step of 8 "
    "tiles on one core).",
    "EPOCHS": "Passes over the training pixels; 0 (default) = the default recipe: "
    "factoformer: as many epochs, at most 80, as a budget of 2,000 steps allows; cnn3d: "
    "its li2017 recipe (200 epochs); maskedsst: as many epochs as its budget of 500 steps "
    "allows. maskedsst always stops at its step budget, also with epochs given.",
    "BATCH_SIZE": "Training samples per step: patches (factoformer, cnn3d) or 8x8 tiles "
    "around a labelled pixel (maskedsst); 0 (default) = 32 patches or 8 tiles.",
    "MAX_STEPS": "Step budget: stop training after this many steps; 0 (default) = the "
    "recipe's: 2,000 for factoformer's default recipe (none when EPOCHS is given, none for "
    "cnn3d), 500 for maskedsst.",
    "SEED": "Seed of the weights, the batch order and the validation draw.",
    "PATCH_SIZE": "factoformer and cnn3d: edge of the window around each pixel that the model "
    "reads, odd; 0 (default) = the pre-trained branches' (PRETRAINED), else 7, the paper's. "
    "Smaller windows (3 or 5) suit coarse pixels such as 30 m EnMAP or PRISMA; other model "
    "types refuse it.",
    "VALIDATION_SHARE": "Share of each class's training polygons (or, for a label raster, "
    "connected regions) held out to measure the model; whole polygons are held out, never "
    "part of one. 0 = none.",
    "OUTPUT": "The model (ONNX) with its metadata: bands, normalisation, class names and "
    "colours, validation accuracy. Classify uses it directly.",
}


class TrainAlgorithm(EngineAlgorithm):
    """Train a model on a raster from labelled polygons, points or a label raster."""

    INPUT = "INPUT"
    TRAINING = "TRAINING"
    CLASS_FIELD = "CLASS_FIELD"
    PRETRAINED = "PRETRAINED"
    MODEL_TYPE = "MODEL_TYPE"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    MAX_STEPS = "MAX_STEPS"
    SEED = "SEED"
    PATCH_SIZE = "PATCH_SIZE"
    VALIDATION_SHARE = "VALIDATION_SHARE"
    OUTPUT = "OUTPUT"

    NAME = "train"
    DISPLAY_NAME = "Train a classification model"
    GROUP = "Training"
    SHORT_HELP = (
        "Trains a model (FactoFormer, 3D-CNN, random forest, SVM or MaskedSST) on a "
        "hyperspectral raster from labelled polygons or points (or a label raster), "
        "optionally starting from a pretraining run, and writes it as an ONNX model for "
        "Classify. Training runs in a separate Python process that needs "
        "PyTorch; a validation share is held out by whole polygons and reported."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        params: list[QgsProcessingParameterDefinition] = [
            QgsProcessingParameterRasterLayer(self.INPUT, "Hyperspectral raster"),
            QgsProcessingParameterMapLayer(
                self.TRAINING, "Training data (polygons/points or label raster)"
            ),
            QgsProcessingParameterField(
                self.CLASS_FIELD,
                "Class field (vector training data)",
                parentLayerParameterName=self.TRAINING,
                optional=True,
            ),
            QgsProcessingParameterFile(
                self.PRETRAINED,
                "Pre-trained branches (pretraining run folder)",
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.EPOCHS, "Epochs (0 = default recipe)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE,
                "Batch size (0 = the model's recipe)",
                defaultValue=0,
                minValue=0,
                maxValue=4096,
            ),
            QgsProcessingParameterNumber(self.SEED, "Seed", defaultValue=0, minValue=0),
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Model", fileFilter="ONNX models (*.onnx)"
            ),
        ]
        advanced = [
            QgsProcessingParameterEnum(
                self.MODEL_TYPE, "Model type", options=list(MODEL_TYPES), defaultValue=0
            ),
            QgsProcessingParameterNumber(
                self.VALIDATION_SHARE,
                "Validation share",
                QgsProcessingParameterNumber.Double,
                0.2,
                minValue=0.0,
                maxValue=0.9,
            ),
            QgsProcessingParameterNumber(
                self.MAX_STEPS, "Step budget (0 = the recipe's)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(
                self.PATCH_SIZE,
                "Patch size (0 = default)",
                defaultValue=0,
                minValue=0,
                maxValue=31,
            ),
        ]
        self.add_parameters(HELP, params[:4], advanced)
        self.add_parameters(HELP, params[4:])
        self.addOutput(QgsProcessingOutputString("MODEL_ID", "Model identifier"))
        self.addOutput(QgsProcessingOutputNumber("VALIDATION_OA", "Validation overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber("VALIDATION_PIXELS", "Validation pixels"))

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        raster = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if raster is None or raster.providerType() != "gdal":
            raise QgsProcessingException("the raster must be a file raster (GDAL)")
        training = self.parameterAsLayer(parameters, self.TRAINING, context)
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        model_type = MODEL_TYPES[self.parameterAsEnum(parameters, self.MODEL_TYPE, context)]
        pretrained = self.parameterAsString(parameters, self.PRETRAINED, context)
        output = Path(self.parameterAsFileOutput(parameters, self.OUTPUT, context))
        if output.suffix.lower() != ".onnx":
            output = output.with_suffix(".onnx")
        pretraining = pretrained_arguments(pretrained, model_type) if pretrained else []
        if not output.parent.is_dir():
            raise QgsProcessingException(f"the output folder {output.parent} does not exist")
        python = training_python()
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{output.stem}-", dir=output.parent))
        except OSError as exc:
            raise QgsProcessingException(
                f"cannot write in {output.parent}: {exc.strerror or exc}"
            ) from None
        try:
            args = ["train", "--raster", raster.source(), "--model", model_type]
            args += self._labels(training, field, staging, context, feedback)
            args += pretraining
            args += ["--seed", str(self.parameterAsInt(parameters, self.SEED, context))]
            share = self.parameterAsDouble(parameters, self.VALIDATION_SHARE, context)
            args += ["--validation-share", f"{share:g}"]
            patch_size = self.parameterAsInt(parameters, self.PATCH_SIZE, context)
            args += ["--patch-size", str(patch_size)] if patch_size else []
            if model_type in RECIPE_BATCH:
                args += self._recipe_arguments(parameters, context, model_type)
            run = staging / "run"
            args += ["--output-dir", str(run), "--progress-json", *thread_arguments()]
            run_engine_command(python, args, feedback, (0.0, 90.0))
            model_id = _model_id(output)
            staged = staging / "model.onnx"
            description = f"trained in QGIS on {raster.name()} from {training.name()}"
            export = ["export", str(run), "--output", str(staged), "--model-id", model_id]
            run_engine_command(
                python, [*export, "--description", description], feedback, (90.0, 99.0)
            )
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELLED)
            validation = _validation(run)
            os.replace(staged, output)
        except OSError as exc:
            raise QgsProcessingException(f"cannot write {output}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        feedback.setProgress(100.0)
        if validation:
            feedback.pushInfo(
                f"Validation: OA {100 * validation['overall_accuracy']:.2f} % on "
                f"{validation.get('pixels', '?')} pixels (whole polygons held out)"
            )
        return {
            self.OUTPUT: str(output.absolute()),
            "MODEL_ID": model_id,
            "VALIDATION_OA": validation.get("overall_accuracy") if validation else None,
            "VALIDATION_PIXELS": validation.get("pixels") if validation else None,
        }

    def _recipe_arguments(
        self, parameters: dict[str, Any], context: QgsProcessingContext, model_type: str
    ) -> list[str]:
        """``--epochs``, ``--batch-size`` and ``--max-steps`` of a network (0: the recipe's)."""
        epochs = self.parameterAsInt(parameters, self.EPOCHS, context)
        batch = self.parameterAsInt(parameters, self.BATCH_SIZE, context)
        steps = self.parameterAsInt(parameters, self.MAX_STEPS, context)
        args = ["--batch-size", str(batch or RECIPE_BATCH[model_type])]
        args += ["--epochs", str(epochs)] if epochs else []
        return args + (["--max-steps", str(steps)] if steps else [])

    def _labels(
        self,
        layer,
        field: str,
        staging: Path,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> list[str]:
        """Engine arguments for the training data: a label raster, or a vector file, its
        layer, class field and the categorized style's names and colours."""
        if isinstance(layer, QgsRasterLayer):
            if layer.providerType() != "gdal":
                raise QgsProcessingException("a label raster must be a file raster (GDAL)")
            if field:
                feedback.pushWarning("Warning: CLASS_FIELD is ignored for a label raster")
            return ["--train-labels", layer.source()]
        if not isinstance(layer, QgsVectorLayer):
            raise QgsProcessingException("the training data must be a vector layer or a raster")
        if not field:
            raise QgsProcessingException("vector training data needs its class field (CLASS_FIELD)")
        if layer.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"the layer '{layer.name()}' has no field {field!r}")
        path, layer_name = ogr_source(layer, staging, context)
        args = ["--train-vector", path, "--class-field", field]
        args += ["--vector-layer", layer_name] if layer_name else []
        styles = category_styles(layer, field)
        if styles:
            table = staging / "classes.csv"
            with open(table, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([("value", "name", "colour"), *styles])
            feedback.pushInfo(
                f"Class names and colours from the layer's style: "
                f"{', '.join(f'{v} {n}' for v, n, _ in styles)}"
            )
            args += ["--classes", str(table)]
        return args


def ogr_source(layer: QgsVectorLayer, folder: Path, context: QgsProcessingContext) -> tuple:
    """(file, layer name or number) OGR can read for ``layer``: its own file when it is an
    unfiltered file layer, else its features saved as a GeoPackage in ``folder``."""
    path, *options = layer.source().split("|")
    settings = dict(o.split("=", 1) for o in options if "=" in o)
    if layer.providerType() == "ogr" and not settings.get("subset") and not layer.subsetString():
        return path, settings.get("layername") or settings.get("layerid")
    target = folder / "training.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "training"
    error, message, *_ = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(target), context.transformContext(), options
    )
    if error != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"cannot save the layer '{layer.name()}': {message}")
    return str(target), "training"


def category_styles(layer: QgsVectorLayer, field: str) -> list[tuple[str, str, str]]:
    """(value, name, #rrggbb) of each category of a categorized style on ``field``."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsCategorizedSymbolRenderer):
        return []
    if renderer.classAttribute() != field:
        return []
    out = []
    for category in renderer.categories():
        value = category.value()
        if value is None or value == "" or category.symbol() is None:
            continue  # "all other values"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        name = category.label() or str(value)
        out.append((str(value), name, category.symbol().color().name()))
    return out


def _model_id(output: Path) -> str:
    """A stable identifier from the file name: lower case, letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", output.stem.lower()).strip("-") or "model"


def _validation(run: Path) -> dict[str, Any] | None:
    metrics = run / "metrics.json"
    if not metrics.is_file():
        return None
    return json.loads(metrics.read_text()).get("validation")
