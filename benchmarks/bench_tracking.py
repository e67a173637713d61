"""Benchmark: tracking overhead per trial (Optuna + MLflow) against the same measurements untracked.

The same ``N`` architectures are measured twice on the ``cpu`` platform (inference, batch 1 x 32 tokens,
the ``profile`` defaults), alternating per architecture so machine load hits both alike:

* **untracked** (the baseline): ``platform.measure(arch, workload)`` alone;
* **tracked**: what ``profile`` does around a measurement — ``study.ask()`` and the define-by-run
  parameters in a sqlite Optuna storage (architecture enqueued, so both runs measure the same one),
  ``StudyRecorder.complete`` (user attrs + ``tell``), ``MlflowTracker.log_trial`` (nested run, params,
  metrics, tags, architecture JSON, power-trace CSV and PNG) into a sqlite MLflow store.

Reported: median per-trial tracking time (Optuna part, MLflow part, total), and the median per-trial
wall time of the tracked and untracked trials with their difference and ratio. Target: median
tracking overhead <= 0.5 s per trial.

    python benchmarks/bench_tracking.py [--n 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 0.5


def measure_both(platform: Any, arch: Any, workload: Any, study: Any, recorder: Any, tracker: Any, parent: str,
                 space: str) -> dict[str, Any]:
    """One architecture measured untracked, then tracked as ``profile`` does; the seconds of each part."""
    from protran_tune.space.search_space import architecture_to_params, suggest_architecture

    t = time.perf_counter()
    platform.measure(arch, workload)
    untracked = time.perf_counter() - t

    t0 = time.perf_counter()
    study.enqueue_trial(architecture_to_params(arch))
    trial = study.ask()
    suggest_architecture(trial, space)
    t1 = time.perf_counter()
    m = platform.measure(arch, workload)
    t2 = time.perf_counter()
    frozen = recorder.complete(trial.number, arch, m, "cpu")
    t3 = time.perf_counter()
    tracker.log_trial(study="bench", parent_run_id=parent, trial_number=frozen.number, arch=arch, measurement=m,
                      platform="cpu", workload=workload.to_dict())
    t4 = time.perf_counter()
    return {"arch_hash": arch.content_hash(), "untracked_s": untracked, "tracked_s": t4 - t0,
            "measure_in_tracked_s": t2 - t1, "optuna_s": (t1 - t0) + (t3 - t2), "mlflow_s": t4 - t3,
            "tracking_s": (t1 - t0) + (t4 - t2)}


def plot(rows: list[dict[str, Any]], med: dict[str, float], path: Path) -> None:
    """Tracking time per trial (Optuna and MLflow stacked) and wall time per trial, tracked and not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    x = range(len(rows))
    a.bar(x, [r["optuna_s"] for r in rows], label="Optuna")
    a.bar(x, [r["mlflow_s"] for r in rows], bottom=[r["optuna_s"] for r in rows], label="MLflow")
    a.axhline(TARGET_S, c="r", lw=0.8, label=f"target {TARGET_S} s")
    a.set_xlabel("trial")
    a.set_ylabel("tracking time per trial (s)")
    a.set_title(f"median {med['tracking_s']:.3f} s per trial")
    a.legend(fontsize=7)
    b.boxplot([[r["untracked_s"] for r in rows], [r["tracked_s"] for r in rows]], tick_labels=["untracked", "tracked"])
    b.set_ylabel("wall time per trial (s)")
    b.set_title("same architectures, interleaved")
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="architectures (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import optuna

    from protran_tune.platforms import get_platform
    from protran_tune.runtime import open_storage
    from protran_tune.space import get_space
    from protran_tune.tracking.mlflow_tracking import MlflowTracker
    from protran_tune.tracking.optuna_tracking import StudyRecorder, create_study
    from protran_tune.workflows.profile import ProfileConfig, platform_options

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    cfg = ProfileConfig(study_name="bench", storage=f"sqlite:///{work}/protran.db", mlflow_uri=f"sqlite:///{work}/mlflow.db")
    workload = cfg.workload()
    platform = get_platform("cpu", **platform_options(cfg))
    archs = list(get_space(cfg.space).iter_samples(args.n, seed=args.seed))

    t_setup = time.perf_counter()
    storage = open_storage(cfg.storage)
    study = create_study(storage, "bench")
    recorder = StudyRecorder(study, storage)
    tracker = MlflowTracker(cfg.mlflow_uri, "bench")
    parent = tracker.study_run("bench")
    setup_s = time.perf_counter() - t_setup

    platform.measure(archs[0], workload)  # warm the process (imports, allocator) for both arms alike
    rows = []
    for i, arch in enumerate(archs):
        rows.append(r := measure_both(platform, arch, workload, study, recorder, tracker, parent, cfg.space))
        print(f"{i + 1}/{len(archs)} untracked {r['untracked_s']:.2f} s, tracked {r['tracked_s']:.2f} s "
              f"(optuna {r['optuna_s']:.3f} s, mlflow {r['mlflow_s']:.3f} s)", flush=True)
    platform.close()
    tracker.finish_study(parent)

    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.endswith("_s")}
    result = {
        "benchmark": "tracking_overhead",
        "reproduce": f"python benchmarks/bench_tracking.py --n {args.n} --seed {args.seed}",
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "platform": "cpu", "workload": workload.to_dict(), "n_trials": len(rows),
        "baseline": "the same architectures measured untracked (platform.measure alone), interleaved",
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "median_tracking_overhead_s": round(med["tracking_s"], 4),
        "median_wall_difference_s": round(med["tracked_s"] - med["untracked_s"], 4),
        "tracked_over_untracked_wall_ratio": round(med["tracked_s"] / med["untracked_s"], 3),
        "one_time_setup_s": round(setup_s, 3),
        "target_s": TARGET_S,
        "meets_target": med["tracking_s"] <= TARGET_S,
        "trials": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking_overhead.json").write_text(json.dumps(result, indent=1))

    plot(rows, med, RESULTS / "tracking_overhead.png")
    print(json.dumps({k: result[k] for k in ("median_s", "median_tracking_overhead_s", "median_wall_difference_s",
                                              "tracked_over_untracked_wall_ratio", "meets_target")}, indent=1))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
