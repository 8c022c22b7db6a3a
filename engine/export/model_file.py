"""Write an ONNX graph with its metadata embedded, checked and moved into place atomically."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from ..errors import ModelLoadError, first_line
from ..metadata import ModelMetadata

PRODUCER = "factoformer-qgis engine"


def embed_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> onnx.ModelProto:
    """Replace the model's ``metadata_props`` (and doc string) by ``metadata``; in place."""
    proto.producer_name = PRODUCER
    proto.doc_string = metadata.description or f"{metadata.model_type} {metadata.model_id}"
    del proto.metadata_props[:]
    for key, value in metadata.to_properties().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def write_model(
    proto: onnx.ModelProto, metadata: ModelMetadata, path: str | os.PathLike[str]
) -> Path:
    """Embed ``metadata``, run the ONNX checker and write ``path`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    embed_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | os.PathLike[str]) -> tuple[onnx.ModelProto, ModelMetadata]:
    """An ONNX file and its parsed metadata (data only: no code runs)."""
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own types for corrupt files
        raise ModelLoadError(f"{path.name} is not a valid ONNX model: {first_line(exc)}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    return proto, ModelMetadata.from_properties(props, source=path.name)
