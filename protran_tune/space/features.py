"""Dense feature encoding of architectures for regressors (surrogate input ``X``).

The ProTran embedding stores *indices* (an attention-op index of 21805 values is no useful distance
for a regressor). :class:`FeatureEncoder` turns embeddings into physically meaningful numbers, fully
vectorised (lookup tables over op indices), so whole candidate pools encode in milliseconds.

Columns (``feature_names_``), for a space with ``m`` head ops and ``L = max_layers``:

* global: ``n_layers``; ``encoder_params_m`` (encoder parameters, millions, see
  :mod:`protran_tune.space.cost`); ``encoder_gflops`` (one sequence of ``seq_len`` tokens);
  ``heads_<op>`` (heads of each op over all layers, m columns); ``head_dims_<op>`` (sum of their head
  sizes, m columns); ``hidden_mean``, ``hidden_max``, ``ff_width_sum``, ``ff_layers``, ``projections``
  (layer boundaries where the hidden size changes);
* per layer ``j < L`` (zero when the layer is absent): ``l{j}_hidden``, ``l{j}_n_heads``,
  ``l{j}_head_size``, ``l{j}_heads_<op>`` (m columns), ``l{j}_ff_width_sum``, ``l{j}_ff_depth``,
  ``l{j}_params_m``, ``l{j}_gflops``.

Shapes: ``transform(E)`` maps int embeddings ``(n, 1 + 3L)`` to float64 features ``(n, n_features_)``.

``cost_transform(E)`` gives a compact cost set ``(n, len(cost_feature_names_))`` for regressors that
need few inputs on small data: ``n_layers``, ``encoder_params_m``, ``encoder_gflops``,
``head_dims_<family>`` (sum of head sizes over all heads of an op family: ``sa`` self-attention,
``l`` linear transform, ``c`` convolution; families absent from the space are left out) and
``ff_width_sum``.

``accuracy_transform(E)`` gives a compact set for accuracy predictors (what decides quality rather than
cost): ``n_layers``, ``hidden_mean``, ``encoder_params_m``, ``op_layers_<op>`` (layer-equivalents of each
head op: per layer, the share of its heads of that op, summed over layers), ``heads_per_layer`` and
``ff_depth_per_layer``, ``ff_width_per_layer`` (means over layers). ``layer_transform(E)`` is positional:
``n_layers`` and, per layer ``j < L`` (zero when absent), ``l{j}_hidden``, ``l{j}_share_<op>`` (share of the
layer's heads of each op), ``l{j}_n_heads``, ``l{j}_ff_width`` (mean width) and ``l{j}_ff_depth``.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import Sequence

import numpy as np

from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import DesignSpace, get_space
from protran_tune.space.ops import conv_kernel, op_family

_MAX_TABLE = 2_000_000  # largest attention-op table built eagerly


class FeatureEncoder:
    """Vectorised dense features of a design space's architectures.

    Args:
        space: design space (name, path or :class:`DesignSpace`).
        seq_len: tokens per sequence for the FLOP columns.
    """

    def __init__(self, space: DesignSpace | str = "flexibert2", seq_len: int = 128) -> None:
        self.space = get_space(space)
        self.seq_len = seq_len

    # ----------------------------------------------------------------- tables
    @cached_property
    def _attention_counts(self) -> np.ndarray:
        """(n_attention_op_types, m) head counts per op, in rank order of the attention index."""
        sp = self.space
        if sp.n_attention_op_types > _MAX_TABLE:
            raise ValueError(
                f"space {sp.name!r} has {sp.n_attention_op_types} attention op types per layer; "
                f"feature tables are limited to {_MAX_TABLE}"
            )
        m = len(sp.head_ops)
        rows = []
        for n in sp.num_heads:
            for combo in itertools.combinations_with_replacement(range(m), n):
                rows.append(np.bincount(combo, minlength=m))
        return np.asarray(rows, dtype=np.float64)

    @cached_property
    def _ff_table(self) -> np.ndarray:
        """(n_ff_types, 5): depth, first width, last width, sum of widths, sum of inner products f_i*f_{i+1}."""
        sp = self.space
        rows = []
        for depth in sp.feed_forward_stacks:
            for widths in itertools.product(sp.feed_forward_dims, repeat=depth):
                inner = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
                rows.append((depth, widths[0], widths[-1], sum(widths), inner))
        return np.asarray(rows, dtype=np.float64)

    @cached_property
    def feature_names_(self) -> list[str]:
        ops = [op.replace("-", "_") for op in self.space.head_ops]
        names = ["n_layers", "encoder_params_m", "encoder_gflops"]
        names += [f"heads_{o}" for o in ops] + [f"head_dims_{o}" for o in ops]
        names += ["hidden_mean", "hidden_max", "ff_width_sum", "ff_layers", "projections"]
        for j in range(self.space.max_layers):
            names += [f"l{j}_hidden", f"l{j}_n_heads", f"l{j}_head_size"]
            names += [f"l{j}_heads_{o}" for o in ops]
            names += [f"l{j}_ff_width_sum", f"l{j}_ff_depth", f"l{j}_params_m", f"l{j}_gflops"]
        return names

    @property
    def n_features_(self) -> int:
        return len(self.feature_names_)

    @cached_property
    def n_global_features_(self) -> int:
        """Number of leading whole-architecture columns (the rest are per layer)."""
        return 3 + 2 * len(self.space.head_ops) + 5

    @cached_property
    def _cost_matrix(self) -> tuple[list[str], np.ndarray]:
        """Names and the ``(n_global_features_, n_cost)`` 0/1 matrix summing global columns into the cost set."""
        names = self.feature_names_[: self.n_global_features_]
        families: dict[str, list[int]] = {}
        for op in self.space.head_ops:
            families.setdefault(op_family(op), []).append(names.index("head_dims_" + op.replace("-", "_")))
        groups = [[names.index(c)] for c in ("n_layers", "encoder_params_m", "encoder_gflops")]
        cost_names = ["n_layers", "encoder_params_m", "encoder_gflops"]
        for fam, cols in families.items():
            groups.append(cols)
            cost_names.append(f"head_dims_{fam}")
        groups.append([names.index("ff_width_sum")])
        cost_names.append("ff_width_sum")
        M = np.zeros((len(names), len(groups)))
        for j, cols in enumerate(groups):
            M[cols, j] = 1.0
        return cost_names, M

    @property
    def cost_feature_names_(self) -> list[str]:
        return list(self._cost_matrix[0])

    def cost_transform(self, embeddings: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Compact cost features ``(n, len(cost_feature_names_))`` of embeddings (see module docstring)."""
        return self.transform(embeddings)[:, : self.n_global_features_] @ self._cost_matrix[1]

    @property
    def accuracy_feature_names_(self) -> list[str]:
        ops = [op.replace("-", "_") for op in self.space.head_ops]
        return (["n_layers", "hidden_mean", "encoder_params_m"] + [f"op_layers_{o}" for o in ops]
                + ["heads_per_layer", "ff_depth_per_layer", "ff_width_per_layer"])

    def accuracy_transform(self, embeddings: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Accuracy features ``(n, len(accuracy_feature_names_))`` of embeddings (see module docstring)."""
        F = self.transform(embeddings)
        m, L, g = len(self.space.head_ops), self.space.max_layers, self.n_global_features_
        per = F[:, g:].reshape(len(F), L, 7 + m)
        n_heads = per[..., 1]
        share = per[..., 3 : 3 + m] / np.maximum(n_heads, 1)[..., None]  # (n, L, m), 0 for absent layers
        n_layers = F[:, 0]
        return np.column_stack([
            n_layers, F[:, 3 + 2 * m], F[:, 1], share.sum(1),
            n_heads.sum(1) / n_layers, per[..., 4 + m].sum(1) / n_layers, per[..., 3 + m].sum(1) / n_layers,
        ])

    def layer_transform(self, embeddings: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Positional features ``(n, 1 + L * (m + 4))`` of embeddings (see module docstring)."""
        F = self.transform(embeddings)
        m, L, g = len(self.space.head_ops), self.space.max_layers, self.n_global_features_
        per = F[:, g:].reshape(len(F), L, 7 + m)
        n_heads = per[..., 1]
        share = per[..., 3 : 3 + m] / np.maximum(n_heads, 1)[..., None]
        width = per[..., 3 + m] / np.maximum(per[..., 4 + m], 1)
        cols = np.concatenate([per[..., :1], share, n_heads[..., None], width[..., None], per[..., 4 + m : 5 + m]], axis=-1)
        return np.column_stack([F[:, 0], cols.reshape(len(F), -1)])

    # ----------------------------------------------------------------- per-head constants
    def _head_coefficients(self) -> tuple[np.ndarray, ...]:
        """Per op: params = a*h*d + b*d + c*d*d + e*h + g; flops/t = p*h*d + q*t*d + r*d*d + s*h + u*d."""
        a, b, c, e, g, p, q, r, s, u = (np.zeros(len(self.space.head_ops)) for _ in range(10))
        for i, op in enumerate(self.space.head_ops):
            fam = op_family(op)
            if fam == "sa":
                a[i], b[i], p[i], q[i] = 3, 3, 6, 4
                if op == "sa-wma":
                    c[i], r[i] = 1, 2
            elif fam == "l":
                a[i], b[i], p[i], q[i], r[i] = 1, 1, 2, 2, 2
            else:
                k = conv_kernel(op)
                a[i], b[i], e[i], g[i] = 3, 3 + k, k, k
                p[i], s[i], u[i] = 6, 2 * k, 4 * k
        return a, b, c, e, g, p, q, r, s, u

    @cached_property
    def _attention_table(self) -> np.ndarray:
        """(n_hidden, n_attention_op_types, 5 + 2m) per (hidden index, attention op index): hidden,
        n_heads, head size, attention-block params (heads, output projection, LayerNorm) and FLOPs,
        head counts per op (m), head dims per op (m)."""
        counts = self._attention_counts[None, :, :]  # (1, A, m)
        h = np.asarray(self.space.hidden_sizes, dtype=np.float64)[:, None, None]  # (H, 1, 1)
        n_heads = counts.sum(-1, keepdims=True)
        d = np.floor_divide(h, n_heads)
        t = float(self.seq_len)
        a, b, c, e, g, p, q, r, s, u = self._head_coefficients()
        head_params = (counts * (a * h * d + b * d + c * d * d + e * h + g)).sum(-1, keepdims=True)
        head_flops = (counts * t * (p * h * d + q * t * d + r * d * d + s * h + u * d)).sum(-1, keepdims=True)
        params = head_params + n_heads * d * h + 3 * h  # + attention output + LayerNorm
        flops = head_flops + 2 * t * n_heads * d * h
        shape = (len(self.space.hidden_sizes), counts.shape[1], 1)
        columns = [np.broadcast_to(x, shape) for x in (h, n_heads, d, params, flops)]
        columns += [np.broadcast_to(counts, shape[:2] + (counts.shape[2],)), counts * d]
        return np.concatenate(columns, axis=-1)

    # ----------------------------------------------------------------- transform
    def transform(self, embeddings: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Features of ProTran embeddings ``(n, embedding_dim)`` -> ``(n, n_features_)`` float64."""
        sp = self.space
        E = np.asarray(embeddings, dtype=np.int64)
        if E.ndim == 1:
            E = E[None, :]
        if E.ndim != 2 or E.shape[1] != sp.embedding_dim:
            raise ValueError(f"embeddings must have shape (n, {sp.embedding_dim}), got {E.shape}")
        n, L, m, t = len(E), sp.max_layers, len(sp.head_ops), float(self.seq_len)
        layers_arr = np.asarray(sp.layers)
        if E[:, 0].min(initial=0) < 0 or E[:, 0].max(initial=0) >= len(layers_arr):
            raise ValueError("embedding column 0 holds an invalid layer-count index")
        n_layers = layers_arr[E[:, 0]]
        present = np.arange(L)[None, :] < n_layers[:, None]  # (n, L)
        # One gather per table: attention block by (hidden, attention op), feed-forward by its op index.
        att = self._attention_table[E[:, 1::3], E[:, 3::3]] * present[..., None]  # (n, L, 5 + 2m)
        ff = self._ff_table[E[:, 2::3]] * present[..., None]  # (n, L, 5)
        h, n_heads, head_size, att_params, att_flops = (att[..., i] for i in range(5))
        counts, head_dims = att[..., 5 : 5 + m], att[..., 5 + m :]
        depth, first, last, width_sum, inner = (ff[..., i] for i in range(5))
        prev = np.concatenate([h[:, :1], h[:, :-1]], axis=1)
        proj = present & (prev != h)
        ff_macs = h * (first + last) + inner
        layer_params = proj * (prev * h + h) + att_params + ff_macs + width_sum + 3 * h  # FF biases + LayerNorm
        layer_flops = proj * 2 * t * prev * h + att_flops + 2 * t * ff_macs

        n_global = self.n_global_features_
        out = np.empty((n, n_global + L * (7 + m)))
        out[:, 0] = n_layers
        out[:, 1] = layer_params.sum(1) / 1e6
        out[:, 2] = layer_flops.sum(1) / 1e9
        out[:, 3 : 3 + m] = counts.sum(1)
        out[:, 3 + m : 3 + 2 * m] = head_dims.sum(1)
        out[:, 3 + 2 * m] = h.sum(1) / np.maximum(present.sum(1), 1)
        out[:, 4 + 2 * m] = h.max(1)
        out[:, 5 + 2 * m] = width_sum.sum(1)
        out[:, 6 + 2 * m] = depth.sum(1)
        out[:, 7 + 2 * m] = proj.sum(1)
        per_layer = out[:, n_global:].reshape(n, L, 7 + m)
        per_layer[..., :3] = att[..., :3]
        per_layer[..., 3 : 3 + m] = counts
        per_layer[..., 3 + m] = width_sum
        per_layer[..., 4 + m] = depth
        per_layer[..., 5 + m] = layer_params / 1e6
        per_layer[..., 6 + m] = layer_flops / 1e9
        return out

    def transform_architectures(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Features of architectures (validated against the space)."""
        if not archs:
            return np.zeros((0, self.n_features_))
        return self.transform(np.stack([self.space.embed(arch) for arch in archs]))


_SHARED: dict[tuple[str, int], FeatureEncoder] = {}


def shared_encoder(space: DesignSpace | str = "flexibert2", seq_len: int = 128) -> FeatureEncoder:
    """One :class:`FeatureEncoder` per built-in space and sequence length, kept for the process (its lookup
    tables take a fraction of a second to build); any other space gets a fresh encoder."""
    from protran_tune.space.design_space import BUILTIN_SPACES

    name = space if isinstance(space, str) else space.name
    builtin = name in BUILTIN_SPACES and (isinstance(space, str) or get_space(name) == space)
    if not builtin:
        return FeatureEncoder(space, seq_len)
    if (name, seq_len) not in _SHARED:
        _SHARED[(name, seq_len)] = FeatureEncoder(name, seq_len)
    return _SHARED[(name, seq_len)]
