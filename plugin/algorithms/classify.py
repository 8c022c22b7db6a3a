"""Processing algorithm ``factoformer:classify``: the single source of truth for classifying.

The toolbox, batch mode, the Modeler, ``qgis_process`` and the plugin's dock all run this
algorithm. Its body only turns parameters into engine arguments, adapts the feedback
object and styles the loaded output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ..engine import SHIPPED_MODEL
from ..engine.data.files import is_virtual, short_name
from .base import EngineAlgorithm, engine_missing
from .dask_classify import SCHEDULER_HELP, run_classify

HELP = {
    "INPUT": "Hyperspectral raster to classify (GeoTIFF, ENVI, VRT, ... read through GDAL). "
    "Its bands must fit the model's (see Band matching); alpha bands and bands flagged bad "
    "in an ENVI header (bbl) are left out. Values are read as physical values (value x "
    "scale + offset when the bands carry a GDAL scale/offset). Pixels whose data is missing "
    "(no-data in any band, NaN or infinite, 0 in a GDAL mask or alpha band) get class 0 "
    "and are filled inside their neighbours' patches.",
    "MODEL": "ONNX model exported by this plugin's engine (FactoFormer, MaskedSST, 3D-CNN, "
    "random forest, SVM). Its metadata holds the band list, normalisation, patch or tile size "
    "and class table. Default: the shipped Indian Pines "
    "model (AVIRIS, 200 bands, 16 classes).",
    "BAND_MATCHING": "How the raster's bands become the model's bands. strict: the model's "
    "bands exactly (count, and wavelengths within 5 nm when both know them). select "
    "(default): also picks the model's wavelengths among more bands (e.g. 200 of 224). "
    "resample: also resamples the spectrum when the raster covers the model's range "
    "(Gaussian response from the model's FWHM, else linear interpolation; bad bands "
    "excluded). Without wavelengths on either side, the band count must match.",
    "MASK": "Optional one-band raster on the raster's grid: pixels where it is 0 or no-data "
    "are not classified (class 0), but their real values stay as context for their "
    "neighbours, so masking never changes another pixel's class.",
    "OUTPUT": "Class map (GeoTIFF, Byte): 0 = no-data, 1..N = the model's classes, with colour "
    "table, class names and a .qml style beside it.",
    "CONFIDENCE": "Optional Float32 raster with the probability of the predicted class "
    "(-1 = no-data).",
    "PROBABILITIES": "Optional Float32 raster with one band per class (band descriptions = "
    "class names), each the class probability (-1 = no-data).",
    "SCHEDULER": SCHEDULER_HELP,
    "BATCH_SIZE": "Pixels predicted per ONNX Runtime call: one patch each, or for a dense model "
    "(MaskedSST) one 8x8 tile per 64 (at least one tile). Larger batches are slightly faster "
    "and need more memory (about 0.2 MB per patch for a 200-band model).",
}


class _ApplyClassStyle(QgsProcessingLayerPostProcessorInterface):
    """Loads a class map's ``.qml`` into the layer that Processing adds to the project."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API)
        qml = Path(layer.source()).with_suffix(".qml")
        if isinstance(layer, QgsRasterLayer) and qml.exists():
            layer.loadNamedStyle(str(qml))
            layer.triggerRepaint()


# Processing runs a copy of the algorithm and loads layers after the copy is gone, so the
# post-processor must not belong to the algorithm instance.
_CLASS_STYLE = _ApplyClassStyle()


def _model_id(class_map: str) -> str:
    """The model id a class map records in its metadata."""
    from osgeo import gdal

    ds = gdal.Open(class_map)
    return ds.GetMetadataItem("FACTOFORMER_MODEL_ID") or ""


