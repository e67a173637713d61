"""``protran-tune datasets``: the tables shipped inside the package (list, info, export).

``list`` prints the dataset names; ``info NAME [--json]`` prints ``{"name", "records", "metrics",
"sources", ...}``; ``export NAME --out F.jsonl`` writes the dataset in the generic table format (one
``{"id", "architecture", "metrics", "sources"}`` object per line). NAME is a shipped name
(``nas-bench-bert``, ``protran:gpu_a100``, ``protran-nasbench:h200``, ...) or a file path.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("datasets", help="datasets shipped inside the package: list, info, export",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="names of the shipped datasets")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    ls.set_defaults(func=run_list)
    info = sub.add_parser("info", help="records, metrics and their sources of a dataset")
    info.add_argument("name", help="dataset name or file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)
    export = sub.add_parser("export", help="write a dataset in the generic table format (JSON lines)")
    export.add_argument("name", help="dataset name or file")
    export.add_argument("--out", required=True, help="output .jsonl file")
    export.set_defaults(func=run_export)


def run_list(args: argparse.Namespace) -> int:
    from protran_tune.datasets import list_datasets

    names = list_datasets()
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from protran_tune.datasets import load_dataset

    info = load_dataset(args.name).info()
    if args.json:
        print(json.dumps(info))
        return 0
    for key in ("name", "records", "metrics", "sources", "citation", "licence", "path"):
        if info.get(key) is not None:
            print(f"{key:<9} {info[key]}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import sys

    from protran_tune.datasets import load_dataset, write_table
    from protran_tune.errors import check_output_path

    out = check_output_path(args.out, "--out")
    table = load_dataset(args.name)
    write_table(table, out)
    print(f"wrote {out}: {len(table)} records, metrics {table.metric_names}", file=sys.stderr)
    return 0
