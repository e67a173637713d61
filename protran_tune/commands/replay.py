"""``protran-tune replay``: pool-based active learning replayed on a recorded table (any of its metrics)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from protran_tune.objectives.targets import HARDWARE_TARGETS


def register(subparsers: Any) -> None:
    from protran_tune.objectives.scoring import NORMALISERS
    from protran_tune.surrogates import available_surrogates
    from protran_tune.workflows.replay import STRATEGIES

    p = subparsers.add_parser(
        "replay",
        help="pool-based active learning on a recorded table (honest held-out split)",
        description="Replays surrogate-driven active learning on a recorded table (the pool is the table; a "
        "query reveals one row) for any of its metrics, and writes the learning curve as JSON. Progress goes "
        "to stderr.",
    )
    p.add_argument("--dataset", required=True,
                   help="a shipped dataset (protran-tune datasets list: nas-bench-bert, protran:gpu_a100, ...) or a "
                        "file: a table (.jsonl), a ProTran measurement file or NAS-Bench-BERT's BERT_benchmark.json")
    p.add_argument("--targets", default=",".join(HARDWARE_TARGETS),
                   help=f"comma-separated metrics of the table to learn (default {','.join(HARDWARE_TARGETS)}; e.g. glue,qnli)")
    p.add_argument("--surrogate", "--regressor", dest="regressor", choices=available_surrogates(), default="bdt",
                   metavar="NAME",
                   help=f"surrogate: {', '.join(available_surrogates())} (default bdt; --regressor is an alias)")
    p.add_argument("--acquisition", "--strategy", dest="strategy", choices=STRATEGIES, default="uncertainty",
                   help="query rule: largest normalised std, integrated variance reduction (gp), or random "
                        "(--strategy is an alias)")
    p.add_argument("--seed-samples", type=int, default=16, help="initial samples (default 16)")
    p.add_argument("--seed-mode", choices=("recorded", "lhs"), default="recorded",
                   help="recorded: the file's first records (its LHS seed); lhs: a fresh Latin hypercube")
    p.add_argument("--budget", type=int, default=64, help="total samples revealed (capped at the pool size)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="random held-out share of the file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1, help="queries per step (default 1)")
    p.add_argument("--candidates", type=int, default=None,
                   help="score only this many random pool records per step (the original used 64; default all)")
    p.add_argument("--density-weight", type=float, default=0.0,
                   help="weight uncertainty by representativeness**W (information density; default 0: pure uncertainty)")
    p.add_argument("--threshold", type=float, default=0.003, help="convergence: test MSE below this (0.3%%)")
    p.add_argument("--normaliser", choices=NORMALISERS, default="max",
                   help="divisor of the targets: max over the table (default, the paper's text), seed-max-2x "
                        "(twice the max of the seed rows) or recorded (ProTran files: *.max_values.json), as the "
                        "original code")
    p.add_argument("--patience", type=int, default=0,
                   help="convergence only once the test MSE has been below the threshold on more than this many "
                        "samples (the original code: 10; default 0)")
    p.add_argument("--surrogate-param", "--regressor-param", dest="regressor_param", action="append", metavar="KEY=VALUE",
                   help="surrogate parameter (repeatable; --regressor-param is an alias)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad records: stop with an error (default) or skip and list them in the result")
    p.add_argument("--out", required=True, help="result JSON path")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> str:
    """The canonical command line reproducing this run."""
    parts = ["protran-tune", "replay", "--dataset", args.dataset, "--targets", args.targets, "--surrogate", args.regressor,
             "--acquisition", args.strategy, "--seed-samples", args.seed_samples, "--seed-mode", args.seed_mode,
             "--budget", args.budget, "--test-fraction", args.test_fraction, "--seed", args.seed,
             "--batch-size", args.batch_size, "--threshold", args.threshold]
    if args.normaliser != "max" or args.patience:
        parts += ["--normaliser", args.normaliser, "--patience", args.patience]
    if args.candidates is not None:
        parts += ["--candidates", args.candidates]
    if args.density_weight:
        parts += ["--density-weight", args.density_weight]
    for item in args.regressor_param or []:
        parts += ["--surrogate-param", item]
    if args.on_error != "raise":
        parts += ["--on-error", args.on_error]
    parts += ["--out", args.out]
    return " ".join(shlex.quote(str(p)) for p in parts)


def run(args: argparse.Namespace) -> int:
    from protran_tune.commands._common import parse_options
    from protran_tune.datasets import load_dataset
    from protran_tune.errors import check_output_path
    from protran_tune.workflows.replay import ReplayConfig, run_replay, stderr_progress

    config = ReplayConfig(targets=tuple(t.strip() for t in args.targets.split(",")),
        regressor=args.regressor, strategy=args.strategy, seed_samples=args.seed_samples, seed_mode=args.seed_mode,
        budget=args.budget, test_fraction=args.test_fraction, seed=args.seed, batch_size=args.batch_size,
        candidates=args.candidates, threshold=args.threshold, normaliser=args.normaliser, patience=args.patience,
        density_weight=args.density_weight,
        regressor_params=parse_options(args.regressor_param, "--surrogate-param"),
    )
    config.validate()
    out = check_output_path(args.out, "--out")
    from protran_tune.surrogates import make_surrogate

    make_surrogate(config.regressor, **config.regressor_params)  # unknown parameters fail before any work
    table = load_dataset(args.dataset, on_error=args.on_error)
    for item in table.skipped:
        where = item.get("line") or item.get("key")
        print(f"replay: skipped {where} (id {item.get('id', item.get('key'))!r}): {item['reason']}", file=sys.stderr)
    if args.on_error == "skip":
        from dataclasses import replace

        lacking = table.lacking(config.targets)
        for item in lacking:
            print(f"replay: skipped {item['line']} (id {item['id']!r}): {item['reason']}", file=sys.stderr)
        table = replace(table.having(config.targets), skipped=table.skipped + tuple(lacking))
    table.values(config.targets)  # every row must have every target: a clear error now, not mid-run
    result = run_replay(table, config, progress=None if args.quiet else stderr_progress)
    result["command"] = _command(args)
    out.write_text(json.dumps(result, indent=1))
    conv = ", ".join(f"{k}={v}" for k, v in result["samples_to_convergence"].items())
    print(f"wrote {out}: {len(result['curve'])} curve points, samples to convergence: {conv}", file=sys.stderr)
    return 0
