"""Lower-precision variants of exported ONNX models (needs onnx and ONNX Runtime, not torch).

``int8``: ONNX Runtime's dynamic quantisation of the ``MatMul`` and ``Gemm`` layers: weights
stored as int8 (one scale per tensor), activations quantised to uint8 per batch at run time,
products summed in int32 (AVX-512 VNNI where the CPU has it). Attention (the contrib
``MultiHeadAttention``), LayerNorm, GELU and softmax stay float32: ONNX Runtime has no
integer kernels for them. Static quantisation (scales calibrated on training pixels) was
measured too and was no faster than fp32 (``benchmarks/bench_precision.py``), so only the
dynamic form is offered. ``bf16`` is refused: ONNX Runtime's CPU provider has no bfloat16
MatMul or attention kernels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from pathlib import Path

import onnx

from ..errors import PrecisionError, first_line
from ..metadata import FP32, INT8, PRECISIONS, ModelMetadata
from .model_file import read_metadata, write_model

QUANTIZED_OPS = ("MatMul", "Gemm")
UNAVAILABLE = {
    "bf16": "ONNX Runtime's CPU provider has no bfloat16 MatMul or attention kernels",
}


def check_precision(name: str) -> str:
    """``name`` if it is a precision the exporter writes; else a one-line PrecisionError."""
    if name in PRECISIONS:
        return name
    why = f": {UNAVAILABLE[name]}" if name in UNAVAILABLE else ""
    raise PrecisionError(
        f"precision {name!r} is not available{why} (choose {' or '.join(PRECISIONS)})"
    )


def quantize_model(
    source: str | os.PathLike[str], output: str | os.PathLike[str], precision: str = INT8
) -> Path:
    """Write ``output``: the fp32 model ``source`` at ``precision``, its metadata saying so.

    The metadata is the source's (metrics included, marked as measured on the fp32 model)
    plus ``precision``. ``output`` appears only when complete; it may not be ``source``.
    """
    check_precision(precision)
    source, output = Path(source), Path(output)
    if output.exists() and output.resolve() == source.resolve():
        raise PrecisionError(f"--output {output} is the model being quantised; choose another file")
    proto, meta = read_metadata(source)
    if meta.precision != FP32:
        raise PrecisionError(
            f"{source.name} is already {meta.precision}; quantise its fp32 model instead"
        )
    if precision == FP32:
        return write_model(proto, meta, output)
    weights = {init.name for init in proto.graph.initializer}
    nodes = [
        n.name
        for n in proto.graph.node
        if n.op_type in QUANTIZED_OPS and any(i in weights for i in n.input)
    ]
    if not nodes:
        raise PrecisionError(
            f"{source.name} has no {'/'.join(QUANTIZED_OPS)} layers with weights to quantise"
        )
    quantized, tool = _quantize_dynamic(proto, source.name)
    details = {
        "method": "onnxruntime dynamic quantization",
        "weights": "int8, one scale per tensor",
        "activations": "uint8, scale and zero point from each batch at run time",
        "operators": list(QUANTIZED_OPS),
        "quantized_nodes": len(nodes),
        "tool": tool,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "metrics": "measured on the fp32 source model",
    }
    return write_model(
        quantized, dataclasses.replace(meta, precision=precision, quantization=details), output
    )


def _quantize_dynamic(proto: onnx.ModelProto, name: str) -> tuple[onnx.ModelProto, str]:
    """The graph with its MatMul/Gemm weights quantised by ONNX Runtime (dynamic, int8),
    and the tool's name and version."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "int8.onnx"
        logging.disable(logging.WARNING)  # the quantiser's advice goes to the root logger
        try:
            quantize_dynamic(
                proto,
                path,
                op_types_to_quantize=list(QUANTIZED_OPS),
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # the quantiser raises assorted types on graphs it cannot read
            raise PrecisionError(
                f"ONNX Runtime cannot quantise {name}: {first_line(exc)}"
            ) from None
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(str(path))
    return quantized, f"onnxruntime {onnxruntime.__version__}"


def describe(meta: ModelMetadata) -> str:
    """One line for ``info``: the precision and, for int8, what was quantised."""
    if meta.precision == FP32:
        return "precision: fp32"
    q = meta.quantization
    ops = "/".join(q.get("operators", ())) or "some layers"
    return (
        f"precision: {meta.precision} ({q.get('method', 'quantised')} of {ops}); "
        "the accuracy below was measured on its fp32 model"
    )
