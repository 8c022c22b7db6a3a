"""Processing algorithm ``factoformer:classify_many``: a folder or list of rasters -> a folder.

Runs the engine's many-scene classification (:func:`engine.infer.distributed.classify_scenes`,
through ``python -m engine classify --output-dir``) on a local Dask cluster or a running
scheduler. Each raster gets ``<name>_classes.tif`` (and ``_confidence.tif``,
``_probabilities.tif`` when asked) in the output folder, styled as ``classify`` styles it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..engine import SHIPPED_MODEL
from .base import EngineAlgorithm
from .classify import HELP as CLASSIFY_HELP
from .dask_classify import SCHEDULER_HELP, run_classify

MATCHING_OPTIONS = ("strict", "select", "resample")
HELP = {
    "INPUTS": "Rasters to classify (file rasters). Combined with the folder below.",
    "FOLDER": "Optional folder: every file in it matching the pattern is classified.",
    "PATTERN": "File pattern in the folder, e.g. *.tif or *.bsq.",
    "MODEL": CLASSIFY_HELP["MODEL"],
    "BAND_MATCHING": CLASSIFY_HELP["BAND_MATCHING"],
    "CONFIDENCE": "Also write <name>_confidence.tif (probability of the predicted class).",
    "PROBABILITIES": "Also write <name>_probabilities.tif (one band per class).",
    "OUTPUT_FOLDER": "Folder for <raster name>_classes.tif (styled) and the optional rasters. "
    "Two rasters with the same name are refused.",
    "WORKERS": "Worker processes of a local Dask cluster; 0 = one per core.",
    "SCHEDULER": SCHEDULER_HELP,
    "BATCH_SIZE": CLASSIFY_HELP["BATCH_SIZE"],
}


class ClassifyManyAlgorithm(EngineAlgorithm):
    """Classify many hyperspectral rasters into an output folder on Dask."""

    NAME = "classify_many"
    DISPLAY_NAME = "Classify many rasters (Dask)"
    GROUP = "Classification"
    SHORT_HELP = (
        "Classifies a list or a folder of hyperspectral rasters with one model, in "
        "parallel on a local Dask cluster or on a running Dask scheduler (large rasters "
        "are split into blocks). A raster that cannot be classified is named in the "
        "log with its reason while the others finish; the run then fails. Needs "
        "dask[distributed] in the Python that runs the engine."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        params: list[QgsProcessingParameterDefinition] = [
            QgsProcessingParameterMultipleLayers(
                "INPUTS", "Rasters", QgsProcessing.TypeRaster, optional=True
            ),
            QgsProcessingParameterFile(
                "FOLDER", "Folder of rasters", QgsProcessingParameterFile.Folder, optional=True
            ),
            QgsProcessingParameterString("PATTERN", "File pattern", defaultValue="*.tif"),
            QgsProcessingParameterFile(
                "MODEL",
                "FactoFormer model (ONNX)",
                behavior=QgsProcessingParameterFile.File,
                extension="onnx",
                defaultValue=str(SHIPPED_MODEL),
                optional=True,
            ),
            QgsProcessingParameterEnum(
                "BAND_MATCHING", "Band matching", options=list(MATCHING_OPTIONS), defaultValue=1
            ),
            QgsProcessingParameterBoolean("CONFIDENCE", "Confidence rasters", False),
            QgsProcessingParameterBoolean("PROBABILITIES", "Probability rasters", False),
            QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"),
            QgsProcessingParameterNumber(
                "WORKERS", "Local workers", QgsProcessingParameterNumber.Integer, 0, minValue=0
            ),
        ]
        advanced = [
            QgsProcessingParameterString("SCHEDULER", "Dask scheduler address", optional=True),
            QgsProcessingParameterNumber(
                "BATCH_SIZE",
                "Batch size",
                QgsProcessingParameterNumber.Integer,
                64,
                minValue=1,
                maxValue=65536,
            ),
        ]
        self.add_parameters(HELP, params, advanced)
        self.addOutput(QgsProcessingOutputNumber("CLASSIFIED", "Rasters classified"))

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        inputs = self._inputs(parameters, context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        Path(output).mkdir(parents=True, exist_ok=True)
        model = self.parameterAsFile(parameters, "MODEL", context) or str(SHIPPED_MODEL)
        matching = MATCHING_OPTIONS[self.parameterAsEnum(parameters, "BAND_MATCHING", context)]
        args = [
            "--output-dir",
            output,
            "--model",
            model,
            "--band-matching",
            matching,
            "--batch-size",
            str(self.parameterAsInt(parameters, "BATCH_SIZE", context)),
        ]
        scheduler = self.parameterAsString(parameters, "SCHEDULER", context).strip()
        workers = self.parameterAsInt(parameters, "WORKERS", context)
        if scheduler:
            args += ["--scheduler", scheduler]
        elif workers:
            args += ["--workers", str(workers)]
        for name, flag in (("CONFIDENCE", "--confidence"), ("PROBABILITIES", "--probabilities")):
            if self.parameterAsBool(parameters, name, context):
                args.append(flag)
        with tempfile.TemporaryDirectory(prefix="factoformer-") as tmp:
            listing = Path(tmp) / "inputs.txt"
            listing.write_text("\n".join(inputs) + "\n", encoding="utf-8")
            written = run_classify([f"@{listing}", *args], feedback)
        return {"OUTPUT_FOLDER": output, "CLASSIFIED": len(written)}

    def _inputs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """The rasters' GDAL sources, then the folder's pattern (the engine expands it).

        Relative files and folders are made absolute here: the list is read from a
        temporary folder, where they would mean something else.
        """
        layers = self.parameterAsLayerList(parameters, "INPUTS", context)
        inputs = [_absolute_if_file(layer.source()) for layer in layers]
        folder = self.parameterAsFile(parameters, "FOLDER", context)
        if folder:
            pattern = self.parameterAsString(parameters, "PATTERN", context) or "*"
            inputs.append(str(Path(folder).absolute() / pattern))
        if not inputs:
            raise QgsProcessingException("give rasters, a folder of rasters, or both")
        return inputs


def _absolute_if_file(source: str) -> str:
    """A relative path to an existing file made absolute; any other GDAL source unchanged."""
    path = Path(source)
    return str(path.absolute()) if not path.is_absolute() and path.is_file() else source
