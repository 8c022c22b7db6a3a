"""Transformer building blocks shared by both FactoFormer branches.

Which kernels a model uses is chosen once, when it is built, by :class:`Kernels`:

* ``fast_dropout`` (default): training with attention dropout uses
  :class:`DropoutAttention` instead of PyTorch's. PyTorch's CPU kernels fall back to an
  unfused path for attention dropout and draw the mask with a slow generator, which made
  the band branch (201 tokens, 8-wide heads) 2.5x slower per step. Masks come from one
  NumPy PCG64 generator, seeded by :func:`seed_dropout`; its state is saved with training
  checkpoints (:func:`dropout_rng_state`) so that a resumed run continues bit for bit.
  ``fast_dropout=False`` uses PyTorch's own dropout (benchmarks compare both).
* ``ort_attention``: during ONNX export, attention becomes a single ONNX Runtime
  ``com.microsoft.MultiHeadAttention`` node (1.4x faster on CPU than the decomposed graph).
  The exporter builds a copy of the model with this choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_DROPOUT_RNG = np.random.default_rng(0)
_ATTENTION_CHUNK = 16  # (batch*heads) slices per chunk; keeps a chunk's scores in L2 cache


@dataclass(frozen=True)
class Kernels:
    """Kernel choices of a model, fixed when it is built.

    Attributes:
        fast_dropout: this module's dropout and attention-dropout kernels (True) or
            PyTorch's stock ones (False).
        ort_attention: export attention as ``com.microsoft.MultiHeadAttention`` nodes.
    """

    fast_dropout: bool = True
    ort_attention: bool = False


DEFAULT_KERNELS = Kernels()


def seed_dropout(seed: int) -> None:
    """Seed the generator behind all dropout masks of this module."""
    global _DROPOUT_RNG
    _DROPOUT_RNG = np.random.default_rng(seed)


def dropout_rng_state() -> dict[str, Any]:
    """State of the dropout-mask generator (plain dict; see :func:`set_dropout_rng_state`)."""
    return _DROPOUT_RNG.bit_generator.state


def set_dropout_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`dropout_rng_state`."""
    _DROPOUT_RNG.bit_generator.state = state


