"""Analytic parameter and FLOP counts of FlexiBERT 2.0 architectures.

These formulas describe exactly the modules of :mod:`protran_tune.models` (a test checks the two
agree), per encoder layer ``j`` with hidden ``h``, ``n`` heads of size ``d = h // n`` and input width
``h_prev``:

* projection (only when ``h_prev != h``): ``Linear(h_prev, h)``;
* ``sa-sdp`` head: query, key, value ``Linear(h, d)``; ``sa-wma`` adds a ``d x d`` weight matrix;
* ``l-dft`` / ``l-dct`` head: value ``Linear(h, d)``, then a parameter-free transform over tokens and
  features (FNet style);
* ``c-k`` head (ConvBERT span-based dynamic convolution): query and value ``Linear(h, d)``, key as a
  separable convolution (depthwise ``h x k`` without bias, pointwise ``Linear(h, d)``), kernel
  generator ``Linear(d, k)``;
* attention output ``Linear(n * d, h)`` + LayerNorm; feed-forward stack ``h -> f1 -> ... -> fm -> h``
  (each a ``Linear`` with bias) + LayerNorm.

FLOPs count a multiply-add as 2 and cover the encoder layers for one sequence of ``seq_len`` tokens
(embedding look-ups, softmax and normalisation excluded).
"""

from __future__ import annotations

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.ops import conv_kernel, op_family


def head_parameters(op: str, hidden: int, head_size: int) -> int:
    """Parameters of one head of ``op`` in a layer of width ``hidden``."""
    h, d = hidden, head_size
    linear = h * d + d
    family = op_family(op)
    if op == "sa-sdp":
        return 3 * linear
    if op == "sa-wma":
        return 3 * linear + d * d
    if family == "l":
        return linear
    k = conv_kernel(op)
    return 2 * linear + h * k + linear + d * k + k


def head_flops(op: str, hidden: int, head_size: int, seq_len: int) -> int:
    """FLOPs of one head for one sequence of ``seq_len`` tokens."""
    h, d, t = hidden, head_size, seq_len
    linear = 2 * t * h * d
    family = op_family(op)
    if family == "sa":
        extra = 2 * t * d * d if op == "sa-wma" else 0
        return 3 * linear + 4 * t * t * d + extra
    if family == "l":
        return linear + 2 * t * t * d + 2 * t * d * d
    k = conv_kernel(op)
    return 3 * linear + 2 * t * h * k + 2 * t * d * k + 2 * t * d * k


def layer_parameters(layer: Layer, input_hidden: int, relative_positions: int = 0) -> int:
    """Parameters of one encoder layer; ``relative_positions`` = max positions if relative embeddings."""
    h, d = layer.hidden, layer.head_size
    total = (input_hidden * h + h) if input_hidden != h else 0
    total += sum(head_parameters(op, h, d) for op in layer.heads)
    total += layer.n_heads * d * h + h + 2 * h  # attention output + LayerNorm
    widths = (h, *layer.feed_forward, h)
    total += sum(a * b + b for a, b in zip(widths[:-1], widths[1:])) + 2 * h
    if relative_positions and any(op_family(op) == "sa" for op in layer.heads):
        total += (2 * relative_positions - 1) * d
    return total


def layer_flops(layer: Layer, input_hidden: int, seq_len: int = 128) -> int:
    h, d, t = layer.hidden, layer.head_size, seq_len
    total = 2 * t * input_hidden * h if input_hidden != h else 0
    total += sum(head_flops(op, h, d, t) for op in layer.heads)
    total += 2 * t * layer.n_heads * d * h
    widths = (h, *layer.feed_forward, h)
    total += sum(2 * t * a * b for a, b in zip(widths[:-1], widths[1:]))
    return total


def count_parameters(
    arch: Architecture,
    vocab_size: int = 30522,
    max_position_embeddings: int = 512,
    type_vocab_size: int = 2,
    position_embedding_type: str = "absolute",
    with_pooler: bool = True,
) -> int:
    """Parameters of ``FlexiBertModel`` for ``arch`` (embeddings, encoder and optional pooler).

    For a homogeneous ``sa-sdp`` architecture with absolute positions this equals transformers'
    ``BertModel`` count for the same shape.
    """
    h0 = arch.layers[0].hidden
    total = vocab_size * h0 + type_vocab_size * h0 + 2 * h0
    relative = position_embedding_type != "absolute"
    if not relative:
        total += max_position_embeddings * h0
    prev = h0
    for layer in arch.layers:
        total += layer_parameters(layer, prev, max_position_embeddings if relative else 0)
        prev = layer.hidden
    if with_pooler:
        total += prev * prev + prev
    return total


def encoder_flops(arch: Architecture, seq_len: int = 128) -> int:
    """FLOPs of the encoder layers for one sequence of ``seq_len`` tokens."""
    prev, total = arch.layers[0].hidden, 0
    for layer in arch.layers:
        total += layer_flops(layer, prev, seq_len)
        prev = layer.hidden
    return total
