"""``protran-tune measure``: measure architectures on one platform, one JSON line per architecture.

Needs only torch, transformers, numpy, PyYAML and the platform's sensor library, so it runs on GPU
machines and edge boards without Ray, Optuna or MLflow (also as ``python -m
protran_tune.platforms.worker``). Input lines (JSON Lines): an ``Architecture`` dict, a ProTran
``model_dict``, or an object with an ``architecture`` (or ``model_dict``) member; a whole-file JSON
object in the recorded-dataset format ``{hash: {"model_dict": ...}}`` or a JSON list also works.

Output: one record per architecture (and repeat), appended and flushed as soon as it is measured::

    {"arch_hash", "architecture", "platform", "status": "ok"|"failed", "error", "repeat",
     "measurement": Measurement.to_dict() | null, "workload": Workload.to_dict(), "finished_at"}

It resumes: records already in the output (same architecture, platform, mode, requested batch size,
sequence length and repeat) are skipped, failed ones too unless ``--retry-failed``. A truncated last
line (a killed run) is dropped. Exit status: 0 all measured, 1 some architecture failed (in this run
or recorded as failed before), 2 bad input or an unusable platform/sensor.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from protran_tune.commands._common import parse_options
from protran_tune.errors import UsageError, check_output_path
from protran_tune.platforms.records import finish_record, measurement_record, record_key, records_to_skip


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "measure", help="measure latency, energy and peak power of architectures on a platform",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--platform", required=True, help="registered platform: cpu, cuda, jetson, apple, rpi-ina219, or a plugin's")
    p.add_argument("--archs", required=True, help="architectures: JSON lines (or a recorded-dataset JSON file)")
    p.add_argument("--out", required=True, help="results, JSON lines (appended; resumed)")
    p.add_argument("--mode", choices=("inference", "training"), default="inference")
    p.add_argument("--batch-size", default="auto", help="sequences per batch, or 'auto' (default)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--space", default="flexibert2", help="design space to validate against, or 'none'")
    p.add_argument("--limit", type=int, default=None, help="measure only the first N architectures of the input")
    p.add_argument("--repeat", type=int, default=1, help="measure each architecture this many times (default 1)")
    p.add_argument("--min-repeats", type=int, default=10)
    p.add_argument("--max-repeats", type=int, default=200)
    p.add_argument("--target-ci", type=float, default=0.01, help="relative 95%% CI half-width of the median latency")
    p.add_argument("--warmup", type=int, default=3, help="warm-up iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--platform-option", "--option", "-o", dest="platform_option", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="platform constructor option (e.g. watts_per_core=12, energy_window_s=2); repeatable "
                        "(--option is an alias)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers more platforms; repeatable")
    p.add_argument("--retry-failed", action="store_true", help="measure again architectures recorded as failed")
    p.add_argument("--no-trace", action="store_true", help="leave the power trace out of the records")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- input
def _architecture_of(item: Any) -> Any:
    from protran_tune.space import Architecture

    if isinstance(item, dict):
        for key in ("architecture", "model_dict"):
            if key in item:
                return Architecture.from_dict(item[key])
    return Architecture.from_dict(item)


def read_architectures(path: str | Path, space: Any = None) -> list[Any]:
    """Architectures of ``path`` in order; ``UsageError`` naming the file and line of a bad one."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read --archs {path}: {exc.strerror or exc}") from None
    items: list[tuple[str, Any]] = []
    whole = None
    stripped = text.strip()
    if stripped.startswith(("{", "[")) and "\n" in stripped:
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
    if isinstance(whole, list):
        items = [(f"{path}[{i}]", x) for i, x in enumerate(whole)]
    elif isinstance(whole, dict) and whole and all(isinstance(v, dict) and "model_dict" in v for v in whole.values()):
        items = [(f"{path}[{k!r}]", v) for k, v in whole.items()]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                items.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from None
    archs = []
    for where, item in items:
        try:
            arch = _architecture_of(item)
            if space is not None:
                space.validate(arch)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        archs.append(arch)
    if not archs:
        raise UsageError(f"--archs {path} holds no architecture")
    return archs


