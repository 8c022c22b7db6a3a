"""Exceptions raised by the engine. Every message is one line that says what to change."""

from __future__ import annotations


class EngineError(Exception):
    """Root of all errors the engine raises on purpose."""


class DatasetNotFoundError(EngineError, FileNotFoundError):
    """A benchmark scene or one of its files is missing."""


class RasterReadError(EngineError, OSError):
    """A raster cannot be opened or read."""


class BandMismatchError(EngineError, ValueError):
    """The raster's bands do not match what the model expects."""


class ModelLoadError(EngineError, ValueError):
    """A model file is missing, unreadable or not a valid ONNX model."""


class ModelMetadataError(EngineError, ValueError):
    """An ONNX model lacks valid FactoFormer metadata."""


class PrecisionError(EngineError, ValueError):
    """A precision is unknown, unavailable, or cannot be applied to a model."""


class InferenceError(EngineError, RuntimeError):
    """ONNX Runtime failed while running a model (e.g. out of memory)."""


class InputDataError(EngineError, ValueError):
    """Input data cannot be classified (too small, no valid pixels, bad labels...)."""


class OutputError(EngineError, OSError):
    """An output cannot be written."""


class CancelledError(EngineError):
    """The user cancelled the operation; no output was left behind."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
