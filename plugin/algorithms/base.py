"""What every algorithm of the provider shares: its identity, set by class attributes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
)


def engine_missing(exc: ImportError, packages: str) -> QgsProcessingException:
    """The one-line error for an engine that cannot be imported in QGIS's Python;
    ``packages`` is what to install (pip arguments)."""
    return QgsProcessingException(
        f"the FactoFormer engine cannot start: {exc}. Install its dependencies in "
        f"QGIS's Python: python3 -m pip install {packages}"
    )


class EngineAlgorithm(QgsProcessingAlgorithm):
    """A provider algorithm named by its class attributes.

    Subclasses set ``NAME`` (the id after ``factoformer:``), ``DISPLAY_NAME``, ``GROUP``
    (its id is the lower-case name) and ``SHORT_HELP``.
    """

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    SHORT_HELP = ""

    def createInstance(self) -> EngineAlgorithm:  # noqa: N802
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP.lower()

    def shortHelpString(self) -> str:  # noqa: N802
        return self.SHORT_HELP

    def add_parameters(
        self,
        help_texts: Mapping[str, str],
        params: Sequence[QgsProcessingParameterDefinition],
        advanced: Sequence[QgsProcessingParameterDefinition] = (),
    ) -> None:
        """Add ``params``, then ``advanced`` flagged as advanced, each with its help text."""
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        for param in [*params, *advanced]:
            param.setHelp(help_texts[param.name()])
            self.addParameter(param)
