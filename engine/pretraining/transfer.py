"""Pre-trained branch files, and moving their weights into a FactoFormer for fine-tuning.

What is transferred (per pre-trained branch): the token embedding, the cls token, the
positional embedding, every block and the transformer's own final LayerNorm. The mask
token and the decoder are pretraining-only and dropped. The branch's *outer* LayerNorm
keeps its initial weights unless asked otherwise: FactoFormer's ``load_pretrained``
renames ``encoder.norm`` to a key the fine-tuning model does not have, so the published
results were obtained without it. Its pre-trained affine parameters were fitted to feed
the reconstruction decoder (never the cls token the classifier reads), so starting the
classifier's input from a plain normalisation is also the cleaner default;
``outer_norm=True`` transfers it too, for comparison.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import BRANCHES, Branch, EncoderConfig
from ..data.normalization import METHOD_NAMES, MINMAX, Normalization
from ..errors import InputDataError, ModelLoadError
from ..models import FactoFormer
from ..training.loop import load_weights_only, save_atomically

ENCODER_FORMAT = "factoformer-pretrained-encoder/1"
ENCODER_NAME = "encoder.pt"
OUTER_NORM_PREFIX = "outer_norm."
# Fields that must agree between the pre-trained and the fine-tuned branch (shapes and
# the numerics of the transferred norms); the dropout rate may differ.
_MATCHING_FIELDS = ("num_bands", "patch_size", "dim", "depth", "heads", "mlp_hidden")


@dataclass
class PretrainedBranch:
    """A pre-trained encoder of one branch, with where it came from.

    Attributes:
        branch: ``pixel`` or ``band``.
        config: the encoder's architecture.
        state_dict: the encoder's weights (keys of :class:`~engine.models.layers.TokenEncoder`).
        provenance: pixels used, recipe and objective, steps, time, hardware.
    """

    branch: Branch
    config: EncoderConfig
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the branch as a weights-only file (atomically)."""
        return save_pretrained(path, ENCODER_FORMAT, self, branch=self.branch)


def save_pretrained(
    path: str | os.PathLike[str], file_format: str, pretrained: Any, **identity: Any
) -> Path:
    """Write ``pretrained``'s config, weights and provenance, with ``identity`` (what it
    is), as a weights-only ``file_format`` file (atomically)."""
    return save_atomically(
        {
            "format": file_format,
            **identity,
            "config": pretrained.config.to_dict(),
            "state_dict": pretrained.state_dict,
            "provenance": pretrained.provenance,
        },
        path,
    )


def branch_file(path: str | os.PathLike[str], branch: Branch) -> Path:
    """The encoder file of ``branch`` given the file, its folder or the pretraining run."""
    path = Path(path)
    for candidate in (path, path / ENCODER_NAME, path / branch / ENCODER_NAME):
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"no pre-trained {branch} branch in {path} (looked for {ENCODER_NAME})")


def load_branch(path: str | os.PathLike[str], branch: Branch) -> PretrainedBranch:
    """Load one pre-trained branch without executing any pickled code."""
    file = branch_file(path, branch)
    data = load_weights_only(file, ENCODER_FORMAT, "pre-trained FactoFormer branch")
    if data["branch"] != branch:
        raise ModelLoadError(f"{file} holds the {data['branch']} branch, not the {branch} branch")
    return PretrainedBranch(
        branch, EncoderConfig.from_dict(data["config"]), data["state_dict"], data["provenance"]
    )


def load_run(run_dir: str | os.PathLike[str]) -> list[PretrainedBranch]:
    """Every branch a pretraining run folder holds (``<run>/pixel``, ``<run>/band``)."""
    run_dir = Path(run_dir)
    found = [b for b in BRANCHES if (run_dir / b / ENCODER_NAME).is_file()]
    if not found:
        raise ModelLoadError(f"{run_dir} holds no pre-trained branch (pixel/ or band/)")
    return [load_branch(run_dir, b) for b in found]


def transfer(
    model: FactoFormer, branches: Sequence[PretrainedBranch], outer_norm: bool = False
) -> dict[str, Any]:
    """Copy pre-trained encoder weights into ``model``; returns the provenance record.

    Tensors that are not transferred (the other branch, outer norms unless
    ``outer_norm``, fusion and head) keep the values ``model`` was built with.
    """
    record: dict[str, Any] = {"outer_norm_transferred": outer_norm, "branches": {}}
    for pre in branches:
        target = model.config.encoder(pre.branch)
        check_matching(pre.config, target, _MATCHING_FIELDS, f"{pre.branch} branch")
        state = {
            k: v
            for k, v in pre.state_dict.items()
            if outer_norm or not k.startswith(OUTER_NORM_PREFIX)
        }
        encoder = model.encoder(pre.branch)
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        allowed = (
            set() if outer_norm else {f"{OUTER_NORM_PREFIX}weight", f"{OUTER_NORM_PREFIX}bias"}
        )
        if unexpected or set(missing) - allowed:
            raise InputDataError(
                f"the pre-trained {pre.branch} branch does not fit the model "
                f"(missing {sorted(set(missing) - allowed)}, unexpected {sorted(unexpected)})"
            )
        parts = "embedding, cls token, positions, blocks, transformer norm"
        parts += ", outer norm" if outer_norm else ""
        record["branches"][pre.branch] = {"transferred": parts, **pre.provenance}
    return record


def check_matching(pre: Any, target: Any, fields: Sequence[str], what: str) -> None:
    """Refuse a pre-trained ``what`` whose config ``pre`` differs from ``target`` in ``fields``."""
    for name in fields:
        theirs, mine = getattr(pre, name), getattr(target, name)
        if theirs != mine:
            raise InputDataError(
                f"the pre-trained {what} has {name} {theirs} but the model being trained has {mine}"
            )


def check_normalization(provenance: dict[str, Any], normalization: Normalization) -> None:
    """Refuse to fine-tune on pixels normalised unlike the pretraining pixels were (a record
    without ``normalization_method`` is from before standardisation existed: min-max)."""
    theirs = provenance.get("normalization_method", MINMAX)
    if theirs != normalization.method:
        raise InputDataError(
            f"the backbone was pre-trained on pixels normalised by "
            f"{METHOD_NAMES.get(theirs, theirs)}, the training pixels by "
            f"{METHOD_NAMES[normalization.method]}; pre-train and fine-tune with the same one"
        )
