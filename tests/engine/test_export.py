"""ONNX export: parity with PyTorch, dynamic batch, metadata schema and its validation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from helpers import REPO

from engine.data.prepared import PreparedScene
from engine.errors import ModelLoadError, ModelMetadataError
from engine.evaluation import evaluate_labels
from engine.export.onnx import export_onnx, max_logit_difference
from engine.infer.model import OnnxClassifier, softmax
from engine.metadata import SCHEMA_VERSION, ModelMetadata
from engine.training.checkpoint import load_checkpoint


@pytest.mark.parametrize("portable", [False, True])
def test_onnx_matches_pytorch_on_real_indian_pines_patches(ip_smoke_model, tmp_path, portable):
    ckpt = load_checkpoint(ip_smoke_model.run_dir)
    meta = OnnxClassifier(ip_smoke_model.onnx).metadata
    path = export_onnx(ckpt, meta, tmp_path / "m.onnx", portable=portable)
    domains = {node.domain for node in onnx.load(str(path)).graph.node}
    assert ("com.microsoft" in domains) != portable
    scene = ip_smoke_model.scene
    prepared = PreparedScene.from_scene(scene, 7, ckpt.normalization)
    rows, cols, _ = scene.pixels(scene.test_labels)
    pick = np.random.default_rng(0).choice(len(rows), 300, replace=False)
    patches = prepared.extractor(rows[pick], cols[pick])
    assert max_logit_difference(ckpt, path, patches) <= 1e-4


@pytest.mark.parametrize("batch", [1, 37])
def test_batch_axis_is_dynamic(ip_smoke_model, batch):
    model = OnnxClassifier(ip_smoke_model.onnx)
    patches = np.random.default_rng(batch).random((batch, 200, 7, 7), dtype=np.float32)
    probs = softmax(model.logits(patches))
    assert probs.shape == (batch, 16)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_metadata_describes_the_model(ip_smoke_model):
    meta = OnnxClassifier(ip_smoke_model.onnx).metadata
    ckpt = load_checkpoint(ip_smoke_model.run_dir)
    assert meta.model_id == "ip-smoke" and meta.model_type == "FactoFormer"
    assert meta.num_bands == 200 and meta.band_names == ckpt.band_names
    assert meta.patch_size == 7 and meta.padding == "symmetric"
    assert [c.name for c in meta.classes] == [c.name for c in ckpt.classes]
    assert np.array_equal(meta.normalization.minimum, ckpt.normalization.minimum)
    assert meta.training["seed"] == 0 and meta.training["recipe"]["batch_size"] == 32
    assert meta.training["dataset"] == "indian_pines"
    run_metrics = json.loads((ip_smoke_model.run_dir / "metrics.json").read_text())
    assert meta.metrics["test"]["overall_accuracy"] == run_metrics["test"]["overall_accuracy"]
    assert meta.metrics["test"]["pixels"] == 9671
    props = {p.key: p.value for p in onnx.load(str(ip_smoke_model.onnx)).metadata_props}
    assert json.loads(props["schema_version"]) == SCHEMA_VERSION
    assert {type(json.loads(v)) for v in props.values()} <= {dict, list, str, int}


def test_onnx_evaluation_equals_pytorch_evaluation(ip_smoke_model):
    model = OnnxClassifier(ip_smoke_model.onnx)
    scene = ip_smoke_model.scene
    prepared = PreparedScene.from_scene(scene, 7, model.metadata.normalization)
    onnx_metrics = evaluate_labels(model.map_logits, prepared, scene.test_labels)
    saved = json.loads((ip_smoke_model.run_dir / "metrics.json").read_text())["test"]
    assert onnx_metrics.confusion.tolist() == saved["confusion_matrix"]


def _rewrite(src, dst, edit):
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    props = edit(props)
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(dst))
    return dst


def test_model_without_metadata_is_refused(tiny_model, tmp_path):
    bare = _rewrite(tiny_model.onnx, tmp_path / "bare.onnx", lambda p: {})
    with pytest.raises(ModelMetadataError, match="no FactoFormer metadata") as exc:
        OnnxClassifier(bare)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: {**p, "schema_version": "99"}, "schema 99"),
        (lambda p: {k: v for k, v in p.items() if k != "classes"}, "'classes' is missing"),
        (lambda p: {**p, "bands": "{not json"}, "not valid JSON"),
        (lambda p: {**p, "classes": json.dumps(json.loads(p["classes"])[:2])}, "class counts"),
        (
            lambda p: {
                **p,
                "normalization": json.dumps(
                    {
                        **json.loads(p["normalization"]),
                        "minimum": [0.0],
                        "maximum": [1.0],
                        "fill": [0.5],
                    }
                ),
            },
            "normalisation has 1 bands",
        ),
    ],
)
def test_invalid_metadata_is_refused_with_reason(tiny_model, tmp_path, edit, message):
    broken = _rewrite(tiny_model.onnx, tmp_path / "broken.onnx", edit)
    with pytest.raises(ModelMetadataError, match=message):
        OnnxClassifier(broken)


def test_corrupt_or_missing_model_file_is_refused(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        OnnxClassifier(corrupt)
    with pytest.raises(ModelLoadError, match="not found"):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_metadata_round_trip(tiny_model):
    meta = OnnxClassifier(tiny_model.onnx).metadata
    again = ModelMetadata.from_properties(meta.to_properties())
    assert again.to_properties() == meta.to_properties()
    assert meta.wavelengths_nm is not None and len(meta.wavelengths_nm) == 12


def test_cli_export_reports_parity(ip_smoke_model, tmp_path):
    out = tmp_path / "cli.onnx"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "export",
            str(ip_smoke_model.run_dir),
            "--output",
            str(out),
            "--model-id",
            "cli-test",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "max |logit| difference" in proc.stdout
    assert OnnxClassifier(out).metadata.model_id == "cli-test"


def test_weights_read_back_from_onnx_equal_the_trained_weights(ip_smoke_model):
    from engine.export.model_file import read_metadata
    from engine.export.onnx_weights import factoformer_from_onnx

    trained = load_checkpoint(ip_smoke_model.run_dir).model.state_dict()
    recovered = factoformer_from_onnx(*read_metadata(ip_smoke_model.onnx)).state_dict()
    assert recovered.keys() == trained.keys()
    for name, value in trained.items():
        assert torch.equal(recovered[name], value), name


def test_reexport_refuses_a_model_that_is_not_a_factoformer(tmp_path):
    cnn = tmp_path / "cnn.onnx"
    proto = onnx.load(str(REPO / "models" / "factoformer_indian_pines.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "model_type":
            prop.value = '"CNN3D"'
    onnx.save(proto, str(cnn))
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "reexport_model.py"), str(cnn)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


def _export_cli(run_dir, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "engine", "export", str(run_dir), "--output", str(out)]
        + ["--model-id", "named", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_export_names_the_classes_from_a_table(ip_smoke_model, tmp_path):
    table = tmp_path / "classes.csv"
    rows = [f"{v},crop {v},{'#00ff00' if v == 3 else ''}" for v in range(1, 17)]
    table.write_text("value,name,colour\n" + "\n".join(rows) + "\n")
    before = {c.value: c.color for c in OnnxClassifier(ip_smoke_model.onnx).metadata.classes}
    proc = _export_cli(ip_smoke_model.run_dir, tmp_path / "m.onnx", "--classes", str(table))
    assert proc.returncode == 0, proc.stderr
    classes = OnnxClassifier(tmp_path / "m.onnx").metadata.classes
    assert [c.name for c in classes] == [f"crop {v}" for v in range(1, 17)]
    assert classes[2].color == "#00ff00" and classes[3].color == before[4]


def test_a_network_run_with_an_onnx_file_inside_is_exported_from_its_checkpoint(
    ip_smoke_model, tmp_path
):
    """A study that exports into its run folder (model.onnx beside checkpoint.pt) is
    still a network run: re-exported from the checkpoint, classes renamed, parity checked."""
    run = tmp_path / "run"
    shutil.copytree(ip_smoke_model.run_dir, run)
    shutil.copy(ip_smoke_model.onnx, run / "model.onnx")
    table = tmp_path / "classes.csv"
    table.write_text("".join(f"{v},crop {v}\n" for v in range(1, 17)))
    proc = _export_cli(run, tmp_path / "m.onnx", "--classes", str(table))
    assert proc.returncode == 0, proc.stderr
    assert "max |logit| difference" in proc.stdout
    meta = OnnxClassifier(tmp_path / "m.onnx").metadata
    assert meta.model_id == "named" and meta.classes[0].name == "crop 1"


def test_export_refuses_a_class_table_that_does_not_fit_the_model(ip_smoke_model, tmp_path):
    table = tmp_path / "classes.csv"
    table.write_text("1,roof\n2,water\n")
    out = tmp_path / "m.onnx"
    proc = _export_cli(ip_smoke_model.run_dir, out, "--classes", str(table))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: classes.csv lists classes [1, 2], the model has {list(range(1, 17))}"
    )
    assert not out.exists()
