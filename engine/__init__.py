"""FactoFormer engine: data, models, training, ONNX export and tiled inference.

Inference (``engine.infer``) needs only numpy, GDAL and ONNX Runtime; training and export
(``engine.training``, ``engine.export``, ``engine.models``) also need PyTorch.
"""

from pathlib import Path

__version__ = "0.1.0"

# The model shipped with the project (the plugin build keeps the same relative layout).
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "factoformer_indian_pines.onnx"
