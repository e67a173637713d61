"""Accuracy predictors on NAS-Bench-BERT: held-out Kendall tau of GLUE (and every task), active vs random.

    python benchmarks/bench_accuracy.py --select            # choose the configuration on selection seeds 100-109
    python benchmarks/bench_accuracy.py                     # report on fresh seeds 0-19 (writes accuracy.json/.md/.png)

Protocol: for each seed, the one held-out scorer's random 20% test split
(:func:`protran_tune.objectives.scoring.split_test`) is drawn first; ``n`` training rows (25, 50, 100) are
then drawn at random from the other rows; each configuration is fitted on them and scored on the test
rows (Kendall tau overall and within a fixed depth, normalised MSE). Medians and IQR over seeds.
Configurations are compared on the selection seeds only; the report uses other seeds. Active learning
(``replay`` on ``glue``) against random querying: the number of revealed records at which the held-out
tau first reaches 0.75, per seed, same split and seed set for both. Zero-cost proxies (parameters,
FLOPs, depth): Kendall tau against GLUE over the whole table, overall and within depth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SIZES = (25, 50, 100)


def configurations() -> dict[str, Callable[[int], Any]]:
    from protran_tune.surrogates import make_surrogate

    return {
        "rf-global (reference)": lambda s: _Forest(s),
        "gp-rbf-global": lambda s: make_surrogate("gp", random_state=s, encoder="global"),
        "gp-linmat-cost": lambda s: make_surrogate("gp", random_state=s, kernel="linear+matern", encoder="cost"),
        "gp-linmat-accuracy": lambda s: make_surrogate("gp", random_state=s, kernel="linear+matern", encoder="accuracy"),
        "gp-rbf-accuracy": lambda s: make_surrogate("gp", random_state=s, encoder="accuracy"),
        "bdt-accuracy": lambda s: make_surrogate("bdt", random_state=s, encoder="accuracy"),
        "rf-layers": lambda s: make_surrogate("rf", random_state=s, encoder="layers"),
        "gp-rbf-layers": lambda s: make_surrogate("gp", random_state=s, encoder="layers"),
        "ensemble rf-layers + gp-linmat-cost": lambda s: make_surrogate(
            "ensemble", random_state=s, members=[("rf", {"encoder": "layers"}), ("gp", {"kernel": "linear+matern", "encoder": "cost"})]),
    }


#: the product surrogate (name, parameters) behind each configuration, for the active-learning comparison
AL_SURROGATES: dict[str, tuple[str, dict[str, Any]]] = {
    "rf-layers": ("rf", {"encoder": "layers"}),
    "gp-linmat-cost": ("gp", {"kernel": "linear+matern", "encoder": "cost"}),
    "gp-linmat-accuracy": ("gp", {"kernel": "linear+matern", "encoder": "accuracy"}),
    "bdt-accuracy": ("bdt", {"encoder": "accuracy"}),
}


class _Forest:
    """Reference: scikit-learn's random forest on the global features (no std needed here)."""

    def __init__(self, seed: int) -> None:
        from sklearn.ensemble import RandomForestRegressor

        from protran_tune.space import FeatureEncoder

        self.fe = FeatureEncoder("flexibert2")
        self.model = RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=1)

    def _x(self, E: np.ndarray) -> np.ndarray:
        return self.fe.transform(E)[:, : self.fe.n_global_features_]

    def fit(self, E: np.ndarray, Y: np.ndarray) -> "_Forest":
        self.model.fit(self._x(E), Y.ravel() if Y.shape[1] == 1 else Y)
        return self

    def predict(self, E: np.ndarray, return_std: bool = False) -> Any:
        mu = self.model.predict(self._x(E)).reshape(len(E), -1)
        return (mu, np.full_like(mu, np.nan)) if return_std else mu


