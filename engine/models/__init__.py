"""Neural networks (PyTorch; needed for training and export only)."""

from .factoformer import FactoFormer, build_encoder, count_parameters
from .layers import DEFAULT_KERNELS, Kernels

__all__ = ["DEFAULT_KERNELS", "FactoFormer", "Kernels", "build_encoder", "count_parameters"]
