"""Active learning vs random querying, paired over many seeds, with an A/A control.

For every recorded file and seed (the honest split and seed set of ``bench_replay.py``), three runs up to
``--budget`` samples with the same surrogate: ours (active learning by ``--acquisition``), random querying,
and random querying again with another query stream (A/A control: same split, same seed set). Per seed
the ratio of test MSEs (mean over latency, energy, peak power) is paired; reported per device and
budget: the geometric mean of the per-seed ratios with a 95% bootstrap interval over seeds, and the
share of seeds where ours is <= random. The A/A ratios show how far two identical strategies drift
apart by chance alone on these files.

    python benchmarks/bench_al_vs_random.py --seeds 20 --surrogate gp \
        --surrogate-params '{"kernel": "linear+matern", "encoder": "cost"}' --acquisition variance-reduction
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replay import (  # noqa: E402
    AA_QUERY_SEED_OFFSET, DEFAULT_DATA, MEASURES, RESULTS, point_at, recorded_files_or_report, reproduce_command, run_task,
)

ARMS = ("ours", "random", "random-again")


def paired(results: list[dict[str, Any]], budgets: list[int], n_boot: int = 2000) -> dict[str, Any]:
    """Per device and budget: geometric mean of per-seed MSE ratios (ours/random, A/A) with a 95% CI."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for dev in sorted({r["device"] for r in results}):
        runs = {(r["arm"], r["seed"]): r for r in results if r["device"] == dev}
        seeds = sorted({s for _, s in runs})
        pool = next(iter(runs.values()))["dataset"]["n_pool"]
        out[dev] = {"n_pool": pool, "budgets": {}}
        for b in sorted({min(b, pool) for b in budgets}):
            def mse(arm: str, s: int) -> float:
                return float(np.mean([point_at(runs[(arm, s)], b)["test_mse"][m] for m in MEASURES]))

            entry = {}
            for name, arm in (("ours_over_random", "ours"), ("aa_random_again_over_random", "random-again")):
                logr = np.log([mse(arm, s) / mse("random", s) for s in seeds])
                boot = rng.choice(logr, (n_boot, len(logr))).mean(1)
                entry[name] = {
                    "geometric_mean": float(np.exp(logr.mean())),
                    "ci95": [float(np.exp(np.quantile(boot, 0.025))), float(np.exp(np.quantile(boot, 0.975)))],
                    "share_of_seeds_le_1": float(np.mean(logr <= 1e-12)),
                    "per_seed": np.exp(logr).round(4).tolist(),
                }
            out[dev]["budgets"][str(b)] = entry
    return out


def plot(summary: dict[str, Any], budgets: list[int], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    devs = list(summary)
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), sharey=True, squeeze=False)
    for ax, b in zip(axes[0], budgets):
        for k, (name, colour, dx) in enumerate((("ours_over_random", "tab:blue", -0.15),
                                                 ("aa_random_again_over_random", "tab:grey", 0.15))):
            for i, dev in enumerate(devs):
                e = summary[dev]["budgets"][str(min(b, summary[dev]["n_pool"]))][name]
                ax.scatter(np.full(len(e["per_seed"]), i + dx), e["per_seed"], s=9, color=colour, alpha=0.35)
                lo, hi = e["ci95"]
                ax.errorbar(i + dx, e["geometric_mean"], yerr=[[e["geometric_mean"] - lo], [hi - e["geometric_mean"]]],
                            fmt="o", color=colour, capsize=3, label=(("ours / random", "A/A: random again / random")[k] if i == 0 else None))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        ax.tick_params(axis="y", which="both", labelsize=7)
        ax.set_xticks(range(len(devs)), [d.replace("_", "\n") for d in devs], fontsize=7)
        ax.set_title(f"budget {b}")
        ax.set_ylabel("test MSE ratio (per seed; geometric mean, 95% CI)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budgets", type=int, nargs="+", default=[32, 64])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--surrogate", "--regressor", dest="regressor", default="bdt",
                   help="surrogate of both arms (default bdt; --regressor is an alias)")
    p.add_argument("--surrogate-params", "--regressor-params", dest="regressor_params", type=json.loads, default={},
                   metavar="JSON", help="its constructor parameters as JSON (--regressor-params is an alias)")
    p.add_argument("--acquisition", "--strategy", dest="strategy", choices=("uncertainty", "variance-reduction"),
                   default="uncertainty", help="query rule of ours (--strategy is an alias)")
    p.add_argument("--out-prefix", default=str(RESULTS / "al_vs_random"))
    args = p.parse_args(argv)
    from joblib import Parallel, delayed

    from protran_tune.datasets import load_recorded

    files = recorded_files_or_report(args.data)
    if not files:
        return 2
    budget = max(args.budgets)
    tasks = []
    for f in files:
        ds = load_recorded(f)
        for arm in ARMS:
            for s in range(args.seeds):
                tasks.append({
                    "path": str(f), "device": ds.device, "arm": arm, "seed": s, "regressor": args.regressor,
                    "strategy": args.strategy if arm == "ours" else "random", "candidates": None,
                    "params": args.regressor_params, "budget": budget, "batch_size": args.batch_size,
                    "query_seed": s + AA_QUERY_SEED_OFFSET if arm == "random-again" else None,
                })
    print(f"{len(tasks)} replay runs on {len(files)} datasets, {args.seeds} seeds", flush=True)
    t0 = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(run_task)(t) for t in tasks)
    summary = paired(results, args.budgets)
    command = reproduce_command("bench_al_vs_random.py", argv)
    prefix = Path(args.out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fig = plot(summary, args.budgets, Path(f"{prefix}.png"),
               f"{args.regressor} {json.dumps(args.regressor_params)}, {args.strategy} vs random, {args.seeds} seeds (paired)")
    out = {
        "command": command, "wall_time_s": time.perf_counter() - t0, "seeds": args.seeds, "budgets": args.budgets,
        "batch_size": args.batch_size, "regressor": args.regressor, "params": args.regressor_params,
        "strategy": args.strategy, "summary": summary, "figure": str(fig),
    }
    Path(f"{prefix}.json").write_text(json.dumps(out, indent=1))
    lines = [f"# Active learning vs random, paired over {args.seeds} seeds\n", f"Command: `{command}`\n",
             "Geometric mean of per-seed test MSE ratios (mean over the three measures), 95% bootstrap CI, "
             "share of seeds <= 1:\n", "| device | budget | ours / random | A/A: random again / random |", "|---|---|---|---|"]
    for dev, d in summary.items():
        for b, e in d["budgets"].items():
            cells = [f"{e[k]['geometric_mean']:.2f} [{e[k]['ci95'][0]:.2f}, {e[k]['ci95'][1]:.2f}], "
                     f"{e[k]['share_of_seeds_le_1']:.0%}" for k in ("ours_over_random", "aa_random_again_over_random")]
            lines.append(f"| {dev} | {b} | {cells[0]} | {cells[1]} |")
    Path(f"{prefix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
