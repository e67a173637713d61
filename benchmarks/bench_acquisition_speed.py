"""Speed of one batch proposal of ParetoSampler (EHVI over a candidate pool) against Optuna's TPE, per trial.

Target: ours scores and ranks 10,000 candidate architectures in <= 60 s on 2 cores.

Setting: 4 objectives (``glue`` maximised; ``latency_s``, ``energy_j``, ``peak_power_w`` minimised) in the
FlexiBERT 2.0 space; an in-memory Optuna study holds ``--observed`` (64) COMPLETE trials whose
architectures and values are rows of the shipped table ``protran-nasbench:h200`` (rows drawn with
``--seed``), written as the parameters of ``DesignSpaceParameters("flexibert2")``.

Ours: a fresh ``ParetoSampler("flexibert2", n_candidates=N, batch_size=--batch-size, seed=--seed)`` with its
default surrogates answers ``study.ask()`` plus the objective's ``suggest`` once: that call runs the sampler's
whole batch proposal (read the observations, draw N random architectures plus mutations of the front,
embed them, fit the surrogates (a cold fit: a fresh sampler has no warm start), predict mean and std of the 4
objectives, score by EHVI, pick the batch). The stages are timed by wrapping the methods the sampler calls,
without changing them:

* ``candidates``: ``ParetoSampler.candidate_set`` (sampling, mutations, deduplication);
* ``embedding``: ``DesignSpace.embed`` (observed and candidate architectures);
* ``fit``: the surrogates' ``fit``; ``prediction``: their ``predict(..., return_std=True)``;
* ``ehvi``: ``ImprovementCells`` (box decomposition of the non-dominated region, once per pick),
  ``improvement`` (hypervolume improvement of every candidate's optimistic point: the screen) and
  ``expected_improvement`` (exact quadrature EHVI of the shortlist);
* ``ranking``: the rest of ``ParetoSampler._ehvi_batch`` (shortlist sort, greedy picks, transforms);
* ``other``: the rest of ask + suggest (storage reads, feasibility, proposal records).

Baseline, same run: ``optuna.samplers.TPESampler(seed)`` (``protran_tune.search.methods.make_sampler("tpe")``)
on a study with the same 64 trials; ``--tpe-trials`` times ``study.ask()`` plus the define-by-run
``suggest`` of a whole architecture, without telling (every ask learns from the same 64 trials); 10k
proposals that way take 10,000 x the mean time per trial. Every figure is the median of ``--repeats``
repeats (sizes interleaved within a repeat), in wall seconds; the process CPU seconds of the same calls are
recorded too (less sensitive to other jobs; with 2 threads they can exceed the wall time). numpy/BLAS and
torch use ``--threads`` threads. The machine may be shared with other jobs: the 1-minute load average at
start and end is recorded.

    python benchmarks/bench_acquisition_speed.py --sizes 1000 2000 5000 10000 --repeats 3 --observed 64 \
        --batch-size 4 --tpe-trials 30 --threads 2 --seed 0

Writes benchmarks/results/acquisition_speed.json and acquisition_speed.png (the command is in the JSON).
"""

from __future__ import annotations

import argparse
import os
import sys

_THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "2"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads its BLAS
    os.environ[_var] = _THREADS

import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Iterator, Sequence  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OBJECTIVES = ("glue", "latency_s", "energy_j", "peak_power_w")
TABLE = "protran-nasbench:h200"
TARGET_N, TARGET_S = 10_000, 60.0
STAGES = ("candidates", "embedding", "fit", "prediction", "box_decomposition", "hvi_screen", "ehvi_exact",
          "ranking", "other")


# --------------------------------------------------------------------------- the study
def observed_rows(n: int, seed: int) -> tuple[list[Any], np.ndarray, list[int]]:
    """``n`` rows of the shipped table: architectures, values ``(n, 4)`` in table units, row indices."""
    from protran_tune.datasets import load_dataset

    table = load_dataset(TABLE).having(OBJECTIVES)
    rows = sorted(np.random.default_rng(seed).choice(len(table), n, replace=False).tolist())
    return [table.archs[r] for r in rows], table.values(OBJECTIVES)[rows], rows


