"""Build the shipped NAS-Bench-BERT x hardware tables and report what measuring adds over counting.

    python benchmarks/bench_nasbench_tables.py

Inputs: the campaign's measurement records (``benchmarks/results/nasbench/cuda_shard*.jsonl``: NVIDIA H200,
batch 128 x 128 tokens, fp32, CUDA graphs; ``cpu_shard0.jsonl``: the 2-core development CPU, batch 1 x 128
tokens, energy modelled) written by ``benchmarks/bench_nasbench_campaign.py``, and the shipped
``nas-bench-bert`` table. Outputs:

* ``protran_tune/datasets/files/protran-nasbench/{h200,cpu}.jsonl``: the datasets ``protran-nasbench:h200``
  and ``protran-nasbench:cpu`` (generic table format; GLUE and task scores with source ``nas-bench-bert``,
  hardware targets per sequence with source ``protran-nasbench:<platform> (<measurement source>)``);
* ``benchmarks/results/nasbench_tables.json`` / ``.md``: Kendall tau of parameter count and FLOPs against
  the measured latency and energy (overall and within depth), the spread of each objective (relative
  IQR over architectures, and the measurement spread), repeatability of the H200 protocol (CV over 5
  repeats), and the Pareto fronts of GLUE against each hardware objective
  (``nasbench_front_<platform>.png``); and hardware surrogates learned from 64 measurements of each table
  (honest random 20% test split; configuration chosen by Kendall tau on seeds 100-104, reported on seeds 0-9).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
CAMPAIGN = RESULTS / "nasbench"
FILES = REPO / "protran_tune" / "datasets" / "files" / "protran-nasbench"
PLATFORMS = {
    "h200": {"records": "cuda_shard*.jsonl", "label": "NVIDIA H200, batch 128 x 128 tokens, fp32, CUDA graphs"},
    "cpu": {"records": "cpu_shard*.jsonl", "label": "2-core CPU (development machine), batch 1 x 128 tokens"},
}


def build(platform: str) -> Any:
    from protran_tune.datasets import load_dataset
    from protran_tune.datasets.measured import join_tables, table_from_records

    paths = sorted(CAMPAIGN.glob(PLATFORMS[platform]["records"]))
    name = f"protran-nasbench:{platform}"
    hw = table_from_records(paths, name=name, meta={"measured_by": "protran-tune measure", "platform_label": PLATFORMS[platform]["label"]})
    nb = load_dataset("nas-bench-bert")
    joined = join_tables(nb, hw, name=name, meta={
        "citation": "hardware: protran-tune (this package); accuracy: " + nb.meta["citation"],
        "licence": "accuracy columns CC BY 4.0 (NAS-Bench-BERT); measurements BSD-3-Clause"})
    missing = int(np.isnan(joined.metrics["latency_s"]).sum())
    if missing:
        raise SystemExit(f"{missing} NAS-Bench-BERT architectures lack a {platform} measurement: run the campaign first")
    return joined


def rank_report(table: Any) -> dict[str, Any]:
    from protran_tune.objectives.providers import ZeroCost
    from protran_tune.objectives.scoring import kendall_tau, kendall_tau_within_groups

    depth = np.array([a.n_layers for a in table.archs])
    counts = ZeroCost(("params", "flops")).evaluate(table.archs)
    out: dict[str, Any] = {}
    for metric in ("latency_s", "energy_j", "energy_above_idle_j", "peak_power_w"):
        if metric not in table.metrics:
            continue
        y = table.metrics[metric]
        out[metric] = {proxy: {"kendall_tau": kendall_tau(counts.column(proxy), y),
                               "kendall_tau_within_depth": kendall_tau_within_groups(counts.column(proxy), y, depth)}
                       for proxy in ("params", "flops")}
    return out


def spread_report(table: Any) -> dict[str, Any]:
    out = {}
    for metric, col in table.metrics.items():
        if metric not in ("glue", "latency_s", "energy_j", "energy_above_idle_j", "peak_power_w"):
            continue
        q25, med, q75 = np.percentile(col, [25, 50, 75])
        entry = {"median": float(med), "min": float(col.min()), "max": float(col.max()), "iqr_over_median": float((q75 - q25) / med),
                 "max_over_min": float(col.max() / col.min()), "source": table.sources.get(metric)}
        if metric in table.spread:
            s = table.spread[metric][np.isfinite(table.spread[metric])]
            entry["measurement_spread_median"] = float(np.median(s))
            entry["measurement_spread_p90"] = float(np.percentile(s, 90))
        out[metric] = entry
    return out


def repeatability() -> dict[str, Any]:
    path = CAMPAIGN / "cuda_repeat.jsonl"
    if not path.exists():
        return {}
    by: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok":
            by.setdefault(r["arch_hash"], []).append(r["measurement"])
    cv = lambda ms, k: float(np.std([m[k] for m in ms], ddof=1) / np.mean([m[k] for m in ms]))  # noqa: E731
    return {h: {k: cv(ms, k) for k in ("latency_s", "energy_j", "energy_above_idle_j", "peak_power_w")} | {"n": len(ms)}
            for h, ms in by.items()}


def plot_fronts(table: Any, platform: str) -> Path:
    from protran_tune.reporting.figures import pyplot, save_figure
    from protran_tune.search.hypervolume import pareto_mask

    plt = pyplot()
    metrics = [m for m in ("latency_s", "energy_j", "peak_power_w") if m in table.metrics]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.0))
    glue = table.metrics["glue"]
    depth = np.array([a.n_layers for a in table.archs])
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        cost = table.metrics[metric]
        front = pareto_mask(np.column_stack([glue, -cost]))
        for d, c in ((2, "#9ecae1"), (4, "#fdae6b")):
            ax.scatter(cost[depth == d], glue[depth == d], s=9, color=c, label=f"{d} layers")
        order = np.argsort(cost[front])
        ax.step(cost[front][order], glue[front][order], where="post", color="k", lw=1.2, label="Pareto front")
        ax.scatter(cost[front], glue[front], s=18, color="k")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        per = "" if metric == "peak_power_w" else " per sequence"
        ax.set_xlabel(f"{metric}{per} ({table.sources.get(metric, '')})", fontsize=8)
        ax.set_ylabel("GLUE (NAS-Bench-BERT)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"GLUE against measured cost: {PLATFORMS[platform]['label']}", fontsize=9)
    return save_figure(fig, RESULTS / f"nasbench_front_{platform}.png")


def main() -> int:
    from protran_tune.datasets import write_table

    FILES.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"command": "python benchmarks/bench_nasbench_tables.py", "platforms": {}}
    for platform in PLATFORMS:
        table = build(platform)
        write_table(table, FILES / f"{platform}.jsonl")
        result["platforms"][platform] = {
            "dataset": table.name, "records": len(table), "label": PLATFORMS[platform]["label"],
            "sources": table.sources, "counting_vs_measuring": rank_report(table), "spread": spread_report(table),
            "front_plot": str(plot_fronts(table, platform).relative_to(REPO)),
        }
    result["h200_repeatability_cv"] = repeatability()
    result["hardware_surrogates_64"] = surrogate_report(range(10))
    (RESULTS / "nasbench_tables.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, RESULTS / "nasbench_tables.md")
    print((RESULTS / "nasbench_tables.md").read_text())
    return 0


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = ["# NAS-Bench-BERT x protran-tune hardware measurements", "", f"`{result['command']}`", ""]
    for platform, r in result["platforms"].items():
        lines += [f"## {r['dataset']}: {r['label']} ({r['records']} architectures)", "",
                  "Kendall tau of counting against measuring (overall / within depth):", "",
                  "| measured | params | FLOPs |", "|---|---|---|"]
        for metric, c in r["counting_vs_measuring"].items():
            cell = lambda d: f"{d['kendall_tau']:.3f} / {d['kendall_tau_within_depth']:.3f}"  # noqa: E731
            lines.append(f"| {metric} | {cell(c['params'])} | {cell(c['flops'])} |")
        lines += ["", "Spread of each objective over the architectures (and of the measurement itself):", "",
                  "| metric | median | min | max | max/min | IQR/median | measurement spread (median, p90) | source |",
                  "|---|---|---|---|---|---|---|---|"]
        for metric, s in r["spread"].items():
            ms = (f"{s['measurement_spread_median']:.4f}, {s['measurement_spread_p90']:.4f}"
                  if "measurement_spread_median" in s else "—")
            lines.append(f"| {metric} | {s['median']:.4g} | {s['min']:.4g} | {s['max']:.4g} | {s['max_over_min']:.3g} | "
                         f"{s['iqr_over_median']:.3f} | {ms} | {s['source']} |")
        lines += ["", f"![fronts](nasbench_front_{platform}.png)", ""]
    sur = result.get("hardware_surrogates_64") or {}
    if sur:
        lines += ["## Hardware surrogates learned from 64 measurements (held-out 20%, seeds 0-9, median [IQR])", "",
                  "| table / metric | chosen on seeds 100-104 | Kendall tau | MAPE |", "|---|---|---|---|"]
        for key, r in sur.items():
            cell = lambda d: f"{d['median']:.3f} [{d['q25']:.3f}, {d['q75']:.3f}]"  # noqa: E731
            lines.append(f"| {key} | {r['chosen']} | {cell(r['kendall_tau'])} | {cell(r['mape'])} |")
        lines.append("")
    rep = result.get("h200_repeatability_cv") or {}
    if rep:
        lines += ["## H200 repeatability (CV over 5 full measurements of one architecture)", "",
                  "| architecture | latency | energy | energy above idle | peak power |", "|---|---|---|---|---|"]
        for h, c in rep.items():
            lines.append(f"| {h} | {c['latency_s']:.4f} | {c['energy_j']:.4f} | {c['energy_above_idle_j']:.4f} | {c['peak_power_w']:.4f} |")
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- hardware surrogates on the new tables
SURROGATE_CONFIGS = {
    "gp-linmat-cost-log": ("gp", {"kernel": "linear+matern", "encoder": "cost"}, True),
    "gp-linmat-cost": ("gp", {"kernel": "linear+matern", "encoder": "cost"}, False),
    "gp-linmat-global-log": ("gp", {"kernel": "linear+matern", "encoder": "global"}, True),
    "gp-rbf-global-log": ("gp", {"encoder": "global"}, True),
    "bdt-log": ("bdt", {}, True),
}


def surrogate_scores(table: Any, metric: str, config: str, seed: int, n_train: int = 64) -> dict[str, float]:
    """Held-out Kendall tau and MAPE of one surrogate trained on ``n_train`` random rows (honest 20% test split)."""
    from protran_tune.objectives.scoring import kendall_tau, split_test
    from protran_tune.surrogates import make_surrogate

    name, params, log = SURROGATE_CONFIGS[config]
    y = table.values([metric])[:, 0]
    E = table.embeddings()
    test = split_test(len(table), 0.2, seed)
    rest = np.setdiff1d(np.arange(len(table)), test)
    train = np.sort(np.random.default_rng([seed, 9]).choice(rest, n_train, replace=False))
    t = np.log(y) if log else y / y.max()
    model = make_surrogate(name, random_state=seed, **params).fit(E[train], t[train, None])
    pred = np.asarray(model.predict(E[test])).ravel()
    pred = np.exp(pred) if log else pred * y.max()
    return {"kendall_tau": kendall_tau(pred, y[test]), "mape": float(np.mean(np.abs(pred - y[test]) / y[test]))}


def surrogate_report(seeds: range, selection: range = range(100, 105)) -> dict[str, Any]:
    """Per platform and hardware metric: each configuration on the selection seeds, the one chosen there
    (highest median Kendall tau), and the chosen one's median tau and MAPE on the report seeds."""
    from protran_tune.datasets import load_dataset

    out: dict[str, Any] = {}
    for platform in PLATFORMS:
        table = load_dataset(f"protran-nasbench:{platform}")
        for metric in ("latency_s", "energy_j", "peak_power_w"):
            scores = {c: [surrogate_scores(table, metric, c, s) for s in selection] for c in SURROGATE_CONFIGS}
            sel = {c: {k: float(np.median([r[k] if r[k] is not None else 0.0 for r in rs])) for k in ("kendall_tau", "mape")}
                   for c, rs in scores.items()}
            chosen = max(sel, key=lambda c: sel[c]["kendall_tau"])
            rep = [surrogate_scores(table, metric, chosen, s) for s in seeds]
            out[f"{platform}/{metric}"] = {
                "selection": sel, "chosen": chosen, "source": table.sources.get(metric),
                **{k: {"median": float(np.median([r[k] for r in rep])), "q25": float(np.percentile([r[k] for r in rep], 25)),
                       "q75": float(np.percentile([r[k] for r in rep], 75))} for k in ("kendall_tau", "mape")},
            }
            print(f"{platform}/{metric}: {chosen} tau {out[f'{platform}/{metric}']['kendall_tau']['median']:.3f} "
                  f"MAPE {out[f'{platform}/{metric}']['mape']['median']:.3f}", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
