"""MaskedSST: architecture, dense tiles, masked pretraining (own-mask loss), fine-tuning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.config import (
    DenseTrainingRecipe,
    MaskedPretrainingRecipe,
    MaskedSSTConfig,
    masked_pretraining_recipe,
    spectral_positions,
)
from engine.data.classes import make_classes
from engine.data.dense import IGNORE, DenseTiles, tile_coverage
from engine.data.normalization import StandardNormalization
from engine.data.scenes import Scene
from engine.data.training_set import TrainingSet
from engine.errors import InputDataError
from engine.models import count_parameters
from engine.models.layers import Attention
from engine.models.maskedsst import MaskedSST, sincos_embedding
from engine.models.registry import model_spec
from engine.pretraining.data import scene_unlabelled_pixels
from engine.pretraining.maskedsst import (
    MaskedTileReconstruction,
    load_pretrained,
    masked_l1,
    pretrain_maskedsst,
    random_token_masks,
    transfer_backbone,
    tube_masks,
)
from engine.training.checkpoint import load_checkpoint
from engine.training.dense import TorchDenseModel, evaluate_dense, split_tiles, train_dense

TINY = {"dim": 16, "spatial_depth": 1, "spectral_depth": 1, "heads": 2, "head_dim": 8}
TINY["mlp_hidden"] = 16


def _scene(bands: int = 12, rows: int = 24, cols: int = 30) -> Scene:
    """Three stripes of distinct spectra; every third pixel trains, half the rest test."""
    from helpers import synthetic_cube

    cube, classes = synthetic_cube(rows=rows, cols=cols, bands=bands)
    train = np.zeros_like(classes)
    train[::3, ::3] = classes[::3, ::3]
    test = np.where((train == 0) & (np.arange(cols)[None] % 2 == 0), classes, 0)
    names = tuple(f"band {b + 1}" for b in range(bands))
    return Scene("stripes", np.moveaxis(cube, 0, -1), train, test, make_classes("abc"), names)


# --- architecture -----------------------------------------------------------------------


def test_parameter_count_matches_the_released_model():
    assert count_parameters(MaskedSST(MaskedSSTConfig(num_bands=200, num_classes=8))) == 1_821_564
    # Houston 2018: 48 bands padded to 50, 20 classes (method reference B.1, derived)
    assert count_parameters(MaskedSST(MaskedSSTConfig(num_bands=50, num_classes=20))) == 1_714_728


def test_attention_inner_width_differs_from_token_width():
    attn = Attention(96, 8, qkv_bias=False, head_dim=64)
    assert attn.qkv.weight.shape == (3 * 512, 96) and attn.qkv.bias is None
    assert attn.proj.weight.shape == (96, 512)
    assert attn(torch.randn(2, 5, 96)).shape == (2, 5, 96)


def test_tokens_pad_bands_with_zeros_inside_the_model():
    config = MaskedSSTConfig(num_bands=23, num_classes=3, **TINY)
    assert (config.num_blocks, config.band_padding) == (3, 7)
    tiles = np.random.default_rng(0).random((2, 23, 8, 8), dtype=np.float32)
    tokens = MaskedSST(config).tokens(torch.from_numpy(tiles)).numpy()
    padded = np.pad(tiles, ((0, 0), (0, 7), (0, 0), (0, 0)))
    # token (block s, pixel r*8+c) holds bands 10s..10s+9 of pixel (r, c)
    for s, r, c in [(0, 0, 0), (1, 3, 5), (2, 7, 7)]:
        np.testing.assert_array_equal(
            tokens[:, s, r * 8 + c], padded[:, 10 * s : 10 * s + 10, r, c]
        )
    assert MaskedSST(config)(torch.from_numpy(tiles)).shape == (2, 3, 8, 8)


def test_every_pixel_gets_its_own_logits_and_sees_its_neighbours():
    torch.manual_seed(0)
    model = MaskedSST(MaskedSSTConfig(num_bands=12, num_classes=3, **TINY)).eval()
    tiles = torch.randn(1, 12, 8, 8)
    changed = tiles.clone()
    changed[0, :, 0, 0] += 1.0
    with torch.no_grad():
        diff = (model(changed) - model(tiles)).abs().amax(1)[0]
    assert diff[0, 0] > 0 and diff[7, 7] > 0  # spatial attention reaches the far corner


def test_the_token_norm_discards_each_tokens_level_and_scale_unless_turned_off():
    """LayerNorm(10) maps a token's values v and a * v + b alike (a > 0): scaling and
    shifting the 10 bands of one block of one pixel cannot reach the logits with it,
    and must without it; the norm's 20 parameters go with it."""
    torch.manual_seed(0)
    tiles = torch.randn(1, 20, 8, 8)
    changed = tiles.clone()
    changed[0, 10:20, 3, 4] = 3.0 * changed[0, 10:20, 3, 4] + 2.0  # block 1 of pixel (3, 4)
    for token_norm in (True, False):
        config = MaskedSSTConfig(num_bands=20, num_classes=3, token_norm=token_norm, **TINY)
        model = MaskedSST(config).eval()
        with torch.no_grad():
            diff = (model(changed) - model(tiles)).abs().max().item()
        assert (diff < 1e-4) if token_norm else (diff > 1e-3)
    paper = MaskedSST(MaskedSSTConfig(num_bands=200, num_classes=8))
    plain = MaskedSST(MaskedSSTConfig(num_bands=200, num_classes=8, token_norm=False))
    assert count_parameters(paper) - count_parameters(plain) == 20


