"""Validation after every epoch, and early stopping on it (never on test pixels)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.training_set import LabelledPixels

MONITORED = {"loss": "validation_loss", "accuracy": "validation_accuracy"}


@dataclass
class ValidationMonitor:
    """Measures the model on the validation pixels after each epoch (the loop's ``epoch_end``).

    With ``patience`` it stops training once the monitored value (validation loss, lower
    is better, or accuracy, higher is better) has not improved for ``patience`` epochs,
    and :meth:`restore_best` puts back the weights of the best epoch.

    Args:
        model: the model being trained.
        pixels: the validation pixels.
        patience: epochs without improvement before stopping; None never stops.
        metric: ``loss`` or ``accuracy``.
        batch_size: patches per forward pass.
    """

    model: nn.Module
    pixels: LabelledPixels
    patience: int | None = None
    metric: str = "loss"
    batch_size: int = 256
    best_epoch: int | None = None
    best_value: float | None = None
    _best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in MONITORED:
            raise ValueError(f"metric must be one of {', '.join(MONITORED)}, not {self.metric!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 epoch, got {self.patience}")

    def __call__(self, epoch: int) -> tuple[dict[str, float], bool]:
        values = self.measure()
        value = values[MONITORED[self.metric]]
        better = self.best_value is None or (
            value < self.best_value if self.metric == "loss" else value > self.best_value
        )
        if better:
            self.best_epoch, self.best_value = epoch + 1, value
            if self.patience is not None:
                self._best_state = copy.deepcopy(self.model.state_dict())
        stop = self.patience is not None and epoch + 1 - (self.best_epoch or 0) >= self.patience
        return values, stop

    def measure(self) -> dict[str, float]:
        """Validation loss and overall accuracy of the model now (eval mode, no gradients)."""
        self.model.eval()
        loss, correct = 0.0, 0
        with torch.no_grad():
            for first in range(0, len(self.pixels), self.batch_size):
                idx = np.arange(first, min(first + self.batch_size, len(self.pixels)))
                logits = self.model(torch.from_numpy(self.pixels.patches(idx)))
                targets = torch.from_numpy(self.pixels.targets(idx))
                loss += float(F.cross_entropy(logits, targets, reduction="sum"))
                correct += int((logits.argmax(1) == targets).sum())
        n = max(len(self.pixels), 1)
        return {"validation_loss": loss / n, "validation_accuracy": correct / n}

    def restore_best(self) -> None:
        """Load the weights of the best epoch (only kept when early stopping is on)."""
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)

    def record(self) -> dict[str, Any]:
        """What the run's provenance says about validation and early stopping."""
        return {
            "pixels": len(self.pixels),
            "monitored": MONITORED[self.metric],
            "patience": self.patience,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "weights": "best epoch" if self._best_state is not None else "last epoch",
        }
