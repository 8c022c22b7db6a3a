"""Where the time goes, by operator, in the fp32 and int8 FactoFormer; which reduced-precision
kernels ONNX Runtime's CPU provider has.

Each variant (the shipped model and its ``quantize`` copy) runs 512 patches of random pixels
of the bundled scene in batches of 64 on one single-threaded ONNX Runtime session, once to
warm up and once under ONNX Runtime's profiler; kernel time is summed by operator type.
"Linear" is every MatMul/Gemm form; the bounds are the speed-ups if they, or everything
but the float32 attention, took no time at all.
Then a one-node MatMul and MultiHeadAttention graph is opened in bfloat16 and float16.

Usage: python benchmarks/profile_precision.py
"""

from __future__ import annotations

import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import SHIPPED_MODEL  # noqa: E402

LINEAR = {"MatMul", "Gemm", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
LINEAR |= {"QLinearMatMul", "MatMulInteger"}


def scene_patches(count: int = 512) -> np.ndarray:
    from engine.data.prepared import PreparedScene
    from engine.data.scenes import load_indian_pines
    from engine.infer.model import OnnxClassifier

    scene = load_indian_pines()
    norm = OnnxClassifier(SHIPPED_MODEL).metadata.normalization
    pick = np.random.default_rng(0).choice(145 * 145, count, replace=False)
    return PreparedScene.from_scene(scene, 7, norm).extractor(pick // 145, pick % 145)


def op_shares(path: Path, patches: np.ndarray, prefix: Path) -> dict[str, float]:
    """Share of kernel time per operator type over one profiled pass."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for i in range(0, len(patches), 64):  # warm-up
        session.run(None, {"patches": patches[i : i + 64]})
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for i in range(0, len(patches), 64):
        session.run(None, {"patches": patches[i : i + 64]})
    events = json.loads(Path(session.end_profiling()).read_text())
    time = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            time[e["args"]["op_name"]] += e["dur"]
    total = sum(time.values())
    return {op: t / total for op, t in time.most_common()}


def kernel_available(elem_type: int, op: str) -> str:
    """Whether the CPU provider opens a one-node graph of ``op`` in ``elem_type``."""
    names = ["a", "b"] if op == "MatMul" else ["q", "k", "v"]
    shape = [2, 8, 8] if op == "MatMul" else [2, 8, 32]
    attrs = {} if op == "MatMul" else {"num_heads": 4}
    domain = "" if op == "MatMul" else "com.microsoft"
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], domain=domain, **attrs)],
        "g",
        [helper.make_tensor_value_info(n, elem_type, shape) for n in names],
        [helper.make_tensor_value_info("y", elem_type, None)],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # NOT_IMPLEMENTED and friends
        return str(exc).split(":")[2].strip() if str(exc).count(":") >= 2 else str(exc)
    return "available"


def main() -> None:
    from engine.export.precision import quantize_model

    patches = scene_patches()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"fp32": SHIPPED_MODEL, "int8": quantize_model(SHIPPED_MODEL, tmp / "i8.onnx")}
        shares = {name: op_shares(path, patches, tmp / name) for name, path in variants.items()}
    print(f"ONNX Runtime {ort.__version__}, one thread, {len(patches)} scene patches, batch 64")
    for name, share in shares.items():
        top = ", ".join(f"{op} {100 * s:.1f} %" for op, s in list(share.items())[:6])
        linear = sum(s for op, s in share.items() if op in LINEAR)
        print(f"{name}: {top}")
        attention = share.get("MultiHeadAttention", 0.0)
        print(
            f"  linear layers {100 * linear:.1f} % (at most {1 / (1 - linear):.2f}x if free); "
            f"attention {100 * attention:.1f} %"
            f" (at most {1 / attention:.2f}x if all else were free)"
        )
    for elem_type, label in ((TensorProto.BFLOAT16, "bfloat16"), (TensorProto.FLOAT16, "float16")):
        for op in ("MatMul", "MultiHeadAttention"):
            print(f"{label} {op} on the CPU provider: {kernel_available(elem_type, op)}")


if __name__ == "__main__":
    main()