def test_spectral_positions_from_block_mean_wavelengths():
    wavelengths = [400.0 + 10 * b for b in range(25)]  # blocks: 400-490, 500-590, 600-640
    assert spectral_positions(wavelengths) == (0.45, 1.45, 2.2)
    assert spectral_positions(None) is None


def test_sincos_embedding_tables():
    config = MaskedSSTConfig(
        num_bands=25, num_classes=3, pos_embedding="sincos", spectral_positions=(0.45, 1.45, 2.2)
    )
    table = sincos_embedding(config)  # (3 blocks * 64 pixels, 96)
    assert table.shape == (192, 96)
    # spectral part (last 32): first sine of block 1 = sin(1.45); same for every pixel
    np.testing.assert_allclose(table[64:128, 64], np.sin(1.45))
    # spatial part: row sine of pixel (2, 5) = sin(2), column sine = sin(5); same in each block
    np.testing.assert_allclose(table[[21, 85, 149], 0], np.sin(2.0))
    np.testing.assert_allclose(table[[21, 85, 149], 32], np.sin(5.0))
    model = MaskedSST(config)
    assert model.pos_embed.requires_grad and model.pos_embed.shape == (1, 192, 96)


def test_config_round_trip_and_unknown_keys():
    config = MaskedSSTConfig(
        num_bands=25, num_classes=3, pos_embedding="sincos", spectral_positions=(0.45, 1.45, 2.2)
    )
    assert MaskedSSTConfig.from_dict(config.to_dict()) == config
    written_before_the_option = {k: v for k, v in config.to_dict().items() if k != "token_norm"}
    assert MaskedSSTConfig.from_dict(written_before_the_option).token_norm  # the paper's form
    with pytest.raises(ValueError, match="unknown MaskedSST config keys: patch_size"):
        MaskedSSTConfig.from_dict({**config.to_dict(), "patch_size": 7})
    with pytest.raises(ValueError, match="2 spectral positions for 3"):
        MaskedSSTConfig(num_bands=25, num_classes=3, spectral_positions=(0.0, 1.0))


# --- dense tiles ---------------------------------------------------------------------------


def test_edge_tiles_are_cut_from_a_symmetrically_padded_cube():
    rng = np.random.default_rng(1)
    cube = rng.random((3, 10, 12), dtype=np.float32)
    labels = rng.integers(-1, 4, (10, 12))
    padded = np.pad(cube, ((0, 0), (7, 7), (7, 7)), mode="symmetric")
    tiles = DenseTiles([padded], 8, np.zeros(1), np.zeros(1), np.zeros(1), [labels])
    oracle = np.pad(cube, ((0, 0), (20, 20), (20, 20)), mode="symmetric")
    label_oracle = np.pad(labels, 20, constant_values=IGNORE)
    for top, left in [(-7, -7), (-3, 5), (2, 4), (9, 11)]:
        src = np.zeros(1, dtype=np.int64)
        t, lf = np.array([top]), np.array([left])
        np.testing.assert_array_equal(
            tiles.inputs_at(src, t, lf)[0], oracle[:, top + 20 : top + 28, left + 20 : left + 28]
        )
        np.testing.assert_array_equal(
            tiles.targets_at(src, t, lf)[0],
            label_oracle[top + 20 : top + 28, left + 20 : left + 28],
        )


