"""ONNX models with FactoFormer metadata, run with ONNX Runtime (no torch)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import InferenceError, ModelLoadError, ModelMetadataError, first_line
from ..metadata import DENSE, ModelMetadata
from ..system import available_cores

MAX_WORKERS = 8  # each in-flight batch of 64 patches needs about 50 MB


class OnnxClassifier:
    """A patch classifier loaded from a self-describing ONNX file.

    Loading parses data only (ONNX protobuf); no code in the file is executed.

    Each ONNX Runtime call uses one thread; :meth:`map_logits` keeps ``workers`` calls
    running at once: on 2 cores, two single-threaded calls on small batches outran one
    two-threaded call on large ones (benchmarks/bench_inference.py measures the result).

    Args:
        path: the ``.onnx`` file.
        workers: concurrent calls; None uses every core (at most :data:`MAX_WORKERS`).
    """

    def __init__(self, path: str | os.PathLike[str], workers: int | None = None) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ModelLoadError(f"model {self.path} is a folder; give the .onnx file inside it")
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        self.workers = workers or min(available_cores(), MAX_WORKERS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelLoadError(
                f"{self.path.name} is not a valid ONNX model: {first_line(exc)}"
            ) from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_properties(props, source=self.path.name)
        self._check_signature()

    def _check_signature(self) -> None:
        meta = self.metadata
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if meta.input_name not in inputs or meta.output_name not in outputs:
            raise ModelMetadataError(
                f"{self.path.name}: metadata names input {meta.input_name!r} / output "
                f"{meta.output_name!r}, the graph has {sorted(inputs)} / {sorted(outputs)}"
            )
        p = meta.patch_size
        expected = [meta.num_bands, p, p]
        shape = inputs[meta.input_name].shape
        if len(shape) != 4 or [d for d in shape[1:]] != expected:
            raise ModelMetadataError(
                f"{self.path.name}: graph input shape {shape} does not match the metadata "
                f"(batch, {meta.num_bands}, {p}, {p})"
            )
        # centre: (batch, classes); dense: (batch, classes, T, T)
        expected = [meta.num_classes] + ([p, p] if meta.prediction == DENSE else [])
        out_shape = outputs[meta.output_name].shape
        if len(out_shape) != len(expected) + 1 or list(out_shape[1:]) != expected:
            raise ModelMetadataError(
                f"{self.path.name}: graph output shape {out_shape} does not match the metadata "
                f"(batch, {', '.join(map(str, expected))})"
            )

    def logits(self, patches: np.ndarray) -> np.ndarray:
        """(n, bands, p, p) float32 normalised patches -> (n, classes) logits, or
        (n, classes, p, p) for a dense model."""
        try:
            return self.session.run(
                [self.metadata.output_name], {self.metadata.input_name: patches}
            )[0]
        except Exception as exc:  # ORT raises its own exception types
            raise InferenceError(
                f"ONNX Runtime failed on {self.path.name}: {first_line(exc)}"
            ) from None

    def map_logits(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Logits of each batch, in order, with up to ``workers`` batches in flight.

        Batches are drawn from ``batches`` only as workers free up, so memory stays at
        ``workers`` batches. Stopping early waits for the calls already running.
        """
        with ThreadPoolExecutor(self.workers) as pool:
            pending: deque[Future[np.ndarray]] = deque()
            for patches in batches:
                pending.append(pool.submit(self.logits, patches))
                if len(pending) >= self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted, dtype=np.float32)
    return exp / exp.sum(axis=1, keepdims=True)