def score_config(make: Callable[[int], Any], table: Any, E: np.ndarray, target: str, seed: int, n: int) -> dict[str, Any]:
    from protran_tune.objectives.scoring import score_heldout, split_test

    y = table.values([target])
    test = split_test(len(table), 0.2, seed)
    rest = np.setdiff1d(np.arange(len(table)), test)
    train = np.sort(np.random.default_rng([seed, 5, n]).choice(rest, n, replace=False))
    mu_y, sd_y = y[train].mean(0), y[train].std(0)
    model = make(seed).fit(E[train], (y[train] - mu_y) / sd_y)
    mean, std = model.predict(E[test], return_std=True)
    score = score_heldout(y[test], np.asarray(mean) * sd_y + mu_y, np.asarray(std) * sd_y, targets=[target],
                          scale=np.abs(y).max(0), depth=[table.archs[i].n_layers for i in test], n_train=n)
    return {"kendall_tau": score.kendall_tau[target], "kendall_tau_within_depth": score.kendall_tau_within_depth[target],
            "test_mse": score.test_mse[target], "coverage_1std": score.coverage_1std[target]}


def summarise(values: list[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"median": None, "q25": None, "q75": None, "n": 0}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "n": int(len(v))}


def compare(table: Any, E: np.ndarray, configs: dict[str, Callable[[int], Any]], seeds: list[int], target: str = "glue") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, make in configs.items():
        t0 = time.perf_counter()
        per = {n: [score_config(make, table, E, target, s, n) for s in seeds] for n in SIZES}
        out[name] = {str(n): {k: summarise([r[k] for r in rs]) for k in ("kendall_tau", "kendall_tau_within_depth", "test_mse")}
                     for n, rs in per.items()}
        out[name]["seconds"] = time.perf_counter() - t0
        at50 = out[name]["50"]
        print(f"{name:>24}: tau@50 {at50['kendall_tau']['median']:.3f} within-depth {at50['kendall_tau_within_depth']['median']:.3f}"
              f" ({out[name]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return out


def active_vs_random(table: Any, seeds: list[int], surrogate: str, params: dict[str, Any], strategy: str,
                     budget: int = 120, threshold: float = 0.75) -> dict[str, Any]:
    from protran_tune.workflows.replay import ReplayConfig, run_replay

    out: dict[str, Any] = {}
    for arm in (strategy, "random"):
        reached = []
        for s in seeds:
            cfg = ReplayConfig(regressor=surrogate, regressor_params=params, strategy=arm, targets=("glue",),
                               seed_samples=10, seed_mode="lhs", budget=budget, seed=s, batch_size=2)
            r = run_replay(table, cfg)
            hit = [p["n_samples"] for p in r["curve"] if (p["kendall_tau"]["glue"] or -1) >= threshold]
            reached.append(hit[0] if hit else None)
            print(f"  {arm} seed {s}: tau {threshold} at {reached[-1]}", file=sys.stderr, flush=True)
        out[arm] = {"samples_to_tau": reached, "median": summarise([float(x) if x is not None else float(budget + 1) for x in reached]),
                    "reached": sum(x is not None for x in reached)}
    return out


def zero_cost(table: Any) -> dict[str, Any]:
    from protran_tune.objectives.providers import ZeroCost
    from protran_tune.objectives.scoring import kendall_tau, kendall_tau_within_groups

    glue = table.values(["glue"])[:, 0]
    depth = np.array([a.n_layers for a in table.archs])
    vals = ZeroCost(("params", "flops", "depth")).evaluate(table.archs)
    out = {}
    for j, name in enumerate(vals.targets):
        proxy = -vals.mean[:, j]  # fewer is cheaper; bigger models score higher: tau of size vs GLUE
        out[name] = {"kendall_tau_vs_glue": -kendall_tau(proxy, glue),
                     "kendall_tau_within_depth": None if name == "depth" else -kendall_tau_within_groups(proxy, glue, depth)}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--select", action="store_true", help="compare configurations on the selection seeds 100-109")
    p.add_argument("--seeds", type=int, default=20, help="report seeds 0..N-1 (default 20)")
    p.add_argument("--config", default="rf-layers", help="the configuration to report (chosen by --select)")
    p.add_argument("--al-seeds", type=int, default=10)
    p.add_argument("--out-prefix", default=str(RESULTS / "accuracy"))
    args = p.parse_args()
    from protran_tune.datasets import load_dataset
    from protran_tune.objectives.targets import GLUE_TASKS

    table = load_dataset("nas-bench-bert")
    E = table.embeddings()
    configs = configurations()
    if args.select:
        sel = compare(table, E, configs, list(range(100, 110)))
        best = max(sel, key=lambda k: sel[k]["50"]["kendall_tau"]["median"])
        print(json.dumps({"selection_seeds": [100, 109], "best_at_50": best}, indent=1))
        Path(args.out_prefix + "_selection.json").write_text(json.dumps({"seeds": list(range(100, 110)), "results": sel, "best": best}, indent=1))
        return 0
    seeds = list(range(args.seeds))
    report = compare(table, E, configs, seeds)
    chosen = configs[args.config]
    tasks = {t: compare(table, E, {args.config: chosen}, seeds, target=t)[args.config] for t in GLUE_TASKS}
    al = active_vs_random(table, list(range(args.al_seeds)), *AL_SURROGATES[args.config], "uncertainty")
    result = {
        "command": "python benchmarks/bench_accuracy.py" + (f" --seeds {args.seeds}" if args.seeds != 20 else ""),
        "selection": "configurations compared with --select on seeds 100-109 (benchmarks/results/accuracy_selection.json); "
                     f"reported here on fresh seeds 0-{args.seeds - 1}",
        "chosen": args.config, "active_learning_surrogate": AL_SURROGATES[args.config], "protocol": __doc__.split("\n\n")[2], "glue": report, "tasks": tasks,
        "active_vs_random_tau_0.75": al, "zero_cost": zero_cost(table), "n_records": len(table),
    }
    Path(args.out_prefix + ".json").write_text(json.dumps(result, indent=1))
    write_markdown(result, Path(args.out_prefix + ".md"))
    plot(result, Path(args.out_prefix + ".png"))
    print(Path(args.out_prefix + ".md").read_text())
    return 0


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = [f"# Accuracy predictors on NAS-Bench-BERT ({result['n_records']} architectures)", "",
             f"`{result['command']}`. {result['selection']}.", "",
             "| configuration | tau@25 | tau@50 | tau@100 | within-depth tau@50 | within-depth tau@100 |", "|---|---|---|---|---|---|"]
    fmt = lambda s: f"{s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]" if s["median"] is not None else "—"  # noqa: E731
    for name, r in result["glue"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(r[n]["kendall_tau"]) for n in ("25", "50", "100")) + " | "
                     + " | ".join(fmt(r[n]["kendall_tau_within_depth"]) for n in ("50", "100")) + " |")
    lines += ["", f"Every GLUE task, {result['chosen']}:", "", "| task | tau@50 | tau@100 | within-depth tau@50 |", "|---|---|---|---|"]
    for task, r in result["tasks"].items():
        lines.append(f"| {task} | {fmt(r['50']['kendall_tau'])} | {fmt(r['100']['kendall_tau'])} | {fmt(r['50']['kendall_tau_within_depth'])} |")
    al = result["active_vs_random_tau_0.75"]
    lines += ["", "Records revealed until the held-out GLUE tau first reaches 0.75 (median [IQR]; unreached counts as budget + 1):", ""]
    for arm, r in al.items():
        lines.append(f"- {arm}: {fmt(r['median'])}, reached in {r['reached']} of {len(r['samples_to_tau'])} seeds")
    lines += ["", "Zero-cost proxies, Kendall tau against GLUE over the whole table:", ""]
    for name, r in result["zero_cost"].items():
        within = "" if r["kendall_tau_within_depth"] is None else f", within depth {r['kendall_tau_within_depth']:.3f}"
        lines.append(f"- {name}: {r['kendall_tau_vs_glue']:.3f}{within}")
    path.write_text("\n".join(lines) + "\n")


def plot(result: dict[str, Any], path: Path) -> None:
    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in result["glue"].items():
        for ax, key in zip(axes, ("kendall_tau", "kendall_tau_within_depth")):
            med = [r[str(n)][key]["median"] for n in SIZES]
            lo = [r[str(n)][key]["q25"] for n in SIZES]
            hi = [r[str(n)][key]["q75"] for n in SIZES]
            ax.errorbar(SIZES, med, yerr=[np.subtract(med, lo), np.subtract(hi, med)], marker="o", capsize=3, label=name)
    for ax, title, goal in zip(axes, ("held-out Kendall tau vs GLUE", "within fixed depth"), (0.78, 0.55)):
        ax.axhline(goal, color="grey", ls="--", lw=1, label=f"target {goal}")
        ax.set_xlabel("training records")
        ax.set_title(title)
        ax.set_xticks(SIZES)
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