class _EngineFeedback:
    """Adapts a QgsProcessingFeedback to the engine's Feedback protocol."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback

    def set_progress(self, fraction: float) -> None:
        self.feedback.setProgress(100.0 * fraction)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def push_warning(self, message: str) -> None:
        self.feedback.pushWarning(f"Warning: {message}")


class ClassifyAlgorithm(EngineAlgorithm):
    """Classify a hyperspectral raster with a FactoFormer ONNX model."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    MASK = "MASK"
    OUTPUT = "OUTPUT"
    CONFIDENCE = "CONFIDENCE"
    PROBABILITIES = "PROBABILITIES"
    BATCH_SIZE = "BATCH_SIZE"
    BAND_MATCHING = "BAND_MATCHING"
    SCHEDULER = "SCHEDULER"
    MATCHING_OPTIONS = ("strict", "select", "resample")

    NAME = "classify"
    DISPLAY_NAME = "Classify hyperspectral raster"
    GROUP = "Classification"
    SHORT_HELP = (
        "Produces a land-cover map from a hyperspectral raster with a FactoFormer "
        "transformer (ONNX). The raster is processed tile by tile, so memory stays "
        "bounded whatever its size, and the outputs appear only when the run succeeds. "
        "Each parameter's help says what it expects."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        params: list[QgsProcessingParameterDefinition] = [
            QgsProcessingParameterRasterLayer(self.INPUT, "Hyperspectral raster"),
            QgsProcessingParameterFile(  # optional: QGIS 3.22 ignores a file default when absent
                self.MODEL,
                "FactoFormer model (ONNX)",
                behavior=QgsProcessingParameterFile.File,
                extension="onnx",
                defaultValue=str(SHIPPED_MODEL),
                optional=True,
            ),
            QgsProcessingParameterEnum(
                self.BAND_MATCHING,
                "Band matching",
                options=list(self.MATCHING_OPTIONS),
                defaultValue=1,
            ),
            QgsProcessingParameterRasterLayer(self.MASK, "Mask (0 = skip)", optional=True),
            QgsProcessingParameterRasterDestination(self.OUTPUT, "Class map"),
            QgsProcessingParameterRasterDestination(
                self.CONFIDENCE, "Confidence", optional=True, createByDefault=False
            ),
            QgsProcessingParameterRasterDestination(
                self.PROBABILITIES, "Class probabilities", optional=True, createByDefault=False
            ),
        ]
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE,
            "Batch size",
            QgsProcessingParameterNumber.Integer,
            64,
            minValue=1,
            maxValue=65536,
        )
        scheduler = QgsProcessingParameterString(
            self.SCHEDULER, "Dask scheduler address", optional=True
        )
        self.add_parameters(HELP, params, advanced=(batch, scheduler))
        self.addOutput(QgsProcessingOutputNumber("CLASSIFIED_PIXELS", "Classified pixels"))
        self.addOutput(QgsProcessingOutputNumber("NODATA_PIXELS", "No-data pixels"))
        self.addOutput(QgsProcessingOutputString("MODEL_ID", "Model identifier"))

    def checkParameterValues(  # noqa: N802
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Also accept GDAL names given as text (``/vsizip//x.zip/a.tif``, ``HDF5:...``).

        QGIS 3.22 resolves a raster parameter given as text only when it is a plain file,
        so such a name is opened as a layer in the context first, where QGIS finds it.
        """
        for name in (self.INPUT, self.MASK):
            value = parameters.get(name)
            if isinstance(value, str) and is_virtual(value):
                layer = QgsRasterLayer(value, short_name(value), "gdal")
                if layer.isValid():
                    context.temporaryLayerStore().addMapLayer(layer)
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        try:
            from ..engine.errors import CancelledError, EngineError, first_line
            from ..engine.infer.classify import TiledClassifier
            from ..engine.infer.model import OnnxClassifier
        except ImportError as exc:
            raise engine_missing(exc, "onnxruntime 'numpy<2'") from None

        raster = self._gdal_source(parameters, self.INPUT, context, "input")
        mask = self._gdal_source(parameters, self.MASK, context, "mask", optional=True)
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(SHIPPED_MODEL)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self._optional_output(parameters, self.CONFIDENCE, context)
        probabilities = self._optional_output(parameters, self.PROBABILITIES, context)
        batch_size = self.parameterAsInt(parameters, self.BATCH_SIZE, context)
        matching = self.MATCHING_OPTIONS[
            self.parameterAsEnum(parameters, self.BAND_MATCHING, context)
        ]
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip()
        if scheduler:
            args = [raster, "--output", output, "--model", model_path, "--scheduler", scheduler]
            args += ["--batch-size", str(batch_size), "--band-matching", matching]
            for flag, value in (
                ("--confidence", confidence),
                ("--probabilities", probabilities),
                ("--mask", mask),
            ):
                args += [flag, value] if value else []
            (wrote,) = run_classify(args, feedback)
            return self._results(output, confidence, probabilities, context, wrote)

        try:
            model = OnnxClassifier(model_path)
            feedback.pushInfo(
                f"Model {model.metadata.model_id} v{model.metadata.model_version}: "
                f"{model.metadata.num_bands} bands, {model.metadata.num_classes} classes"
            )
            classifier = TiledClassifier(model, batch_size=batch_size, band_matching=matching)
            report = classifier.classify(
                raster,
                output,
                confidence=confidence,
                probabilities=probabilities,
                mask=mask,
                feedback=_EngineFeedback(feedback),
            )
        except CancelledError:
            raise QgsProcessingException("Cancelled by the user; no output was written.") from None
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from None
        except Exception as exc:  # an unforeseen failure: one line, never a crash
            raise QgsProcessingException(
                f"FactoFormer failed: {first_line(exc)} ({type(exc).__name__})"
            ) from None

        feedback.pushInfo(f"Bands: {report.band_plan}")
        feedback.pushInfo(
            f"Classified {report.classified_pixels} pixels ({report.nodata_pixels} no-data) in "
            f"{report.seconds:.1f} s ({report.pixels_per_second:.0f} pixels/s)"
        )
        counts = {
            "classified": report.classified_pixels,
            "nodata": report.nodata_pixels,
            "model_id": report.model_id,
        }
        return self._results(output, confidence, probabilities, context, counts)

    def _results(
        self,
        output: str,
        confidence: str | None,
        probabilities: str | None,
        context: QgsProcessingContext,
        counts: dict[str, Any],
    ) -> dict[str, Any]:
        if context.willLoadLayerOnCompletion(output):
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(_CLASS_STYLE)
        return {
            self.OUTPUT: output,
            self.CONFIDENCE: confidence,
            self.PROBABILITIES: probabilities,
            "CLASSIFIED_PIXELS": int(counts["classified"]),
            "NODATA_PIXELS": int(counts["nodata"]),
            "MODEL_ID": counts.get("model_id") or _model_id(output),
        }

    def _gdal_source(
        self,
        parameters: dict[str, Any],
        name: str,
        context: QgsProcessingContext,
        what: str,
        optional: bool = False,
    ) -> str | None:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            if optional and not parameters.get(name):
                return None
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"the {what} layer '{layer.name()}' is not a file raster (provider "
                f"{layer.providerType()}); save it as GeoTIFF first"
            )
        return layer.source()

    def _optional_output(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> str | None:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsOutputLayer(parameters, name, context) or None
