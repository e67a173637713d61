"""``protran-tune import``: measurement JSONL files into an Optuna study and MLflow runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from protran_tune.commands._common import add_storage_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="import measurement JSONL (from 'measure') into a study and MLflow runs",
        description="Import measurement records into an Optuna study (one per platform unless --study) and "
                    "MLflow (a parent run per study, a nested run per record). Idempotent: records already "
                    "in the study are skipped.",
    )
    p.add_argument("files", nargs="+", help="measurement JSONL files written by 'protran-tune measure'")
    p.add_argument("--study", default=None, help="one study for all records (default measurements-<platform>)")
    p.add_argument("--space", default="flexibert2", help="design space of the architectures (default flexibert2)")
    add_storage_options(p)
    p.add_argument("--json", action="store_true", help="print counts as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from protran_tune.runtime import open_storage
    from protran_tune.workflows.importing import import_measurements

    storage = open_storage(args.storage)
    tracker = None
    if not args.no_mlflow:
        from protran_tune.tracking.mlflow_tracking import MlflowTracker

        tracker = MlflowTracker(args.mlflow_uri, args.experiment)
    result = import_measurements(args.files, storage, study_name=args.study, space=args.space, tracker=tracker)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        added = ", ".join(f"{n} to {s}" for s, n in result.added.items()) or "nothing new"
        print(f"imported {added}; skipped {result.skipped} already present; {result.failed_records} failed records")
    return 0
