"""QGIS plugin entry point.

This package is installed together with the engine: the plugin build
(``scripts/build_plugin.py``) places ``engine/`` and the shipped ``models/`` inside the
plugin folder, so the plugin imports the engine as ``.engine``.
"""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Create the plugin; ``iface`` is None under qgis_process."""
    from .plugin import FactoFormerPlugin

    return FactoFormerPlugin(iface)
