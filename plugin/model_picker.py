"""Model picker: the shipped models and the user's recent ones, in one list with a browse button.

Recent models are remembered in QGIS's settings under the plugin's own key when the user
picks a file or trains one; a file that no longer exists drops out of the list.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QToolButton, QWidget

from .engine import SHIPPED_MODEL

RECENT_KEY = "factoformer/recent_models"
MAX_RECENT = 10


def shipped_models() -> list[Path]:
    """The ONNX models bundled with the plugin, the default one first, then by name."""
    return sorted(SHIPPED_MODEL.parent.glob("*.onnx"), key=lambda p: (p != SHIPPED_MODEL, p.name))


def recent_models(settings: QgsSettings) -> list[str]:
    """The remembered models that still exist, most recent first."""
    stored = settings.value(RECENT_KEY, [], type=list) or []
    return [p for p in stored if Path(p).is_file()]


def remember(settings: QgsSettings, path: str) -> None:
    """Put ``path`` first in the recent models (no duplicates, at most MAX_RECENT)."""
    kept = [p for p in recent_models(settings) if Path(p) != Path(path)]
    settings.setValue(RECENT_KEY, [path, *kept][:MAX_RECENT])


class ModelPicker(QWidget):
    """A list of shipped and recent models and a button to pick another file."""

    fileChanged = pyqtSignal(str)  # noqa: N815 (Qt naming): the chosen model's path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Choose an ONNX model file")
        layout = QHBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        self.setLayout(layout)
        self.refresh(str(SHIPPED_MODEL))
        self.combo.currentIndexChanged.connect(lambda _: self.fileChanged.emit(self.filePath()))
        self.browse.clicked.connect(self._browse)

    def filePath(self) -> str:  # noqa: N802 (the QgsFileWidget name the dock used)
        """The selected model's path."""
        return self.combo.currentData() or ""

    def paths(self) -> list[str]:
        """Every listed model, in list order."""
        return [self.combo.itemData(i) for i in range(self.combo.count())]

    def setFilePath(self, path: str) -> None:  # noqa: N802
        """Select ``path``, remembering it as a recent model unless it ships with the plugin."""
        if Path(path) not in shipped_models():
            remember(QgsSettings(), path)
        self.refresh(path)
        self.fileChanged.emit(self.filePath())

    def refresh(self, selected: str | None = None) -> None:
        """Rebuild the list (dropping missing files) and select ``selected`` or the current one."""
        selected = selected or self.filePath()
        self.combo.blockSignals(True)
        self.combo.clear()
        for path in shipped_models():
            self._add(f"{path.stem} (shipped)", str(path))
        for path in recent_models(QgsSettings()):
            if Path(path) not in shipped_models():
                self._add(Path(path).name, path)
        index = self.combo.findData(selected)
        if index < 0 and selected:  # a file that is not (or no longer) remembered
            index = self._add(Path(selected).name, selected)
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)

    def _add(self, label: str, path: str) -> int:
        self.combo.addItem(label, path)
        index = self.combo.count() - 1
        self.combo.setItemData(index, path, Qt.ToolTipRole)
        return index

    def _browse(self) -> None:
        start = str(Path(self.filePath()).parent) if self.filePath() else ""
        path, _ = QFileDialog.getOpenFileName(self, "ONNX model", start, "ONNX models (*.onnx)")
        if path:
            self.setFilePath(path)
