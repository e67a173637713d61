"""Multi-objective NAS on recorded tables: ours against Optuna's and BoTorch's samplers (hypervolume regret).

    python benchmarks/bench_nas.py --workers 32 --deadline-s 540      # run (or resume) every job, then report
    python benchmarks/bench_nas.py --report-only                        # report from the recorded jobs
    python benchmarks/bench_nas.py --methods qlognehvi --checkpoint-dir .devcarry/nas_ckpt --job-time-limit-s 495
                                    # slow jobs in several runs: each pauses after 495 s and resumes next time

The recorded results were run on a 32-core machine in three runs of about 9 minutes (``--workers 32`` then
``--methods qlognehvi --workers 12`` with checkpoints); qLogNEHVI's H200 jobs, paused there at 64-79
evaluations after about 1000 s each, were resumed from their checkpoints to 100 on a 2-core machine
(``--methods qlognehvi --settings h200 --checkpoint-dir .devcarry/nas_ckpt --job-time-limit-s 1500
--workers 2``; 1450-2230 s per seed in all). ``--record-paused`` records paused jobs as they stand.

Jobs: ours' candidate configurations (:data:`CANDIDATES`) on the selection seeds 100-104 (``h200`` setting),
and every method -- each of ours' candidates included -- on the report seeds 0-9 of both settings. Each
finished job is appended to ``benchmarks/results/nas_jobs.jsonl``; a rerun skips recorded jobs. The report
takes the candidate with the lowest median regret at 50 evaluations on the selection seeds as ``ours`` and
shows its report-seed results (the other candidates' report-seed results are listed under
``ours_candidates``, not used to choose).

Settings (pool mode, :mod:`protran_tune.search.pool`): the table is the space and a true evaluation reveals
one row; a proposal outside the table goes to the nearest unevaluated row, the same rule for every method.

* ``h200``: ``protran-nasbench:h200`` -- GLUE (max) and the H200's latency, energy and peak power (min);
* ``cpu``: ``protran-nasbench:cpu`` -- GLUE (max) and the CPU's latency (min).

The reference point is fixed before any search on normalised objectives (``PoolProblem.describe()``
records it): GLUE's floor is the median GLUE of the table's BERT-Tiny-sized architectures (2 layers,
hidden 128), hardware caps are the table's worst values. Regret = the true front's hypervolume minus
the hypervolume of the rows evaluated so far, after n = 1..budget true evaluations; medians and IQR over
seeds. Methods are Optuna samplers over the same NAS-Bench-BERT parameters
(:mod:`protran_tune.search.methods`); jobs run in ``--workers`` processes with one thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SETTINGS = {
    "h200": ("protran-nasbench:h200", ("glue", "latency_s", "energy_j", "peak_power_w")),
    "cpu": ("protran-nasbench:cpu", ("glue", "latency_s")),
}
CHECKPOINTS = (25, 50, 100)
#: configurations of ours; the report takes the best on the selection seeds
CANDIDATES: dict[str, dict[str, Any]] = {
    "ehvi": {"acquisition": "ehvi", "accuracy": "gp-cost", "batch_size": 1},
    "qlognehvi": {"acquisition": "qlognehvi", "accuracy": "gp-cost", "batch_size": 1},
}
SELECTION_SEEDS = tuple(range(100, 105))
JOBS = RESULTS / "nas_jobs.jsonl"


def ours_kwargs(config: dict[str, Any], seed: int) -> dict[str, Any]:
    from protran_tune.surrogates import make_surrogate

    accuracy = {"gp-cost": lambda: make_surrogate("gp", random_state=seed, kernel="linear+matern", encoder="cost", warm_start=True),
                "rf-layers": lambda: make_surrogate("rf", random_state=seed, encoder="layers")}[config["accuracy"]]()
    hardware = make_surrogate("gp", random_state=seed, kernel="linear+matern", encoder="cost", warm_start=True)
    return {"acquisition": config["acquisition"], "batch_size": config["batch_size"],
            "surrogates": {"accuracy": accuracy, "hardware": hardware}}


Job = tuple[str, str, int, int, str, "float | None", "str | None"]


def run_job(job: Job) -> dict[str, Any]:
    """One (setting, method, seed): the regret after each true evaluation (fewer if the time limit struck).
    With a checkpoint (an sqlite file) the time limit pauses the job instead: it resumes on the next run."""
    setting, method, seed, budget, config, limit, checkpoint = job
    import warnings

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.filterwarnings("ignore")
    from protran_tune.datasets import load_dataset
    from protran_tune.search.methods import make_sampler
    from protran_tune.search.pool import pool_problem, run_pool_search

    name, objectives = SETTINGS[setting]
    table = load_dataset(name)
    problem = pool_problem(table, objectives)
    extra = ours_kwargs(CANDIDATES[config], seed) if method == "ours" else {}
    sampler = make_sampler(method, seed=seed, space="nas-bench-bert", candidates=list(table.archs),
                           normaliser=problem.normaliser, **extra)
    try:
        run = run_pool_search(problem, sampler, budget, seed, method, time_limit_s=limit,
                              storage=f"sqlite:///{checkpoint}" if checkpoint else None,
                              study_name=f"{setting}-{method}-{config}-{seed}" if checkpoint else None)
    except Exception as exc:  # noqa: BLE001 - a failing method is reported, not hidden
        return {"setting": setting, "method": method, "config": config, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
    return {"setting": setting, "method": method, "config": config, "seed": seed, "seconds": run.seconds,
            "regret": [problem.true_hv - h for h in run.hv], "rows": [table.ids[r] for r in run.rows], "snapped": run.snapped,
            "true_hypervolume": problem.true_hv, "truncated": len(run.rows) < budget,
            "time_limit_s": None if checkpoint else limit, "paused": bool(checkpoint) and len(run.rows) < budget}


def run_all(jobs: list[Job], workers: int, deadline: float, sink: Path, threads: int = 1,
            record_paused: bool = False) -> int:
    """Run ``jobs`` in ``workers`` processes until done or ``deadline`` (time.time()); append each finished
    result to ``sink`` (a paused one is not recorded: it resumes from its checkpoint; ``record_paused``
    records it as truncated). Returns the number recorded. Each job uses ``threads`` threads."""
    import multiprocessing as mp

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    done = 0
    with mp.get_context("spawn").Pool(max(1, workers), maxtasksperchild=1) as pool, sink.open("a") as fh:
        pending = [pool.apply_async(run_job, (j,)) for j in jobs]
        while pending and time.time() < deadline:
            ready = [p for p in pending if p.ready()]
            for p in ready:
                r = p.get()
                _say(r)
                if r.get("paused") and not record_paused:
                    continue
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                done += 1
            pending = [p for p in pending if not p.ready()]
            time.sleep(0.5)
        if pending:
            print(f"deadline: {len(pending)} job(s) unfinished", file=sys.stderr, flush=True)
            pool.terminate()
    return done


def _say(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"{r['setting']} {r['method']} seed {r['seed']}: ERROR {r['error']}", file=sys.stderr, flush=True)
        return
    at = {n: r["regret"][min(n, len(r["regret"])) - 1] for n in CHECKPOINTS if n <= len(r["regret"])}
    paused = f", paused at {len(r['regret'])} evaluations" if r.get("paused") else ""
    print(f"{r['setting']} {r['method']:>9} seed {r['seed']}: regret {at} ({r['seconds']:.0f} s{paused})", file=sys.stderr, flush=True)


def summarise(runs: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in runs:
        if "error" in r:
            out.setdefault(r["method"], {"errors": []}).setdefault("errors", []).append({"seed": r["seed"], "error": r["error"]})
    methods = sorted({r["method"] for r in runs if "error" not in r})
    for m in methods:
        rs = [r for r in runs if r["method"] == m and "error" not in r]
        n = min(min(len(r["regret"]) for r in rs), budget)  # time-limited runs: the evaluations all reached
        R = np.array([r["regret"][:n] for r in rs])
        entry = out.setdefault(m, {})
        entry["hv_regret"] = {}
        for n in (*CHECKPOINTS, budget):
            if n <= R.shape[1]:
                q25, med, q75 = np.percentile(R[:, n - 1], [25, 50, 75])
                entry["hv_regret"][str(n)] = {"median": float(med), "q25": float(q25), "q75": float(q75)}
        entry["curve_median"] = np.median(R, axis=0).tolist()
        entry["curve_q25"] = np.percentile(R, 25, axis=0).tolist()
        entry["curve_q75"] = np.percentile(R, 75, axis=0).tolist()
        entry["seeds"] = [r["seed"] for r in rs]
        entry["evaluations"] = [len(r["regret"]) for r in rs]
        entry["seconds"] = [round(r["seconds"]) for r in rs]
        entry["seconds_median"] = float(np.median([r["seconds"] for r in rs]))
        entry["snapped_median"] = float(np.median([r["snapped"] for r in rs]))
    return out


def targets(methods: dict[str, Any]) -> dict[str, Any]:
    reg = lambda m, n: methods[m]["hv_regret"][str(n)]  # noqa: E731 - every seed of m reached n evaluations
    have = set(methods)
    out: dict[str, Any] = {}
    if {"ours", "random"} <= have:
        out["ours_50_le_half_random"] = {"ours": reg("ours", 50)["median"], "random": reg("random", 50)["median"],
                                         "ratio": reg("ours", 50)["median"] / reg("random", 50)["median"]}
        out["ours_50_le_half_random"]["met"] = out["ours_50_le_half_random"]["ratio"] <= 0.5
    if {"ours", "tpe", "nsga2"} <= have:
        best = min(reg("tpe", 100)["median"], reg("nsga2", 100)["median"])
        out["ours_100_le_best_tpe_nsga2"] = {"ours": reg("ours", 100)["median"], "best_of_tpe_nsga2": best,
                                             "met": reg("ours", 100)["median"] <= best}
    for m in ("gp", "qlognehvi"):
        if {"ours", m} <= have:
            out[f"ours_no_worse_than_{m}"] = {str(n): _no_worse(methods, m, n) for n in (50, 100)}
    return out


def _no_worse(methods: dict[str, Any], m: str, n: int) -> dict[str, Any]:
    """Ours' median regret at ``n`` against ``m``'s 75th percentile; unjudged where ``m`` never reached ``n``."""
    ours, theirs = methods["ours"]["hv_regret"].get(str(n)), methods[m]["hv_regret"].get(str(n))
    if ours is None or theirs is None:
        return {"ours": ours and ours["median"], m: None, "met": None,
                "note": f"{m} did not reach {n} evaluations in every seed (evaluations per seed: "
                        f"{methods[m].get('evaluations')}, seconds per seed: {methods[m].get('seconds')})",
                **_at_common(methods, m)}
    return {"ours": ours["median"], m: theirs["median"], f"{m}_q75": theirs["q75"], "met": ours["median"] <= theirs["q75"]}


def _at_common(methods: dict[str, Any], m: str) -> dict[str, Any]:
    """Median and IQR of ours and ``m`` at the most evaluations that every seed of both reached."""
    k = min(len(methods["ours"]["curve_median"]), len(methods[m]["curve_median"]))
    pick = lambda name: {q: methods[name][f"curve_{q}"][k - 1] for q in ("median", "q25", "q75")}  # noqa: E731
    return {"at_evaluations": k, f"ours_at_{k}": pick("ours"), f"{m}_at_{k}": pick(m)}


def plot(setting: str, summary: dict[str, Any], path: Path, title: str) -> Path:
    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for m, e in summary.items():
        if "curve_median" not in e:
            continue
        n = np.arange(1, len(e["curve_median"]) + 1)
        ax.plot(n, e["curve_median"], lw=2.2 if m == "ours" else 1.3, label=m)
        ax.fill_between(n, e["curve_q25"], e["curve_q75"], alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("true evaluations")
    ax.set_ylabel("hypervolume regret (normalised box)")
    ax.set_title(title, fontsize=9)
    for c in CHECKPOINTS:
        ax.axvline(c, color="grey", lw=0.6, ls=":")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def all_jobs(seeds: int, budget: int, methods: list[str], settings: list[str], report_configs: list[str],
             limit: float | None, checkpoints: tuple[Path, set[str], float] | None = None) -> list[Job]:
    """Selection runs of every candidate of ours (time-limited), then every method on the report seeds;
    ``checkpoints`` = (folder, methods, seconds): those methods' report jobs pause after that long and resume."""
    jobs: list[Job] = [("h200", "ours", s, budget, c, limit, None) for c in CANDIDATES for s in SELECTION_SEEDS]
    for st in settings:
        for m in methods:
            for c in (report_configs if m == "ours" else ["-"]):
                for s in range(seeds):
                    if checkpoints and m in checkpoints[1]:
                        jobs.append((st, m, s, budget, c, checkpoints[2], str(checkpoints[0] / f"{st}-{m}-{c}-{s}.db")))
                    else:
                        jobs.append((st, m, s, budget, c, None, None))
    cost = {"ours": 0, "qlognehvi": 0, "gp": 1}
    return sorted(jobs, key=lambda j: (cost.get(j[1], 2), j[0] != "h200"))  # slowest first


