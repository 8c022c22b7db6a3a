"""The plugin object: Processing provider, toolbar button, menu entry and dock."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .provider import ICON, FactoFormerProvider

MENU = "&FactoFormer"


class FactoFormerPlugin:
    """Registers the Processing provider; with a GUI also a toolbar button and a dock.

    Args:
        iface: the QGIS interface, or None when loaded by ``qgis_process``.
    """

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: FactoFormerProvider | None = None
        self.action: QAction | None = None
        self.dock = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        if self.provider is None:
            self.provider = FactoFormerProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        if self.iface is None:
            return
        from .dock import ClassifyDock

        self.dock = ClassifyDock(self.iface)
        self.dock.setVisible(False)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.action = QAction(
            QIcon(str(ICON)), "FactoFormer classification", self.iface.mainWindow()
        )
        self.action.setCheckable(True)
        self.action.setToolTip("Classify a hyperspectral raster with FactoFormer")
        self.action.toggled.connect(self.dock.setVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.iface is None:
            return
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.action.deleteLater()
            self.action = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
