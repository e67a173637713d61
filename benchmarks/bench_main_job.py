"""Benchmark: the README's main job on this machine — wall time and peak memory of the process tree.

Runs ``protran-tune profile --study cpu-demo`` (the README's main job; all defaults: platform cpu, local
Ray started and stopped by the command, 16 seed + 16 active-learning architectures, 8 held out) in a
fresh directory, samples the memory of the command and every descendant (Ray's GCS, raylet, workers,
platform actor) every 0.25 s, and checks the report folder. Targets: <= 10 min, <= 4 GB.

Memory is reported as the sum of PSS (proportional set size: shared pages split between the processes
that map them, so torch's libraries count once) and, for reference, the sum of RSS (counts shared
pages once per process, an overestimate). The target is checked on PSS.

    python benchmarks/bench_main_job.py [--extra "--budget 24"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MAIN_JOB = "protran-tune profile --study cpu-demo"
REQUIRED_PLOTS = ("power_trace.png", "pairwise_distance.png", "learning_curve.png", "predicted_vs_real.png")
TARGET_S, TARGET_BYTES = 600.0, 4 * 1024**3


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) bytes of one process; (0, 0) if it is gone."""
    try:
        pss = rss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
        return pss, rss
    except (OSError, ValueError):
        return 0, 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", default="", help="extra profile options appended to the main job")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    command = MAIN_JOB + (f" {args.extra}" if args.extra else "")
    exe = Path(sys.executable).parent / "protran-tune"
    argv = [str(exe) if a == "protran-tune" else a for a in shlex.split(command)]
    work = Path(tempfile.mkdtemp(prefix="main-job-"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        pids = descendants(proc.pid)
        mem = [memory(p) for p in pids]
        samples.append((time.perf_counter() - t0, sum(m[0] for m in mem), sum(m[1] for m in mem), len(pids)))
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    peak_pss = max(s[1] for s in samples)
    peak_rss = max(s[2] for s in samples)
    report = work / "reports" / "cpu-demo"
    plots = {name: (report / name).exists() for name in REQUIRED_PLOTS}
    result_file = report / "profile_result.json"
    profile_result = json.loads(result_file.read_text()) if result_file.exists() else None
    result = {
        "benchmark": "main_job",
        "command": command,
        "reproduce": "python benchmarks/bench_main_job.py" + (f" --extra {shlex.quote(args.extra)}" if args.extra else ""),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "exit_code": proc.returncode,
        "wall_time_s": round(wall, 1),
        "peak_memory_pss_bytes": peak_pss,
        "peak_memory_rss_sum_bytes": peak_rss,
        "max_processes": max(s[3] for s in samples),
        "targets": {"wall_time_s": TARGET_S, "peak_memory_bytes": TARGET_BYTES},
        "ratio_to_target": {"wall_time": round(wall / TARGET_S, 3), "peak_memory_pss": round(peak_pss / TARGET_BYTES, 3)},
        "meets_targets": proc.returncode == 0 and wall <= TARGET_S and peak_pss <= TARGET_BYTES and all(plots.values()),
        "report_plots": plots,
        "profile_result": profile_result,
        "stdout_tail": out[-1000:],
        "stderr_tail": err[-1500:] if proc.returncode else "",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"main_job_cpu{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    t = [s[0] for s in samples]
    ax.plot(t, [s[1] / 1024**3 for s in samples], label="PSS (sum over the process tree)")
    ax.plot(t, [s[2] / 1024**3 for s in samples], lw=0.8, ls="--", label="RSS (sum, counts shared pages per process)")
    ax.axhline(TARGET_BYTES / 1024**3, c="r", lw=0.8, label="target 4 GiB")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("memory (GiB)")
    ax.set_title(f"main job: {wall:.0f} s, peak PSS {peak_pss / 1024**3:.2f} GiB ({os.cpu_count()} CPUs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("command", "exit_code", "wall_time_s", "peak_memory_pss_bytes",
                                              "peak_memory_rss_sum_bytes", "ratio_to_target", "meets_targets",
                                              "report_plots")}, indent=1))
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
