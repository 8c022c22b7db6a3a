"""Processing algorithm ``factoformer:assess``: an accuracy report of a class map.

The body only turns parameters into engine arguments; the engine rasterises a vector
reference with GDAL/OGR onto the map's grid and writes the HTML, CSV and JSON reports.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .base import EngineAlgorithm, engine_missing

HELP = {
    "INPUT": "Class raster to assess (e.g. the output of Classify): 0 or no-data = no class. "
    "Class names and colours come from its category names and colour table.",
    "REFERENCE": "Reference labels: a label raster on the class raster's grid (0 = unlabelled; "
    "refused when its grid differs by half a pixel or more, or its CRS differs), or a polygon "
    "or point layer with a class field, rasterised onto the class raster's grid (pixel centres "
    "inside polygons, the pixel under each point).",
    "CLASS_FIELD": "Class field of a vector reference: integer values equal to the class "
    "raster's values, or text names equal to its class names (case-insensitive).",
    "OUTPUT": "HTML report (error matrix, OA, AA, kappa, per-class user's and producer's "
    "accuracy and F1, class areas in hectares when the CRS is projected in metres, "
    "area-adjusted accuracy and areas after Olofsson et al. 2014). A CSV error matrix and a "
    "JSON file with every figure are written beside it.",
}


class AssessAlgorithm(EngineAlgorithm):
    """Accuracy assessment of a class raster against reference labels."""

    INPUT = "INPUT"
    REFERENCE = "REFERENCE"
    CLASS_FIELD = "CLASS_FIELD"
    OUTPUT = "OUTPUT"

    NAME = "assess"
    DISPLAY_NAME = "Assess classification accuracy"
    GROUP = "Classification"
    SHORT_HELP = (
        "Compares a class raster with reference labels (a label raster or labelled "
        "polygons/points) and writes an HTML accuracy report with CSV and JSON beside it. "
        "Returns OA, AA and kappa. Each parameter's help says what it expects."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        params: list[QgsProcessingParameterDefinition] = [
            QgsProcessingParameterRasterLayer(self.INPUT, "Class raster"),
            QgsProcessingParameterMapLayer(self.REFERENCE, "Reference (vector or label raster)"),
            QgsProcessingParameterField(
                self.CLASS_FIELD,
                "Class field (vector reference)",
                parentLayerParameterName=(self.REFERENCE),
                optional=True,
            ),
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Accuracy report", fileFilter="HTML files (*.html)"
            ),
        ]
        self.add_parameters(HELP, params)
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber("AA", "Average accuracy"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Kappa"))

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        try:
            from ..engine.assessment import assess
            from ..engine.assessment_report import write_report
            from ..engine.errors import EngineError, first_line
        except ImportError as exc:
            raise engine_missing(exc, "'numpy<2'") from None

        classes = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if classes is None or classes.providerType() != "gdal":
            raise QgsProcessingException("the class raster must be a file raster (GDAL)")
        reference, field, layer_name = self._reference(parameters, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        try:
            result = assess(classes.source(), reference, field, layer_name)
            write_report(result, output, [classes.source(), reference])
        except EngineError as exc:
            raise QgsProcessingException(first_line(exc)) from None
        except Exception as exc:  # an unforeseen failure: one line, never a crash
            raise QgsProcessingException(
                f"FactoFormer failed: {first_line(exc)} ({type(exc).__name__})"
            ) from None
        feedback.pushInfo(
            f"OA {100 * result.overall_accuracy:.2f} %, AA {100 * result.average_accuracy:.2f} "
            f"%, kappa {result.kappa:.4f} on {result.total} reference pixels"
        )
        return {
            self.OUTPUT: output,
            "OA": result.overall_accuracy,
            "AA": result.average_accuracy,
            "KAPPA": result.kappa,
        }

    def _reference(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[str, str | None, str | int | None]:
        """(GDAL/OGR source, class field, layer name or index) of the reference."""
        layer = self.parameterAsLayer(parameters, self.REFERENCE, context)
        if isinstance(layer, QgsRasterLayer) and layer.providerType() == "gdal":
            return layer.source(), None, None
        if not isinstance(layer, QgsVectorLayer):
            raise QgsProcessingException(
                "the reference must be a label raster file or a vector layer"
            )
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        if not field:
            raise QgsProcessingException("a vector reference needs its class field (CLASS_FIELD)")
        if layer.providerType() != "ogr":
            raise QgsProcessingException(
                f"the reference layer '{layer.name()}' is not a file layer (provider "
                f"{layer.providerType()}); save it as a GeoPackage first"
            )
        path, *options = layer.source().split("|")
        settings = dict(o.split("=", 1) for o in options if "=" in o)
        if settings.get("subset"):
            raise QgsProcessingException(
                f"the reference layer '{layer.name()}' has a filter; save the filtered "
                "features as a GeoPackage first"
            )
        name = settings.get("layername")
        return path, field, name if name is not None else int(settings.get("layerid", 0))
