"""Tiled ONNX inference on rasters (numpy, GDAL, ONNX Runtime; no torch, no QGIS)."""
