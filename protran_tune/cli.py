"""``protran-tune`` command line: a thin layer over :mod:`protran_tune.workflows`.

Every module in :mod:`protran_tune.commands` is a sub-command: it defines ``register(subparsers)``,
which adds its parser and sets ``func=run``, and ``run(args) -> int``. Command modules import heavy
libraries inside ``run`` so ``--help`` is fast and ``measure`` works without Ray, Optuna or MLflow.

Exit codes: 0 success, 1 a run that failed (e.g. some measurements failed), 2 bad input or an
unreachable resource such as an output that cannot be written (one-line message, no traceback), 130
interrupted, 141 the reader of stdout went away (``protran-tune space sample | head -1``: quiet, as
other Unix tools killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import importlib
import os
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
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"protran-tune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written (disk full, read-only file system, ...)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"protran-tune {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"protran-tune {args.command}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