def recorded(path: Path) -> list[dict[str, Any]]:
    """The recorded jobs, one per (setting, method, config, seed): of a job recorded paused and later
    resumed, the record with the most evaluations."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["setting"], r["method"], r["config"], r["seed"])
        if key not in best or len(r.get("regret", [])) > len(best[key].get("regret", [])):
            best[key] = r
    return list(best.values())


def choose(runs: list[dict[str, Any]], budget: int) -> tuple[str, dict[str, Any]]:
    """The candidate with the lowest median regret at 50 on the selection seeds, and the selection table
    (a candidate whose selection runs did not complete the budget within the time limit cannot be chosen)."""
    at = min(50, budget)
    sel: dict[str, Any] = {}
    for c in CANDIDATES:
        rs = [dict(r, method=c) for r in runs if r["setting"] == "h200" and r["method"] == "ours" and r["config"] == c
              and r["seed"] in SELECTION_SEEDS and "error" not in r]
        reached = [r for r in rs if len(r["regret"]) >= at]
        sel[c] = {"runs": len(rs), "reached": len(reached), "evaluations": [len(r["regret"]) for r in rs],
                  "seconds": [round(r["seconds"]) for r in rs],
                  "regret_at": summarise(reached, at)[c]["hv_regret"] if reached else None}
    ok = [c for c in sel if sel[c]["runs"] == len(SELECTION_SEEDS) and min(sel[c]["evaluations"]) >= budget]
    if not ok:
        raise SystemExit("no candidate of ours completed its selection runs: run the jobs first")
    best = min(ok, key=lambda c: sel[c]["regret_at"][str(at)]["median"])
    return best, sel


def report(runs: list[dict[str, Any]], seeds: int, budget: int, settings: list[str], out: Path) -> dict[str, Any]:
    from protran_tune.datasets import load_dataset
    from protran_tune.search.methods import method_settings
    from protran_tune.search.pool import pool_problem

    chosen, selection = choose(runs, budget)
    result: dict[str, Any] = {}
    for st in settings:
        name, objectives = SETTINGS[st]
        problem = pool_problem(load_dataset(name), objectives)
        mine = [r for r in runs if r["setting"] == st and r["seed"] < seeds]
        main_runs = [r for r in mine if r["method"] != "ours" or r["config"] == chosen]
        summary = summarise(main_runs, budget)
        candidates = {c: summarise([dict(r, method=c) for r in mine if r["method"] == "ours" and r["config"] == c], budget).get(c, {}).get("hv_regret")
                      for c in CANDIDATES}
        block = {"reference_point": problem.normaliser.to_dict(), "objectives": list(objectives), "methods": summary,
                 "table": name, "problem": problem.describe(), "targets": targets(summary), "ours_candidates": candidates,
                 "figure": str(plot(st, summary, RESULTS / f"nas_benchmark_{st}.png",
                                    f"{name}: {', '.join(objectives)} ({seeds} seeds, median and IQR)").relative_to(REPO))}
        if st == settings[0]:
            result.update(block)
            result["setting"] = st
        else:
            result.setdefault("settings", {})[st] = block
    result.update({
        "command": "python benchmarks/bench_nas.py --workers 32 --deadline-s 540 (on 32 cores; then --report-only)",
        "seeds": list(range(seeds)), "budget": budget, "method_settings": method_settings(),
        "ours": {"configuration": chosen, **CANDIDATES[chosen], "selection_seeds": list(SELECTION_SEEDS),
                 "selection_regret": selection,
                 "rule": "lowest median regret at 50 evaluations on the selection seeds (h200), among the candidates whose "
                         "selection runs complete the budget within the time limit"},
    })
    out.write_text(json.dumps(result, indent=1))
    return result


def main() -> int:
    from protran_tune.search.methods import METHODS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--threads-per-job", type=int, default=1)
    p.add_argument("--deadline-s", type=float, default=1e9, help="stop starting and collecting jobs after this long")
    p.add_argument("--jobs", default=str(JOBS), help="recorded jobs (JSON lines; appended, resumed)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--report-configs", default="ehvi", help="candidates of ours run on the report seeds (default ehvi)")
    p.add_argument("--selection-time-limit-s", type=float, default=480.0,
                   help="time limit of each selection run (a candidate too slow for it cannot be chosen)")
    p.add_argument("--checkpoint-dir", help="folder of sqlite checkpoints: the --checkpoint-methods' jobs pause after "
                                            "--job-time-limit-s and resume from here on the next run")
    p.add_argument("--checkpoint-methods", default="qlognehvi")
    p.add_argument("--job-time-limit-s", type=float, default=480.0)
    p.add_argument("--record-paused", action="store_true",
                   help="record paused jobs as truncated (their evaluations so far) instead of leaving them to resume")
    p.add_argument("--out", default=str(RESULTS / "nas_benchmark.json"))
    args = p.parse_args()
    t0 = time.time()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    sink = Path(args.jobs)
    if not args.report_only:
        have = {(r["setting"], r["method"], r["seed"], r["config"]) for r in recorded(sink)
                if "error" not in r and not r.get("paused")}
        checkpoints = None
        if args.checkpoint_dir:
            Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            checkpoints = (Path(args.checkpoint_dir), set(args.checkpoint_methods.split(",")), args.job_time_limit_s)
        jobs = all_jobs(args.seeds, args.budget, methods, settings, args.report_configs.split(","),
                        args.selection_time_limit_s, checkpoints)
        todo = [j for j in jobs if (j[0], j[1], j[2], j[4]) not in have]
        print(f"{len(todo)} job(s) to run, {len(have)} recorded", file=sys.stderr, flush=True)
        run_all(todo, args.workers, t0 + args.deadline_s, sink, args.threads_per_job, args.record_paused)
    result = report(recorded(sink), args.seeds, args.budget, settings, Path(args.out))
    print(json.dumps({"ours": result["ours"]["configuration"], "targets": result["targets"],
                      **{st: b["targets"] for st, b in result.get("settings", {}).items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
