"""Processing algorithm ``factoformer:pretrain``: unlabelled rasters -> pre-trained
FactoFormer branches or a pre-trained MaskedSST backbone.

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

MODEL_TYPES = ("factoformer", "maskedsst")
BRANCH_OPTIONS = ("both", "pixel", "band")
DEFAULT_BRANCH = 1  # pixel: chosen on validation pixels (docs/RESULTS.md)

HELP = {
    "INPUT": "One or more rasters with the same bands; every valid pixel is used, no labels.",
    "OUTPUT": "Pretraining run folder. factoformer: pixel/ and band/, each with encoder.pt "
    "(the pre-trained branch), state.pt (to resume) and pretraining.json (loss history); "
    "maskedsst: the same three files for the backbone, at the top. Give it to Train as "
    "PRETRAINED with the same MODEL_TYPE.",
    "MODEL_TYPE": "factoformer (default): FactoFormer's spectral and spatial branches, each "
    "on its own; maskedsst: the backbone of a MaskedSST, on 8x8 tiles around the pixels "
    "(3 of 4 4x4-pixel units hidden in every spectral block, only the visible pixels "
    "encoded; about 1.6 s per step of 16 tiles on one core, so the default 4,800 steps take "
    "about 2 hours).",
    "BRANCH": "Which FactoFormer branches to pre-train: pixel (the default; on Indian Pines "
    "validation pixels as good as both within the noise, in a quarter of the time), band, or "
    "both (the paper's protocol). A MaskedSST is pre-trained whole: with MODEL_TYPE "
    "maskedsst another choice than the default is refused.",
    "EPOCHS": "Epochs (per branch for factoformer); 0 = the recipe: factoformer's is the "
    "paper's schedule (200 epochs of 32 patches) within 66,800 steps per branch, so fewer "
    "epochs on more than 10,688 pixels; maskedsst's is 96 epochs of 800 tiles (4,800 steps).",
    "MAX_STEPS": "Stop (each branch) after this many steps; 0 = no limit (smoke runs).",
    "BATCH_SIZE": "Samples per step: patches (factoformer) or 8x8 tiles (maskedsst); 0 = the "
    "recipe's (32 patches, 16 tiles).",
    "SEED": "Seed of the weights, masks and batch order.",
    "PATCH_SIZE": "factoformer: edge of the window around each pixel, odd; 0 (default) = 7, "
    "the paper's. Train reads the same from PRETRAINED. maskedsst refuses it.",
    "RESUME": "Continue the run in the output folder from its last finished epoch.",
}


class PretrainAlgorithm(EngineAlgorithm):
    """Pre-train FactoFormer's branches or a MaskedSST by masked reconstruction of
    unlabelled pixels."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    MODEL_TYPE = "MODEL_TYPE"
    BRANCH = "BRANCH"
    EPOCHS = "EPOCHS"
    MAX_STEPS = "MAX_STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    SEED = "SEED"
    PATCH_SIZE = "PATCH_SIZE"
    RESUME = "RESUME"

    NAME = "pretrain"
    DISPLAY_NAME = "Pre-train on unlabelled rasters"
    GROUP = "Training"
    SHORT_HELP = (
        "Pre-trains FactoFormer's spectral (band) and spatial (pixel) branches, or a "
        "MaskedSST's backbone (MODEL_TYPE), by masked reconstruction of every valid pixel "
        "of your rasters, without labels. Train with the same MODEL_TYPE then starts from "
        "them (PRETRAINED). Runs in a separate Python process that needs "
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
                self.MODEL_TYPE, "Model type", options=list(MODEL_TYPES), defaultValue=0
            ),
            QgsProcessingParameterEnum(
                self.BRANCH, "Branches", options=list(BRANCH_OPTIONS), defaultValue=DEFAULT_BRANCH
            ),
            QgsProcessingParameterNumber(
                self.MAX_STEPS, "Maximum steps per branch (0 = none)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (0 = recipe)", defaultValue=0, minValue=0
            ),
            QgsProcessingParameterNumber(self.SEED, "Seed", defaultValue=0, minValue=0),
            QgsProcessingParameterNumber(
                self.PATCH_SIZE, "Patch size (0 = 7)", defaultValue=0, minValue=0, maxValue=31
            ),
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
        model = MODEL_TYPES[self.parameterAsEnum(parameters, self.MODEL_TYPE, context)]
        branch = BRANCH_OPTIONS[self.parameterAsEnum(parameters, self.BRANCH, context)]
        if model == "maskedsst" and branch != BRANCH_OPTIONS[DEFAULT_BRANCH]:
            raise QgsProcessingException(
                f"BRANCH {branch} applies to factoformer only; a MaskedSST is pre-trained "
                f"whole (leave BRANCH at its default, {BRANCH_OPTIONS[DEFAULT_BRANCH]})"
            )
        python = training_python()
        args = ["pretrain", "--model", model, "--raster", *(layer.source() for layer in layers)]
        args += ["--output-dir", str(output), "--progress-json", *thread_arguments()]
        args += ["--branch", branch] if model == "factoformer" else []
        args += ["--seed", str(self.parameterAsInt(parameters, self.SEED, context))]
        for name, option in (
            (self.EPOCHS, "--epochs"),
            (self.MAX_STEPS, "--max-steps"),
            (self.BATCH_SIZE, "--batch-size"),
            (self.PATCH_SIZE, "--patch-size"),
        ):
            value = self.parameterAsInt(parameters, name, context)
            args += [option, str(value)] if value else []
        if self.parameterAsBool(parameters, self.RESUME, context):
            args.append("--resume")
        try:
            if model == "maskedsst":
                stages = ["pretrain maskedsst"]
            else:
                branches = ("pixel", "band") if branch == "both" else (branch,)
                stages = [f"pretrain {b}" for b in branches]
            run_engine_command(python, args, feedback, stages=stages)
        except QgsProcessingException:
            if feedback.isCanceled() and output.is_dir():
                feedback.pushInfo(
                    f"The last finished epoch stays in {output}; run again with RESUME to continue."
                )
            raise
        return {self.OUTPUT: str(output.absolute())}
