"""Head operation names of the FlexiBERT 2.0 design space.

Our names use a hyphen (``sa-sdp``, ``l-dft``, ``c-9``); the ProTran ``model_dict`` format writes
``<type>_<param>_<head size>`` (``sa_sdp_64``, ``c_9_64``). Every head in one encoder layer has the same
head size, ``hidden // n_heads`` (floor), as in the original code.
"""

from __future__ import annotations

import re

SELF_ATTENTION_OPS: tuple[str, ...] = ("sa-sdp", "sa-wma")
LINEAR_TRANSFORM_OPS: tuple[str, ...] = ("l-dft", "l-dct")
_CONV_RE = re.compile(r"^c-([1-9][0-9]*)$")


def is_valid_op(op: str) -> bool:
    """True for ``sa-sdp``, ``sa-wma``, ``l-dft``, ``l-dct`` and ``c-<odd kernel>``."""
    if op in SELF_ATTENTION_OPS or op in LINEAR_TRANSFORM_OPS:
        return True
    m = _CONV_RE.match(op) if isinstance(op, str) else None
    return bool(m) and int(m.group(1)) % 2 == 1


def check_op(op: str) -> str:
    """Return ``op`` or raise ``ValueError`` naming what is allowed."""
    if not is_valid_op(op):
        raise ValueError(
            f"unknown head op {op!r}: allowed are 'sa-sdp', 'sa-wma', 'l-dft', 'l-dct' and "
            "'c-<k>' with an odd kernel size k (e.g. 'c-9')"
        )
    return op


def conv_kernel(op: str) -> int:
    """Kernel size of a ``c-<k>`` op."""
    m = _CONV_RE.match(op)
    if not m:
        raise ValueError(f"{op!r} is not a convolution op 'c-<k>'")
    return int(m.group(1))


def op_family(op: str) -> str:
    """``"sa"``, ``"l"`` or ``"c"``."""
    return check_op(op).split("-")[0]


def op_sort_key(op: str) -> tuple[int, int]:
    """Canonical order of ops inside a layer: sa-sdp, sa-wma, l-dft, l-dct, then c-k by k.

    This is the order of the original code's operation list, so sorted layers export to the same
    ``model_dict`` strings and rank to the same embedding indices.
    """
    check_op(op)
    if op in SELF_ATTENTION_OPS:
        return (0, SELF_ATTENTION_OPS.index(op))
    if op in LINEAR_TRANSFORM_OPS:
        return (1, LINEAR_TRANSFORM_OPS.index(op))
    return (2, conv_kernel(op))


def op_to_protran(op: str, head_size: int) -> str:
    """``("sa-wma", 64) -> "sa_wma_64"``."""
    return f"{check_op(op).replace('-', '_')}_{head_size}"


def op_from_protran(text: str) -> tuple[str, int]:
    """``"sa_wma_64" -> ("sa-wma", 64)``; ``ValueError`` for anything else."""
    parts = text.split("_") if isinstance(text, str) else []
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(
            f"malformed op string {text!r}: expected '<type>_<param>_<head size>' such as 'sa_sdp_64'"
        )
    op = f"{parts[0]}-{parts[1]}"
    check_op(op)
    return op, int(parts[2])
