"""Run inside QGIS Desktop (``qgis --code``): the dock classifies the bundled scene.

Opens the Indian Pines demo scene, clicks the plugin's toolbar button, runs the dock with
the shipped model, waits for the styled layers, saves a window screenshot and quits with
exit code 0 only when every check passed. Driven by ``scripts/desktop_check.sh``.
"""

import os
from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QToolBar
from qgis.utils import iface, plugins

OUT = Path(os.environ["FACTOFORMER_DESKTOP_OUT"])
SCENE = Path(os.environ["FACTOFORMER_REPO"]) / "resources/indian_pines/indian_pines.tif"
TIMEOUT_S = 180
failures: list[str] = []
log = (OUT / "desktop_check.log").open("w")


def check(ok: bool, what: str) -> None:
    log.write(f"{'ok  ' if ok else 'FAIL'} {what}\n")
    log.flush()
    if not ok:
        failures.append(what)


def start() -> None:
    plugin = plugins.get("factoformer")
    check(plugin is not None, "plugin loaded by QGIS Desktop")
    if plugin is None:
        finish()
        return
    toolbar_actions = [a for tb in iface.mainWindow().findChildren(QToolBar) for a in tb.actions()]
    check(plugin.action in toolbar_actions, "toolbar button present")
    dock = plugin.dock
    check(plugin.action.isChecked() == dock.isVisible(), "toolbar button state = dock shown")
    for _ in range(2):  # a fresh profile may start with the dock shown: click until it opens
        was_visible = dock.isVisible()
        plugin.action.trigger()
        check(dock.isVisible() != was_visible, "toolbar button shows/hides the dock")
        if dock.isVisible():
            break
    model = dock.model_info.text()
    check(dock.run_button.isEnabled(), f"dock accepts the scene and the shipped model: {model}")
    dock.output_widget.setFilePath(str(OUT / "indian_pines_classes.tif"))
    dock.confidence_check.setChecked(True)
    dock.run_button.click()
    wait_for_layers(dock, 0)


def wait_for_layers(dock, waited: int) -> None:
    names = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    if len(names) < 3 and waited < TIMEOUT_S:
        QTimer.singleShot(1000, lambda: wait_for_layers(dock, waited + 1))
        return
    check(len(names) == 3, f"layers after the run: {sorted(names)}")
    check(dock.status.text().startswith("Classified"), f"dock status: {dock.status.text()}")
    land_cover = names.get("indian_pines land cover")
    if land_cover is not None:
        renderer = land_cover.renderer()
        classes = renderer.classes() if renderer.type() == "paletted" else []
        check(len(classes) == 16, f"land cover layer: {renderer.type()}, {len(classes)} classes")
    iface.mapCanvas().zoomToFullExtent()
    QTimer.singleShot(3000, finish)


def finish() -> None:
    iface.mainWindow().grab().save(str(OUT / "qgis_desktop.png"))
    check(not failures, "all checks passed")
    log.close()
    QApplication.exit(1 if failures else 0)


QgsProject.instance().addMapLayer(QgsRasterLayer(str(SCENE), "indian_pines"))
iface.mainWindow().resize(1280, 800)
QTimer.singleShot(3000, start)  # let QGIS finish starting, as a user would
