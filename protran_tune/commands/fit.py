"""``protran-tune fit``: train surrogates from a study or measurement files; log them as MLflow models."""

from __future__ import annotations

import argparse
import json
from typing import Any

from protran_tune.commands._common import add_storage_options, parse_options, positive_int


def register(subparsers: Any) -> None:
    from protran_tune.surrogates import available_surrogates

    p = subparsers.add_parser(
        "fit", help="train surrogates from a study or measurement files and log them as MLflow models",
        description="Fit surrogates (latency, energy, peak power per sequence) on measured architectures, score "
                    "them on a seeded random held-out split, and log each as an MLflow pyfunc model with its "
                    "test metrics (input: a DataFrame with an 'architecture' JSON column).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--study", help="study in --storage whose COMPLETE trials are the data")
    src.add_argument("--measurements", nargs="+", metavar="FILE", help="measurement JSONL files ('measure' output)")
    p.add_argument("--surrogate", action="append", default=None, choices=available_surrogates(), metavar="NAME",
                   help=f"surrogate: {', '.join(available_surrogates())}; repeat for several (default bdt)")
    p.add_argument("--surrogate-param", action="append", metavar="KEY=VALUE",
                   help="surrogate constructor parameter (repeatable), e.g. kernel=linear+matern encoder=cost with gp")
    p.add_argument("--space", default="flexibert2")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="sequence length of the FLOP features (default: the data's)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also save the fitted models (pickle) in this folder")
    add_storage_options(p)
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from protran_tune.workflows.fit import dataset_from_files, dataset_from_study, fit_surrogates

    if args.out is not None:
        from protran_tune.errors import check_output_dir

        check_output_dir(args.out, "--out")
    seq_len = args.seq_len
    if args.study:
        from protran_tune.runtime import open_storage

        data = dataset_from_study(open_storage(args.storage), args.study)
        source = f"study:{args.study}"
        if seq_len is None:
            import optuna

            wl = optuna.load_study(study_name=args.study, storage=open_storage(args.storage)).user_attrs.get("workload", {})
            seq_len = wl.get("seq_len")
    else:
        data, skipped = dataset_from_files(args.measurements)
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        source = "files:" + ",".join(args.measurements)
        if seq_len is None:
            from protran_tune.platforms.records import read_records

            seq_len = next((r["measurement"]["seq_len"] for _, r in read_records(args.measurements[0], repair=False)
                            if r.get("measurement")), None)
    tracker = None
    if not args.no_mlflow:
        from protran_tune.tracking.mlflow_tracking import MlflowTracker

        tracker = MlflowTracker(args.mlflow_uri, args.experiment)
    reports = fit_surrogates(data, args.surrogate or ["bdt"], space=args.space, seq_len=seq_len or 128,
                             test_fraction=args.test_fraction, seed=args.seed, tracker=tracker, source=source,
                             save_dir=args.out, params=parse_options(args.surrogate_param, "--surrogate-param"))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports]))
    else:
        for r in reports:
            mse = ", ".join(f"{k[9:]} {v:.4g}" for k, v in r.metrics.items() if k.startswith("test_mse_"))
            print(f"{r.surrogate}: train {r.n_train}, test {r.n_test}; test MSE (normalised) {mse}"
                  + (f"; MLflow run {r.run_id}" if r.run_id else ""))
    return 0
