"""Measure every NAS-Bench-BERT architecture with ``protran-tune measure``, one worker per visible GPU (resumable).

    PYTHONPATH=. python3 benchmarks/bench_nasbench_campaign.py --platform cuda --deadline-s 540 [--copy-to DIR]
    .venv/bin/python benchmarks/bench_nasbench_campaign.py --platform cpu --batch-size 1   # this machine

Inputs: the 491 distinct architectures of the shipped ``nas-bench-bert`` dataset, written once to
``benchmarks/results/nasbench/archs.jsonl`` (table order). On ``cuda`` they are dealt round-robin to one
``python -m protran_tune.platforms.worker`` process per GPU (``CUDA_VISIBLE_DEVICES`` = that GPU;
NVML's counters are per GPU, so the processes do not disturb each other's energy), each appending to
``<platform>_shard<i>.jsonl`` beside the inputs; a rerun skips what is measured. Workload: inference,
128 tokens, batch ``--batch-size`` (default 128), CUDA graphs on ``cuda`` (small models are launch-bound),
fp32. ``--repeat-archs N`` adds a repeatability set: the first N architectures measured 5 times each
(``<platform>_repeat.jsonl``). ``campaign.json`` records each command, exit code and duration.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIR = REPO / "benchmarks" / "results" / "nasbench"


def write_archs() -> Path:
    sys.path.insert(0, str(REPO))
    from protran_tune.datasets import load_dataset

    path = DIR / "archs.jsonl"
    if not path.exists():
        DIR.mkdir(parents=True, exist_ok=True)
        table = load_dataset("nas-bench-bert")
        path.write_text("".join(json.dumps({"id": i, "architecture": a.to_dict()}) + "\n" for i, a in zip(table.ids, table.archs)))
    return path


def n_gpus() -> int:
    try:
        import torch

        return max(torch.cuda.device_count(), 1)
    except ImportError:
        return 1


def shard_inputs(archs: Path, platform: str, n: int) -> list[Path]:
    lines = archs.read_text().splitlines()
    paths = []
    for i in range(n):
        p = DIR / f"{platform}_shard{i}.archs.jsonl"
        p.write_text("".join(line + "\n" for line in lines[i::n]))
        paths.append(p)
    return paths


def worker_command(platform: str, archs: Path, out: Path, args: argparse.Namespace, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "protran_tune.platforms.worker", "--platform", platform, "--archs", str(archs.relative_to(REPO)),
           "--out", str(out.relative_to(REPO)), "--seq-len", "128", "--batch-size", str(args.batch_size), *extra]
    if platform == "cuda":
        cmd += ["--platform-option", "cuda_graph=true"]
    return cmd


def run_parallel(jobs: list[tuple[list[str], dict[str, str]]], deadline: float) -> list[dict]:
    procs = []
    for cmd, env in jobs:
        start = time.time()
        procs.append((cmd, env, start, subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env})))
    runs = []
    for cmd, env, start, proc in procs:
        try:
            rc: int | str = proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "deadline"
        shown = " ".join([*(f"{k}={v}" for k, v in env.items()), "PYTHONPATH=.", "python3", *cmd[1:]])
        runs.append({"command": shown, "rc": rc, "seconds": round(time.time() - start, 1)})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", default="cuda")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--deadline-s", type=float, default=540.0)
    ap.add_argument("--repeat-archs", type=int, default=0, help="also measure the first N architectures 5 times")
    ap.add_argument("--copy-to", default=None, help="copy the result files here at the end (e.g. $OUT)")
    args = ap.parse_args()
    t0 = time.time()
    deadline = t0 + args.deadline_s
    archs = write_archs()
    n = n_gpus() if args.platform == "cuda" else 1
    jobs = []
    for i, shard in enumerate(shard_inputs(archs, args.platform, n)):
        env = {"CUDA_VISIBLE_DEVICES": str(i)} if args.platform == "cuda" else {}
        jobs.append((worker_command(args.platform, shard, DIR / f"{args.platform}_shard{i}.jsonl", args, []), env))
    runs = run_parallel(jobs, deadline)
    if args.repeat_archs and time.time() < deadline - 30:
        rep_in = DIR / f"{args.platform}_repeat.archs.jsonl"
        rep_in.write_text("".join(line + "\n" for line in archs.read_text().splitlines()[: args.repeat_archs]))
        env = {"CUDA_VISIBLE_DEVICES": "0"} if args.platform == "cuda" else {}
        cmd = worker_command(args.platform, rep_in, DIR / f"{args.platform}_repeat.jsonl", args, ["--repeat", "5"])
        runs += run_parallel([(cmd, env)], deadline)
    log = DIR / "campaign.json"
    prev = json.loads(log.read_text()) if log.exists() else []
    log.write_text(json.dumps(prev + [{"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                                       "platform": args.platform, "gpus": n, "runs": runs}], indent=1))
    if args.copy_to:
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(DIR.glob(f"{args.platform}_*.jsonl")) + [log]:
            if not f.name.endswith(".archs.jsonl"):
                shutil.copy(f, dest / f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
