"""Errors the CLI reports as one line with exit code 2 (bad input, unreachable storage, ...)."""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(ValueError):
    """Bad user input: a clear one-line message, no traceback."""


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> Path:
    """``path`` as a ``Path`` if a file can be written there (parents created); ``UsageError`` otherwise.

    Checked before any work starts, so a bad ``--out`` fails at once rather than after a long run.
    """

    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{what} path is empty")
    if p.is_dir():
        raise UsageError(f"{what} {p} is a directory; give a file path")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what} {p}: cannot create directory {p.parent}: {exc.strerror or exc}") from None
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{what} {p} is not writable")
    return p
