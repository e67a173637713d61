"""Batched head groups of a FlexiBERT 2.0 encoder layer.

All heads of one family in a layer run as one batched op (no Python loop per head). Every group maps
``x`` of shape ``(B, T, h)`` to per-head outputs ``(B, T, n, d)`` (``n`` heads of size ``d``); the
layer concatenates the groups along the head axis in canonical op order. Parameter counts equal
:func:`protran_tune.space.cost.head_parameters` times the number of heads.

Masks: :class:`Masks` carries the padding mask in the two forms the ops need; positions where the
mask is 0 never influence outputs at valid positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Masks:
    """Padding masks of one batch (``None`` when nothing is padded).

    Attributes:
        keys: bool ``(B, 1, 1, T)``, True where a key may be attended to (SDPA ``attn_mask``).
        tokens: ``(B, T, 1)`` in the activation dtype, 1 at valid tokens and 0 at padding.
    """

    keys: torch.Tensor | None = None
    tokens: torch.Tensor | None = None

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor | None, dtype: torch.dtype) -> "Masks":
        """From a ``(B, T)`` 0/1 mask; all-ones (or ``None``) gives empty masks (SDPA's fast path)."""
        if attention_mask is None:
            return cls()
        valid = attention_mask.bool()
        if bool(valid.all()):
            return cls()
        return cls(keys=valid[:, None, None, :], tokens=valid[:, :, None].to(dtype))


class SelfAttentionHeads(nn.Module):
    """``sa-sdp`` and ``sa-wma`` heads: one fused Q/K/V ``Linear(h, 3 n d)`` and one SDPA call.

    ``sa-wma`` heads score ``(Q W) K^T / sqrt(d)`` with a learned ``d x d`` matrix ``W`` per head,
    applied to all wma heads at once by ``einsum``. With ``relative_positions = P > 0`` a table
    ``Embedding(2P - 1, d)`` adds BERT's relative_key term ``q . r_{i-j} / sqrt(d)`` to the scores.
    """

    def __init__(
        self, hidden: int, head_size: int, n_sdp: int, n_wma: int, relative_positions: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.n_sdp, self.n_wma, self.head_size = n_sdp, n_wma, head_size
        self.n_heads = n_sdp + n_wma
        self.qkv = nn.Linear(hidden, 3 * self.n_heads * head_size)
        self.wma_weight = nn.Parameter(torch.empty(n_wma, head_size, head_size)) if n_wma else None
        self.distance_embedding = nn.Embedding(2 * relative_positions - 1, head_size) if relative_positions else None
        self.max_positions = relative_positions
        self.dropout = dropout
        self.scale = head_size**-0.5

    def forward(self, x: torch.Tensor, masks: Masks) -> torch.Tensor:
        B, T, _ = x.shape
        n, d = self.n_heads, self.head_size
        q, k, v = self.qkv(x).view(B, T, 3, n, d).transpose(1, 3).unbind(2)  # each (B, n, T, d)
        if self.wma_weight is not None:
            q_wma = torch.einsum("bhtd,hde->bhte", q[:, self.n_sdp :], self.wma_weight)
            q = q_wma if self.n_sdp == 0 else torch.cat([q[:, : self.n_sdp], q_wma], dim=1)
        attn_mask = masks.keys
        if self.distance_embedding is not None:
            pos = torch.arange(T, device=x.device)
            table = self.distance_embedding(pos[:, None] - pos[None, :] + self.max_positions - 1)  # (T, T, d)
            bias = torch.einsum("bhld,lrd->bhlr", q, table.to(q.dtype)) * self.scale
            if attn_mask is not None:
                bias = bias.masked_fill(~attn_mask, torch.finfo(bias.dtype).min)
            attn_mask = bias
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return out.transpose(1, 2)  # (B, T, n, d)


@lru_cache(maxsize=64)
def _dct_matrix(n: int, device: torch.device, dtype: torch.dtype, inference: bool) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` ``(n, n)``: ``y = C @ x`` transforms along the first axis."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * t + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.to(device=device, dtype=dtype)


def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cached orthonormal DCT-II matrix (a plain tensor, never a parameter)."""
    return _dct_matrix(n, torch.device(device), dtype, torch.is_inference_mode_enabled())


class LinearTransformHeads(nn.Module):
    """``l-dft`` and ``l-dct`` heads (FNet style): one value ``Linear(h, n d)`` then a fixed 2-D mix.

    Each head's values ``(T, d)`` are transformed over tokens and features together: ``l-dft`` takes
    the real part of the orthonormal 2-D DFT, ``l-dct`` the orthonormal 2-D DCT-II. Padded tokens are
    zeroed before mixing, so their content never reaches valid positions.
    """

    def __init__(self, hidden: int, head_size: int, n_dft: int, n_dct: int) -> None:
        super().__init__()
        self.n_dft, self.n_dct, self.head_size = n_dft, n_dct, head_size
        self.value = nn.Linear(hidden, (n_dft + n_dct) * head_size)

    def forward(self, x: torch.Tensor, masks: Masks) -> torch.Tensor:
        B, T, _ = x.shape
        d = self.head_size
        v = self.value(x)
        if masks.tokens is not None:
            v = v * masks.tokens
        v = v.view(B, T, self.n_dft + self.n_dct, d)
        outs = []
        if self.n_dft:
            vd = v[:, :, : self.n_dft]
            spec = torch.fft.fft2(vd.float() if vd.dtype in (torch.float16, torch.bfloat16) else vd, dim=(1, 3), norm="ortho")
            outs.append(spec.real.to(v.dtype))
        if self.n_dct:
            vc = v[:, :, self.n_dft :]
            m = self.n_dct
            y = torch.matmul(vc, dct_matrix(d, v.device, v.dtype).T)  # over features
            y = torch.matmul(dct_matrix(T, v.device, v.dtype), y.reshape(B, T, m * d))  # over tokens
            outs.append(y.view(B, T, m, d))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


class ConvHeads(nn.Module):
    """``n`` ``c-k`` heads: ConvBERT span-based dynamic convolution, batched over heads.

    Per head: query and value ``Linear(h, d)`` (fused for all heads as ``qv``), key = separable
    convolution of the input (depthwise ``h x k`` without bias, pointwise ``Linear(h, d)``; grouped
    ``Conv1d`` over all heads), kernel generator ``Linear(d, k)`` applied to ``key * query``, softmax
    over the ``k`` taps, which weight the value window centred on each token (zero outside the sequence
    and at padded tokens).
    """

    def __init__(self, hidden: int, head_size: int, n_heads: int, kernel: int) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"convolution kernel must be odd, got {kernel}")
        self.hidden, self.head_size, self.n_heads, self.kernel = hidden, head_size, n_heads, kernel
        n, h, d = n_heads, hidden, head_size
        self.qv = nn.Linear(h, 2 * n * d)
        self.key_depthwise = nn.Conv1d(n * h, n * h, kernel, padding=kernel // 2, groups=n * h, bias=False)
        self.key_pointwise = nn.Conv1d(n * h, n * d, 1, groups=n)
        self.kernel_weight = nn.Parameter(torch.empty(n, d, kernel))
        self.kernel_bias = nn.Parameter(torch.empty(n, kernel))

    def forward(self, x: torch.Tensor, masks: Masks) -> torch.Tensor:
        B, T, h = x.shape
        n, d, k = self.n_heads, self.head_size, self.kernel
        if masks.tokens is not None:
            x = x * masks.tokens
        q, v = self.qv(x).view(B, T, 2, n, d).unbind(2)  # (B, T, n, d)
        if masks.tokens is not None:
            v = v * masks.tokens[..., None]
        xt = x.transpose(1, 2)  # (B, h, T)
        if n > 1:
            xt = xt.repeat(1, n, 1)  # head-major channels (B, n h, T)
        key = self.key_pointwise(self.key_depthwise(xt)).transpose(1, 2).reshape(B, T, n, d)
        logits = torch.einsum("btnd,ndk->btnk", key * q, self.kernel_weight) + self.kernel_bias
        weights = torch.softmax(logits, dim=-1)  # (B, T, n, k)
        pad = k // 2
        windows = F.pad(v, (0, 0, 0, 0, pad, pad)).unfold(1, k, 1)  # (B, T, n, d, k)
        return torch.einsum("btndk,btnk->btnd", windows, weights)
