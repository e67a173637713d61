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
    if p.exists() and not p.is_file():  # a device or a pipe: outputs are files, some replaced atomically
        raise UsageError(f"{what} {p} is not a regular file; give a file path")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what} {p}: cannot create directory {p.parent}: {exc.strerror or exc}") from None
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{what} {p} is not writable")
    return p


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """``path`` as a ``Path`` if a folder can be written there; ``UsageError`` otherwise.

    The folder counterpart of :func:`check_output_path` (``--report-dir``, ``report --out``, ``fit --out``).
    Nothing is created: the folder, or its nearest existing parent, must be a writable folder.
    """
    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{what} path is empty")
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {p} is a file; give a folder")
    existing = p.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {p}: cannot create it: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {p} is not writable ({existing})")
    return p
