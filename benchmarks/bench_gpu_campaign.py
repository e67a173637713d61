"""Run the H200 measurement campaign: every set through ``protran-tune measure`` (resumable).

    PYTHONPATH=. python3 benchmarks/bench_gpu_campaign.py OUT_DIR [--deadline-s 570]

Sets, in priority order (inputs written by ``benchmarks/bench_gpu_archs.py``), all at 128 tokens:

=================  =====================================  ==========================================
output             input                                  what
=================  =====================================  ==========================================
gpu_h200_infer_lhs.jsonl        gpu_archs_lhs.jsonl        inference, batch 128: 50 LHS + BERT-Tiny/Base
gpu_h200_infer_a100seeds.jsonl  gpu_archs_a100_seeds.jsonl inference, batch 128: the 16 A100 seed models
gpu_h200_repeat.jsonl           gpu_archs_repeat.jsonl     inference, batch 128, 5 repeats each
gpu_h200_train.jsonl            gpu_archs_train.jsonl      training (fwd + bwd + AdamW), batch 128
gpu_h200_auto.jsonl             gpu_archs_repeat.jsonl[:2] inference, batch size auto
=================  =====================================  ==========================================

Each set runs as its own ``python -m protran_tune.platforms.worker`` process, killed at the deadline;
rerunning with the same OUT_DIR resumes. ``gpu_h200_campaign.json`` in OUT_DIR records the exact commands,
their exit codes and durations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RES = "benchmarks/results"
SETS = [
    ("gpu_h200_infer_lhs.jsonl", f"{RES}/gpu_archs_lhs.jsonl", ["--batch-size", "128"]),
    ("gpu_h200_infer_a100seeds.jsonl", f"{RES}/gpu_archs_a100_seeds.jsonl", ["--batch-size", "128"]),
    ("gpu_h200_repeat.jsonl", f"{RES}/gpu_archs_repeat.jsonl", ["--batch-size", "128", "--repeat", "5"]),
    ("gpu_h200_train.jsonl", f"{RES}/gpu_archs_train.jsonl", ["--batch-size", "128", "--mode", "training"]),
    ("gpu_h200_auto.jsonl", f"{RES}/gpu_archs_repeat.jsonl", ["--batch-size", "auto", "--limit", "2"]),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--deadline-s", type=float, default=570.0)
    ap.add_argument("--platform", default="cuda")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runs = []
    for name, archs, extra in SETS:
        left = args.deadline_s - (time.time() - t0)
        if left < 20:
            runs.append({"out": name, "skipped": "deadline"})
            continue
        cmd = [sys.executable, "-m", "protran_tune.platforms.worker", "--platform", args.platform,
               "--archs", archs, "--out", str(out / name), "--seq-len", "128", *extra]
        start = time.time()
        try:
            rc = subprocess.run(cmd, timeout=left).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        runs.append({"out": name, "command": " ".join(["PYTHONPATH=.", "python3", *cmd[1:]]), "rc": rc,
                     "seconds": round(time.time() - start, 1)})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    prev = json.loads((out / "gpu_h200_campaign.json").read_text()) if (out / "gpu_h200_campaign.json").exists() else []
    (out / "gpu_h200_campaign.json").write_text(json.dumps(prev + [{"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "runs": runs}], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
