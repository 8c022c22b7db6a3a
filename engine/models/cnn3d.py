"""The 3D-CNN baseline of Li et al. (Remote Sensing 2017), as MaskedSST compares against it.

Two 3-D convolutions slide over (band, row, column) of the patch, with ReLU after each;
their output is flattened and mapped to class logits by one linear layer. No pooling, no
dropout; Xavier-uniform weights, zero biases. The convolutions pad the band axis by 1 and
the spatial axes not at all, so a 7x7 patch shrinks to 5x5 and then to 3x3 and the band
axis loses 4 values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import check_config_keys, check_model_size


@dataclass(frozen=True)
class CNN3DConfig:
    """Architecture of the 3D-CNN; ``planes`` filters in the first convolution, twice as
    many in the second (Li et al.: 16 and 32)."""

    num_bands: int
    num_classes: int
    patch_size: int = 7
    planes: int = 16
    model_type: ClassVar[str] = "CNN3D"  # metadata model_type
    min_patch_size: ClassVar[int] = 5  # the two convolutions take 4 pixels off each side

    def __post_init__(self) -> None:
        check_model_size("3D-CNN", self.num_bands, self.num_classes, min_bands=5)
        if self.patch_size < self.min_patch_size or self.patch_size % 2 == 0:
            raise ValueError(
                f"patch_size must be an odd number >= {self.min_patch_size}, got {self.patch_size}"
            )

    @property
    def feature_shape(self) -> tuple[int, int, int, int]:
        """(channels, bands, rows, cols) after the second convolution."""
        side = self.patch_size - 4
        return 2 * self.planes, self.num_bands - 4, side, side

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints and ONNX metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CNN3DConfig:
        check_config_keys(cls, values, "3D-CNN")
        return cls(**values)


class CNN3D(nn.Module):
    """Centre-pixel classifier for hyperspectral patches.

    Input: (batch, num_bands, patch_size, patch_size) float32, normalised.
    Output: (batch, num_classes) logits.
    """

    def __init__(self, config: CNN3DConfig) -> None:
        super().__init__()
        self.config = config
        planes = config.planes
        self.conv1 = nn.Conv3d(1, planes, kernel_size=(7, 3, 3), padding=(1, 0, 0))
        self.conv2 = nn.Conv3d(planes, 2 * planes, kernel_size=(3, 3, 3), padding=(1, 0, 0))
        features = 1
        for size in config.feature_shape:
            features *= size
        self.head = nn.Linear(features, config.num_classes)
        for layer in (self.conv1, self.conv2, self.head):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = patches.unsqueeze(1)  # (batch, 1, bands, rows, cols): one input channel
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.flatten(1))
