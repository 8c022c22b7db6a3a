"""Model types: what ``train --model NAME`` builds, how it trains and how it is exported.

Each type names its config class, its network (PyTorch types) or fitter (scikit-learn
types), the patch size it reads and the ``model_type`` its ONNX metadata carries. Classes
are imported only when asked for, so that reading this table costs no torch or
scikit-learn import.

* ``torch`` types train through :func:`engine.training.run.run_training` (the shared
  loop and supervised step), write ``checkpoint.pt`` and export with
  :func:`engine.export.onnx.export_onnx`.
* ``sklearn`` types fit through :func:`engine.training.classical.run_classical`, write
  the converted ``model.onnx`` and export with
  :func:`engine.training.classical.export_classical`.
* ``dense`` types (MaskedSST) label every pixel of a tile: they fine-tune through
  :func:`engine.training.dense.run_dense_training` (the shared loop, per-pixel loss on
  tiles), write ``checkpoint.pt`` and export with :func:`engine.export.onnx.export_onnx`
  (metadata ``prediction: dense``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from ..data.normalization import MINMAX

Family = Literal["torch", "sklearn", "dense"]


@dataclass(frozen=True)
class ModelSpec:
    """One model type.

    Attributes:
        name: the CLI name (``--model``).
        model_type: the metadata ``model_type`` of its ONNX files and checkpoints.
        family: ``torch`` (trained by the shared loop), ``sklearn`` (fitted, converted) or
            ``dense`` (tiles labelled pixel by pixel, trained by the shared loop).
        config_class: ``module:Class`` of its config dataclass.
        network: ``module:Class`` of its PyTorch module (built from the config).
        patch_size: the patch edge it reads (1: single pixel spectra); for ``dense`` types
            the patch size its training data are built with, ``2 * tile - 1``, whose
            symmetric padding (``tile - 1`` pixels) lets tiles reach past the border.
        default_recipe: the named recipe it trains with (torch types other than
            FactoFormer, whose recipe depends on the scene).
        normalization: the input statistics it trains and pre-trains with
            (:data:`engine.data.normalization.MINMAX` or ``STANDARD``); a trained model
            carries its own in its metadata.
    """

    name: str
    model_type: str
    family: Family
    config_class: str
    network: str | None
    patch_size: int
    default_recipe: str | None = None
    normalization: str = MINMAX

    def config(self, num_bands: int, num_classes: int, **options: Any) -> Any:
        """The type's default config for ``num_bands`` bands and ``num_classes`` classes."""
        return _load(self.config_class)(num_bands=num_bands, num_classes=num_classes, **options)

    def config_from_dict(self, values: dict[str, Any]) -> Any:
        return _load(self.config_class).from_dict(values)

    @property
    def min_patch_size(self) -> int:
        """The smallest patch edge the type can read (its config's ``min_patch_size``)."""
        return getattr(_load(self.config_class), "min_patch_size", 1)

    def build(self, config: Any) -> Any:
        """The PyTorch module of a torch type, with fresh weights."""
        if self.network is None:
            raise ValueError(f"{self.name} is not a PyTorch model")
        return _load(self.network)(config)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "factoformer",
            "FactoFormer",
            "torch",
            "engine.config:FactoFormerConfig",
            "engine.models.factoformer:FactoFormer",
            7,
        ),
        ModelSpec(
            "cnn3d",
            "CNN3D",
            "torch",
            "engine.models.cnn3d:CNN3DConfig",
            "engine.models.cnn3d:CNN3D",
            7,
            "li2017",
        ),
        ModelSpec(
            "maskedsst",
            "MaskedSST",
            "dense",
            "engine.config:MaskedSSTConfig",
            "engine.models.maskedsst:MaskedSST",
            15,
        ),
        ModelSpec(
            "rf", "RandomForest", "sklearn", "engine.models.classical:RandomForestConfig", None, 1
        ),
        ModelSpec("svm", "SVM", "sklearn", "engine.models.classical:SVMConfig", None, 1),
    )
}
DEFAULT_MODEL = "factoformer"


def model_spec(name: str) -> ModelSpec:
    """The type called ``name`` on the command line."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def spec_for_type(model_type: str) -> ModelSpec:
    """The type whose metadata ``model_type`` is ``model_type``."""
    for spec in MODELS.values():
        if spec.model_type == model_type:
            return spec
    raise ValueError(f"unknown model_type {model_type!r}")


def spec_for_config(config: Any) -> ModelSpec:
    """The type whose config class ``config`` is an instance of."""
    for spec in MODELS.values():
        if isinstance(config, _load(spec.config_class)):
            return spec
    raise ValueError(f"no model type has config class {type(config).__name__}")


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)
