"""Head groups: agreement with per-head reference code, padding masks, contribution and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protran_tune.models import ConvHeads, LinearTransformHeads, Masks, SelfAttentionHeads, build_model
from protran_tune.models.heads import dct_matrix
from protran_tune.space import Architecture, Layer

ALL_OPS = ("sa-sdp", "sa-wma", "l-dft", "l-dct", "c-5", "c-9", "c-13")
SMALL = {"vocab_size": 64, "max_position_embeddings": 32, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere (identity/zero initialisations would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _mask(B: int, T: int, lengths: list[int]) -> torch.Tensor:
    m = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        m[b, :n] = 1
    return m


# ----------------------------------------------------------------- reference implementations
def _ref_self_attention(g: SelfAttentionHeads, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    B, T, _ = x.shape
    n, d = g.n_heads, g.head_size
    W, bias = g.qkv.weight, g.qkv.bias
    outs = []
    for i in range(n):
        q = x @ W[i * d : (i + 1) * d].T + bias[i * d : (i + 1) * d]
        k = x @ W[(n + i) * d : (n + i + 1) * d].T + bias[(n + i) * d : (n + i + 1) * d]
        v = x @ W[(2 * n + i) * d : (2 * n + i + 1) * d].T + bias[(2 * n + i) * d : (2 * n + i + 1) * d]
        if i >= g.n_sdp:
            q = q @ g.wma_weight[i - g.n_sdp]
        scores = q @ k.transpose(1, 2)
        if g.distance_embedding is not None:
            for l in range(T):
                for r in range(T):
                    scores[:, l, r] += q[:, l] @ g.distance_embedding.weight[l - r + g.max_positions - 1]
        scores = scores / math.sqrt(d)
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        outs.append(torch.softmax(scores, -1) @ v)
    return torch.stack(outs, dim=2)


def _ref_conv(g: ConvHeads, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    B, T, h = x.shape
    n, d, k = g.n_heads, g.head_size, g.kernel
    x = x * valid[..., None]
    outs = []
    for i in range(n):
        q = x @ g.qv.weight[i * d : (i + 1) * d].T + g.qv.bias[i * d : (i + 1) * d]
        v = (x @ g.qv.weight[(n + i) * d : (n + i + 1) * d].T + g.qv.bias[(n + i) * d : (n + i + 1) * d]) * valid[..., None]
        dw = F.conv1d(x.transpose(1, 2), g.key_depthwise.weight[i * h : (i + 1) * h], padding=k // 2, groups=h)
        key = dw.transpose(1, 2) @ g.key_pointwise.weight[i * d : (i + 1) * d, :, 0].T + g.key_pointwise.bias[i * d : (i + 1) * d]
        w = torch.softmax((key * q) @ g.kernel_weight[i] + g.kernel_bias[i], -1)  # (B, T, k)
        out = torch.zeros(B, T, d)
        for t in range(T):
            for j in range(k):
                s = t + j - k // 2
                if 0 <= s < T:
                    out[:, t] += w[:, t, j : j + 1] * v[:, s]
        outs.append(out)
    return torch.stack(outs, dim=2)


@pytest.mark.parametrize("relative", [0, 16])
def test_self_attention_matches_per_head_reference(relative: int) -> None:
    torch.manual_seed(0)
    g = SelfAttentionHeads(24, 6, n_sdp=2, n_wma=2, relative_positions=relative)
    _randomise(g)
    x = torch.randn(2, 9, 24)
    am = _mask(2, 9, [9, 6])
    got = g(x, Masks.from_attention_mask(am, x.dtype))
    want = _ref_self_attention(g, x, am.bool())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kernel,n_heads", [(5, 1), (9, 3)])
def test_conv_heads_match_per_head_reference(kernel: int, n_heads: int) -> None:
    torch.manual_seed(1)
    g = ConvHeads(12, 4, n_heads, kernel)
    _randomise(g)
    x = torch.randn(2, 11, 12)
    am = _mask(2, 11, [11, 7])
    got = g(x, Masks.from_attention_mask(am, x.dtype))
    want = _ref_conv(g, x, am.bool())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_linear_transforms_match_numpy_and_scipy() -> None:
    scipy_fft = pytest.importorskip("scipy.fft")
    torch.manual_seed(2)
    g = LinearTransformHeads(16, 4, n_dft=2, n_dct=2)
    _randomise(g)
    x = torch.randn(2, 10, 16)
    am = _mask(2, 10, [10, 6])
    got = g(x, Masks.from_attention_mask(am, x.dtype)).detach().numpy()
    v = (g.value(x) * am[..., None]).view(2, 10, 4, 4).detach().numpy().astype(np.float64)
    dft = np.fft.fft2(v[:, :, :2], axes=(1, 3), norm="ortho").real
    dct = scipy_fft.dctn(v[:, :, 2:], type=2, axes=(1, 3), norm="ortho")
    np.testing.assert_allclose(got, np.concatenate([dft, dct], axis=2), atol=1e-5)


def test_dct_matrix_is_orthonormal() -> None:
    c = dct_matrix(12, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(12, dtype=torch.float64))


# ----------------------------------------------------------------- whole models
def _mixed_arch() -> Architecture:
    return Architecture(
        (
            Layer(56, ALL_OPS, (48, 80)),
            Layer(48, ("sa-sdp", "l-dct", "c-5", "c-5"), (64,)),
            Layer(48, ("sa-wma", "l-dft", "c-9"), (32, 32, 40)),
        )
    )


ARCHS = {op: Architecture.homogeneous(2, 32, 2, 64, op=op) for op in ALL_OPS}
ARCHS["mixed"] = _mixed_arch()


@pytest.mark.parametrize("position", ["absolute", "relative_key"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_padded_tokens_never_reach_valid_positions(name: str, position: str) -> None:
    torch.manual_seed(3)
    model = build_model(ARCHS[name], position_embedding_type=position, **SMALL).eval()
    _randomise(model, 4)
    T = 14
    ids = torch.randint(1, 64, (3, T))
    am = _mask(3, T, [T, 9, 4])
    other = ids.clone()
    other[1, 9:] = (ids[1, 9:] + 7) % 63 + 1
    other[2, 4:] = (ids[2, 4:] + 11) % 63 + 1
    with torch.no_grad():
        a = model(ids, attention_mask=am).last_hidden_state
        b = model(other, attention_mask=am).last_hidden_state
        unmasked = model(other).last_hidden_state
    valid = am.bool()
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=1e-5)
    assert (a[~valid] - b[~valid]).abs().max() > 1e-3  # the perturbation is real
    # without the mask the padded tokens do reach valid positions (every op mixes tokens)
    assert (a[valid] - unmasked[valid]).abs().max() > 1e-3


def _group_outputs(model, ids):
    with torch.no_grad():
        return model(ids).last_hidden_state.clone()


@pytest.mark.parametrize("position", ["absolute", "relative_key"])
def test_every_head_type_contributes(position: str) -> None:
    torch.manual_seed(5)
    model = build_model(_mixed_arch(), position_embedding_type=position, **SMALL).eval()
    _randomise(model, 7)  # trained-like weights: at initialisation dynamic kernels are near uniform
    ids = torch.randint(1, 64, (2, 12))
    base = _group_outputs(model, ids)
    attention = model.encoder.layer[0].attention
    sa, lt, c5, c9, c13 = attention.groups
    d = attention.head_size
    perturbations = {
        "sa-sdp": (sa.qkv.weight, slice(0, d)),  # query rows of the sdp head
        "sa-wma": (sa.wma_weight, slice(None)),
        "l-dft": (lt.value.weight, slice(0, d)),
        "l-dct": (lt.value.weight, slice(d, 2 * d)),
        "c-5": (c5.kernel_weight, slice(None)),
        "c-9": (c9.key_depthwise.weight, slice(None)),
        "c-13": (c13.qv.weight, slice(c13.head_size, None)),  # value rows
    }
    if position == "relative_key":
        perturbations["relative"] = (sa.distance_embedding.weight, slice(None))
    for op, (param, rows) in perturbations.items():
        saved = param.detach().clone()
        with torch.no_grad():
            param[rows] += 0.5 * torch.randn_like(param[rows])
        changed = (_group_outputs(model, ids) - base).abs().max()
        with torch.no_grad():
            param.copy_(saved)
        assert changed > 1e-4, f"perturbing {op} parameters left the output unchanged"
    torch.testing.assert_close(_group_outputs(model, ids), base)


@pytest.mark.parametrize("position", ["absolute", "relative_key"])
def test_every_parameter_receives_a_gradient(position: str) -> None:
    torch.manual_seed(6)
    model = build_model(_mixed_arch(), task="classification", position_embedding_type=position, num_labels=3, **SMALL)
    model.train()
    ids = torch.randint(1, 64, (3, 12))
    am = _mask(3, 12, [12, 8, 5])
    out = model(ids, attention_mask=am, token_type_ids=(ids % 2), labels=torch.tensor([0, 2, 1]))
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    assert torch.isfinite(out.loss)