def test_each_tile_contains_its_anchor_at_a_random_offset():
    scene = _scene()
    data = TrainingSet.from_scene(scene, 15)
    tiles = split_tiles(data, "train", 8, seed=3)
    seen = set()
    for step in range(10):
        idx = np.arange(len(tiles))
        tops, lefts = tiles.tile_origins(idx, step)
        dy, dx = tiles.rows[idx] - tops, tiles.cols[idx] - lefts
        assert dy.min() >= 0 and dy.max() <= 7 and dx.min() >= 0 and dx.max() <= 7
        seen |= set(zip(dy.tolist(), dx.tolist(), strict=True))
        _, targets = tiles.batch(idx, step)
        anchor = targets[np.arange(len(idx)), dy, dx]
        np.testing.assert_array_equal(anchor, data.train.values - 1)
    assert len(seen) == 64  # every offset occurs
    # only training labels are targets; test pixels are ignored
    _, targets = tiles.batch(np.arange(len(tiles)), 0)
    assert (targets != IGNORE).sum() < targets.size
    grid = np.full((24, 30), IGNORE)
    grid[data.train.rows, data.train.cols] = data.train.values - 1
    tops, lefts = tiles.tile_origins(np.arange(len(tiles)), 0)
    ref = np.pad(grid, 7, constant_values=IGNORE)
    for i in range(3):
        np.testing.assert_array_equal(
            targets[i], ref[tops[i] + 7 : tops[i] + 15, lefts[i] + 7 : lefts[i] + 15]
        )


# --- masked pretraining ------------------------------------------------------------------


def test_tube_masks_hide_whole_units_in_every_block():
    config = MaskedSSTConfig(num_bands=30, num_classes=2)
    masks = tube_masks(np.random.default_rng(0), 50, config, 0.7, 4)
    assert masks.shape == (50, 3, 64)
    assert (masks == masks[:, :1]).all()  # the same pixels in every spectral block
    grid = masks[:, 0].reshape(50, 2, 4, 2, 4)  # (sample, unit row, r, unit col, c)
    units = grid.any(axis=(2, 4))
    assert (grid.all(axis=(2, 4)) == units).all()  # units are all hidden or all visible
    assert (units.sum(axis=(1, 2)) == math.ceil(0.7 * 4)).all()  # 3 of 4: 75 %
    assert len({m.tobytes() for m in units}) == 4  # the hidden units vary


def test_random_token_masks_hide_int_ratio_tokens():
    config = MaskedSSTConfig(num_bands=200, num_classes=2)
    masks = random_token_masks(np.random.default_rng(0), 20, config, 0.7)
    assert (masks.reshape(20, -1).sum(1) == 896).all()
    assert not (masks == masks[:, :1]).all()  # not tubes


def test_loss_uses_exactly_each_samples_own_hidden_tokens():
    """The official code's flat-index chunks drift into the next sample's mask; here an
    error that sits exactly on each sample's own hidden tokens is all the loss sees."""
    config = MaskedSSTConfig(num_bands=25, num_classes=2, **TINY)
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(random_token_masks(rng, 4, config, 0.7))
    tube = torch.from_numpy(tube_masks(rng, 4, config, 0.7, 4))
    weights = MaskedTileReconstruction(config).band_weights()
    target = torch.zeros(4, 3, 64, 10)
    for m in (masks, tube):
        hidden = m[..., None].float()
        # error 1 on own hidden tokens, 0 elsewhere -> 1; the reverse -> 0
        assert masked_l1(hidden.expand(-1, -1, -1, 10), target, m, weights) == 1.0
        assert masked_l1((1 - hidden).expand(-1, -1, -1, 10), target, m, weights) == 0.0
        # per-sample error (k+1) on own hidden tokens: the mean of 1..4 weighted by counts
        scale = torch.arange(1.0, 5.0)[:, None, None, None]
        counts = m.sum((1, 2)).float()
        expected = float((counts * torch.arange(1.0, 5.0)).sum() / counts.sum())
        got = masked_l1((hidden * scale).expand(-1, -1, -1, 10), target, m, weights)
        assert got.item() == pytest.approx(expected)
        # a mask shifted by one sample (what index drift amounts to) sees other errors
        shifted = torch.roll(m, 1, dims=0)
        assert masked_l1(hidden.expand(-1, -1, -1, 10), target, shifted, weights) < 1.0
    # errors in the zero padding (bands 26-30 of the last block) are not counted
    pad_error = torch.zeros(4, 3, 64, 10)
    pad_error[:, 2, :, 5:] = 100.0
    assert masked_l1(pad_error, target, masks, weights) == 0.0


