"""``protran-tune dashboard``: optuna-dashboard on 127.0.0.1 against the study storage."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from protran_tune.runtime import DEFAULT_STORAGE, LOOPBACK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dashboard", help="serve optuna-dashboard for the study storage (127.0.0.1 by default)",
        description="Start optuna-dashboard against the study storage: named objectives, Pareto fronts, "
                    "trial user attrs (architecture, measurement). Binds to loopback; another address needs "
                    "--allow-remote, since the dashboard has no authentication. Stop it with Ctrl-C.",
    )
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    p.add_argument("--host", default=LOOPBACK, help=f"address to bind (default {LOOPBACK})")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than loopback: anyone who reaches it can read and change the studies")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def run(args: argparse.Namespace) -> int:
    import logging

    from protran_tune.errors import UsageError
    from protran_tune.runtime import open_storage

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must lie in 1..65535, got {args.port}")
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise UsageError(f"--host {args.host} would serve the studies without authentication beyond this "
                             "machine; add --allow-remote to do so (or keep the loopback default and use an SSH tunnel)")
        print(f"protran-tune dashboard: warning: serving on {args.host}:{args.port} without authentication: anyone who "
              "can reach it can read, change and delete the studies", file=sys.stderr, flush=True)
    storage = open_storage(args.storage)
    from optuna_dashboard import run_server

    logging.getLogger("optuna_dashboard").setLevel(logging.WARNING)
    print(f"optuna-dashboard for {args.storage} at http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        run_server(storage, host=args.host, port=args.port)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
