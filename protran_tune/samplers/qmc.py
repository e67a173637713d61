"""Low-discrepancy seed sampling of whole architectures (Latin hypercube, Sobol, Halton, Hammersly, random).

The unit cube is mapped to architectures by :class:`ArchitectureMapping`, which is designed *not* to
inherit the bias of sampling the ProTran embedding: a uniform draw over the attention-op index of one
layer lands on 12 heads with probability 18564 / 21805 (85 %) and on 8 or 12 heads 99 % of the time,
because multisets of many heads vastly outnumber those of few. Here every structural choice gets its
own coordinate and is uniform over its *allowed values*:

Coordinate layout (fixed dimension, so one QMC point is one architecture; ``L = max_layers``,
``m = len(head_ops)``, ``F = max(feed_forward_stacks)``), blocked by kind with the choices that
change cost the most first, because Halton/Sobol points are best balanced in their first dimensions:

=====================  =========  ==========================================================
block                  coords     meaning
=====================  =========  ==========================================================
``n_layers``           1          uniform over ``space.layers``
``hidden``             L          layer j's hidden size, uniform over ``hidden_sizes``
``n_heads``            L          layer j's head count, uniform over ``num_heads``
``ff_depth``           L          layer j's feed-forward depth, uniform over the stacks
``op_mix``             L (m-1)    layer j's head count per op, by discrete stick-breaking:
                                  coordinate k is op k's count by the inverse CDF of its
                                  conditional law, so the mix is uniform over the multisets
                                  of n_heads ops (see :meth:`ArchitectureMapping.op_counts`)
``ff_width``           L F        layer j's widths i < depth, uniform over the widths
=====================  =========  ==========================================================

So ``dim = 1 + L (3 + (m - 1) + F)`` (145 for FlexiBERT 2.0); coordinates of layers beyond
``n_layers`` and of widths beyond a layer's depth are ignored. Per layer, the attention op type is
therefore uniform over head counts and, given the head count, uniform over its multisets; every op
has the same expected share 1/m of the heads; every multiset, width stack and hidden size is
reachable.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.design_space import DesignSpace, get_space

METHODS: tuple[str, ...] = ("lhs", "sobol", "halton", "hammersly", "random")
_ALIASES = {"latin-hypercube": "lhs", "latin_hypercube": "lhs", "hammersley": "hammersly", "uniform": "random"}


def check_method(method: str) -> str:
    """Canonical method name or ``ValueError`` naming the allowed ones."""
    key = _ALIASES.get(str(method).lower(), str(method).lower())
    if key not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}: allowed {list(METHODS)} (aliases {sorted(_ALIASES)})")
    return key


@lru_cache(maxsize=None)
def _composition_cdf(r: int, q: int) -> np.ndarray:
    """CDF over c = 0..r of the first part of a uniform composition of r into q >= 2 parts."""
    weights = np.array([math.comb(r - c + q - 2, q - 2) for c in range(r + 1)], dtype=np.float64)
    return np.cumsum(weights) / math.comb(r + q - 1, q - 1)


def _choice(u: np.ndarray, k: int) -> np.ndarray:
    """Index in ``[0, k)`` of coordinates ``u`` in [0, 1): ``floor(u k)``, clipped for u == 1."""
    return np.minimum((np.asarray(u) * k).astype(np.int64), k - 1)


class ArchitectureMapping:
    """Map points of the unit cube ``[0, 1)^dim`` to valid architectures of a design space.

    Args:
        space: design space (name, YAML path or :class:`DesignSpace`).

    Attributes:
        dim: number of coordinates of one point.
        blocks: ``{block name: slice}`` into a point (see the module docstring).
    """

    def __init__(self, space: DesignSpace | str = "flexibert2") -> None:
        self.space = get_space(space)
        sp = self.space
        L, m, F = sp.max_layers, len(sp.head_ops), max(sp.feed_forward_stacks)
        sizes = {"n_layers": 1, "hidden": L, "n_heads": L, "ff_depth": L, "op_mix": L * (m - 1), "ff_width": L * F}
        self.blocks: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self.blocks[name] = slice(start, start + size)
            start += size
        self.dim = start
        self._tables_cache: tuple[np.ndarray, np.ndarray] | None = None

    def op_counts(self, v: np.ndarray, n_heads: int) -> np.ndarray:
        """Head counts per op (length m, sum ``n_heads``) of op-mix coordinates ``v`` (length m - 1).

        Discrete stick-breaking: coordinate k picks op k's count by the inverse CDF of its
        conditional law under a uniform draw over compositions of the remaining heads among the
        remaining ops, ``P(c | r heads, q ops) = C(r - c + q - 2, q - 2) / C(r + q - 1, q - 1)``; the
        last op takes the rest. The result is exactly uniform over the multisets of ``n_heads`` ops.
        """
        m = len(self.space.head_ops)
        counts = np.zeros(m, dtype=np.int64)
        remaining = n_heads
        for k in range(m - 1):
            if remaining == 0:
                break
            cdf = _composition_cdf(remaining, m - k)
            c = min(int(np.searchsorted(cdf, float(v[k]), side="right")), remaining)
            counts[k] = c
            remaining -= c
        counts[m - 1] += remaining
        return counts

    def decode(self, point: Sequence[float] | np.ndarray) -> Architecture:
        """The architecture of one point ``(dim,)`` in [0, 1]; ``ValueError`` for a wrong shape or range."""
        u = np.asarray(point, dtype=np.float64)
        if u.shape != (self.dim,):
            raise ValueError(f"a point of space {self.space.name!r} must have shape ({self.dim},), got {u.shape}")
        if not np.isfinite(u).all() or u.min() < 0.0 or u.max() > 1.0:
            raise ValueError("point coordinates must lie in [0, 1]")
        sp, b = self.space, self.blocks
        L, m, F = sp.max_layers, len(sp.head_ops), max(sp.feed_forward_stacks)
        n_layers = sp.layers[int(_choice(u[b["n_layers"]], len(sp.layers))[0])]
        hidden = _choice(u[b["hidden"]], len(sp.hidden_sizes))
        heads = _choice(u[b["n_heads"]], len(sp.num_heads))
        depth = _choice(u[b["ff_depth"]], len(sp.feed_forward_stacks))
        mix = u[b["op_mix"]].reshape(L, m - 1)
        widths = _choice(u[b["ff_width"]], len(sp.feed_forward_dims)).reshape(L, F)
        layers = []
        for j in range(n_layers):
            n_heads = sp.num_heads[int(heads[j])]
            counts = self.op_counts(mix[j], n_heads)
            ops = tuple(op for op, c in zip(sp.head_ops, counts) for _ in range(int(c)))
            d = sp.feed_forward_stacks[int(depth[j])]
            ff = tuple(sp.feed_forward_dims[int(w)] for w in widths[j, :d])
            layers.append(Layer(hidden=sp.hidden_sizes[int(hidden[j])], heads=ops, feed_forward=ff))
        return sp.validate(Architecture(tuple(layers)))

    # ----------------------------------------------------------------- vectorised path
    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Padded composition CDFs ``(m+1, H+1, H+1)`` and multiset rank steps ``(m, m+1, H)``."""
        if self._tables_cache is None:
            sp = self.space
            m, H = len(sp.head_ops), max(sp.num_heads)
            cdf = np.ones((m + 1, H + 1, H + 1))
            for q in range(2, m + 1):
                for r in range(H + 1):
                    cdf[q, r, : r + 1] = _composition_cdf(r, q)
            # steps[prev, value, remaining]: multisets skipped by writing `value` after `prev`
            steps = np.zeros((m, m + 1, H))
            for prev in range(m):
                for value in range(prev, m):
                    for rem in range(H):
                        steps[prev, value, rem] = sum(math.comb(m - v + rem - 1, rem) for v in range(prev, value))
            self._tables_cache = (cdf, steps)
        return self._tables_cache

    def embed_points(self, points: np.ndarray) -> np.ndarray:
        """ProTran embeddings ``(n, embedding_dim)`` int64 of points ``(n, dim)``, vectorised.

        Equal to ``space.embed(decode(p))`` row by row, about two orders of magnitude faster; used to
        draw large candidate pools.
        """
        P = np.asarray(points, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != self.dim:
            raise ValueError(f"points must have shape (n, {self.dim}), got {P.shape}")
        sp, b = self.space, self.blocks
        n, L, m, F = len(P), sp.max_layers, len(sp.head_ops), max(sp.feed_forward_stacks)
        nd = len(sp.feed_forward_dims)
        cdf, steps = self._tables()
        layer_idx = _choice(P[:, b["n_layers"]], len(sp.layers))[:, 0]
        present = np.arange(L)[None, :] < np.asarray(sp.layers)[layer_idx][:, None]
        hidden = _choice(P[:, b["hidden"]], len(sp.hidden_sizes))
        heads = np.asarray(sp.num_heads)[_choice(P[:, b["n_heads"]], len(sp.num_heads))]  # (n, L)
        depth = np.asarray(sp.feed_forward_stacks)[_choice(P[:, b["ff_depth"]], len(sp.feed_forward_stacks))]
        widths = _choice(P[:, b["ff_width"]], nd).reshape(n, L, F)
        # feed-forward index: block offset of the depth + widths as base-nd digits (first most significant)
        ff = np.zeros((n, L), dtype=np.int64)
        for i in range(F):
            ff = np.where(i < depth, ff * nd + widths[:, :, i], ff)
        ff += np.vectorize(sp._ff_offsets.__getitem__, otypes=[np.int64])(depth)
        # op counts by discrete stick-breaking (as op_counts)
        mix = P[:, b["op_mix"]].reshape(n, L, m - 1)
        counts = np.zeros((n, L, m), dtype=np.int64)
        remaining = heads.copy()
        for k in range(m - 1):
            table = cdf[m - k][remaining]  # (n, L, H+1)
            c = np.minimum((table <= mix[:, :, k, None]).sum(-1), remaining)
            counts[:, :, k] = c
            remaining = remaining - c
        counts[:, :, m - 1] += remaining
        # multiset rank: sorted op sequence, positions past n_heads ignored
        H = max(sp.num_heads)
        cum = np.cumsum(counts, axis=-1)  # (n, L, m)
        pos = np.arange(H)
        seq = (cum[..., None, :] <= pos[:, None]).sum(-1)  # (n, L, H): op index at each position
        seq = np.minimum(seq, m - 1)
        prev = np.concatenate([np.zeros((n, L, 1), dtype=np.int64), seq[..., :-1]], axis=-1)
        rem = heads[..., None] - pos - 1
        valid = rem >= 0
        rank = np.where(valid, steps[prev, seq, np.maximum(rem, 0)], 0.0).sum(-1).astype(np.int64)
        att = rank + np.vectorize(sp._attention_offsets.__getitem__, otypes=[np.int64])(heads)
        E = np.zeros((n, sp.embedding_dim), dtype=np.int64)
        E[:, 0] = layer_idx
        E[:, 1::3] = np.where(present, hidden, 0)
        E[:, 2::3] = np.where(present, ff, 0)
        E[:, 3::3] = np.where(present, att, 0)
        return E

    def decode_many(self, points: np.ndarray) -> list[Architecture]:
        """Architectures of points ``(n, dim)``."""
        P = np.asarray(points, dtype=np.float64)
        if P.ndim != 2:
            raise ValueError(f"points must be 2-D (n, {self.dim}), got shape {P.shape}")
        return [self.decode(p) for p in P]


def hammersly(n: int, d: int, *, scramble: bool = True, seed: int | None = None) -> np.ndarray:
    """Hammersly (Hammersley) point set ``(n, d)``: first coordinate ``(i + s) / n``, the rest Halton.

    scipy has no Hammersley engine. With ``scramble`` the Halton part is scrambled by scipy and the
    first coordinate gets one seeded random shift ``s`` in [0, 1) (still one point per 1/n stratum);
    unscrambled, ``s = 0`` (the textbook set, whose first point is the origin).
    """
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    shift = float(rng.random()) if scramble else 0.0
    first = ((np.arange(n) + shift) / n)[:, None]
    if d == 1:
        return first
    rest = qmc.Halton(d - 1, scramble=scramble, rng=rng).random(n)
    return np.hstack([first, rest])


def unit_points(method: str, n: int, d: int, *, seed: int | None = None, scramble: bool = True) -> np.ndarray:
    """``n`` points ``(n, d)`` in [0, 1) of a sampling method (one of :data:`METHODS`).

    ``lhs``: scipy ``LatinHypercube`` (one point per 1/n stratum in every coordinate); ``sobol``:
    scrambled Sobol' (balanced for powers of two; other ``n`` are allowed, scipy's warning is muted);
    ``halton``; ``hammersly`` (:func:`hammersly`); ``random``: i.i.d. uniform. Seeded and deterministic.
    """
    from scipy.stats import qmc

    method = check_method(method)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if method == "lhs":
        return qmc.LatinHypercube(d, scramble=scramble, rng=seed).random(n)
    if method == "sobol":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            return qmc.Sobol(d, scramble=scramble, rng=seed).random(n)
    if method == "halton":
        return qmc.Halton(d, scramble=scramble, rng=seed).random(n)
    if method == "hammersly":
        return hammersly(n, d, scramble=scramble, seed=seed)
    return np.random.default_rng(seed).random((n, d))


def sample_architectures(
    space: DesignSpace | str = "flexibert2", method: str = "lhs", n: int = 16, *, seed: int | None = None,
    scramble: bool = True,
) -> list[Architecture]:
    """``n`` architectures of ``space`` from a sampling method through :class:`ArchitectureMapping`."""
    mapping = ArchitectureMapping(space)
    return mapping.decode_many(unit_points(method, n, mapping.dim, seed=seed, scramble=scramble))


def embedding_index_architectures(
    space: DesignSpace | str = "flexibert2", method: str = "lhs", n: int = 16, *, seed: int | None = None
) -> list[Architecture]:
    """The original ProTran seed mapping (biased; a reference only): a point set over the embedding's
    *index* columns.

    Column 0 picks the layer count, then per layer a uniform index over hidden sizes, feed-forward op
    types and attention op types (the last one makes 8 or 12 heads 99 % likely in FlexiBERT 2.0).
    """
    sp = get_space(space)
    points = unit_points(method, n, sp.embedding_dim, seed=seed)
    sizes = [len(sp.layers)] + [len(sp.hidden_sizes), sp.n_feed_forward_op_types, sp.n_attention_op_types] * sp.max_layers
    out = []
    for p in points:
        e = np.array([int(_choice(x, k)) for x, k in zip(p, sizes)], dtype=np.int64)
        e[1 + 3 * sp.layers[e[0]]:] = 0
        out.append(sp.decode(e))
    return out


def lhs_pool_rows(E: np.ndarray, k: int, rng: np.random.Generator, space: DesignSpace | str = "flexibert2") -> list[int]:
    """A Latin-hypercube seed drawn from a pool: ``min(k, len(E))`` distinct row indices of the ProTran
    embeddings ``E``.

    The hypercube lives on the pool's whole-architecture features (layers, parameters, FLOPs, head
    dimensions per op, ...; :class:`~protran_tune.space.FeatureEncoder`), each rank-normalised to (0, 1)
    and constant ones dropped; each of its ``k`` points, in order, takes the nearest row not taken yet.
    ``rng`` seeds the hypercube.
    """
    from scipy.stats import qmc, rankdata

    from protran_tune.space import FeatureEncoder

    k = min(int(k), len(E))
    fe = FeatureEncoder(space)
    F = fe.transform(np.asarray(E, dtype=np.int64))[:, : fe.n_global_features_]
    F = F[:, np.ptp(F, axis=0) > 0]
    if F.shape[1] == 0:  # a pool of one shape: any k rows
        return [int(i) for i in rng.permutation(len(E))[:k]]
    U = np.column_stack([(rankdata(c) - 0.5) / len(c) for c in F.T])
    points = qmc.LatinHypercube(d=U.shape[1], seed=rng).random(k)
    free = np.ones(len(E), dtype=bool)
    chosen = []
    for p in points:
        d = ((U - p) ** 2).sum(1)
        d[~free] = np.inf
        i = int(np.argmin(d))
        free[i] = False
        chosen.append(i)
    return chosen
