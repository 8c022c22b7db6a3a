"""Which model a pretraining run was made for, read from its files without PyTorch, and
the ``train`` arguments that start a model from it.

A FactoFormer run holds ``pixel/`` and ``band/``, each with ``encoder.pt`` and
``pretraining.json`` (``"branch"``); a MaskedSST run holds ``encoder.pt`` and
``pretraining.json`` (``"model_type": "MaskedSST"``) at its top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsProcessingException

ENCODER = "encoder.pt"
SUMMARY = "pretraining.json"
BRANCHES = ("pixel", "band")
MODELS = {"factoformer": "FactoFormer", "maskedsst": "MaskedSST"}  # MODEL_TYPE: display name
HOLDS = {
    "factoformer": "pixel/ and band/ branches",
    "maskedsst": f"one {ENCODER} backbone",
}


@dataclass(frozen=True)
class Pretraining:
    """A pretraining run (``branch`` None) or one FactoFormer branch of one."""

    model: str  # a key of MODELS
    branch: str | None = None


def read_pretraining(path: Path) -> Pretraining | None:
    """What ``path`` (a run folder, a branch folder or an ``encoder.pt``) holds; None when
    it holds no finished pretraining."""
    if path.is_dir() and any((path / b / ENCODER).is_file() for b in BRANCHES):
        return Pretraining("factoformer")
    folder = path.parent if path.is_file() else path
    if not (folder / ENCODER).is_file():
        return None
    summary = _summary(folder / SUMMARY)
    if summary.get("model_type") == "MaskedSST":
        return Pretraining("maskedsst")
    branch = summary.get("branch", folder.name)  # runs written before the summary: the folder
    return Pretraining("factoformer", branch) if branch in BRANCHES else None


def pretrained_arguments(path: str, model_type: str) -> list[str]:
    """``--pretrained RUN`` (``--pretrained-<branch> P`` for one FactoFormer branch).

    Raises:
        QgsProcessingException: ``path`` holds no pretraining, or one for another model.
    """
    if model_type not in MODELS:
        raise QgsProcessingException(
            f"pretraining runs apply to {' and '.join(MODELS)}, not to {model_type}"
        )
    wanted = f"a {MODELS[model_type]} pretraining run ({HOLDS[model_type]})"
    found = read_pretraining(Path(path))
    if found is None:
        raise QgsProcessingException(
            f"{path} is not a finished pretraining run; {model_type} needs {wanted}, made by "
            f"Pre-train with MODEL_TYPE {model_type}"
        )
    if found.model != model_type:
        raise QgsProcessingException(
            f"{path} is a {MODELS[found.model]} pretraining run ({HOLDS[found.model]}); "
            f"{model_type} needs {wanted}, made by Pre-train with MODEL_TYPE {model_type}"
        )
    if found.branch is not None:
        return [f"--pretrained-{found.branch}", path]
    return ["--pretrained", path]


def _summary(file: Path) -> dict:
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