def test_gradient_reaches_only_hidden_tokens_of_each_sample():
    config = MaskedSSTConfig(num_bands=20, num_classes=2, **TINY)
    model = MaskedTileReconstruction(config)
    masks = torch.from_numpy(tube_masks(np.random.default_rng(2), 3, config, 0.7, 4))
    tiles = torch.randn(3, 20, 8, 8)
    reconstruction = model(tiles, masks)
    reconstruction.retain_grad()
    masked_l1(reconstruction, model.backbone.tokens(tiles), masks, model.band_weights()).backward()
    touched = reconstruction.grad.abs().sum(-1) > 0
    assert torch.equal(touched, masks)


def test_hidden_tokens_are_replaced_before_the_encoder():
    config = MaskedSSTConfig(num_bands=20, num_classes=2, **TINY)
    model = MaskedTileReconstruction(config).eval()
    masks = torch.from_numpy(tube_masks(np.random.default_rng(2), 1, config, 0.7, 4))
    tiles = torch.randn(1, 20, 8, 8)
    changed = tiles.clone()
    hidden_pixel = int(np.flatnonzero(masks[0, 0].numpy())[0])
    changed[0, :, hidden_pixel // 8, hidden_pixel % 8] += 5.0  # only a hidden pixel changes
    with torch.no_grad():
        assert torch.equal(model(tiles, masks), model(changed, masks))


def test_visible_encoder_sees_only_the_visible_pixels_and_decodes_every_place():
    config = MaskedSSTConfig(num_bands=20, num_classes=2, **TINY)
    model = MaskedTileReconstruction(config, visible_only=True, decoder_depth=1).eval()
    masks = torch.from_numpy(tube_masks(np.random.default_rng(2), 2, config, 0.7, 4))
    seen = []
    model.backbone.spatial[0].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    tiles = torch.randn(2, 20, 8, 8)
    with torch.no_grad():
        out = model(tiles, masks)
    assert out.shape == (2, 2, 64, 10)
    assert seen == [(2 * 2, 16, 16)]  # 16 visible pixels of 64 (3 of 4 units hidden)
    hidden = np.flatnonzero(masks[0, 0].numpy())
    visible = np.flatnonzero(~masks[0, 0].numpy())
    changed = tiles.clone()
    changed[0, :, hidden[0] // 8, hidden[0] % 8] += 5.0  # a hidden pixel: never encoded
    with torch.no_grad():
        assert torch.equal(model(changed, masks), out)
    changed = tiles.clone()
    changed[0, :, visible[0] // 8, visible[0] % 8] += 5.0  # a visible pixel ...
    with torch.no_grad():
        moved = model(changed, masks)
    other_hidden = hidden[hidden != visible[0]]
    assert not torch.allclose(moved[0, :, other_hidden], out[0, :, other_hidden])  # ... is read
    assert torch.equal(moved[1], out[1])  # ... by its own sample only


def test_encoding_all_pixels_by_index_equals_encoding_them_in_order():
    config = MaskedSSTConfig(num_bands=20, num_classes=2, **TINY)
    model = MaskedSST(config).eval()
    embedded = torch.randn(3, 2, 64, 16)
    order = torch.arange(64).repeat(3, 1)
    shuffled = torch.stack([torch.randperm(64) for _ in range(3)])
    gathered = embedded.gather(2, shuffled[:, None, :, None].expand(3, 2, 64, 16))
    with torch.no_grad():
        whole = model.encode(embedded)
        assert torch.allclose(model.encode(embedded, order), whole, atol=1e-6)
        # positions follow the pixels: shuffled tokens give the shuffled outputs
        back = model.encode(gathered, shuffled)
        expected = whole.gather(2, shuffled[:, None, :, None].expand(3, 2, 64, 16))
        assert torch.allclose(back, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"masking": "random"}, "tube masks"),  # the default encoder is the visible one
        ({"decoder_depth": 0}, "at least one decoder block"),
        ({"encoder": "visual"}, "encoder must be one of"),
    ],
)
def test_recipe_refuses_a_visible_encoder_it_cannot_run(options, message):
    with pytest.raises(ValueError, match=message):
        MaskedPretrainingRecipe(**options)


