"""The dock's model picker in real QGIS: shipped and recent models, and the selected one's card."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from helpers import edit_model_metadata
from linear_model import write_linear_model
from qgis.core import QgsSettings

NAMES = ("Roof", "Tree", "Water")


@pytest.fixture()
def picker_module(plugin_module):
    module = importlib.import_module(f"{plugin_module.__name__}.model_picker")
    QgsSettings().remove(module.RECENT_KEY)
    yield module
    QgsSettings().remove(module.RECENT_KEY)


def rename_classes(values: dict) -> None:
    for entry, name in zip(values["classes"], NAMES, strict=True):
        entry["name"] = name


def test_picker_lists_shipped_and_recent_models_and_shows_the_card(
    plugin_module, picker_module, qgis_iface, qgis_processing, tmp_path
):
    model = write_linear_model(tmp_path / "fresh.onnx", len(NAMES), model_id="fresh")
    edit_model_metadata(model, model, rename_classes)
    plugin = plugin_module.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    try:
        picker = dock.model_widget
        shipped = picker.paths()
        names = [Path(p).name for p in shipped]
        assert names == [
            "factoformer_indian_pines.onnx",  # the default first, then by name
            "factoformer_enmap_potsdam.onnx",
            "maskedsst_enmap_potsdam.onnx",
        ]
        assert picker.filePath() == shipped[0]  # the default: the Indian Pines model
        assert "&nbsp;Corn-notill" in dock.model_card.text()
        assert "Test: OA 89.8 %" in dock.model_card.text()

        picker.setFilePath(str(model))  # as when the user picks the file
        assert picker.paths() == [*shipped, str(model)]
        card = dock.model_card.text()
        assert "<b>fresh</b>" in card and "Corn-notill" not in card
        for name in NAMES:
            assert f"&#9632;</span>&nbsp;{name}" in card

        write_linear_model(model, 2, model_id="retrained")  # trained again into the same file
        dock.use_model(str(model))
        assert "<b>retrained</b>" in dock.model_card.text() and "Roof" not in dock.model_card.text()
        assert picker.paths() == [*shipped, str(model)]
    finally:
        plugin.unload()

    later = picker_module.ModelPicker()  # a new session remembers the model...
    assert later.paths() == [*shipped, str(model)] and later.filePath() == shipped[0]
    model.unlink()  # ...until its file is gone
    later.refresh()
    assert later.paths() == shipped
