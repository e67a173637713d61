"""Design spaces as data: the FlexiBERT 2.0 space, Table I of the ProTran paper, or a user YAML.

A space fixes, per encoder layer, the allowed hidden sizes, head counts, head ops (heads of one layer
form a *multiset* of ops) and feed-forward stacks. It counts its op types and architectures exactly,
validates architectures, and maps them to and from the 37-dim ProTran embedding:
``[layer-count index] + [hidden index, feed-forward op index, attention op index] * max_layers``
(absent layers zero), the encoding of the original code and of ``shared/data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import yaml

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.ops import check_op, op_sort_key

BUILTIN_SPACES: tuple[str, ...] = ("flexibert2", "protran-table1")

_KEYS = ("name", "layers", "hidden_sizes", "num_heads", "head_ops", "feed_forward_dims", "feed_forward_stacks")


def _int_tuple(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"design space field {key!r} must be a non-empty list of positive integers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"design space field {key!r}: {v!r} is not a positive integer")
    if len(set(value)) != len(value):
        raise ValueError(f"design space field {key!r} has duplicate values: {list(value)}")
    return tuple(sorted(value))


def _multisets_smaller(counts_before: int, value: int, remaining: int, n_ops: int) -> int:
    """Number of non-decreasing sequences that differ first at this position with a smaller value."""
    total = 0
    for v in range(counts_before, value):
        total += math.comb(n_ops - v + remaining - 1, remaining)
    return total


@dataclass(frozen=True)
class DesignSpace:
    """A FlexiBERT-2.0-style design space.

    Attributes:
        name: space name.
        layers: allowed numbers of encoder layers.
        hidden_sizes: allowed hidden sizes per layer.
        num_heads: allowed numbers of heads per layer.
        head_ops: allowed head ops (``sa-sdp``, ``sa-wma``, ``l-dft``, ``l-dct``, ``c-<k>``), canonical order.
        feed_forward_dims: allowed widths of one feed-forward layer.
        feed_forward_stacks: allowed depths of the feed-forward stack.
    """

    name: str
    layers: tuple[int, ...]
    hidden_sizes: tuple[int, ...]
    num_heads: tuple[int, ...]
    head_ops: tuple[str, ...]
    feed_forward_dims: tuple[int, ...]
    feed_forward_stacks: tuple[int, ...] = field(default=(1, 2, 3))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"design space 'name' must be a non-empty string, got {self.name!r}")
        for key in ("layers", "hidden_sizes", "num_heads", "feed_forward_dims", "feed_forward_stacks"):
            object.__setattr__(self, key, _int_tuple(getattr(self, key), key))
        ops = self.head_ops
        if not isinstance(ops, (list, tuple)) or not ops:
            raise ValueError(f"design space field 'head_ops' must be a non-empty list of op names, got {ops!r}")
        for op in ops:
            check_op(op)
        if len(set(ops)) != len(ops):
            raise ValueError(f"design space field 'head_ops' has duplicates: {list(ops)}")
        object.__setattr__(self, "head_ops", tuple(sorted(ops, key=op_sort_key)))
        if max(self.num_heads) > min(self.hidden_sizes):
            raise ValueError(
                f"num_heads up to {max(self.num_heads)} does not fit hidden size {min(self.hidden_sizes)}: "
                "every head needs at least one feature"
            )

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], default_name: str = "custom") -> "DesignSpace":
        """Build from our YAML schema or from the original code's ``design_space.yaml`` schema."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a design space must be a mapping, got {type(data).__name__}")
        if "encoder_layers" in data:  # the original FlexiBERT 2.0 / EdgeTran file
            return cls._from_original(data, default_name)
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown design space field(s) {unknown}; allowed: {list(_KEYS)}")
        missing = [k for k in _KEYS[1:-1] if k not in data]
        if missing:
            raise ValueError(f"design space is missing field(s) {missing}")
        kwargs = {k: data[k] for k in _KEYS[1:] if k in data}
        return cls(name=str(data.get("name", default_name)), **kwargs)

    @classmethod
    def _from_original(cls, data: Mapping[str, Any], name: str) -> "DesignSpace":
        try:
            params = data["operation_parameters"]
            ops = [f"{t}-{p}" for t in data["operation_types"] for p in params[t]]
            return cls(
                name=name,
                layers=data["encoder_layers"],
                hidden_sizes=data["hidden_size"],
                num_heads=data["num_heads"],
                head_ops=ops,
                feed_forward_dims=data["feed-forward_hidden"],
                feed_forward_stacks=data["number_of_feed-forward_stacks"],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"original-format design space is missing or malformed field: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DesignSpace":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: malformed YAML: {exc}") from None
        except OSError as exc:
            raise ValueError(f"cannot read design space file {path}: {exc.strerror}") from None
        try:
            return cls.from_mapping(data, default_name=path.stem)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(self, k)) for k in _KEYS)}

    # ----------------------------------------------------------------- op types and counts
    @property
    def max_layers(self) -> int:
        return max(self.layers)

    @property
    def embedding_dim(self) -> int:
        """``1 + 3 * max_layers`` (37 for the FlexiBERT 2.0 space)."""
        return 1 + 3 * self.max_layers

    @cached_property
    def _ff_offsets(self) -> dict[int, int]:
        offsets, total = {}, 0
        for depth in self.feed_forward_stacks:
            offsets[depth] = total
            total += len(self.feed_forward_dims) ** depth
        return offsets

    @cached_property
    def _attention_offsets(self) -> dict[int, int]:
        offsets, total = {}, 0
        for n in self.num_heads:
            offsets[n] = total
            total += math.comb(len(self.head_ops) + n - 1, n)
        return offsets

    @property
    def n_feed_forward_op_types(self) -> int:
        """Distinct feed-forward stacks of one layer (258 for FlexiBERT 2.0)."""
        return sum(len(self.feed_forward_dims) ** d for d in self.feed_forward_stacks)

    @property
    def n_attention_op_types(self) -> int:
        """Distinct multisets of head ops of one layer over all head counts (21805 for FlexiBERT 2.0)."""
        return sum(math.comb(len(self.head_ops) + n - 1, n) for n in self.num_heads)

    @property
    def n_layer_types(self) -> int:
        """Distinct encoder layers: hidden sizes x feed-forward op types x attention op types."""
        return len(self.hidden_sizes) * self.n_feed_forward_op_types * self.n_attention_op_types

    @property
    def n_architectures(self) -> int:
        """Exact number of architectures: sum over layer counts L of ``n_layer_types ** L``."""
        return sum(self.n_layer_types**n for n in self.layers)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "feed_forward_op_types": self.n_feed_forward_op_types,
            "attention_op_types": self.n_attention_op_types,
            "layer_types": self.n_layer_types,
            "n_architectures": self.n_architectures,
            "n_architectures_sci": f"{float(self.n_architectures):.3e}",
            "embedding_dim": self.embedding_dim,
            **{k: list(getattr(self, k)) for k in _KEYS[1:]},
        }

    # ----------------------------------------------------------------- op indices
    def feed_forward_index(self, feed_forward: Sequence[int]) -> int:
        """Index of a feed-forward stack (depth blocks in order, widths as base-|dims| digits)."""
        depth = len(feed_forward)
        if depth not in self._ff_offsets:
            raise ValueError(f"feed-forward depth {depth} not in {list(self.feed_forward_stacks)}")
        index = 0
        for width in feed_forward:
            if width not in self.feed_forward_dims:
                raise ValueError(f"feed-forward width {width} not in {list(self.feed_forward_dims)}")
            index = index * len(self.feed_forward_dims) + self.feed_forward_dims.index(width)
        return self._ff_offsets[depth] + index

    def feed_forward_from_index(self, index: int) -> tuple[int, ...]:
        if not 0 <= index < self.n_feed_forward_op_types:
            raise ValueError(f"feed-forward op index {index} out of range [0, {self.n_feed_forward_op_types})")
        for depth in reversed(self.feed_forward_stacks):
            if index >= self._ff_offsets[depth]:
                rest, digits = index - self._ff_offsets[depth], []
                for _ in range(depth):
                    rest, d = divmod(rest, len(self.feed_forward_dims))
                    digits.append(self.feed_forward_dims[d])
                return tuple(reversed(digits))
        raise AssertionError("unreachable")

    def attention_index(self, heads: Sequence[str]) -> int:
        """Rank of a head multiset among ``combinations_with_replacement(head_ops, n)``, offset by n."""
        n = len(heads)
        if n not in self._attention_offsets:
            raise ValueError(f"{n} heads not in allowed head counts {list(self.num_heads)}")
        idx = []
        for op in sorted(heads, key=op_sort_key):
            if op not in self.head_ops:
                raise ValueError(f"head op {op!r} not in this space's ops {list(self.head_ops)}")
            idx.append(self.head_ops.index(op))
        m, rank, prev = len(self.head_ops), 0, 0
        for i, value in enumerate(idx):
            rank += _multisets_smaller(prev, value, n - i - 1, m)
            prev = value
        return self._attention_offsets[n] + rank

    def attention_from_index(self, index: int) -> tuple[str, ...]:
        if not 0 <= index < self.n_attention_op_types:
            raise ValueError(f"attention op index {index} out of range [0, {self.n_attention_op_types})")
        for n in reversed(self.num_heads):
            if index >= self._attention_offsets[n]:
                rank, m, prev, ops = index - self._attention_offsets[n], len(self.head_ops), 0, []
                for i in range(n):
                    remaining = n - i - 1
                    v = prev
                    while True:
                        block = math.comb(m - v + remaining - 1, remaining)
                        if rank < block:
                            break
                        rank -= block
                        v += 1
                    ops.append(self.head_ops[v])
                    prev = v
                return tuple(ops)
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- validation
    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` if it lies in this space, else ``ValueError`` naming field, value and allowed set."""
        if arch.n_layers not in self.layers:
            raise ValueError(f"n_layers={arch.n_layers} not allowed in space {self.name!r}: allowed {list(self.layers)}")
        for j, layer in enumerate(arch.layers):
            self._validate_layer(j, layer)
        return arch

    def _validate_layer(self, j: int, layer: Layer) -> None:
        checks = (
            ("hidden", layer.hidden, self.hidden_sizes),
            ("n_heads", layer.n_heads, self.num_heads),
            ("feed-forward depth", len(layer.feed_forward), self.feed_forward_stacks),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"layer {j}: {name}={value} not allowed in space {self.name!r}: allowed {list(allowed)}")
        for op in layer.heads:
            if op not in self.head_ops:
                raise ValueError(f"layer {j}: head op {op!r} not allowed in space {self.name!r}: allowed {list(self.head_ops)}")
        for width in layer.feed_forward:
            if width not in self.feed_forward_dims:
                raise ValueError(
                    f"layer {j}: feed-forward width {width} not allowed in space {self.name!r}: "
                    f"allowed {list(self.feed_forward_dims)}"
                )

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    # ----------------------------------------------------------------- embedding
    def embed(self, arch: Architecture) -> np.ndarray:
        """37-dim (``embedding_dim``) ProTran embedding, int64; validates ``arch`` first."""
        self.validate(arch)
        e = np.zeros(self.embedding_dim, dtype=np.int64)
        e[0] = self.layers.index(arch.n_layers)
        for j, layer in enumerate(arch.layers):
            e[1 + 3 * j] = self.hidden_sizes.index(layer.hidden)
            e[2 + 3 * j] = self.feed_forward_index(layer.feed_forward)
            e[3 + 3 * j] = self.attention_index(layer.heads)
        return e

    def decode(self, embedding: Sequence[int] | np.ndarray) -> Architecture:
        """Architecture of a ProTran embedding; ``ValueError`` for out-of-range entries."""
        e = [int(x) for x in np.asarray(embedding).ravel()]
        if len(e) != self.embedding_dim:
            raise ValueError(f"embedding must have {self.embedding_dim} entries, got {len(e)}")
        if not 0 <= e[0] < len(self.layers):
            raise ValueError(f"embedding[0]={e[0]} is not a layer-count index in [0, {len(self.layers)})")
        n = self.layers[e[0]]
        if any(e[1 + 3 * n :]):
            raise ValueError(f"embedding has non-zero entries beyond its {n} layers")
        layers = []
        for j in range(n):
            h = e[1 + 3 * j]
            if not 0 <= h < len(self.hidden_sizes):
                raise ValueError(f"embedding[{1 + 3 * j}]={h} is not a hidden-size index")
            layers.append(
                Layer(
                    hidden=self.hidden_sizes[h],
                    heads=self.attention_from_index(e[3 + 3 * j]),
                    feed_forward=self.feed_forward_from_index(e[2 + 3 * j]),
                )
            )
        return Architecture(tuple(layers))

    # ----------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator | int | None = None) -> Architecture:
        """One architecture: every choice uniform and independent (head ops drawn per head)."""
        rng = np.random.default_rng(rng)
        n = int(rng.choice(self.layers))
        layers = []
        for _ in range(n):
            n_heads = int(rng.choice(self.num_heads))
            depth = int(rng.choice(self.feed_forward_stacks))
            layers.append(
                Layer(
                    hidden=int(rng.choice(self.hidden_sizes)),
                    heads=tuple(str(op) for op in rng.choice(self.head_ops, size=n_heads)),
                    feed_forward=tuple(int(w) for w in rng.choice(self.feed_forward_dims, size=depth)),
                )
            )
        return Architecture(tuple(layers))

    def iter_samples(self, n: int, seed: int | None = None) -> Iterator[Architecture]:
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield self.sample(rng)


def get_space(name_or_path: str | Path | DesignSpace = "flexibert2") -> DesignSpace:
    """A built-in space by name (``flexibert2``, ``protran-table1``) or a YAML file path."""
    if isinstance(name_or_path, DesignSpace):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN_SPACES:
        text = resources.files("protran_tune.space").joinpath("spaces", f"{key}.yaml").read_text()
        return DesignSpace.from_mapping(yaml.safe_load(text), default_name=key)
    path = Path(key)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return DesignSpace.from_yaml(path)
    raise ValueError(f"unknown design space {key!r}: built-in spaces are {list(BUILTIN_SPACES)}, or give a YAML path")
