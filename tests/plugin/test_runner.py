"""Finding the Python that trains, and running engine commands in it (no QGIS needed)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture()
def runner(plugin_module):
    import importlib

    return importlib.import_module(f"{plugin_module.__name__}.runner")


def test_override_may_be_a_path_or_a_command_with_arguments(runner, tmp_path):
    python = tmp_path / "my python"
    python.write_text("")
    assert runner.find_python({runner.PYTHON_ENV: str(python)}) == [str(python)]
    assert runner.find_python({runner.PYTHON_ENV: "/usr/bin/python3 -S"}) == [
        "/usr/bin/python3",
        "-S",
    ]


@pytest.mark.parametrize(
    ("layout", "program"),
    [("windows", "qgis-bin.exe"), ("macos", "QGIS")],
)
def test_python_beside_a_qgis_program_is_found(runner, monkeypatch, tmp_path, layout, program):
    """On Windows and macOS sys.executable is QGIS itself: the interpreter is looked for in
    sys.exec_prefix (root, as OSGeo4W's apps/Python3x) or its bin/ (QGIS.app)."""
    prefix = tmp_path / "prefix"
    expected = prefix / "python.exe" if layout == "windows" else prefix / "bin" / "python3"
    expected.parent.mkdir(parents=True, exist_ok=True)
    expected.write_text("")
    monkeypatch.setattr(sys, "executable", str(tmp_path / program))
    monkeypatch.setattr(sys, "exec_prefix", str(prefix))
    monkeypatch.setattr(sys, "base_prefix", str(prefix))
    assert runner.find_python({}) == [str(expected)]


def test_no_python_found_says_which_variable_to_set(runner, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis-bin.exe"))
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))
    with pytest.raises(runner.RunnerError, match="set the environment variable FACTOFORMER_PYTHON"):
        runner.find_python({})


def test_a_failing_command_raises_its_error_line(runner, plugin_module, tmp_path):
    from pathlib import Path

    root = Path(plugin_module.__file__).parent
    lines = []
    args = [
        "train",
        "--raster",
        str(tmp_path / "missing.tif"),
        "--train-vector",
        "x.gpkg",
        "--class-field",
        "c",
        "--output-dir",
        str(tmp_path / "run"),
        "--progress-json",
    ]
    with pytest.raises(runner.RunnerError, match="missing.tif") as err:
        runner.run_engine([sys.executable], root, args, print, lines.append, lambda: False)
    assert "\n" not in str(err.value) and not str(err.value).startswith("error")


def test_relative_paths_mean_the_callers_folder_and_its_engine_folder_is_ignored(
    runner, plugin_module, monkeypatch, tmp_path
):
    """qgis_process users pass paths relative to where they are; an ``engine`` package in
    that folder must not replace the bundled one."""
    import shutil
    from pathlib import Path

    root = Path(plugin_module.__file__).parent
    shipped = Path(__file__).resolve().parents[2] / "models" / "factoformer_indian_pines.onnx"
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("")
    (tmp_path / "engine" / "__main__.py").write_text(
        "print('error: shadowed'); raise SystemExit(1)"
    )
    (tmp_path / "models").mkdir()
    shutil.copy(shipped, tmp_path / "models" / "mine.onnx")
    monkeypatch.chdir(tmp_path)
    args = ["info", "models/mine.onnx"]
    lines = runner.run_engine([sys.executable], root, args, print, print, lambda: False)
    assert lines[0].startswith("FactoFormer factoformer-indian-pines v")


def test_progress_text_is_throttled_but_every_epoch_gets_a_line(plugin_module):
    """Processing dialogs and qgis_process print each progress text as a line, so a long
    run must not send one per report; the per-epoch loss lines stay complete."""
    import importlib

    from qgis.core import QgsProcessingFeedback

    bridge = importlib.import_module(f"{plugin_module.__name__}.algorithms.engine_process")
    runner = importlib.import_module(f"{plugin_module.__name__}.runner")

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.texts, self.infos = [], []

        def setProgressText(self, text):  # noqa: N802 (Qt API)
            self.texts.append(text)

        def pushInfo(self, info):  # noqa: N802 (Qt API)
            self.infos.append(info)

    feedback = Recorder()
    relay = bridge._Relay(feedback, 0.0, 100.0, (), text_interval=3600.0)
    for i in range(300):  # 3 epochs of 100 reports, far faster than the interval
        epoch = i // 100 + 1
        relay.progress(runner.Progress("pretrain pixel", (i + 1) / 300, epoch, 3, 1.0 / (i + 1)))
    relay.finish()
    assert feedback.texts == ["pretrain pixel: epoch 1/3, loss 1.0000"]
    assert feedback.infos == [
        "pretrain pixel: epoch 1 loss 0.0100",
        "pretrain pixel: epoch 2 loss 0.0050",
        "pretrain pixel: epoch 3 loss 0.0033",
    ]
    assert feedback.progress() == 100.0