def test_recipe_options_imply_the_encoder_and_decoder_they_need():
    default = MaskedPretrainingRecipe()
    assert (default.encoder, default.decoder_depth, default.masking) == ("visible", 1, "tube")
    assert masked_pretraining_recipe(epochs=None, seed=None) == default
    random_masks = masked_pretraining_recipe(masking="random")
    assert (random_masks.encoder, random_masks.decoder_depth) == ("mask-token", 0)
    official = masked_pretraining_recipe(encoder="mask-token")
    assert (official.masking, official.decoder_depth) == ("tube", 0)
    assert masked_pretraining_recipe(encoder="mask-token", decoder_depth=2).decoder_depth == 2
    with pytest.raises(ValueError, match="tube masks"):
        masked_pretraining_recipe(encoder="visible", masking="random")


@pytest.mark.parametrize("encoder", ["mask-token", "visible"])
def test_pretraining_lowers_the_loss_and_transfers_the_backbone(tmp_path, encoder):
    torch.set_num_threads(1)
    scene = _scene()
    pixels = scene_unlabelled_pixels(scene, patch_size=15)
    config = MaskedSSTConfig(num_bands=12, num_classes=2, **TINY)
    recipe = MaskedPretrainingRecipe(
        epochs=8,
        tiles_per_epoch=64,
        batch_size=16,
        learning_rate=3e-3,
        encoder=encoder,
        decoder_depth=int(encoder == "visible"),
    )
    pre = pretrain_maskedsst(pixels, config, recipe, tmp_path / "pre")
    summary = json.loads((tmp_path / "pre" / "pretraining.json").read_text())
    history = [row["loss"] for row in summary["history"]]
    assert history[-1] < 0.7 * history[0]
    loaded = load_pretrained(tmp_path / "pre")
    assert not any(k.startswith(("head.", "head_norm.")) for k in loaded.state_dict)
    model = MaskedSST(MaskedSSTConfig(num_bands=12, num_classes=3, **TINY))
    head_before = model.head.weight.clone()
    record = transfer_backbone(model, loaded, pixels.normalization)
    assert torch.equal(model.embed.weight, pre.state_dict["embed.weight"])
    assert torch.equal(
        model.spectral[0].attn.qkv.weight, pre.state_dict["spectral.0.attn.qkv.weight"]
    )
    assert torch.equal(model.head.weight, head_before)
    assert record["steps"] == 32
    other = MaskedSST(MaskedSSTConfig(num_bands=12, num_classes=3, **{**TINY, "dim": 24}))
    with pytest.raises(Exception, match="dim 16 but the model being trained has 24"):
        transfer_backbone(other, loaded, pixels.normalization)
    plain = MaskedSST(MaskedSSTConfig(num_bands=12, num_classes=3, token_norm=False, **TINY))
    with pytest.raises(Exception, match="token_norm True but the model being trained has False"):
        transfer_backbone(plain, loaded, pixels.normalization)
    standard = StandardNormalization.fit(np.moveaxis(scene.cube, -1, 0))
    with pytest.raises(InputDataError, match="pre-trained on pixels normalised by min-max"):
        transfer_backbone(model, loaded, standard)


