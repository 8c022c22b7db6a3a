"""Fixtures for the real-QGIS plugin tests: the plugin as built for installation."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_plugin  # noqa: E402


@pytest.fixture(scope="session")
def plugin_zip() -> Path:
    """Build the plugin exactly as shipped (build/factoformer and the dist zip)."""
    return build_plugin.build()


@pytest.fixture(scope="session")
def plugin_module(plugin_zip, qgis_app):
    """The built plugin package, imported as QGIS imports it (top-level ``factoformer``)."""
    sys.path.insert(0, str(build_plugin.BUILD_DIR.parent))
    return importlib.import_module(build_plugin.PLUGIN_NAME)


@pytest.fixture()
def processing_plugin(plugin_module, qgis_processing):
    """The plugin loaded headless (iface None), with Processing initialised."""
    plugin = plugin_module.classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()
