"""``protran-tune space``: inspect design spaces, validate and embed architectures."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from protran_tune.space import Architecture, get_space


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("space", help="inspect design spaces and architectures")
    sub = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="counts of op types and architectures of a space")
    info.add_argument("--space", default="flexibert2", help="built-in name (flexibert2, protran-table1) or YAML path")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)
    embed = sub.add_parser("embed", help="validate architectures (JSON lines) and print their 37-dim embeddings")
    embed.add_argument("--space", default="flexibert2")
    embed.add_argument("archs", nargs="?", default="-", help="JSON-lines file of architectures or model_dicts (- = stdin)")
    embed.set_defaults(func=run_embed)
    sample = sub.add_parser("sample", help="sample architectures (LHS, Sobol, Halton, Hammersly, random) as JSON lines")
    sample.add_argument("--space", default="flexibert2", help="built-in name (flexibert2, protran-table1) or YAML path")
    sample.add_argument("--method", default="lhs", help="lhs, sobol, halton, hammersly or random (default lhs)")
    sample.add_argument("-n", type=int, default=16, help="number of architectures (default 16)")
    sample.add_argument("--seed", type=int, default=None, help="seed of the scrambling (default: random)")
    sample.set_defaults(func=run_sample)


def run_info(args: argparse.Namespace) -> int:
    info = get_space(args.space).info()
    if args.json:
        print(json.dumps(info))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    stream = sys.stdin if args.archs == "-" else open(args.archs)
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                arch = Architecture.from_dict(data.get("architecture", data) if isinstance(data, dict) else data)
                embedding = space.embed(arch)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ValueError(f"{args.archs}:{lineno}: {exc}") from None
            print(json.dumps({"hash": arch.content_hash(), "embedding": embedding.tolist()}))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    """Print ``n`` architectures of the space, one JSON object per line (``{"architecture": ...}``)."""
    from protran_tune.samplers.qmc import sample_architectures

    if args.n < 1:
        raise ValueError(f"-n must be a positive integer, got {args.n}")
    for arch in sample_architectures(args.space, args.method, args.n, seed=args.seed):
        print(json.dumps({"hash": arch.content_hash(), "architecture": arch.to_dict()}))
    return 0
