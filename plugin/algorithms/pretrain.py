"""Processing algorithm ``factoformer:pretrain``: unlabelled rasters -> pre-trained branches.

Runs ``python -m engine pretrain`` in a separate Python process (see
:mod:`~factoformer.algorithms.train`). The run folder keeps each branch's state after
every epoch, so a cancelled or interrupted run continues with ``RESUME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from .base import EngineAlgorithm
from .engine_process import run_engine_command, thread_arguments, training_python

BRANCH_OPTIONS = ("both", "pixel", "band")

HELP = {
    "INPUT": "One or more rasters with the same bands; every valid pixel is used, no labels.",
    "OUTPUT": "Pretraining run folder: pixel/ and band/, each with encoder.pt (the "
    "pre-trained branch), state.pt (to resume) and pretraining.json (loss history). Give it "
    "to Train as PRETRAINED.",
    "BRANCH": "Which FactoFormer branches to pre-train (both by default).",
    "EPOCHS": "Epochs per branch; 0 = the 'fast' recipe (60 epochs).",
    "MAX_STEPS": "Stop each branch after this many steps; 0 = no limit (smoke runs).",
    "BATCH_SIZE": "Patches per step; 0 = the recipe's (128).",
    "SEED": "Seed of the weights, masks and batch order.",
    "RESUME": "Continue the run in the output folder from its last finished epoch.",
}


class PretrainAlgorithm(EngineAlgorithm):
    """Pre-train FactoFormer's branches by masked reconstruction of unlabelled pixels."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    BRANCH = "BRANCH"
    EPOCHS = "EPOCHS"
    MAX_STEPS = "MAX_STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    SEED = "SEED"
    RESUME = "RESUME"

    NAME = "pretrain"
    DISPLAY_NAME = "Pre-train on unlabelled rasters"
    GROUP = "Training"
    SHORT_HELP = (
        "Pre-trains FactoFormer's spectral (band) and spatial (pixel) branches by masked "
        "reconstruction of every valid pixel of your rasters, without labels. Train then "
        "starts from them (PRETRAINED). Runs in a separate Python process that needs "
        "PyTorch; resumable after a cancel."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        params: list[QgsProcessingParameterDefinition] = [
            QgsProcessingParameterMultipleLayers(
                self.INPUT, "Rasters (unlabelled)", QgsProcessing.TypeRaster
            ),
            QgsProcessingParameterFolderDestination(self.OUTPUT, "Pretraining run folder"),
            QgsProcessingParameterNumber(
                self.EPOCHS, "Epochs (0 = recipe)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterBoolean(self.RESUME, "Resume", defaultValue=False),
        ]
        advanced = [
            QgsProcessingParameterEnum(
                self.BRANCH, "Branches", options=list(BRANCH_OPTIONS), defaultValue=0
            ),
            QgsProcessingParameterNumber(
                self.MAX_STEPS, "Maximum steps per branch (0 = none)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (0 = recipe)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(self.SEED, "Seed", defaultValue=0, minValue=0),
        ]
        self.add_parameters(HELP, params, advanced)

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers or any(layer.providerType() != "gdal" for layer in layers):
            raise QgsProcessingException("give one or more file rasters (GDAL) to pre-train on")
        output = Path(self.parameterAsString(parameters, self.OUTPUT, context))
        python = training_python()
        args = ["pretrain", "--raster", *(layer.source() for layer in layers)]
        args += ["--output-dir", str(output), "--progress-json", *thread_arguments()]
        branch = BRANCH_OPTIONS[self.parameterAsEnum(parameters, self.BRANCH, context)]
        args += ["--branch", branch]
        args += ["--seed", str(self.parameterAsInt(parameters, self.SEED, context))]
        for name, option in (
            (self.EPOCHS, "--epochs"),
            (self.MAX_STEPS, "--max-steps"),
            (self.BATCH_SIZE, "--batch-size"),
        ):
            value = self.parameterAsInt(parameters, name, context)
            args += [option, str(value)] if value else []
        if self.parameterAsBool(parameters, self.RESUME, context):
            args.append("--resume")
        try:
            branches = ("pixel", "band") if branch == "both" else (branch,)
            run_engine_command(python, args, feedback, stages=[f"pretrain {b}" for b in branches])
        except QgsProcessingException:
            if feedback.isCanceled() and output.is_dir():
                feedback.pushInfo(
                    f"The last finished epoch stays in {output}; run again with RESUME to continue."
                )
            raise
        return {self.OUTPUT: str(output)}
