"""Immutable, validated transformer architectures of the FlexiBERT 2.0 family.

An :class:`Architecture` is a tuple of :class:`Layer` s. Each layer has its own hidden size, a multiset
of attention heads (mixed op types, stored in canonical order) and a stack of feed-forward widths.
Structural checks happen here; membership of a particular design space is checked by
:meth:`protran_tune.space.DesignSpace.validate`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from protran_tune.space.ops import check_op, op_from_protran, op_sort_key, op_to_protran


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Layer:
    """One encoder layer.

    Attributes:
        hidden: hidden size of the layer (features per token).
        heads: attention head ops, e.g. ``("sa-sdp", "sa-sdp", "c-9")``; stored sorted canonically.
        feed_forward: widths of the stacked feed-forward layers, e.g. ``(3072,)`` or ``(512, 1024)``.
    """

    hidden: int
    heads: tuple[str, ...]
    feed_forward: tuple[int, ...]

    def __post_init__(self) -> None:
        _positive_int(self.hidden, "hidden")
        if isinstance(self.heads, str):
            raise ValueError(f"heads must be a list of op names, got the string {self.heads!r} (write [{self.heads!r}])")
        if not isinstance(self.heads, Iterable):
            raise ValueError(f"heads must be a list of op names, got {self.heads!r}")
        heads = tuple(self.heads)
        if not heads:
            raise ValueError("heads must name at least one head op")
        for op in heads:
            check_op(op)
        if len(heads) > self.hidden:
            raise ValueError(f"{len(heads)} heads do not fit hidden size {self.hidden} (head size 0)")
        if isinstance(self.feed_forward, (str, int)) or not isinstance(self.feed_forward, Iterable):
            kind = f"the {type(self.feed_forward).__name__} " if isinstance(self.feed_forward, (str, int)) else ""
            raise ValueError(f"feed_forward must be a list of widths, got {kind}{self.feed_forward!r}")
        ff = tuple(self.feed_forward)
        if not ff:
            raise ValueError("feed_forward must hold at least one width")
        for i, width in enumerate(ff):
            _positive_int(width, f"feed_forward[{i}]")
        object.__setattr__(self, "heads", tuple(sorted(heads, key=op_sort_key)))
        object.__setattr__(self, "feed_forward", ff)

    @property
    def n_heads(self) -> int:
        return len(self.heads)

    @property
    def head_size(self) -> int:
        """``hidden // n_heads`` (floor), as in the original code."""
        return self.hidden // len(self.heads)

    def head_counts(self) -> dict[str, int]:
        """Number of heads of each op type, in canonical op order."""
        return dict(Counter(self.heads))

    def to_dict(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "heads": list(self.heads), "feed_forward": list(self.feed_forward)}


