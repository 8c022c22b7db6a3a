"""Processing provider ``factoformer``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.assess import AssessAlgorithm
from .algorithms.classify import ClassifyAlgorithm
from .algorithms.classify_many import ClassifyManyAlgorithm
from .algorithms.pretrain import PretrainAlgorithm
from .algorithms.train import TrainAlgorithm

ICON = Path(__file__).resolve().parent / "icons" / "factoformer.svg"


class FactoFormerProvider(QgsProcessingProvider):
    """Hyperspectral classification algorithms backed by the FactoFormer engine."""

    def id(self) -> str:
        return "factoformer"

    def name(self) -> str:
        return "FactoFormer"

    def longName(self) -> str:  # noqa: N802
        return "FactoFormer hyperspectral classification"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        self.addAlgorithm(ClassifyAlgorithm())
        self.addAlgorithm(ClassifyManyAlgorithm())
        self.addAlgorithm(AssessAlgorithm())
        self.addAlgorithm(PretrainAlgorithm())
        self.addAlgorithm(TrainAlgorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"
