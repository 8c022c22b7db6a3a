"""FactoFormer architecture: parameter counts, shapes, attention paths."""

from __future__ import annotations

import pytest
import torch

from engine.config import FactoFormerConfig
from engine.models import FactoFormer, count_parameters
from engine.models.layers import Attention, DropoutAttention, keep_mask, seed_dropout


@pytest.mark.parametrize(
    ("bands", "classes", "expected"),
    [(200, 16, 148_620), (103, 9, 138_629), (144, 15, 143_147)],  # IP, PU, Houston 2013
)
def test_parameter_count_matches_published_architecture(bands, classes, expected):
    model = FactoFormer(FactoFormerConfig(num_bands=bands, num_classes=classes))
    assert count_parameters(model) == expected


def test_forward_shape_and_zero_initialised_tokens():
    model = FactoFormer(FactoFormerConfig(num_bands=20, num_classes=4)).eval()
    logits = model(torch.randn(3, 20, 7, 7))
    assert logits.shape == (3, 4)
    for encoder in (model.pixel_encoder, model.band_encoder):
        assert not encoder.cls_token.any() and not encoder.pos_embed.any()
    assert model.pixel_encoder.pos_embed.shape == (1, 50, 64)  # 49 pixel tokens + cls
    assert model.band_encoder.pos_embed.shape == (1, 21, 32)  # 20 band tokens + cls


def test_mlp_widths_are_absolute_not_ratios():
    model = FactoFormer(FactoFormerConfig(num_bands=200, num_classes=16))
    assert model.pixel_encoder.blocks[0].mlp.fc1.out_features == 8
    assert model.band_encoder.blocks[0].mlp.fc1.out_features == 4


def test_invalid_config_is_rejected_with_reason():
    with pytest.raises(ValueError, match="divisible"):
        FactoFormerConfig(num_bands=10, num_classes=3, pixel_dim=10, pixel_heads=4)
    with pytest.raises(ValueError, match="odd"):
        FactoFormerConfig(num_bands=10, num_classes=3, patch_size=6)


def test_dropout_attention_gradients_match_autograd_reference():
    torch.manual_seed(0)
    q, k, v = (torch.randn(20, 9, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    keep = (torch.rand(20, 9, 9) > 0.2).double() / 0.8

    def reference(q, k, v):
        return ((q @ k.transpose(1, 2)) * 4**-0.5).softmax(-1).mul(keep) @ v

    assert torch.allclose(DropoutAttention.apply(q, k, v, keep), reference(q, k, v))
    assert torch.autograd.gradcheck(lambda *x: DropoutAttention.apply(*x, keep), (q, k, v))


def test_attention_without_dropout_equals_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(2, 11, 32)
    qkv = attn.qkv(x).reshape(2, 11, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    explicit = ((q @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1) @ v
    expected = attn.proj(explicit.transpose(1, 2).reshape(2, 11, 32))
    assert torch.allclose(attn(x), expected, atol=1e-6)


def test_keep_mask_rate_and_scale():
    seed_dropout(1)
    mask = keep_mask((400, 500), 0.1)
    assert torch.unique(mask).tolist() == pytest.approx([0.0, 1 / 0.9])
    assert abs((mask == 0).float().mean().item() - 0.1) < 0.005


def test_training_mode_uses_dropout_and_eval_mode_is_deterministic():
    model = FactoFormer(FactoFormerConfig(num_bands=12, num_classes=3))
    x = torch.randn(4, 12, 7, 7)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
