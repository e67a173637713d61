"""``protran-tune report``: figures and a Markdown summary from measurement files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from protran_tune.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="plots (power traces, platform comparison, ...) and a summary.md linking them",
        description=(
            "Write PNG figures and summary.md into --out from measurement files: JSON-lines records of "
            "'protran-tune measure' / the Ray pool, or the original ProTran results_*.json files. "
            "Sections: power traces (Figs. 2/3), platforms normalised to --baseline (Fig. 4), and any "
            "section other modules of protran_tune.reporting register."
        ),
    )
    parser.add_argument("--measurements", "-m", nargs="+", required=True, metavar="FILE",
                        help="measurement files (JSON lines or ProTran JSON; *.max_values.json are skipped), shipped "
                             "dataset names (protran:gpu_a100, ...) or protran:all (the seven ProTran files)")
    parser.add_argument("--baseline", default=None, metavar="PLATFORM",
                        help="platform label to normalise to (e.g. gpu_a100, cpu); default: the first file's")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="report folder (created)")
    parser.add_argument("--section", action="append", default=None, metavar="NAME",
                        help="only this section (repeatable); default: all registered sections")
    parser.add_argument("--traces-per-platform", type=int, default=2, metavar="N",
                        help="power-trace figures per platform (default 2)")
    parser.add_argument("--trace-arch", action="append", default=[], metavar="HASH",
                        help="plot the power trace of this architecture hash (repeatable)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="input of another section (e.g. study=NAME); repeatable")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from protran_tune.commands._common import parse_options
    from protran_tune.errors import check_output_dir
    from protran_tune.reporting import build_report

    if args.traces_per_platform < 0:
        raise UsageError(f"--traces-per-platform must be >= 0, got {args.traces_per_platform}")
    options = parse_options(args.option, "--option")
    options.setdefault("traces_per_platform", args.traces_per_platform)
    if args.trace_arch:
        options["trace_archs"] = ",".join(args.trace_arch)
    out = check_output_dir(args.out, "--out")
    result = build_report(resolve_measurement_files(args.measurements), out, baseline=args.baseline,
                          sections=args.section, options=options)
    print(f"report: {len(result.figures)} figure(s), {len(result.sections)} section(s); summary {result.summary}",
          file=sys.stderr)
    return 0


def resolve_measurement_files(items: list[str]) -> list[str]:
    """Files of ``--measurements``: paths as given; shipped dataset names (``protran:gpu_a100``) as their
    file; ``protran:all`` as the seven ProTran files."""
    from protran_tune.datasets import DATASETS, dataset_path, protran_measurement_files

    out: list[str] = []
    for item in items:
        if item == "protran:all":
            out += [str(p) for p in protran_measurement_files()]
        elif item in DATASETS:
            out.append(str(dataset_path(item)))
        else:
            out.append(item)
    return out