@dataclass(frozen=True)
class Architecture:
    """A heterogeneous transformer encoder: one :class:`Layer` per encoder layer."""

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("an architecture needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"layers[{i}] must be a Layer, got {type(layer).__name__}")
        object.__setattr__(self, "layers", layers)

    # ----------------------------------------------------------------- basic views
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(layer.hidden for layer in self.layers)

    @classmethod
    def homogeneous(
        cls, n_layers: int, hidden: int, n_heads: int, feed_forward: int | Iterable[int], op: str = "sa-sdp"
    ) -> "Architecture":
        """A BERT-like architecture: ``n_layers`` identical layers of ``n_heads`` heads of ``op``."""
        ff = (feed_forward,) if isinstance(feed_forward, int) else tuple(feed_forward)
        layer = Layer(hidden=hidden, heads=(op,) * n_heads, feed_forward=ff)
        return cls(layers=(layer,) * _positive_int(n_layers, "n_layers"))

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        """Inverse of :meth:`to_dict`; also accepts a ProTran ``model_dict`` (keys ``l, o, h, f``)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an architecture must be a JSON object, got {type(data).__name__}")
        if "layers" not in data and {"l", "o", "h", "f"} <= set(data):
            return cls.from_model_dict(data)
        if set(data) != {"layers"} or not isinstance(data["layers"], list):
            raise ValueError(
                "an architecture object must be {'layers': [{'hidden', 'heads', 'feed_forward'}, ...]} "
                f"or a ProTran model_dict {{'l','o','h','f'}}; got keys {sorted(data)}"
            )
        layers = []
        for i, item in enumerate(data["layers"]):
            if not isinstance(item, Mapping) or set(item) != {"hidden", "heads", "feed_forward"}:
                raise ValueError(f"layers[{i}] must have exactly the keys hidden, heads, feed_forward; got {item!r}")
            try:  # Layer checks the types: a string where a list belongs is reported as such, not spelt out
                layers.append(Layer(item["hidden"], item["heads"], item["feed_forward"]))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"layers[{i}]: {exc}") from None
        return cls(layers=tuple(layers))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal architectures give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"architecture JSON is malformed: {exc}") from None
        return cls.from_dict(data)

    def content_hash(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    # ----------------------------------------------------------------- ProTran model_dict
    def to_model_dict(self) -> dict[str, Any]:
        """ProTran format ``{"l": L, "o": [[op strings]], "h": [hidden], "f": [[ff widths]]}``."""
        return {
            "l": self.n_layers,
            "o": [[op_to_protran(op, layer.head_size) for op in layer.heads] for layer in self.layers],
            "h": [layer.hidden for layer in self.layers],
            "f": [list(layer.feed_forward) for layer in self.layers],
        }

    @classmethod
    def from_model_dict(cls, model_dict: Mapping[str, Any]) -> "Architecture":
        """Parse a ProTran ``model_dict``; ``ValueError`` names the inconsistent field."""
        if not isinstance(model_dict, Mapping) or set(model_dict) != {"l", "o", "h", "f"}:
            got = sorted(model_dict) if isinstance(model_dict, Mapping) else type(model_dict).__name__
            raise ValueError(f"a model_dict must have exactly the keys 'l', 'o', 'h', 'f'; got {got}")
        n = _positive_int(model_dict["l"], "model_dict['l']")
        for key in ("o", "h", "f"):
            value = model_dict[key]
            if not isinstance(value, list) or len(value) != n:
                size = len(value) if isinstance(value, list) else type(value).__name__
                raise ValueError(f"model_dict['{key}'] must be a list of {n} entries (l={n}), got {size}")
        layers = []
        for j in range(n):
            hidden = _positive_int(model_dict["h"][j], f"model_dict['h'][{j}]")
            op_strings = model_dict["o"][j]
            if not isinstance(op_strings, list) or not op_strings:
                raise ValueError(f"model_dict['o'][{j}] must be a non-empty list of op strings, got {op_strings!r}")
            ops = []
            for text in op_strings:
                try:
                    op, head_size = op_from_protran(text)
                except ValueError as exc:
                    raise ValueError(f"model_dict['o'][{j}]: {exc}") from None
                expected = hidden // len(op_strings)
                if head_size != expected:
                    raise ValueError(
                        f"model_dict['o'][{j}]: op {text!r} has head size {head_size}, but hidden "
                        f"{hidden} // {len(op_strings)} heads = {expected}"
                    )
                ops.append(op)
            ff = model_dict["f"][j]
            if not isinstance(ff, list):
                raise ValueError(f"model_dict['f'][{j}] must be a list of widths, got {ff!r}")
            try:
                layers.append(Layer(hidden=hidden, heads=tuple(ops), feed_forward=tuple(ff)))
            except ValueError as exc:
                raise ValueError(f"model_dict layer {j}: {exc}") from None
        return cls(layers=tuple(layers))

    def __str__(self) -> str:
        parts = []
        for layer in self.layers:
            heads = "+".join(f"{c}x{op}" for op, c in layer.head_counts().items())
            parts.append(f"[{layer.hidden}|{heads}|ff{'-'.join(map(str, layer.feed_forward))}]")
        return f"Architecture({self.n_layers}L " + " ".join(parts) + ")"