class _CancelAfter:
    """Feedback that asks to stop once ``steps`` steps have run."""

    def __init__(self, steps: int) -> None:
        self.calls, self.steps = 0, steps

    def set_progress(self, fraction: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        self.calls += 1
        return self.calls > self.steps


@pytest.mark.parametrize("options", [{"encoder": "mask-token"}, {"masking": "random"}, {}])
def test_pretraining_resumes_after_cancel_bit_for_bit(tmp_path, options):
    from engine.errors import CancelledError

    torch.set_num_threads(1)
    pixels = scene_unlabelled_pixels(_scene(), patch_size=15)
    config = MaskedSSTConfig(num_bands=12, num_classes=2, **TINY)
    recipe = masked_pretraining_recipe(epochs=3, tiles_per_epoch=8, batch_size=4, **options)
    whole = pretrain_maskedsst(pixels, config, recipe, tmp_path / "whole")
    with pytest.raises(CancelledError):
        pretrain_maskedsst(pixels, config, recipe, tmp_path / "cut", _CancelAfter(3))
    torch.manual_seed(99)  # resume must not depend on the process's RNG state
    np.random.seed(99)
    resumed = pretrain_maskedsst(pixels, config, recipe, tmp_path / "cut", resume=True)
    assert resumed.provenance["steps"] == whole.provenance["steps"] == 6
    for key, value in whole.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key


# --- fine-tuning -------------------------------------------------------------------------


def _tiles_containing(anchors: np.ndarray, tile: int) -> np.ndarray:
    """Brute force: over every anchor and every one of its tile x tile offsets, how many
    tiles contain each pixel, divided by the offsets (the expectation of one epoch)."""
    counts = np.zeros(anchors.shape)
    for r, c in zip(*np.nonzero(anchors), strict=True):
        for dy in range(tile):
            for dx in range(tile):
                top, left = r - dy, c - dx
                counts[max(top, 0) : max(top + tile, 0), max(left, 0) : max(left + tile, 0)] += 1
    return counts / tile**2


def test_tile_coverage_counts_the_tiles_expected_to_contain_each_pixel():
    rng = np.random.default_rng(5)
    anchors = rng.random((13, 17)) < 0.15
    anchors[0, 0] = anchors[12, 16] = True  # corners: tiles reach into the padding
    for tile in (8, 3):
        np.testing.assert_allclose(tile_coverage(anchors, tile), _tiles_containing(anchors, tile))
    single = np.zeros((9, 9), dtype=bool)
    single[4, 4] = True  # one anchor: 1 at itself, (8 - 1)(8 - 2) / 64 one row and two cols off
    assert tile_coverage(single, 8)[4, 4] == 1.0
    assert tile_coverage(single, 8)[5, 6] == pytest.approx(7 * 6 / 64)


def test_equal_weighting_makes_every_training_pixel_count_once_per_epoch():
    data = TrainingSet.from_scene(_scene(), 15)
    tiles = split_tiles(data, "train", 8)
    # each pixel's total weight over every anchor and every offset, on a grid padded by 7
    total = np.zeros((24 + 14, 30 + 14))
    for dy in range(8):
        for dx in range(8):
            tops, lefts = tiles.rows - dy, tiles.cols - dx
            weights = tiles.weights_at(tiles.sources, tops, lefts)
            targets = tiles.targets_at(tiles.sources, tops, lefts)
            assert np.all((weights > 0) == (targets != IGNORE))
            for w, top, left in zip(weights, tops, lefts, strict=True):
                total[top + 7 : top + 15, left + 7 : left + 15] += w
    total = total[7:-7, 7:-7] / 64  # per epoch: one offset of 64 per anchor
    labelled = np.zeros((24, 30), dtype=bool)
    labelled[data.train.rows, data.train.cols] = True
    np.testing.assert_allclose(total[labelled], 1.0, rtol=1e-5)
    assert np.all(total[~labelled] == 0)
    # the same weights come with each step's batch
    idx = np.arange(len(tiles))
    tops, lefts = tiles.tile_origins(idx, 3)
    np.testing.assert_array_equal(
        tiles.batch_weights(idx, 3), tiles.weights_at(tiles.sources, tops, lefts)
    )


def test_fine_tuning_with_equal_pixel_weights_learns_and_the_choice_is_checked():
    torch.set_num_threads(1)
    data = TrainingSet.from_scene(_scene(), 15)
    config = MaskedSSTConfig(num_bands=12, num_classes=3, **TINY)
    recipe = DenseTrainingRecipe(epochs=5, batch_size=8, pixel_weighting="equal")
    result = train_dense(data, recipe, config, show_progress=False)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    default = train_dense(data, DenseTrainingRecipe(epochs=1, batch_size=8), config,
                          show_progress=False)  # fmt: skip
    assert default.history[0]["loss"] != result.history[0]["loss"]  # the weights are used
    with pytest.raises(ValueError, match="pixel_weighting must be one of tiles, equal"):
        DenseTrainingRecipe(pixel_weighting="anchor")


def test_fine_tuning_learns_the_stripes_and_evaluates_densely():
    torch.set_num_threads(1)
    scene = _scene()
    data = TrainingSet.from_scene(scene, 15)
    config = MaskedSSTConfig(num_bands=12, num_classes=3, **TINY)
    recipe = DenseTrainingRecipe(epochs=5, batch_size=8)
    result = train_dense(data, recipe, config, show_progress=False)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.steps == 5 * math.ceil(len(data.train) / 8)
    metrics = evaluate_dense(TorchDenseModel(result.model), data, "test")
    assert metrics.overall_accuracy > 0.9


def test_fine_tuning_resumes_after_cancel_bit_for_bit(tmp_path):
    from engine.errors import CancelledError

    torch.set_num_threads(1)
    data = TrainingSet.from_scene(_scene(), 15)
    config = MaskedSSTConfig(num_bands=12, num_classes=3, **TINY)
    recipe = DenseTrainingRecipe(epochs=2, batch_size=16, seed=4)
    whole = train_dense(data, recipe, config, show_progress=False)
    state = tmp_path / "state.pt"
    with pytest.raises(CancelledError):
        train_dense(data, recipe, config, feedback=_CancelAfter(7), state_path=state)
    resumed = train_dense(data, recipe, config, show_progress=False, state_path=state, resume=True)
    assert resumed.steps == whole.steps == 10
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


# --- export, evaluation as the plugin classifies, command line --------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, synthetic_scene_files):
    """A tiny MaskedSST fine-tuned for a few steps on the synthetic raster, run folder saved."""
    from engine.data.training_set import load_training_set, tiles_from_paths
    from engine.training.dense import run_dense_training

    torch.set_num_threads(1)
    files = synthetic_scene_files
    tiles = tiles_from_paths([files["raster"]], [files["train"]], test_labels=[files["test"]])
    data = load_training_set(tiles, 15)
    config = MaskedSSTConfig(num_bands=12, num_classes=3, **TINY)
    out = tmp_path_factory.mktemp("maskedsst") / "run"
    run = run_dense_training(
        data, DenseTrainingRecipe(epochs=1, max_steps=6), out, config, show_progress=False
    )
    return out, data, run


def test_onnx_export_follows_the_dense_contract(trained_run, tmp_path):
    import onnx

    from engine.export.onnx import export_onnx, max_logit_difference, metadata_from_run
    from engine.infer.model import OnnxClassifier

    run_dir, data, _ = trained_run
    ckpt, meta = metadata_from_run(run_dir, "maskedsst-test")
    path = export_onnx(ckpt, meta, tmp_path / "m.onnx")
    tiles = np.random.default_rng(0).random((5, 12, 8, 8), dtype=np.float32)  # N != 2
    assert max_logit_difference(ckpt, path, tiles) <= 1e-4
    graph = onnx.load(str(path)).graph
    dims = [
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (graph.input[0], graph.output[0])
    ]
    assert dims == [["batch", 12, 8, 8], ["batch", 3, 8, 8]]  # real bands in, padded inside
    loaded = OnnxClassifier(path).metadata
    assert (loaded.model_type, loaded.prediction, loaded.tile_size) == ("MaskedSST", "dense", 8)
    assert (loaded.spectral_block, loaded.band_padding) == (10, 8)
    assert MaskedSSTConfig.from_dict(loaded.architecture) == ckpt.config


def test_evaluation_equals_what_the_plugin_classifies(trained_run, synthetic_scene_files, tmp_path):
    """Test metrics come from the class map inference writes (same blending, same edges)."""
    from osgeo import gdal

    from engine.export.onnx import export_onnx, metadata_from_run
    from engine.infer.classify import classify_raster
    from engine.training.dense import predict_dense_split

    run_dir, data, run = trained_run
    ckpt, meta = metadata_from_run(run_dir, "maskedsst-test")
    onnx_path = export_onnx(ckpt, meta, tmp_path / "m.onnx")
    classify_raster(synthetic_scene_files["raster"], onnx_path, tmp_path / "classes.tif")
    class_map = gdal.Open(str(tmp_path / "classes.tif")).ReadAsArray()
    test = data.test
    predicted = predict_dense_split(TorchDenseModel(run.result.model), data, "test")
    np.testing.assert_array_equal(class_map[test.rows, test.cols], predicted)
    assert run.metrics.overall_accuracy == pytest.approx((predicted == test.values).mean())


def test_command_line_pretrain_train_evaluate_export(synthetic_scene_files, tmp_path, capsys):
    from engine.cli import main

    files = {k: str(v) for k, v in synthetic_scene_files.items()}
    common = ["--threads", "1", "--quiet", "--seed", "0"]
    pre = tmp_path / "pre"
    argv = [
        "pretrain",
        "--model",
        "maskedsst",
        "--raster",
        files["raster"],
        "--output-dir",
        str(pre),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--tiles-per-epoch",
        "2",
    ]
    assert main([*argv, *common]) == 0
    assert "maskedsst: 2 steps, 2 epochs" in capsys.readouterr().out
    assert main([*argv, *common, "--resume"]) == 0  # the finished run resumes to its end
    recipe = json.loads((pre / "pretraining.json").read_text())["recipe"]
    assert (recipe["encoder"], recipe["decoder_depth"]) == ("visible", 1)  # the default
    official = tmp_path / "official"
    elsewhere = ["--output-dir", str(official)]  # the last --output-dir counts
    assert main([*argv, *elsewhere, "--masking", "random", *common]) == 0
    recipe = json.loads((official / "pretraining.json").read_text())["recipe"]
    assert (recipe["masking"], recipe["encoder"], recipe["decoder_depth"]) == (
        "random",
        "mask-token",
        0,
    )
    capsys.readouterr()
    for extra, message in (
        (
            ["--encoder", "visible", "--masking", "random"],
            "error: the visible-pixel encoder needs tube masks and at least one decoder block",
        ),
        (["--loss", "masked"], "error: --loss apply to --model factoformer only"),
        (["--recipe", "paper-visible"], "error: --recipe apply to --model factoformer only"),
        (["--branch", "pixel"], "error: --branch apply to --model factoformer only"),
    ):
        assert main([*argv, *extra]) == 2
        assert capsys.readouterr().err.strip() == message
    refused = ["pretrain", "--raster", files["raster"], "--output-dir", str(pre)]
    assert main([*refused, "--masking", "random"]) == 2
    assert capsys.readouterr().err.strip() == "error: --masking apply to --model maskedsst only"
    run = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "maskedsst",
        "--raster",
        files["raster"],
        "--train-labels",
        files["train"],
        "--test-labels",
        files["test"],
        "--pretrained",
        str(pre),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--output-dir",
        str(run),
    ]
    assert main([*argv, *common]) == 0
    out = capsys.readouterr()
    assert "pre-trained backbone" in out.err and "test: OA" in out.out
    record = json.loads((run / "config.json").read_text())
    assert record["model_type"] == "MaskedSST"
    assert record["training"]["pretraining"]["transferred"].startswith("embedding")
    # pretraining and training both use the input normalisation the registry gives MaskedSST
    method = model_spec("maskedsst").normalization
    assert record["training"]["pretraining"]["normalization_method"] == method
    assert load_checkpoint(run / "checkpoint.pt").normalization.method == method
    assert (
        main(["evaluate", str(run), "--raster", files["raster"], "--test-labels", files["test"]])
        == 0
    )
    torch_line = capsys.readouterr().out.splitlines()[0]
    model = tmp_path / "m.onnx"
    assert main(["export", str(run), "--output", str(model), "--model-id", "m"]) == 0
    capsys.readouterr()
    assert (
        main(["evaluate", str(model), "--raster", files["raster"], "--test-labels", files["test"]])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[0] == torch_line


def test_command_line_progress_json_for_the_plugin(synthetic_scene_files, tmp_path, capsys):
    """With --progress-json, MaskedSST pretraining and training print JSON progress lines
    with their loss (what the QGIS plugin reads) and no progress bar."""
    from engine.cli import main

    files = {k: str(v) for k, v in synthetic_scene_files.items()}
    small = ["--max-steps", "2", "--batch-size", "2", "--threads", "1", "--progress-json"]
    pre = tmp_path / "pre"
    commands = {
        "pretrain maskedsst": ["pretrain", "--model", "maskedsst", "--raster", files["raster"]],
        "train": [
            *("train", "--model", "maskedsst", "--raster", files["raster"]),
            *("--train-labels", files["train"], "--pretrained", str(pre)),
        ],
    }
    for (label, argv), out in zip(commands.items(), (pre, tmp_path / "run"), strict=True):
        assert main([*argv, "--output-dir", str(out), *small]) == 0
        captured = capsys.readouterr()
        records = [json.loads(x) for x in captured.out.splitlines() if x.startswith("{")]
        assert records and {r["label"] for r in records} == {label}
        assert records[-1]["fraction"] == 1.0 and records[-1]["loss"] > 0
        assert "eta" not in captured.err  # no progress bar
    # the command line (and so the plugin) fine-tunes with equal pixel weights by default
    recipe = json.loads((tmp_path / "run" / "config.json").read_text())["training"]["recipe"]
    assert recipe["pixel_weighting"] == "equal"
