"""Masked-reconstruction pretraining: masks, objectives, resume, transfer, labels, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import REPO, TINY_CONFIG, read_raster

from engine.config import (
    PRETRAINING_RECIPES,
    FactoFormerConfig,
    PretrainingRecipe,
    TrainingRecipe,
    default_pretraining_recipe,
)
from engine.data.classes import make_classes
from engine.data.prepared import PreparedScene
from engine.data.scenes import Scene, load_raster_scene
from engine.errors import CancelledError, InputDataError
from engine.pretraining.data import raster_pixels, scene_unlabelled_pixels, unlabelled_pixels
from engine.pretraining.masking import TokenMasker
from engine.pretraining.objectives import MaskedReconstruction
from engine.pretraining.run import finished_or_pretrained, pretrain_branch
from engine.pretraining.transfer import load_branch, load_run
from engine.training.checkpoint import load_checkpoint
from engine.training.trainer import train

TINY = FactoFormerConfig(**TINY_CONFIG)
VARIANTS = [("mask-token", 0), ("visible", 1)]


def _recipe(**changes) -> PretrainingRecipe:
    return replace(PretrainingRecipe(epochs=3, learning_rate=2e-3, batch_size=64), **changes)


class _CancelAfter:
    """Feedback that asks to stop once ``steps`` steps have run."""

    def __init__(self, steps: int) -> None:
        self.calls, self.steps = 0, steps

    def set_progress(self, fraction: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        self.calls += 1
        return self.calls > self.steps


@pytest.fixture(scope="module")
def pixels(synthetic_scene_files):
    return raster_pixels([synthetic_scene_files["raster"]])


@pytest.mark.parametrize(("tokens", "hidden"), [(49, 34), (200, 140), (12, 8)])
@pytest.mark.parametrize("mode", ["fixed", "redrawn"])
def test_masks_hide_exactly_int_ratio_tokens(tokens, hidden, mode):
    masker = TokenMasker(500, tokens, 0.7, mode, seed=0)
    masks = masker(np.arange(500), step=3)
    assert masks.shape == (500, tokens) and masks.dtype == bool
    assert (masks.sum(axis=1) == hidden).all()
    assert np.abs(masks.mean(axis=0) - hidden / tokens).max() < 0.1  # every token alike
    if tokens >= 49:
        assert len({row.tobytes() for row in masks}) == 500  # samples get their own masks


def test_fixed_masks_stay_with_their_sample_and_redrawn_masks_change():
    fixed = TokenMasker(100, 49, 0.7, "fixed", seed=1)
    first = fixed(np.array([5, 7, 9]), step=0)
    assert np.array_equal(fixed(np.array([9, 5]), step=40), first[[2, 0]])
    redrawn = TokenMasker(100, 49, 0.7, "redrawn", seed=1)
    a, b = redrawn(np.array([5, 7, 9]), step=0), redrawn(np.array([5, 7, 9]), step=1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, redrawn(np.array([5, 7, 9]), step=0))  # a pure function: resumable


def _hidden_in_patch(masks: np.ndarray, branch: str, bands: int, p: int) -> np.ndarray:
    """Which (band, row, col) values a token mask hides, written out independently."""
    hidden = np.zeros((len(masks), bands, p, p), dtype=bool)
    for i, m in enumerate(masks):
        for t in np.flatnonzero(m):
            if branch == "pixel":
                hidden[i, :, t // p, t % p] = True  # a pixel in every band
            else:
                hidden[i, t, :, :] = True  # a band over the whole patch
    return hidden


@pytest.mark.parametrize("branch", ["pixel", "band"])
@pytest.mark.parametrize(("encoder", "depth"), VARIANTS)
def test_hidden_values_never_reach_the_reconstruction(branch, encoder, depth):
    torch.manual_seed(0)
    config = TINY.encoder(branch)
    model = MaskedReconstruction(config, encoder == "visible", depth).eval()
    masks = TokenMasker(4, config.num_tokens, 0.7, "fixed", seed=2)(np.arange(4), 0)
    hidden = torch.from_numpy(_hidden_in_patch(masks, branch, 12, 7))
    patches = torch.rand(4, 12, 7, 7)
    masks_t = torch.from_numpy(masks)
    with torch.no_grad():
        reference = model(patches, masks_t)
        changed_hidden = model(patches + 5.0 * hidden, masks_t)
        one_visible = (~hidden).nonzero()[0].tolist()
        poked = patches.clone()
        poked[tuple(one_visible)] += 5.0
        changed_visible = model(poked, masks_t)
    assert torch.equal(reference, changed_hidden)
    assert not torch.allclose(reference[one_visible[0]], changed_visible[one_visible[0]])


@pytest.mark.parametrize(("encoder", "depth"), VARIANTS)
@pytest.mark.parametrize("branch", ["pixel", "band"])
def test_reconstruction_loss_falls_on_a_tiny_run(pixels, tmp_path, branch, encoder, depth):
    recipe = _recipe(epochs=6, encoder=encoder, decoder_depth=depth)
    done = pretrain_branch(pixels, TINY.encoder(branch), recipe, tmp_path)
    assert done.provenance["epochs"] == 6 and done.provenance["steps"] == 6 * 12  # 720 / 64
    history = json.loads((tmp_path / branch / "pretraining.json").read_text())["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["masked_mse"] < history[0]["masked_mse"]


@pytest.mark.parametrize("masks", ["fixed", "redrawn"])
def test_resume_after_cancel_equals_uninterrupted_run(pixels, tmp_path, masks):
    recipe = _recipe(epochs=3, masks=masks)
    config = TINY.encoder("pixel")
    whole = pretrain_branch(pixels, config, recipe, tmp_path / "whole")
    with pytest.raises(CancelledError):
        pretrain_branch(pixels, config, recipe, tmp_path / "cut", _CancelAfter(17))  # in epoch 2
    state = torch.load(tmp_path / "cut" / "pixel" / "state.pt", weights_only=True)
    assert state["epochs_done"] == 1 and state["steps"] == 12
    torch.manual_seed(99)  # resume must not depend on the process's RNG states
    resumed = pretrain_branch(pixels, config, recipe, tmp_path / "cut", resume=True)
    assert resumed.provenance["steps"] == whole.provenance["steps"] == 36
    for key, value in whole.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key


def test_a_finished_branch_is_reused_continued_or_refused(pixels, tmp_path):
    epoch = -(-len(pixels) // 64)  # steps per epoch
    recipe = _recipe(epochs=2, max_steps=epoch)
    first = finished_or_pretrained(tmp_path, "band", recipe, lambda: pixels)
    assert first.provenance["steps"] == epoch

    def no_pixels():
        raise AssertionError("a finished branch was trained again")

    again = finished_or_pretrained(tmp_path, "band", recipe, no_pixels)
    for key, value in first.state_dict.items():
        assert torch.equal(value, again.state_dict[key]), key
    longer = finished_or_pretrained(
        tmp_path, "band", replace(recipe, max_steps=None), lambda: pixels
    )
    assert longer.provenance["steps"] == 2 * epoch
    with pytest.raises(InputDataError, match="another recipe"):
        finished_or_pretrained(tmp_path, "band", _recipe(epochs=2, masks="redrawn"), lambda: pixels)
    with pytest.raises(InputDataError, match=f"for {2 * epoch} steps, not fewer"):
        finished_or_pretrained(tmp_path, "band", recipe, no_pixels)


@pytest.mark.parametrize("augment", ["none", "dihedral"])
def test_supervised_training_resumes_bit_for_bit(synthetic_scene_files, tmp_path, augment):
    files = synthetic_scene_files
    prepared = PreparedScene.from_scene(
        load_raster_scene(files["raster"], files["train"], files["test"]), 7
    )
    recipe = TrainingRecipe(epochs=3, learning_rate=1e-3, batch_size=16, seed=5, augment=augment)
    state = tmp_path / "state.pt"
    whole = train(prepared, recipe, TINY, False)
    with pytest.raises(CancelledError):
        train(prepared, recipe, TINY, feedback=_CancelAfter(8), state_path=state)
    resumed = train(prepared, recipe, TINY, False, state_path=state, resume=True)
    assert resumed.steps == whole.steps == 15
    assert resumed.history[0] == {**whole.history[0], "seconds": resumed.history[0]["seconds"]}
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_state_written_before_a_recipe_field_existed_still_resumes(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    prepared = PreparedScene.from_scene(
        load_raster_scene(files["raster"], files["train"], files["test"]), 7
    )
    recipe = TrainingRecipe(epochs=2, learning_rate=1e-3, batch_size=16, seed=5)
    state = tmp_path / "state.pt"
    with pytest.raises(CancelledError):
        train(prepared, recipe, TINY, feedback=_CancelAfter(6), state_path=state)
    saved = torch.load(state, weights_only=True)
    del saved["recipe"]["augment"]  # as written before the field was added
    torch.save(saved, state)
    resumed = train(prepared, recipe, TINY, False, state_path=state, resume=True)
    assert resumed.steps == 10
    with pytest.raises(InputDataError, match="another recipe"):
        train(
            prepared,
            replace(recipe, augment="dihedral"),
            TINY,
            False,
            state_path=state,
            resume=True,
        )


def _labelled_scene(class_values: tuple[int, int, int]) -> Scene:
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 1000, (16, 18, 12)).astype(np.int16)
    train, test = np.zeros((16, 18), np.int32), np.zeros((16, 18), np.int32)
    train[2:5, 3:9] = class_values[0]
    train[10, :] = class_values[1]
    test[6:8, 1:4] = class_values[2]
    names = tuple(f"b{i}" for i in range(12))
    return Scene("lab", cube, train, test, make_classes(["a", "b", "c"]), names)


def test_pretraining_reads_whether_a_pixel_is_labelled_never_its_class():
    a, b = _labelled_scene((1, 2, 3)), _labelled_scene((3, 1, 2))
    pa, pb = scene_unlabelled_pixels(a), scene_unlabelled_pixels(b)
    expected = np.argwhere((a.train_labels == 0) & (a.test_labels == 0))
    assert np.array_equal(np.stack([pa.rows, pa.cols], 1), expected)
    assert len(pa) == 16 * 18 - 18 - 18 - 6
    config = replace(TINY.encoder("band"), num_bands=12)
    recipe = _recipe(epochs=1, max_steps=3, batch_size=32)
    wa = pretrain_branch(pa, config, recipe).state_dict
    wb = pretrain_branch(pb, config, recipe).state_dict
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(TypeError, match="boolean mask"):
        unlabelled_pixels(a.cube, a.train_labels, a.band_names)  # label values are refused


@pytest.mark.parametrize("outer_norm", [False, True])
def test_fine_tuning_starts_from_exactly_the_pretrained_weights(
    pixels, synthetic_scene_files, outer_norm
):
    files = synthetic_scene_files
    prepared = PreparedScene.from_scene(
        load_raster_scene(files["raster"], files["train"], files["test"]), 7
    )
    pixel = pretrain_branch(pixels, TINY.encoder("pixel"), _recipe(epochs=1, max_steps=4))
    at_start = TrainingRecipe(epochs=1, seed=3, max_steps=0)  # no step: the initial weights
    scratch = train(prepared, at_start, TINY, False).model.state_dict()
    tuned = train(
        prepared, at_start, TINY, False, pretrained=[pixel], transfer_outer_norm=outer_norm
    )
    start = tuned.model.state_dict()
    transferred = 0
    for key, value in start.items():
        branch_key = key.removeprefix("pixel_encoder.")
        is_transferred = key.startswith("pixel_encoder.") and (
            outer_norm or not branch_key.startswith("outer_norm.")
        )
        expected = pixel.state_dict[branch_key] if is_transferred else scratch[key]
        assert torch.equal(value, expected), key
        transferred += is_transferred
    assert transferred == len(pixel.state_dict) - (0 if outer_norm else 2)
    assert not torch.equal(
        start["pixel_encoder.embed.weight"], scratch["pixel_encoder.embed.weight"]
    )
    record = tuned.pretraining
    assert record["outer_norm_transferred"] is outer_norm and list(record["branches"]) == ["pixel"]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_pretrain_then_train_pretrained_then_export(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    pre = tmp_path / "pre"
    proc = _cli(
        "pretrain", "--raster", str(files["raster"]), "--branch", "both", "--output-dir",
        str(pre), "--epochs", "1", "--max-steps", "2", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pixel branch: 2 steps" in proc.stdout and "band branch: 2 steps" in proc.stdout
    assert [b.branch for b in load_run(pre)] == ["pixel", "band"]
    run = tmp_path / "run"
    proc = _cli(
        "train", "--raster", str(files["raster"]), "--train-labels", str(files["train"]),
        "--test-labels", str(files["test"]), "--pretrained", str(pre), "--epochs", "1",
        "--max-steps", "2", "--output-dir", str(run), "--threads", "1", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = load_checkpoint(run).training["pretraining"]
    assert load_checkpoint(run).training["recipe"]["augment"] == "dihedral"  # the default
    shutil.copytree(run, tmp_path / "again")
    resumed = _cli(
        "train", "--raster", str(files["raster"]), "--train-labels", str(files["train"]),
        "--epochs", "1", "--max-steps", "3", "--output-dir", str(tmp_path / "again"),
        "--resume", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr  # keeps its augmentation, no --pretrained
    assert (tmp_path / "again" / "training_state.pt").is_file()
    assert load_checkpoint(tmp_path / "again").training["pretraining"] == record  # kept
    assert record["outer_norm_transferred"] is False
    pixel = record["branches"]["pixel"]
    assert pixel["pixels"]["pixels"] == 24 * 30 and pixel["recipe"]["encoder"] == "visible"
    assert pixel["epochs"] == 1 and "hidden" in pixel["objective"]
    onnx_path = tmp_path / "m.onnx"
    proc = _cli("export", str(run), "--output", str(onnx_path), "--model-id", "pre")
    assert proc.returncode == 0, proc.stderr
    import onnx

    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    training = json.loads(props["training"])
    assert set(training["pretraining"]["branches"]) == {"pixel", "band"}


def test_default_recipe_is_the_paper_schedule_on_indian_pines_and_a_step_budget_beyond():
    indian_pines = default_pretraining_recipe(10_659)  # 334 batches of 32
    assert replace(indian_pines, max_steps=None) == PRETRAINING_RECIPES["paper-visible"]
    assert indian_pines.epochs * 334 == indian_pines.max_steps == 66_800
    large = default_pretraining_recipe(1_000_000)  # 31,250 batches: 2 whole epochs fit
    assert (large.epochs, large.max_steps) == (2, 66_800)
    huge = default_pretraining_recipe(5_000_000)  # one epoch is over the budget
    assert (huge.epochs, huge.max_steps) == (1, 66_800)


def test_cli_pretrain_defaults_to_the_pixel_branch_and_the_default_recipe(
    synthetic_scene_files, tmp_path
):
    raster = str(synthetic_scene_files["raster"])
    proc = _cli("pretrain", "--raster", raster, "--output-dir", str(tmp_path), "--max-steps", "1")
    assert proc.returncode == 0, proc.stderr
    assert [b.branch for b in load_run(tmp_path)] == ["pixel"]
    recipe = load_branch(tmp_path, "pixel").provenance["recipe"]
    expected = replace(default_pretraining_recipe(24 * 30), max_steps=1)
    assert recipe == expected.to_dict() and recipe["epochs"] == 200


def test_cli_pretrain_refuses_bad_input_in_one_line(tmp_path, synthetic_scene_files):
    proc = _cli("pretrain", "--raster", str(tmp_path / "none.tif"), "--output-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    proc = _cli(
        "train", "--raster", str(synthetic_scene_files["raster"]), "--train-labels",
        str(synthetic_scene_files["train"]), "--pretrained", str(tmp_path), "--max-steps", "1",
        "--output-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert proc.returncode == 2 and "no pre-trained branch" in proc.stderr


def test_cli_pretrain_killed_and_resumed_equals_uninterrupted(synthetic_scene_files, tmp_path):
    common = [
        "pretrain", "--raster", str(synthetic_scene_files["raster"]), "--branch", "band",
        "--recipe", "paper", "--epochs", "12", "--batch-size", "128", "--threads", "1", "--quiet",
    ]  # fmt: skip
    proc = _cli(*common, "--output-dir", str(tmp_path / "whole"))
    assert proc.returncode == 0, proc.stderr
    cut = tmp_path / "cut"
    child = subprocess.Popen(
        [sys.executable, "-m", "engine", *common, "--output-dir", str(cut)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = cut / "band" / "state.pt"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    killed_while_running = child.poll() is None
    child.kill()
    child.wait()
    assert killed_while_running, "the run ended before it could be killed"
    epochs_done = torch.load(state, weights_only=True)["epochs_done"]
    assert 1 <= epochs_done < 12 and not (cut / "band" / "encoder.pt").exists()
    proc = _cli(*common, "--output-dir", str(cut), "--resume")
    assert proc.returncode == 0, proc.stderr
    whole, resumed = load_branch(tmp_path / "whole", "band"), load_branch(cut, "band")
    assert resumed.provenance["steps"] == whole.provenance["steps"] == 12 * 6  # 720 / 128
    for key, value in whole.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key


def test_patch_size_flows_from_pretraining_to_the_classified_map(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    pre = tmp_path / "pre"
    proc = _cli(
        "pretrain", "--raster", str(files["raster"]), "--patch-size", "5", "--output-dir",
        str(pre), "--max-steps", "1", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert load_branch(pre, "pixel").config.patch_size == 5
    scene = ["--raster", str(files["raster"]), "--train-labels", str(files["train"])]
    run = tmp_path / "run"
    proc = _cli(
        "train", *scene, "--pretrained", str(pre), "--max-steps", "1", "--output-dir", str(run),
        "--threads", "1", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # the branches' 5x5, without --patch-size
    assert json.loads((run / "config.json").read_text())["model"]["patch_size"] == 5
    onnx_path, out = tmp_path / "m.onnx", tmp_path / "classes.tif"
    assert _cli("export", str(run), "--output", str(onnx_path), "--model-id", "p5").returncode == 0
    assert "  patch: 5x5, padding symmetric" in _cli("info", str(onnx_path)).stdout.splitlines()
    proc = _cli("classify", str(files["raster"]), "--model", str(onnx_path), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    classes = read_raster(out)
    assert classes.shape == read_raster(files["raster"]).shape[1:]
    assert classes.min() >= 1  # every pixel classified

    bad = (
        (["--pretrained", str(pre), "--patch-size", "7"], "--patch-size 7: 7x7, the pre-trained"),
        (["--patch-size", "4"], "an odd number from 1 to 31 for --model factoformer, got 4"),
        (["--patch-size", "33"], "an odd number from 1 to 31 for --model factoformer, got 33"),
        (["--model", "cnn3d", "--patch-size", "3"], "from 5 to 31 for --model cnn3d, got 3"),
        (["--model", "rf", "--patch-size", "3"], "--patch-size do not apply to --model rf"),
    )
    for extra, expected in bad:
        proc = _cli("train", *scene, *extra, "--max-steps", "1", "--output-dir", str(tmp_path))
        assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
        assert expected in proc.stderr
    for size in ("1", "0"):  # a 1x1 patch has no pixel to hide
        proc = _cli("pretrain", "--raster", str(files["raster"]), "--patch-size", size,
                    "--output-dir", str(tmp_path / "p1"), "--max-steps", "1")  # fmt: skip
        assert proc.returncode == 2 and f"from 3 to 31, got {size}" in proc.stderr


def test_resume_keeps_the_runs_patch_size(synthetic_scene_files, tmp_path):
    files = synthetic_scene_files
    scene = ["--raster", str(files["raster"]), "--train-labels", str(files["train"])]
    run = ["--output-dir", str(tmp_path), "--threads", "1", "--quiet"]
    proc = _cli("train", *scene, "--patch-size", "5", "--epochs", "2", "--max-steps", "2", *run)
    assert proc.returncode == 0, proc.stderr  # one of two epochs
    proc = _cli("train", *scene, "--epochs", "2", "--max-steps", "4", "--resume", *run)
    assert proc.returncode == 0, proc.stderr  # no --patch-size: the run's
    assert "trained 4 steps" in proc.stdout
    assert json.loads((tmp_path / "config.json").read_text())["model"]["patch_size"] == 5
    proc = _cli("train", *scene, "--epochs", "2", "--resume", "--patch-size", "7", *run)
    assert proc.returncode == 2, proc.stderr
    assert "the run being resumed: 5x5" in proc.stderr and proc.stderr.count("\n") == 1
    (tmp_path / "training_state.pt").write_text("not a state")  # damaged
    proc = _cli("train", *scene, "--epochs", "2", "--resume", *run)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot resume from" in proc.stderr and "unpickler error" in proc.stderr
    assert "weights_only" not in proc.stderr  # not torch's advice to load it unsafely
