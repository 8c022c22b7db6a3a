"""Build the installable QGIS plugin: build/factoformer/ and dist/factoformer-<version>.zip.

The plugin folder holds the plugin code (plugin/), metadata.txt, the engine package and
the shipped ONNX models with their model cards. Usage: python scripts/build_plugin.py
"""

from __future__ import annotations

import configparser
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "factoformer"
BUILD_DIR = ROOT / "build" / PLUGIN_NAME
DIST_DIR = ROOT / "dist"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def plugin_version() -> str:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def build() -> Path:
    """Assemble the plugin folder and zip it; returns the zip path."""
    if BUILD_DIR.exists():
        shutil.rmtree(BUILD_DIR)
    shutil.copytree(ROOT / "plugin", BUILD_DIR, ignore=IGNORE)
    shutil.copytree(ROOT / "engine", BUILD_DIR / "engine", ignore=IGNORE)
    (BUILD_DIR / "models").mkdir()
    for model in sorted((ROOT / "models").glob("*")):
        if model.suffix in (".onnx", ".md"):
            shutil.copy2(model, BUILD_DIR / "models" / model.name)
    for name in ("metadata.txt", "LICENSE"):
        shutil.copy2(ROOT / name, BUILD_DIR / name)

    DIST_DIR.mkdir(exist_ok=True)
    archive = DIST_DIR / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(BUILD_DIR.rglob("*")):
            if path.is_file():
                zf.write(path, Path(PLUGIN_NAME) / path.relative_to(BUILD_DIR))
    return archive


if __name__ == "__main__":
    print(build())