def make_study(sampler: Any, archs: Sequence[Any], Y: np.ndarray) -> Any:
    """An in-memory 4-objective study with the observed architectures as COMPLETE trials (flexibert2 parameters)."""
    import optuna

    from protran_tune.objectives.targets import get_target
    from protran_tune.space.parameterization import DesignSpaceParameters

    params = DesignSpaceParameters("flexibert2")
    study = optuna.create_study(directions=[get_target(o).direction for o in OBJECTIVES], sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is experimental
        study.set_metric_names(list(OBJECTIVES))
    for arch, y in zip(archs, Y):
        study.add_trial(optuna.trial.create_trial(params=params.to_params(arch), distributions=params.distributions(arch),
                                                  values=y.tolist()))
    return study


def ask_and_suggest(study: Any) -> Any:
    """One proposal as an objective sees it: ``study.ask()`` and the whole architecture's ``suggest``."""
    from protran_tune.space.parameterization import DesignSpaceParameters

    trial = study.ask()
    DesignSpaceParameters("flexibert2").suggest(trial)
    return trial


# --------------------------------------------------------------------------- timing the real code path
class Stopwatch:
    """Seconds spent inside wrapped methods, by stage (outermost call only, so recursion is not counted twice)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth: dict[str, int] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth[stage] = self._depth.get(stage, 0) + 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth[stage] -= 1
                if self._depth[stage] == 0:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0
        return timed


@contextlib.contextmanager
def patched(watch: Stopwatch, targets: Sequence[tuple[type, str, str]]) -> Iterator[Stopwatch]:
    """Wrap ``cls.name`` as ``stage`` for each ``(cls, name, stage)``; the originals are restored on exit."""
    saved = []
    for cls, name, stage in targets:
        saved.append((cls, name, cls.__dict__.get(name)))
        setattr(cls, name, watch.wrap(stage, getattr(cls, name)))
    try:
        yield watch
    finally:
        for cls, name, old in reversed(saved):
            if old is None:
                delattr(cls, name)
            else:
                setattr(cls, name, old)


def sampler_targets(sampler: Any) -> list[tuple[type, str, str]]:
    """The methods one batch proposal of ``sampler`` calls, by stage (module docstring)."""
    from protran_tune.samplers.pareto import ParetoSampler
    from protran_tune.search.hypervolume import ImprovementCells
    from protran_tune.space.design_space import DesignSpace

    out = [(ParetoSampler, "candidate_set", "candidates"), (DesignSpace, "embed", "embedding"),
           (ParetoSampler, "_ehvi_batch", "ehvi_batch"), (ImprovementCells, "__init__", "box_decomposition"),
           (ImprovementCells, "improvement", "hvi_screen"), (ImprovementCells, "expected_improvement", "ehvi_exact")]
    for cls in {type(s) for s in sampler._surrogates.values()}:
        out += [(cls, "fit", "fit"), (cls, "predict", "prediction")]
    return out


def time_ours(n_candidates: int, archs: Sequence[Any], Y: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """One batch proposal of a fresh ParetoSampler over ``n_candidates`` random candidates: seconds by stage."""
    from protran_tune.samplers._base import INFO_ATTR
    from protran_tune.samplers.pareto import ParetoSampler

    sampler = ParetoSampler("flexibert2", n_candidates=n_candidates, batch_size=args.batch_size, seed=args.seed)
    study = make_study(sampler, archs, Y)
    with patched(Stopwatch(), sampler_targets(sampler)) as watch:
        t0, c0 = time.perf_counter(), time.process_time()
        trial = ask_and_suggest(study)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = study._storage.get_trial_system_attrs(trial._trial_id).get(INFO_ATTR, {})
    if info.get("phase") != "active":
        raise RuntimeError(f"the sampler did not run its surrogate proposal: {info}")
    s = watch.seconds
    inner = s.get("box_decomposition", 0.0) + s.get("hvi_screen", 0.0) + s.get("ehvi_exact", 0.0)
    stages = {k: s.get(k, 0.0) for k in ("candidates", "embedding", "fit", "prediction", "box_decomposition",
                                          "hvi_screen", "ehvi_exact")}
    stages["ranking"] = s.get("ehvi_batch", 0.0) - inner
    stages["other"] = total - sum(stages.values())
    return {"total_s": total, "cpu_s": cpu, "stages_s": stages, "n_scored": int(info["n_candidates"])}


def time_tpe(archs: Sequence[Any], Y: np.ndarray, args: argparse.Namespace) -> tuple[list[float], float]:
    """Wall seconds of each of ``--tpe-trials`` TPE proposals (ask + suggest) from the same observed trials, and
    the process CPU seconds of all of them."""
    from protran_tune.search.methods import make_sampler

    study = make_study(make_sampler("tpe", seed=args.seed), archs, Y)
    out, c0 = [], time.process_time()
    for _ in range(args.tpe_trials):
        t0 = time.perf_counter()
        ask_and_suggest(study)
        out.append(time.perf_counter() - t0)
    return out, time.process_time() - c0


# --------------------------------------------------------------------------- the run
def machine_info(threads: int) -> dict[str, Any]:
    """CPU count, thread settings and library versions."""
    import botorch
    import optuna
    import torch
    from threadpoolctl import threadpool_info

    return {"cpu_count": os.cpu_count(), "cpus_available": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "blas_threads": sorted({p["num_threads"] for p in threadpool_info()}), "threads_requested": threads,
            "platform": platform.platform(), "processor": _cpu_model(), "python": platform.python_version(),
            "versions": {"numpy": np.__version__, "torch": torch.__version__, "botorch": botorch.__version__,
                         "optuna": optuna.__version__}}


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up, then ``--repeats`` rounds of ours at every size and of TPE; raw figures per repeat."""
    archs, Y, rows = observed_rows(args.observed, args.seed)
    t0 = time.perf_counter()
    time_ours(256, archs, Y, args)  # imports and lazy caches; not counted
    warmup = time.perf_counter() - t0
    ours: dict[int, list[dict[str, Any]]] = {n: [] for n in args.sizes}
    tpe: list[tuple[list[float], float]] = []
    for r in range(args.repeats):
        for n in args.sizes:
            ours[n].append(time_ours(n, archs, Y, args))
            print(f"  repeat {r + 1}: ours N={n}: {ours[n][-1]['total_s']:.2f} s", flush=True)
        tpe.append(time_tpe(archs, Y, args))
        print(f"  repeat {r + 1}: TPE {1e3 * np.mean(tpe[-1][0]):.1f} ms/trial", flush=True)
    return {"rows": rows, "warmup_s": warmup, "ours": ours, "tpe": tpe}


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Medians over repeats: ours per size and stage, TPE per trial and extrapolated, the ratio, the target."""
    med = statistics.median
    ours = {}
    for n, reps in raw["ours"].items():
        ours[str(n)] = {"n_candidates_requested": n, "n_scored": [r["n_scored"] for r in reps],
                        "total_s": round(med(r["total_s"] for r in reps), 3),
                        "total_s_repeats": [round(r["total_s"], 3) for r in reps],
                        "cpu_s": round(med(r["cpu_s"] for r in reps), 3),
                        "cpu_s_repeats": [round(r["cpu_s"], 3) for r in reps],
                        "stages_s": {k: round(med(r["stages_s"][k] for r in reps), 3) for k in STAGES},
                        "stages_s_repeats": [{k: round(v, 3) for k, v in r["stages_s"].items()} for r in reps]}
    per_trial = [float(np.mean(t)) for t, _ in raw["tpe"]]
    tpe_s = med(per_trial)
    tpe = {"ms_per_trial": round(1e3 * tpe_s, 2), "ms_per_trial_repeats": [round(1e3 * v, 2) for v in per_trial],
           "ms_per_trial_median_of_trials": [round(1e3 * float(np.median(t)), 2) for t, _ in raw["tpe"]],
           "cpu_ms_per_trial": round(1e3 * med(c / len(t) for t, c in raw["tpe"]), 2),
           "trials_per_repeat": args.tpe_trials, "extrapolated_s": {str(n): round(n * tpe_s, 1) for n in args.sizes}}
    out: dict[str, Any] = {"ours": ours, "tpe": tpe, "warmup_s_not_counted": round(raw["warmup_s"], 2)}
    if TARGET_N in raw["ours"]:
        ours_s = ours[str(TARGET_N)]["total_s"]
        out["ratio_tpe_over_ours_10k"] = round(TARGET_N * tpe_s / ours_s, 1)
        out["met"] = bool(ours_s <= TARGET_S)
    else:
        out["ratio_tpe_over_ours_10k"], out["met"] = None, None
    return out


def print_table(summary: dict[str, Any], load: dict[str, float]) -> None:
    """The figures of the result (``ours``, ``tpe``, ``met``, the ratio) as a readable table."""
    short = {"candidates": "cands", "embedding": "embed", "fit": "fit", "prediction": "predict",
             "box_decomposition": "boxes", "hvi_screen": "screen", "ehvi_exact": "ehvi", "ranking": "rank",
             "other": "other"}
    print(f"\nours: one batch proposal, seconds (median of repeats)  [load avg 1 min: {load['start']:.2f} -> {load['end']:.2f}]")
    print(f"{'N':>7}{'scored':>8}" + "".join(f"{short[k]:>9}" for k in STAGES) + f"{'total':>9}{'cpu':>8}{'TPE x N':>10}")
    for key, row in summary["ours"].items():
        print(f"{key:>7}{int(np.median(row['n_scored'])):>8}" + "".join(f"{row['stages_s'][k]:>9.2f}" for k in STAGES)
              + f"{row['total_s']:>9.2f}{row['cpu_s']:>8.2f}{summary['tpe']['extrapolated_s'][key]:>10.1f}")
    tpe = summary["tpe"]
    print(f"\nTPE (4 objectives, {tpe['trials_per_repeat']} asks per repeat): {tpe['ms_per_trial']:.1f} ms per trial "
          f"(repeats {tpe['ms_per_trial_repeats']}; CPU {tpe['cpu_ms_per_trial']:.1f} ms)")
    if summary["met"] is not None:
        s = summary["ours"][str(TARGET_N)]["total_s"]
        print(f"10k candidates: ours {s:.1f} s, TPE extrapolated {tpe['extrapolated_s'][str(TARGET_N)]:.0f} s, "
              f"ratio {summary['ratio_tpe_over_ours_10k']}x; target <= {TARGET_S:.0f} s: {'met' if summary['met'] else 'MISSED'}")


def plot(summary: dict[str, Any], path: Path, load: dict[str, float]) -> Path:
    """Seconds against candidates (ours, TPE extrapolated, the target) and ours' stages per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ns = [int(k) for k in summary["ours"]]
    rows = list(summary["ours"].values())
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    lo = [r["total_s"] - min(r["total_s_repeats"]) for r in rows]
    hi = [max(r["total_s_repeats"]) - r["total_s"] for r in rows]
    ax.errorbar(ns, [r["total_s"] for r in rows], yerr=[lo, hi], marker="o", capsize=3, label="ours: one batch proposal (EHVI)")
    ax.plot(ns, [summary["tpe"]["extrapolated_s"][str(n)] for n in ns], "s--",
            label=f"TPE: N x {summary['tpe']['ms_per_trial']:.0f} ms per ask (extrapolated)")
    ax.axhline(TARGET_S, color="grey", lw=0.8, ls=":")
    ax.plot([TARGET_N], [TARGET_S], "k*", ms=10, label=f"target: <= {TARGET_S:.0f} s at {TARGET_N:,}")
    ax.set(xscale="log", yscale="log", xlabel="candidate architectures N", ylabel="seconds (median of repeats)",
           title="Proposing from N candidates, 4 objectives, 2 threads")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    bottom = np.zeros(len(ns))
    for k in STAGES:
        v = np.array([r["stages_s"][k] for r in rows])
        bx.bar([str(n) for n in ns], v, bottom=bottom, label=k)
        bottom += v
    bx.set(xlabel="candidate architectures N", ylabel="seconds", title="ours: stages (median of repeats)")
    bx.legend(fontsize=7, ncol=2)
    fig.suptitle(f"shared machine, 1-min load average {load['start']:.2f} (start) / {load['end']:.2f} (end)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def setting(args: argparse.Namespace, rows: list[int]) -> dict[str, Any]:
    """What was measured: objectives, observed rows, the sampler's settings and the stage definitions."""
    from protran_tune.samplers.pareto import default_surrogates

    stages = __doc__.split("without changing them:")[1].split("\n\nBaseline")[0].strip()
    return {"objectives": list(OBJECTIVES), "space": "flexibert2", "observed_trials": args.observed, "observed_from": TABLE,
            "observed_rows": rows, "batch_size": args.batch_size, "seed": args.seed, "repeats": args.repeats,
            "ours": f"ParetoSampler('flexibert2', n_candidates=N, batch_size={args.batch_size}, seed={args.seed}), "
                    "acquisition 'ehvi' with its defaults; a fresh sampler per proposal (a cold surrogate fit)",
            "surrogates": {k: " ".join(repr(v).split()) for k, v in default_surrogates(args.seed).items()},
            "tpe": f"optuna.samplers.TPESampler(seed={args.seed}), Optuna's defaults", "stages": stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000], help="candidate pool sizes N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--observed", type=int, default=64, help="observed (COMPLETE) trials from the table")
    parser.add_argument("--batch-size", type=int, default=4, help="proposals per surrogate fit (the search's default)")
    parser.add_argument("--tpe-trials", type=int, default=30, help="TPE asks timed per repeat")
    parser.add_argument("--threads", type=int, default=2, help="numpy/BLAS and torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import optuna
    import torch

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    argv_used = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", "benchmarks/bench_acquisition_speed.py", *(shlex.quote(a) for a in argv_used)])
    load = {"start": os.getloadavg()[0]}
    started = time.time()
    raw = measure(args)
    load["end"] = os.getloadavg()[0]
    summary = summarise(raw, args)
    result = {
        "command": command, "target": {"n_candidates": TARGET_N, "seconds": TARGET_S, "cores": 2}, "met": summary.pop("met"),
        "setting": setting(args, raw["rows"]),
        "machine": machine_info(args.threads),
        "load_average_1min": {**load, "note": "the machine is shared with other jobs; timings include their contention"},
        "wall_s": round(time.time() - started, 1), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        **summary,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "acquisition_speed.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    png = plot(summary, args.out_dir / "acquisition_speed.png", load)
    print_table(result, load)
    print(f"saved {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
