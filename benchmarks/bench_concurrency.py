"""Benchmark: concurrent ``profile`` processes on one study and storage (issue 12, item 2).

Scenarios: 2 and 3 ``protran-tune profile`` processes on one study, started **together** (at once, on a
fresh sqlite Optuna storage and MLflow store: the table-creation race) and **staggered** (process ``i``
starts once the study holds ``2 i`` measured architectures: it joins a study in progress), each
``--repeats`` times. Platform ``synthetic-test`` (``tests/synthetic_platform.py``: every measurement
takes ``--sleep-s`` seconds and appends the architecture's hash to a log, so measurements are counted,
not inferred), in process (``--no-ray``) unless ``--ray`` (then every process starts its own local Ray).

Reported per run and summed per scenario:

* crashes: processes that exited non-zero or printed a traceback;
* duplicate measurements: log lines beyond one per architecture;
* budget held: exactly ``--budget`` COMPLETE trials in the main study and ``--test-samples`` held out,
  nothing left RUNNING or FAIL;
* MLflow: one finished run per finished trial, no trial logged twice, one parent run per study;
* processes that measured something (how concurrent the run really was), wall time.

Target: 0 crashes, 0 duplicates, the budget held in every run.

    python benchmarks/bench_concurrency.py [--repeats 5] [--budget 10] [--sleep-s 1.0] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replay import RESULTS, reproduce_command  # noqa: E402

SCENARIOS = ((2, "together"), (2, "staggered"), (3, "together"), (3, "staggered"))
STUDY = "concurrent"


def profile_argv(args: argparse.Namespace, log: Path) -> list[str]:
    argv = [sys.executable, "-m", "protran_tune.cli", "profile", "--quiet", "--no-report", "--plugin",
            "synthetic_platform", "--platform", "synthetic-test", "--platform-option", f"sleep_s={args.sleep_s}",
            "--platform-option", f"log_path={log}", "--study", STUDY, "--budget", str(args.budget),
            "--seed-samples", str(args.seed_samples), "--test-samples", str(args.test_samples), "--threshold", "1e-12"]
    return argv if args.ray else [*argv, "--no-ray"]


def n_complete(db: Path) -> int:
    """COMPLETE trials of the main and held-out studies (0 before the tables exist)."""
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return int(con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def run_scenario(args: argparse.Namespace, n: int, start: str) -> dict[str, Any]:
    """One run: ``n`` processes on a fresh working directory; the counts of the module docstring."""
    work = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    log = work / "measured.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    procs: list[subprocess.Popen] = []
    for i in range(n):
        if start == "staggered" and procs:
            while n_complete(work / "protran.db") < 2 * i and any(p.poll() is None for p in procs):
                time.sleep(0.2)
        procs.append(subprocess.Popen(profile_argv(args, log), cwd=work, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    crashed = [p.returncode != 0 or "Traceback" in err for p, (_, err) in zip(procs, outs)]
    calls = Counter(log.read_text().split()) if log.exists() else Counter()
    result = {"processes": n, "start": start, "exit_codes": [p.returncode for p in procs], "crashes": sum(crashed),
              "duplicate_measurements": sum(c - 1 for c in calls.values()), "measurements": sum(calls.values()),
              **study_counts(args, work), "wall_time_s": round(wall, 1),
              "crash_tails": [err[-1500:] for c, (_, err) in zip(crashed, outs) if c]}
    shutil.rmtree(work, ignore_errors=True)
    return result


def study_counts(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    storage = f"sqlite:///{work / 'protran.db'}"
    names = set(optuna.get_all_study_names(storage)) if (work / "protran.db").exists() else set()
    states: dict[str, Counter] = {}
    owners: set[str] = set()
    for name in (STUDY, STUDY + ".holdout"):
        trials = optuna.load_study(study_name=name, storage=storage).trials if name in names else []
        states[name] = Counter(t.state.name for t in trials)
        owners |= {t.user_attrs.get("owner") for t in trials if t.state == TrialState.COMPLETE}
    main, held = states[STUDY], states[STUDY + ".holdout"]
    leftover = sum(c.get("RUNNING", 0) + c.get("FAIL", 0) for c in states.values())
    out = {"main_complete": main.get("COMPLETE", 0), "holdout_complete": held.get("COMPLETE", 0),
           "running_or_failed_left": leftover, "processes_that_measured": len(owners)}
    out["budget_held"] = (out["main_complete"] == args.budget and out["holdout_complete"] == args.test_samples
                          and leftover == 0)
    out.update(mlflow_counts(work, main.get("COMPLETE", 0) + held.get("COMPLETE", 0)))
    return out


def mlflow_counts(work: Path, n_finished: int) -> dict[str, Any]:
    if not (work / "mlflow.db").exists():
        return {"mlflow_ok": False}
    with sqlite3.connect(work / "mlflow.db", timeout=30) as con:
        rows = con.execute(
            "select r.lifecycle_stage, r.status, t1.value, t2.value from runs r "
            "join tags t1 on t1.run_uuid = r.run_uuid and t1.key = 'protran.role' "
            "left join tags t2 on t2.run_uuid = r.run_uuid and t2.key = 'protran.study'").fetchall()
        numbers = con.execute(
            "select t2.value, t3.value from runs r join tags t1 on t1.run_uuid = r.run_uuid and t1.key = 'protran.role' "
            "and t1.value = 'trial' join tags t2 on t2.run_uuid = r.run_uuid and t2.key = 'protran.study' "
            "join tags t3 on t3.run_uuid = r.run_uuid and t3.key = 'protran.trial_number' "
            "where r.lifecycle_stage = 'active'").fetchall()
    trial_runs = [r for r in rows if r[2] == "trial" and r[0] == "active"]
    parents = Counter(r[3] for r in rows if r[2] == "study" and r[0] == "active")
    twice = sum(c - 1 for c in Counter(numbers).values())
    ok = (len(trial_runs) == n_finished and all(r[1] == "FINISHED" for r in trial_runs) and twice == 0
          and set(parents.values()) == {1})
    return {"mlflow_trial_runs": len(trial_runs), "mlflow_trials_logged_twice": twice,
            "mlflow_deleted_runs": sum(r[0] == "deleted" for r in rows), "mlflow_parent_runs": sum(parents.values()),
            "mlflow_ok": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per scenario (default 5)")
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--seed-samples", type=int, default=4)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--sleep-s", type=float, default=1.0, help="seconds per synthetic measurement (default 1)")
    parser.add_argument("--ray", action="store_true", help="every process starts its own local Ray")
    parser.add_argument("--out", default=str(RESULTS / "concurrency.json"))
    args = parser.parse_args(argv)
    runs = []
    for n, start in SCENARIOS:
        for r in range(args.repeats):
            runs.append(run_scenario(args, n, start))
            print(json.dumps({k: runs[-1][k] for k in ("processes", "start", "crashes", "duplicate_measurements",
                                                       "budget_held", "mlflow_ok", "processes_that_measured",
                                                       "wall_time_s")}), flush=True)
    scenarios = []
    for n, start in SCENARIOS:
        mine = [r for r in runs if r["processes"] == n and r["start"] == start]
        scenarios.append({"processes": n, "start": start, "runs": len(mine), "crashes": sum(r["crashes"] for r in mine),
                          "duplicate_measurements": sum(r["duplicate_measurements"] for r in mine),
                          "budget_held": f"{sum(r['budget_held'] for r in mine)}/{len(mine)}",
                          "mlflow_ok": f"{sum(r['mlflow_ok'] for r in mine)}/{len(mine)}",
                          "runs_where_every_process_measured": sum(r["processes_that_measured"] == n for r in mine)})
    summary = {"runs": len(runs), "processes": sum(r["processes"] for r in runs),
               "crashes": sum(r["crashes"] for r in runs),
               "duplicate_measurements": sum(r["duplicate_measurements"] for r in runs),
               "budget_held": f"{sum(r['budget_held'] for r in runs)}/{len(runs)}",
               "mlflow_ok": f"{sum(r['mlflow_ok'] for r in runs)}/{len(runs)}"}
    summary["meets_target"] = (summary["crashes"] == 0 and summary["duplicate_measurements"] == 0
                               and all(r["budget_held"] and r["mlflow_ok"] for r in runs))
    result = {"benchmark": "concurrency", "command": reproduce_command("bench_concurrency.py", argv),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "platform": "synthetic-test" + (" on a local Ray per process" if args.ray else ", in process (--no-ray)"),
              "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
              "summary": summary, "scenarios": scenarios, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"summary": summary, "scenarios": scenarios}, indent=1))
    return 0 if summary["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