def keep_mask(shape: tuple[int, ...], p: float) -> torch.Tensor:
    """Float dropout mask: 0 with probability ``p``, else ``1 / (1 - p)``.

    The probability is resolved to 1/65536, from 16 random bits per element.
    """
    count = int(np.prod(shape))
    bits = torch.frombuffer(bytearray(_DROPOUT_RNG.bytes(2 * count)), dtype=torch.int16)
    keep = bits.view(shape) >= int(-32768 + round(p * 65536))
    return keep.to(torch.float32).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Inverted dropout drawing its mask from :func:`keep_mask`; identity in eval mode."""

    def __init__(self, p: float, fast: bool = True) -> None:
        super().__init__()
        self.p = p
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self.fast:
            return F.dropout(x, self.p, training=True)
        return x * keep_mask(tuple(x.shape), self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropoutAttention(torch.autograd.Function):
    """``(softmax(q k^T / sqrt(d)) * keep) @ v`` computed in cache-sized chunks.

    The attention probabilities are recomputed in backward instead of stored, so memory
    holds only q, k, v and the mask.
    Shapes: q, k, v (groups, tokens, head_dim); keep (groups, tokens, tokens).
    """

    @staticmethod
    @torch.autocast("cpu", enabled=False)  # computes in q's dtype (bfloat16 under autocast)
    def forward(ctx, q, k, v, keep):  # type: ignore[override]
        scale = q.shape[-1] ** -0.5
        k, v, keep = k.to(q.dtype), v.to(q.dtype), keep.to(q.dtype)
        out = torch.empty_like(q)
        for s in range(0, q.shape[0], _ATTENTION_CHUNK):
            e = s + _ATTENTION_CHUNK
            probs = torch.bmm(q[s:e], k[s:e].transpose(1, 2)).mul_(scale).softmax(-1)
            torch.bmm(probs.mul_(keep[s:e]), v[s:e], out=out[s:e])
        ctx.save_for_backward(q, k, v, keep)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, keep = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        grad_out = grad_out.contiguous().to(q.dtype)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for s in range(0, q.shape[0], _ATTENTION_CHUNK):
            e = s + _ATTENTION_CHUNK
            probs = torch.bmm(q[s:e], k[s:e].transpose(1, 2)).mul_(scale).softmax(-1)
            torch.bmm((probs * keep[s:e]).transpose(1, 2), grad_out[s:e], out=dv[s:e])
            d_probs = torch.bmm(grad_out[s:e], v[s:e].transpose(1, 2)).mul_(keep[s:e])
            d_scores = (d_probs - (d_probs * probs).sum(-1, keepdim=True)).mul_(probs)
            d_scores.mul_(scale)
            torch.bmm(d_scores, k[s:e], out=dq[s:e])
            torch.bmm(d_scores.transpose(1, 2), q[s:e], out=dk[s:e])
        return dq, dk, dv, None


class OrtMultiHeadAttention(torch.autograd.Function):
    """Attention of (batch, queries, dim) q over (batch, tokens, dim) k and v; exports as
    one ONNX Runtime contrib node."""

    @staticmethod
    def forward(ctx, q, k, v, num_heads):  # type: ignore[override]
        n, t, d = q.shape  # keys and values may be more tokens than the queries
        heads = (z.view(n, -1, num_heads, d // num_heads).transpose(1, 2) for z in (q, k, v))
        return F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(n, t, d)

    @staticmethod
    def symbolic(g, q, k, v, num_heads):  # type: ignore[no-untyped-def]
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=num_heads)
        out.setType(q.type())
        return out


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    Args:
        dim: token width; must be divisible by ``num_heads`` unless ``head_dim`` is given.
        num_heads: number of attention heads.
        qkv_bias: add a bias to the qkv projection.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        kernels: kernel choices (see :class:`Kernels`).
        head_dim: width of each head (default ``dim // num_heads``); the attention's inner
            width is ``num_heads * head_dim``, projected back to ``dim`` (MaskedSST: 8 x 64).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        kernels: Kernels = DEFAULT_KERNELS,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        if head_dim is None and dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        self.inner_dim = num_heads * self.head_dim
        self.attn_drop = attn_drop
        self.fast_dropout = kernels.fast_dropout
        self.ort_attention = kernels.ort_attention
        self.qkv = nn.Linear(dim, 3 * self.inner_dim, bias=qkv_bias)
        self.proj = nn.Linear(self.inner_dim, dim)
        self.proj_drop = Dropout(proj_drop, kernels.fast_dropout)

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """(batch, tokens, dim) -> (batch, tokens, dim), or (batch, queries, dim) when only
        the first ``queries`` tokens ask (all tokens still serve as keys and values)."""
        n, t, _ = x.shape  # (batch, tokens, dim)
        d = self.inner_dim
        if self.ort_attention and torch.onnx.is_in_onnx_export():
            q, k, v = self.qkv(x).split(d, dim=-1)  # each (batch, tokens, inner_dim)
            q = q if queries is None else q[:, :queries]
            return self.proj_drop(self.proj(OrtMultiHeadAttention.apply(q, k, v, self.num_heads)))
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (batch, heads, tokens, head_dim)
        if queries is not None:
            q, t = q[:, :, :queries], queries
        if self.training and self.attn_drop > 0.0 and self.fast_dropout:
            g = n * self.num_heads
            q, k, v = (z.reshape(g, t, self.head_dim) for z in (q, k, v))
            keep = keep_mask((g, t, t), self.attn_drop)
            x = DropoutAttention.apply(q, k, v, keep).view(n, self.num_heads, t, self.head_dim)
        else:
            drop = self.attn_drop if self.training else 0.0
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        x = x.transpose(1, 2).reshape(n, t, d)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """Two-layer perceptron: Linear -> GELU -> Dropout -> Linear -> Dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, fast_dropout: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = Dropout(drop, fast_dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = Dropout(drop, fast_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))`` then ``x + Mlp(LN(x))``.

    ``head_dim`` and ``qkv_bias`` configure the attention (see :class:`Attention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        drop: float = 0.0,
        eps: float = 1e-5,
        kernels: Kernels = DEFAULT_KERNELS,
        head_dim: int | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, drop, drop, kernels, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden, drop, kernels.fast_dropout)

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """(batch, tokens, dim) -> the same, or only the first ``queries`` tokens' outputs."""
        kept = x if queries is None else x[:, :queries]
        x = kept + self.attn(self.norm1(x), queries)
        return x + self.mlp(self.norm2(x))


class TokenEncoder(nn.Module):
    """Linear token embedding, cls token, positional embedding, blocks and final norms.

    Cls and positional embeddings start at zero, as in FactoFormer. After the blocks come
    two LayerNorms in a row: the transformer's own (``block_eps``, like the blocks') and
    the branch's outer one (``outer_eps``).

    Args:
        in_features: values per input token.
        num_tokens: input tokens per sample (without the cls token).
        dim: embedding width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_hidden: absolute hidden width of each block's MLP.
        drop: dropout used for positions, attention, projections and MLPs.
        block_eps: LayerNorm epsilon inside the transformer.
        outer_eps: epsilon of the outer LayerNorm.
        kernels: kernel choices (see :class:`Kernels`).
    """

    def __init__(
        self,
        in_features: int,
        num_tokens: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_hidden: int,
        drop: float,
        block_eps: float,
        outer_eps: float,
        kernels: Kernels = DEFAULT_KERNELS,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_features, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        self.pos_drop = Dropout(drop, kernels.fast_dropout)
        self.blocks = nn.Sequential(
            *(Block(dim, num_heads, mlp_hidden, drop, block_eps, kernels) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=block_eps)
        self.outer_norm = nn.LayerNorm(dim, eps=outer_eps)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, num_tokens, in_features) -> (batch, num_tokens, dim)."""
        return self.embed(tokens)

    def forward_features(
        self, embedded: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run embedded tokens through the transformer.

        Args:
            embedded: (batch, n, dim), e.g. from :meth:`embed_tokens`, possibly with some
                tokens replaced by a mask token.
            positions: (batch, n) token indices (0-based, cls excluded) when ``embedded``
                holds only some of the tokens (e.g. the visible ones); None when it holds
                all ``num_tokens`` in order.

        Returns:
            (batch, n + 1, dim) after both final norms; index 0 is the cls token.
        """
        x = self.pos_drop(self.with_cls(embedded, positions))
        return self.outer_norm(self.norm(self.blocks(x)))

    def with_cls(self, embedded: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """Prepend the cls token and add the positional embedding (see forward_features)."""
        cls = self.cls_token.expand(embedded.shape[0], -1, -1)
        if positions is None:
            return torch.cat([cls, embedded], dim=1) + self.pos_embed
        token_pos = self.pos_embed[0, 1:][positions]  # (batch, n, dim)
        return torch.cat([cls + self.pos_embed[:, :1], embedded + token_pos], dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, num_tokens, in_features) -> cls output (batch, dim).

        In eval mode the last block computes the cls token's output only (its attention
        asks one query of all tokens): the same result for about 15 % fewer FLOPs, since
        nothing reads the other tokens' final outputs. Training keeps the full last block,
        so its dropout draws, and thus its results, stay as they were (as does a branch
        without blocks).
        """
        if self.training or not self.blocks:
            return self.forward_features(self.embed_tokens(tokens))[:, 0]
        x = self.with_cls(self.embed_tokens(tokens), None)
        for block in self.blocks[:-1]:
            x = block(x)
        return self.outer_norm(self.norm(self.blocks[-1](x, queries=1)))[:, 0]
