"""ONNX export of trained models (needs torch and onnx)."""
