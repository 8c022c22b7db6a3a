"""FactoFormer architecture: parameter counts, shapes, attention paths."""

from __future__ import annotations

import pytest
import torch

from engine.config import FactoFormerConfig
from engine.models import FactoFormer, Kernels, count_parameters
from engine.models.layers import Attention, Dropout, DropoutAttention, keep_mask, seed_dropout


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


def test_layer_norm_epsilons_follow_the_official_code():
    model = FactoFormer(FactoFormerConfig(num_bands=12, num_classes=3))
    for encoder in (model.pixel_encoder, model.band_encoder):
        inner = [m for name, m in encoder.named_modules() if name.startswith("blocks.")]
        block_norms = [m for m in inner if isinstance(m, torch.nn.LayerNorm)]
        assert len(block_norms) == 10 and all(m.eps == 1e-5 for m in block_norms)
        assert encoder.norm.eps == 1e-5 and encoder.outer_norm.eps == 1e-6


def test_config_with_a_single_norm_eps_keeps_its_behaviour():
    old = {"num_bands": 12, "num_classes": 3, "norm_eps": 1e-6}
    config = FactoFormerConfig.from_dict(old)
    assert config.block_norm_eps == config.outer_norm_eps == 1e-6
    assert FactoFormerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        FactoFormerConfig.from_dict({**old, "nrom_eps": 1})


def test_kernel_choices_do_not_change_the_function():
    torch.manual_seed(0)
    config = FactoFormerConfig(num_bands=12, num_classes=3)
    fast = FactoFormer(config).eval()
    for kernels in (Kernels(fast_dropout=False), Kernels(ort_attention=True)):
        other = FactoFormer(config, kernels).eval()
        other.load_state_dict(fast.state_dict())
        x = torch.randn(3, 12, 7, 7)
        assert torch.allclose(fast(x), other(x), atol=1e-6)
    stock = FactoFormer(config, Kernels(fast_dropout=False)).train()
    assert all(not m.fast for m in stock.modules() if isinstance(m, Dropout))


def test_attention_with_fewer_queries_equals_the_full_attention_rows():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(2, 11, 32)
    assert torch.allclose(attn(x, queries=1), attn(x)[:, :1], atol=1e-6)


def test_eval_forward_reads_the_cls_token_of_a_full_last_block():
    """Eval mode computes only the cls token in each branch's last block; the oracle runs
    every token through every block and then takes the cls token."""
    torch.manual_seed(0)
    model = FactoFormer(FactoFormerConfig(num_bands=20, num_classes=4, patch_size=5)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # zero-initialised tokens would hide a wrong position
        patches = torch.randn(3, 20, 5, 5)
        cls = [
            enc.outer_norm(enc.norm(enc.blocks(enc.with_cls(enc.embed(tokens), None))))[:, 0]
            for enc, tokens in (
                (model.pixel_encoder, patches.flatten(2).transpose(1, 2)),
                (model.band_encoder, patches.flatten(2)),
            )
        ]
        expected = model.head(model.fusion(torch.cat(cls, dim=1)))
        assert torch.allclose(model(patches), expected, atol=1e-5)
        assert not torch.allclose(model(patches), model(patches.flip(-1)), atol=1e-3)


def test_a_branch_without_blocks_still_classifies_in_eval_mode():
    model = FactoFormer(FactoFormerConfig(num_bands=20, num_classes=4, pixel_depth=0)).eval()
    with torch.no_grad():
        encoder = model.pixel_encoder
        tokens = torch.randn(2, 49, 20)
        expected = encoder.forward_features(encoder.embed_tokens(tokens))[:, 0]
        assert torch.equal(encoder(tokens), expected)
        assert model(torch.randn(2, 20, 7, 7)).shape == (2, 4)
