"""The model metadata schema: what an exported ONNX file says about itself.

Every value is stored as a JSON string in the ONNX model's ``metadata_props``; the keys and
their meaning are documented in ``docs/model-metadata.md``. :data:`SCHEMA_VERSION` changes
whenever a key is added, removed or changes meaning; readers refuse newer versions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .data.classes import ClassInfo
from .data.normalization import Normalization, normalization_from_dict
from .errors import ModelMetadataError

# 2: normalization.values (physical or raw; 1 = raw values), bands.raster_band_numbers
SCHEMA_VERSION = 2
# Values of model_type (RandomForest and SVM read single spectra: patch size 1).
MODEL_TYPES = ("FactoFormer", "MaskedSST", "CNN3D", "RandomForest", "SVM")
# What the output holds: scores for a softmax; log-probabilities are such scores, whose
# softmax gives back the probabilities themselves (scikit-learn models).
OUTPUT_KINDS = ("logits", "log_probabilities")
PADDING_MODES = ("symmetric",)
# What the model predicts: the centre pixel of each patch, or every pixel of a tile.
CENTRE, DENSE = "centre", "dense"
PREDICTIONS = (CENTRE, DENSE)
# Numeric precision of the graph's weights; absent in files written before it existed: fp32.
FP32, INT8 = "fp32", "int8"
PRECISIONS = (FP32, INT8)
REQUIRED_KEYS = (
    "schema_version",
    "model_type",
    "model_id",
    "model_version",
    "architecture",
    "input",
    "output",
    "bands",
    "normalization",
    "patch",
    "classes",
    "nodata",
    "training",
)
# absent prediction: centre; absent precision: fp32
OPTIONAL_KEYS = ("description", "metrics", "prediction", "precision")


@dataclass(frozen=True)
class ModelMetadata:
    """Everything inference needs to know about a model, plus its provenance."""

    model_id: str
    model_version: str
    architecture: dict[str, Any]
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...] | None
    normalization: Normalization
    patch_size: int
    classes: tuple[ClassInfo, ...]
    training: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    model_type: str = "FactoFormer"
    padding: str = "symmetric"
    input_name: str = "patches"
    output_name: str = "logits"
    output_kind: str = "logits"
    fwhm_nm: tuple[float, ...] | None = None
    # GDAL band numbers (1-based) the model reads from a raster of raster_band_count bands;
    # None: every band not flagged bad.
    raster_bands: tuple[int, ...] | None = None
    raster_band_count: int | None = None
    # centre: (batch, bands, P, P) -> (batch, classes); dense: (batch, bands, T, T) ->
    # (batch, classes, T, T) with T = tile_size = patch_size.
    prediction: str = CENTRE
    tile_size: int | None = None
    # dense models that read the bands in blocks: block size and zeros added inside the model
    spectral_block: int | None = None
    band_padding: int = 0
    # fp32, or int8 (quantised from an fp32 model; ``quantization`` says how)
    precision: str = FP32
    quantization: dict[str, Any] = field(default_factory=dict)

    @property
    def num_bands(self) -> int:
        return len(self.band_names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_values(self) -> str:
        """``"physical"`` (raw * GDAL scale + offset) or ``"raw"``: what the model expects."""
        return self.normalization.values

    def to_properties(self) -> dict[str, str]:
        """The ``metadata_props`` of the ONNX file: key -> JSON string."""
        values: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model_type": self.model_type,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "description": self.description,
            "architecture": self.architecture,
            "input": {
                "name": self.input_name,
                "shape": ["batch", self.num_bands, self.patch_size, self.patch_size],
                "layout": "batch, band, row, column",
                "dtype": "float32",
            },
            "output": {
                "name": self.output_name,
                "shape": ["batch", self.num_classes]
                + ([self.tile_size, self.tile_size] if self.prediction == DENSE else []),
                "kind": self.output_kind,
            },
            "bands": {
                "count": self.num_bands,
                "names": list(self.band_names),
                "wavelengths_nm": list(self.wavelengths_nm) if self.wavelengths_nm else None,
                "fwhm_nm": list(self.fwhm_nm) if self.fwhm_nm else None,
                "raster_band_numbers": list(self.raster_bands) if self.raster_bands else None,
                "raster_band_count": self.raster_band_count,
                "spectral_block": self.spectral_block,
                "band_padding": self.band_padding,
            },
            "normalization": self.normalization.to_dict(),
            "prediction": self.prediction,
            "patch": {
                "size": self.patch_size,
                "padding": self.padding,
                "tile_size": self.tile_size,
            },
            "classes": [c.to_dict() for c in self.classes],
            "nodata": {
                "class_value": 0,
                "masked_input": [
                    "band no-data value",
                    "NaN or infinite value",
                    "GDAL mask band (per-dataset, per-band or alpha)",
                ],
                "context_fill": "normalization.fill",
                "mask_raster": "pixels not classified; their spectra stay as context",
            },
            "training": self.training,
            "metrics": self.metrics,
            "precision": {"name": self.precision, **self.quantization},
        }
        return {k: json.dumps(v, ensure_ascii=False) for k, v in values.items()}

    @classmethod
    def from_properties(cls, props: Mapping[str, str], source: str = "model") -> ModelMetadata:
        """Parse and validate ``metadata_props``; raises :class:`ModelMetadataError`."""
        if "schema_version" not in props:
            raise ModelMetadataError(
                f"{source} has no FactoFormer metadata (no 'schema_version' key); "
                "export models with `python -m engine export`"
            )
        values: dict[str, Any] = {}
        for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS):
            if key not in props:
                if key in REQUIRED_KEYS:
                    raise ModelMetadataError(f"{source}: metadata key {key!r} is missing")
                continue
            try:
                values[key] = json.loads(props[key])
            except json.JSONDecodeError:
                raise ModelMetadataError(f"{source}: metadata {key!r} is not valid JSON") from None
        version = values["schema_version"]
        if not isinstance(version, int) or version < 1:
            raise ModelMetadataError(f"{source}: invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise ModelMetadataError(
                f"{source} uses metadata schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}: update the plugin"
            )
        try:
            meta = cls._from_values(values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelMetadataError(f"{source}: invalid metadata: {exc}") from None
        meta.validate(source)
        return meta

    @classmethod
    def _from_values(cls, v: dict[str, Any]) -> ModelMetadata:
        bands = v["bands"]
        wavelengths = bands.get("wavelengths_nm")
        fwhm = bands.get("fwhm_nm")
        raster_bands = bands.get("raster_band_numbers")
        raster_band_count = bands.get("raster_band_count")
        return cls(
            model_id=str(v["model_id"]),
            model_version=str(v["model_version"]),
            model_type=str(v["model_type"]),
            description=str(v.get("description", "")),
            architecture=dict(v["architecture"]),
            input_name=str(v["input"]["name"]),
            output_name=str(v["output"]["name"]),
            output_kind=str(v["output"].get("kind", "logits")),
            band_names=tuple(str(n) for n in bands["names"]),
            wavelengths_nm=tuple(float(w) for w in wavelengths) if wavelengths else None,
            fwhm_nm=tuple(float(w) for w in fwhm) if fwhm else None,
            raster_bands=tuple(int(n) for n in raster_bands) if raster_bands else None,
            raster_band_count=int(raster_band_count) if raster_band_count else None,
            normalization=normalization_from_dict(v["normalization"]),
            patch_size=int(v["patch"]["size"]),
            padding=str(v["patch"]["padding"]),
            prediction=str(v.get("prediction", CENTRE)),
            tile_size=_optional_int(v["patch"].get("tile_size")),
            spectral_block=_optional_int(bands.get("spectral_block")),
            band_padding=int(bands.get("band_padding") or 0),
            classes=tuple(ClassInfo.from_dict(c) for c in v["classes"]),
            training=dict(v["training"]),
            metrics=dict(v.get("metrics") or {}),
            **_precision_fields(v.get("precision")),
        )

    def validate(self, source: str = "model") -> None:
        """Check internal consistency; raises :class:`ModelMetadataError`."""
        problems = []
        if self.model_type not in MODEL_TYPES:
            problems.append(
                f"unknown model_type {self.model_type!r} (this version knows "
                f"{', '.join(MODEL_TYPES)}: update the plugin)"
            )
        if self.output_kind not in OUTPUT_KINDS:
            problems.append(f"unknown output kind {self.output_kind!r}")
        if self.padding not in PADDING_MODES:
            problems.append(f"unknown padding {self.padding!r}")
        if self.precision not in PRECISIONS:
            problems.append(
                f"unknown precision {self.precision!r} (this version knows "
                f"{', '.join(PRECISIONS)}: update the plugin)"
            )
        problems.extend(self._geometry_problems())
        if self.normalization.num_bands != self.num_bands:
            problems.append(
                f"normalisation has {self.normalization.num_bands} bands, model {self.num_bands}"
            )
        problems.extend(self.normalization.problems())
        for name, per_band in (("wavelengths_nm", self.wavelengths_nm), ("fwhm_nm", self.fwhm_nm)):
            if per_band is not None and len(per_band) != self.num_bands:
                problems.append(f"{len(per_band)} {name} for {self.num_bands} bands")
        problems.extend(self._raster_band_problems())
        values = [c.value for c in self.classes]
        if values != list(range(1, len(values) + 1)):
            problems.append("class values must be 1..N in order")
        if len(values) < 2:
            problems.append("a classifier needs at least 2 classes")
        arch = self.architecture
        if arch.get("num_bands") != self.num_bands or arch.get("num_classes") != self.num_classes:
            problems.append("architecture band/class counts disagree with bands/classes")
        if problems:
            raise ModelMetadataError(f"{source}: inconsistent metadata: {'; '.join(problems)}")

    def _geometry_problems(self) -> list[str]:
        """Patch or tile geometry for the prediction mode, checked against the architecture."""
        arch, p = self.architecture, self.patch_size
        if self.prediction == CENTRE:
            problems = [] if p >= 1 and p % 2 else [f"patch size {p} is not a positive odd number"]
            if self.tile_size is not None:
                problems.append("tile_size is for dense models (prediction 'dense')")
            if arch.get("patch_size") != p:
                problems.append("architecture patch_size disagrees with patch.size")
            return problems
        if self.prediction != DENSE:
            return [f"unknown prediction {self.prediction!r} (expected centre or dense)"]
        t = self.tile_size
        if t is None or t < 1:
            return [f"a dense model needs a tile_size of at least 1, got {t}"]
        problems = []
        if p != t:
            problems.append(f"patch.size {p} must equal the tile_size {t} of a dense model")
        if arch.get("tile_size", t) != t:
            problems.append("architecture tile_size disagrees with patch.tile_size")
        block, pad = self.spectral_block, self.band_padding
        if block is not None and (block < 1 or not 0 <= pad < block):
            problems.append(
                f"spectral_block {block} with band_padding {pad}: need 0 <= pad < block"
            )
        elif block is not None and (self.num_bands + pad) % block:
            problems.append(
                f"{self.num_bands} bands + {pad} padding is not a multiple of "
                f"spectral_block {block}"
            )
        elif block is None and pad:
            problems.append("band_padding needs a spectral_block")
        return problems

    def _raster_band_problems(self) -> list[str]:
        numbers, count = self.raster_bands, self.raster_band_count
        if numbers is None and count is None:
            return []
        if numbers is None or count is None:
            return ["raster_band_numbers and raster_band_count go together"]
        problems = []
        if len(numbers) != self.num_bands:
            problems.append(f"{len(numbers)} raster_band_numbers for {self.num_bands} bands")
        if list(numbers) != sorted(set(numbers)) or not all(1 <= n <= count for n in numbers):
            problems.append(f"raster_band_numbers must be increasing numbers in 1..{count}")
        return problems


def _precision_fields(value: Any) -> dict[str, Any]:
    """``precision`` and ``quantization`` from the ``precision`` entry (absent: fp32)."""
    if value is None:
        return {}
    details = dict(value)
    return {"precision": str(details.pop("name")), "quantization": details}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
