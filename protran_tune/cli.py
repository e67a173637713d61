"""``protran-tune`` command line: a thin layer over :mod:`protran_tune.workflows`.

Every module in :mod:`protran_tune.commands` is a sub-command: it defines ``register(subparsers)``,
which adds its parser and sets ``func=run``, and ``run(args) -> int``. Command modules import heavy
libraries inside ``run`` so ``--help`` is fast and ``measure`` works without Ray, Optuna or MLflow.

Exit codes: 0 success, 1 a run that failed (e.g. some measurements failed), 2 bad input or an
unreachable resource (one-line message, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from protran_tune import __version__
from protran_tune.errors import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protran-tune",
        description="Hardware-aware transformer architecture search: measure, learn surrogates, search.",
    )
    parser.add_argument("--version", action="version", version=f"protran-tune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import protran_tune.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"protran_tune.commands.{info.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"protran-tune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"protran-tune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
