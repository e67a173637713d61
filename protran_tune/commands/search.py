"""``protran-tune search``: hardware-aware multi-objective NAS (accuracy and latency, energy, peak power).

Live mode (default): searches a space (``--space nas-bench-bert`` or ``flexibert2``) on an Optuna study;
accuracy comes from ``--accuracy`` (``nas-bench-bert`` predictor, or ``train[:TASK]``), hardware from
``--hardware`` (``table:NAME``, ``study:NAME``, ``mlflow:MODEL_URI`` predicted with std, or
``platform:NAME`` measured); the front is then checked (``--verify``) and written to ``--out``.
Pool mode (``--pool TABLE``): the table is the space; a true evaluation reveals one row.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from protran_tune.commands._common import add_storage_options, parse_options, positive_int

DEFAULT_OBJECTIVES = ["glue:max", "latency_s:min", "energy_j:min", "peak_power_w:min"]


def register(subparsers: Any) -> None:
    from protran_tune.search.methods import METHODS

    p = subparsers.add_parser("search", help="hardware-aware multi-objective NAS with a checked Pareto front",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--objective", action="append", metavar="NAME:max|min",
                   help=f"objective (repeatable; default {' '.join(DEFAULT_OBJECTIVES)})")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR", help="e.g. latency_s<=0.005 (repeatable)")
    p.add_argument("--budget", type=positive_int, default=50, help="evaluations (default 50)")
    p.add_argument("--sampler", choices=METHODS, default="ours", help="search method (default ours)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="search-out", help="output folder (default search-out)")
    p.add_argument("--json", action="store_true", help="print the result summary as JSON on stdout")
    live = p.add_argument_group("live mode")
    live.add_argument("--space", default="nas-bench-bert", help="nas-bench-bert (default), flexibert2 or a space YAML")
    live.add_argument("--accuracy", default="nas-bench-bert", help="nas-bench-bert (predictor) or train[:TASK] (default nas-bench-bert)")
    live.add_argument("--hardware", default="table:protran-nasbench:cpu",
                      help="table:NAME | study:NAME | mlflow:MODEL_URI | platform:NAME (default table:protran-nasbench:cpu)")
    live.add_argument("--surrogate", default="gp", help="surrogate of predicted hardware values (default gp)")
    live.add_argument("--surrogate-param", action="append", metavar="KEY=VALUE", help="its parameters (repeatable)")
    live.add_argument("--batch-size", type=positive_int, default=4, help="proposals per step (default 4)")
    live.add_argument("--verify", default="auto", help="auto | none | PLATFORM | records:FILE (default auto)")
    live.add_argument("--platform-batch-size", type=positive_int, default=1, help="batch size of measurements (default 1)")
    live.add_argument("--platform-option", action="append", metavar="KEY=VALUE", help="platform option (repeatable)")
    live.add_argument("--train-steps", type=positive_int, default=None, help="training steps of --accuracy train")
    live.add_argument("--train-workers", type=positive_int, default=1, help="parallel training processes")
    live.add_argument("--train-device", default="cpu", help="cpu or cuda (all visible GPUs)")
    live.add_argument("--study", default=None, help="Optuna study name (default search-<sampler>-s<seed>)")
    live.add_argument("--max-failures", type=positive_int, default=5, help="stop after this many failures in a row")
    pool = p.add_argument_group("pool mode")
    pool.add_argument("--pool", default=None, metavar="TABLE", help="a shipped table or file: the table is the space")
    add_storage_options(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    from protran_tune.objectives.targets import parse_constraint
    from protran_tune.runtime import check_storage_url
    from protran_tune.search.evaluation import ProviderOptions
    from protran_tune.search.live import SearchConfig

    surrogate_params = parse_options(args.surrogate_param, "--surrogate-param")
    providers = ProviderOptions(
        accuracy=args.accuracy, hardware=args.hardware, surrogate=args.surrogate, storage=args.storage,
        batch_size=args.platform_batch_size, platform_options=parse_options(args.platform_option),
        train_steps=args.train_steps, train_workers=args.train_workers, train_device=args.train_device, seed=args.seed,
        **({"surrogate_params": surrogate_params} if surrogate_params else {}),
    )
    cfg = SearchConfig(
        objectives=tuple(args.objective or DEFAULT_OBJECTIVES), constraints=tuple(parse_constraint(c) for c in args.constraint),
        budget=args.budget, sampler=args.sampler, seed=args.seed, space=args.space, pool=args.pool,
        batch_size=args.batch_size, verify=args.verify, max_failures=args.max_failures, study_name=args.study,
        storage=check_storage_url(args.storage), mlflow_uri=None if args.no_mlflow else args.mlflow_uri,
        experiment=args.experiment, out=args.out, providers=providers,
    )
    cfg.validate()
    if args.surrogate:
        from protran_tune.surrogates import make_surrogate

        make_surrogate(args.surrogate, **providers.surrogate_params)  # unknown names/parameters fail now
    return cfg


def run(args: argparse.Namespace) -> int:
    from protran_tune.errors import check_output_path

    cfg = build_config(args)
    check_output_path(f"{cfg.out}/summary.json", "--out")
    if cfg.pool is not None:
        from protran_tune.search.pool import run_pool_command

        summary = run_pool_command(cfg)
    else:
        from protran_tune.search.live import run_search

        summary = run_search(cfg).to_dict()
        summary.pop("front", None)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print(f"search {summary['study_name']}: {summary['n_evaluated']} evaluated, front of {summary.get('front_size', '?')}; "
              f"results in {cfg.out}/", file=sys.stderr)
        for note in summary.get("notes", []):
            print(f"search: note: {note}", file=sys.stderr)
    return 0
