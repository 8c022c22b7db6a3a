"""Neural networks (PyTorch; needed for training and export only)."""

from .factoformer import FactoFormer, count_parameters

__all__ = ["FactoFormer", "count_parameters"]
