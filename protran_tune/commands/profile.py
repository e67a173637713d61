"""``protran-tune profile``: seed + active learning on a platform until convergence or a budget."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from protran_tune.commands._common import (
    add_ray_options,
    add_storage_options,
    batch_size,
    parse_options,
    positive_float,
    positive_int,
)

EPILOG = """\
defaults are small so a profile finishes in minutes on a 2-core CPU: platform cpu, inference at batch 1
x 32 tokens, 5-20 timed repeats within 2 s per architecture, 16 Latin-hypercube seed + 16 active-learning architectures, 8 held out, stop when every
held-out normalised test MSE < 0.003 or at the budget. Rerunning with the same --study resumes.

example:
  protran-tune profile --study cpu-demo --report-dir reports/cpu-demo
  ray job submit --working-dir . -- protran-tune profile --ray-address auto --study cluster-demo
"""


def register(subparsers: Any) -> None:
    from protran_tune.samplers.acquisition import ACQUISITIONS
    from protran_tune.surrogates import available_surrogates

    p = subparsers.add_parser(
        "profile", help="measure architectures on a platform and learn its surrogate (active learning)",
        description="Measure real architectures on a platform (Latin-hypercube seed, then active learning), fit "
                    "surrogates, log every trial to Optuna and MLflow, and write a report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", default=None, help="study name (default profile-<platform>); rerun to resume")
    p.add_argument("--platform", default="cpu", help="platform name (default cpu)")
    p.add_argument("--platform-option", action="append", metavar="KEY=VALUE", help="platform constructor option")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="module to import first (registers platforms defined outside protran-tune; also in Ray actors)")
    p.add_argument("--space", default="flexibert2", help="design space (default flexibert2)")
    w = p.add_argument_group("workload")
    w.add_argument("--mode", choices=("inference", "training"), default="inference")
    w.add_argument("--batch-size", type=batch_size, default=1, help="sequences per batch or 'auto' (default 1)")
    w.add_argument("--seq-len", type=positive_int, default=32, help="tokens per sequence (default 32)")
    w.add_argument("--max-repeats", type=positive_int, default=20, help="cap on timed repeats (default 20)")
    w.add_argument("--min-repeats", type=positive_int, default=5, help="least timed repeats (default 5)")
    w.add_argument("--latency-budget", type=positive_float, default=2.0,
                   help="seconds of timed repeats at most, for platforms that take time_budget_s (default 2)")
    w.add_argument("--target-ci", type=float, default=0.05,
                   help="stop repeating when the latency CI half-width is below this fraction (default 0.05)")
    a = p.add_argument_group("active learning")
    a.add_argument("--seed-samples", type=positive_int, default=16, help="Latin-hypercube seed size (default 16)")
    a.add_argument("--budget", type=positive_int, default=32, help="most architectures to measure (default 32)")
    a.add_argument("--test-samples", type=positive_int, default=8, help="held-out architectures (default 8)")
    a.add_argument("--threshold", type=float, default=0.003, help="held-out normalised test MSE to stop at (default 0.003)")
    a.add_argument("--surrogate", default="bdt", choices=available_surrogates(), metavar="NAME",
                   help=f"surrogate: {', '.join(available_surrogates())} (default bdt)")
    a.add_argument("--surrogate-param", action="append", metavar="KEY=VALUE",
                   help="surrogate constructor parameter (repeatable), e.g. kernel=linear+matern encoder=cost with gp")
    a.add_argument("--acquisition", choices=ACQUISITIONS, default="uncertainty",
                   help="query rule: largest normalised std (default) or integrated variance reduction (gp)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--timeout", type=positive_float, default=None, help="stop after this many seconds")
    a.add_argument("--max-failures", type=positive_int, default=5,
                   help="stop (exit 1) after this many failed measurements in a row (default 5)")
    a.add_argument("--tune", action="store_true",
                   help="run the same search (held-out set, convergence, report) through Ray Tune (Tuner + "
                        "OptunaSearch) instead of the ask/tell loop")
    add_storage_options(p)
    p.add_argument("--no-artifacts", action="store_true", help="no MLflow artifacts (architecture JSON, power traces)")
    add_ray_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--report-dir", default=None, help="report folder (default reports/<study>)")
    o.add_argument("--no-report", action="store_true", help="skip the report folder")
    o.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (a bar in a terminal, else one line per phase and per architecture)")
    o.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from protran_tune.errors import UsageError, check_output_dir
    from protran_tune.workflows.profile import ProfileConfig

    if args.study is not None and not args.study.strip():
        raise UsageError("--study must be a non-empty name (default profile-<platform>)")
    study = args.study or f"profile-{args.platform}"
    cfg = ProfileConfig(
        study_name=study, platform=args.platform, platform_options=parse_options(args.platform_option),
        plugins=list(args.plugin),
        space=args.space, mode=args.mode, batch_size=args.batch_size, seq_len=args.seq_len,
        max_repeats=args.max_repeats, min_repeats=args.min_repeats, latency_budget_s=args.latency_budget,
        target_ci_rel=args.target_ci, seed_samples=args.seed_samples,
        budget=args.budget, test_samples=args.test_samples, threshold=args.threshold, surrogate=args.surrogate,
        surrogate_params=parse_options(args.surrogate_param, "--surrogate-param"), acquisition=args.acquisition,
        seed=args.seed, storage=args.storage, mlflow_uri=None if args.no_mlflow else args.mlflow_uri,
        experiment=args.experiment, artifacts=not args.no_artifacts, use_ray=not args.no_ray,
        ray_address=args.ray_address, n_workers=args.workers, timeout_s=args.timeout, max_failures=args.max_failures,
        report_dir=None if args.no_report else (args.report_dir or f"reports/{study}"),
        progress=not args.quiet,
    )
    if cfg.report_dir:
        check_output_dir(cfg.report_dir, "--report-dir")
    return cfg


def run(args: argparse.Namespace) -> int:
    import importlib

    from protran_tune.errors import UsageError
    from protran_tune.platforms import available_platforms

    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"--plugin {module!r} cannot be imported: {exc}") from None
    if args.platform not in available_platforms():
        raise ValueError(f"unknown platform {args.platform!r}: known platforms are {available_platforms()}")
    if args.tune and args.no_ray:
        raise UsageError("--tune runs the search on Ray Tune: drop --no-ray (or --tune)")
    cfg = config_from_args(args)
    if args.tune:
        from protran_tune.workflows.tune import tune_profile

        result = tune_profile(cfg)
    else:
        from protran_tune.workflows.profile import profile

        result = profile(cfg)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print("\n".join(summary_lines(result, cfg.threshold)))
    if result.message:
        print(f"protran-tune profile: stopped: {result.message}", file=sys.stderr)
    return 1 if result.stop_reason == "failures" or (result.n_measured == 0 and result.n_failed > 0) else 0


def summary_lines(result: Any, threshold: float) -> list[str]:
    """The final summary: counts, stop reason, held-out error, then what the numbers are and the report."""
    from protran_tune.workflows.report_bridge import format_samples_to_convergence

    if result.curve:
        mse = ", ".join(f"{k} {v:.4g}" for k, v in result.curve[-1]["test_mse"].items())
        error = (f"held-out test MSE (normalised) {mse}, threshold {threshold:g}; samples to convergence "
                 f"{format_samples_to_convergence(result.samples_to_convergence)}")
    else:
        error = "no held-out test MSE (it needs 4 measured and 2 held-out architectures)"
    lines = [f"study {result.study_name}: {result.n_measured} measured, {result.n_failed} failed, {result.n_test} "
             f"held out; stop: {result.stop_reason}; {error}"]
    lines += [f"note: {note}" for note in result.notes]
    if result.report_dir:
        lines.append(f"report: {result.report_dir}")
    return lines
