"""``protran-tune dashboard``: optuna-dashboard on 127.0.0.1 against the study storage."""

from __future__ import annotations

import argparse
from typing import Any

from protran_tune.runtime import DEFAULT_STORAGE, LOOPBACK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dashboard", help="serve optuna-dashboard for the study storage (127.0.0.1 by default)",
        description="Start optuna-dashboard against the study storage: named objectives, Pareto fronts, "
                    "trial user attrs (architecture, measurement). Binds to loopback unless --host says otherwise; "
                    "stop it with Ctrl-C.",
    )
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    p.add_argument("--host", default=LOOPBACK, help=f"address to bind (default {LOOPBACK})")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from protran_tune.errors import UsageError
    from protran_tune.runtime import open_storage

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must lie in 1..65535, got {args.port}")
    storage = open_storage(args.storage)
    from optuna_dashboard import run_server

    logging.getLogger("optuna_dashboard").setLevel(logging.WARNING)
    print(f"optuna-dashboard for {args.storage} at http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
