"""The dock tabs' shared runner: buttons, failure report, cancel (real QGIS, headless)."""

from __future__ import annotations

import importlib
import time

from helpers import BUNDLED_SCENE
from qgis.core import QgsApplication, QgsProcessingFeedback


def _run(runner, params: dict) -> list[tuple]:
    """Start factoformer:classify, wait for it; the ``completed`` signals it sent."""
    reports = []
    runner.completed.connect(lambda *report: reports.append(report))
    runner.start("factoformer:classify", params, QgsProcessingFeedback(), "Running...")
    assert runner.status.text() == "Running..." and not runner.run_button.isEnabled()
    assert runner.cancel_button.isEnabled() and runner.progress.value() == 0
    return reports


def _wait(runner) -> None:
    deadline = time.monotonic() + 60
    while runner.task is not None and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert runner.task is None


def test_a_failure_shows_the_last_log_line_in_red(processing_plugin, plugin_module, tmp_path):
    runner_module = importlib.import_module(f"{plugin_module.__name__}.algorithm_runner")
    runner = runner_module.AlgorithmRunner("Go")
    missing = tmp_path / "missing.onnx"
    params = {"INPUT": str(BUNDLED_SCENE), "MODEL": str(missing), "OUTPUT": "TEMPORARY_OUTPUT"}
    reports = _run(runner, params)
    _wait(runner)
    assert len(reports) == 1
    ok, _, last_line = reports[0]
    assert not ok and "missing.onnx" in last_line
    assert runner.status.text() == f"<span style='color:#c0392b'>{last_line}</span>"
    assert not runner.cancel_button.isEnabled()
    assert not runner.run_button.isEnabled()  # the tab decides when its inputs fit again


def test_cancel_button_cancels_the_running_task(processing_plugin, plugin_module, tmp_path):
    runner_module = importlib.import_module(f"{plugin_module.__name__}.algorithm_runner")
    runner = runner_module.AlgorithmRunner("Go")
    params = {"INPUT": str(BUNDLED_SCENE), "OUTPUT": str(tmp_path / "map.tif")}
    reports = _run(runner, params)
    runner.cancel_button.click()
    assert runner.feedback.isCanceled()
    _wait(runner)
    assert [(ok, line.split()[0]) for ok, _, line in reports] == [(False, "Cancelled")]
    assert not (tmp_path / "map.tif").exists()
    assert not runner.cancel_button.isEnabled()