def _load_plugin(spec: str) -> None:
    try:
        if spec.endswith(".py"):
            mod_spec = importlib.util.spec_from_file_location(Path(spec).stem, spec)
            if mod_spec is None or mod_spec.loader is None:
                raise ImportError(f"cannot load {spec}")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except (ImportError, OSError) as exc:
        raise UsageError(f"--plugin {spec}: {exc}") from None


# --------------------------------------------------------------------------- output
def _warn(message: str) -> None:
    print(f"measure: {message}", file=sys.stderr)


def _summary(record: dict[str, Any]) -> str:
    """Progress text of a record: per-batch latency, energy and peak power, or why it failed."""
    m = record["measurement"]
    if m is None:
        return f"FAILED {record['error']}"
    return (f"{m['latency_s'] * 1e3:.3f} ms/batch(b={m['batch_size']})"
            + (f" {m['energy_j']:.4g} J/batch" if m.get("energy_j") is not None else "")
            + (f" peak {m['peak_power_w']:.1f} W" if m.get("peak_power_w") is not None else ""))


def _progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from protran_tune.platforms.base import SensorUnavailableError, Workload, get_platform
    from protran_tune.space import get_space

    for plugin in args.plugin:
        _load_plugin(plugin)
    if args.batch_size == "auto":
        batch_size = None
    else:
        try:
            batch_size = int(args.batch_size)
        except ValueError:
            raise UsageError(f"--batch-size must be a positive integer or 'auto', got {args.batch_size!r}") from None
    for name in ("repeat", "seq_len"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.limit is not None and args.limit <= 0:
        raise UsageError(f"--limit must be positive, got {args.limit}")
    workload = Workload(
        mode=args.mode, batch_size=batch_size, seq_len=args.seq_len, min_repeats=args.min_repeats,
        max_repeats=args.max_repeats, target_ci_rel=args.target_ci, warmup=args.warmup, seed=args.seed,
    )
    space = None if args.space == "none" else get_space(args.space)
    archs = read_architectures(args.archs, space)[: args.limit]
    out = check_output_path(args.out, "--out")
    skip = records_to_skip(out, args.retry_failed, warn=_warn)
    options = parse_options(args.platform_option)

    jobs = []
    failed_before = 0
    for arch in archs:
        for rep in range(args.repeat):
            rec = {"arch_hash": arch.content_hash(), "platform": args.platform, "workload": workload.to_dict(), "repeat": rep}
            prev = skip.get(record_key(rec))
            if prev is not None:
                failed_before += prev.get("status") != "ok"
                continue
            jobs.append((arch, rep))
    _progress(args.quiet, f"measure: {len(archs)} architectures x {args.repeat}: {len(jobs)} to measure, "
              f"{len(archs) * args.repeat - len(jobs)} already in {out}")
    if not jobs:
        return 1 if failed_before else 0
    try:
        platform = get_platform(args.platform, **options)
    except SensorUnavailableError as exc:
        raise UsageError(f"platform {args.platform!r} unusable here: {exc}") from None
    except TypeError as exc:
        raise UsageError(f"platform {args.platform!r}: bad --platform-option: {exc}") from None
    failed = 0
    t_run = time.perf_counter()
    try:
        with open(out, "a") as fh:
            for i, (arch, rep) in enumerate(jobs, 1):
                t0 = time.perf_counter()
                record = finish_record(measurement_record(platform, arch, workload, repeat=rep,
                                                          include_trace=not args.no_trace), fh)
                failed += record["status"] != "ok"
                _progress(args.quiet, f"[{i}/{len(jobs)}] {record['arch_hash']} r{rep} {_summary(record)} "
                          f"({time.perf_counter() - t0:.1f} s)")
    finally:
        platform.close()
    _progress(args.quiet, f"measure: {len(jobs) - failed} ok, {failed} failed, {failed_before} failed before; "
              f"{time.perf_counter() - t_run:.1f} s; results in {out}")
    return 1 if failed or failed_before else 0


def main(argv: Iterable[str] | None = None) -> int:
    """``protran-tune measure`` without the rest of the CLI (used by the worker entry point)."""
    from protran_tune.cli import main as cli_main

    return cli_main(["measure", *(sys.argv[1:] if argv is None else list(argv))])
