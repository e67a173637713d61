"""What a search writes: the front (CSV and JSON), its architectures, the checks, plots and the summary.

Files in ``out``: ``front.csv`` / ``front.json`` (one row per front member: trial, architecture,
objective values, predicted std, sources), ``front_archs.jsonl`` (input for ``protran-tune measure``),
``verification.csv`` / ``.json`` (search value against measured value and the relative gap),
``hypervolume.json`` and ``hypervolume.png`` (hypervolume after each evaluation, in the box spanned by
all evaluated values), ``front_2d.png`` (accuracy against each other objective: every evaluation, the
front, and BERT-shaped baselines evaluated by the same providers), ``parallel_coordinates.png`` and
``summary.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.targets import get_target
from protran_tune.space.architecture import Architecture

#: BERT shapes (layers, hidden, heads, feed-forward) marked in the plots (Turc et al. 2019's names)
BERT_SHAPES = {"BERT-Tiny": (2, 128, 2, 512), "BERT-Mini": (4, 256, 4, 1024), "BERT-Small": (4, 512, 8, 2048)}


def front_rows(front: Sequence[Any], objectives: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for t in front:
        row = {"trial": t.number, "architecture": t.user_attrs["architecture"], "arch_hash": t.user_attrs.get("arch_hash")}
        row.update({o: float(v) for o, v in zip(objectives, t.values)})
        row.update({f"{o}_std": t.user_attrs.get("predicted_std", {}).get(o) for o in objectives})
        row["sources"] = t.user_attrs.get("sources", {})
        row["out_of_domain"] = bool(t.user_attrs.get("out_of_domain"))
        rows.append(row)
    return sorted(rows, key=lambda r: -r[objectives[0]] if get_target(objectives[0]).direction == "maximize" else r[objectives[0]])


def hypervolume_history(study: Any, objectives: Sequence[str]) -> dict[str, Any]:
    """Hypervolume after each COMPLETE feasible trial, in the box of all evaluated values (worst = reference)."""
    from optuna.trial import TrialState

    from protran_tune.search.hypervolume import Normaliser, hypervolume

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return {"n": [], "hypervolume": [], "box": None}
    Y = np.array([t.values for t in done])
    norm = Normaliser.from_values(objectives, Y)
    Z = norm.transform(Y)
    ok = np.array([all(v <= 0 for v in t.constraints.values()) for t in done])
    hv = [hypervolume(Z[: i + 1][ok[: i + 1]]) if ok[: i + 1].any() else 0.0 for i in range(len(done))]
    return {"n": list(range(1, len(done) + 1)), "hypervolume": hv, "box": norm.to_dict()}


def write_outputs(out: Path, cfg: Any, study: Any, result: Any, objectives: Any, params: Any, history: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = list(cfg.objectives)
    (out / "front.json").write_text(json.dumps(result.front, indent=1))
    with (out / "front.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "arch_hash", *names, *(f"{o}_std" for o in names), "out_of_domain", "architecture"])
        for r in result.front:
            w.writerow([r["trial"], r["arch_hash"], *(r[o] for o in names), *(r[f"{o}_std"] for o in names), r["out_of_domain"], r["architecture"]])
    with (out / "front_archs.jsonl").open("w") as fh:
        for r in result.front:
            fh.write(json.dumps({"id": r["arch_hash"], "architecture": json.loads(r["architecture"])}) + "\n")
    (out / "verification.json").write_text(json.dumps(result.verification, indent=1))
    with (out / "verification.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "arch_hash", "objective", "search_value", "measured", "gap", "source"])
        for v in result.verification:
            for o in names:
                w.writerow([v["trial"], v["arch_hash"], o, v["predicted"][o], v["measured"].get(o), v["gap"].get(o), v["sources"].get(o)])
    (out / "hypervolume.json").write_text(json.dumps(history, indent=1))
    baselines = bert_baselines(objectives, params)
    plot_front(study, names, result.front, baselines, out / "front_2d.png")
    plot_parallel(result.front, names, out / "parallel_coordinates.png")
    plot_hypervolume(history, out / "hypervolume.png")
    summary = {**result.to_dict(), "config": cfg.to_dict(), "providers": objectives.describe(), "kinds": objectives.kinds(),
               "baselines": baselines, "gap_summary": gap_summary(result.verification, names), "storage": cfg.storage}
    summary.pop("front")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


def gap_summary(verification: list[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Per objective: members checked, median and largest |gap| (relative to the measured value)."""
    out = {}
    for o in names:
        gaps = [abs(v["gap"][o]) for v in verification if o in v["gap"]]
        out[o] = {"checked": len(gaps), "median_abs_gap": float(np.median(gaps)) if gaps else None,
                  "max_abs_gap": float(np.max(gaps)) if gaps else None}
    return out


def bert_baselines(objectives: Any, params: Any) -> dict[str, dict[str, Any]]:
    """BERT shapes evaluated by the search's providers (skipped when a provider trains or measures)."""
    if any(p.kind == "measured" for p in objectives.providers):
        return {}
    archs = {n: Architecture.homogeneous(*shape) for n, shape in BERT_SHAPES.items()}
    values = objectives.evaluate(list(archs.values()))
    return {n: {"values": values.row(i), "in_search_space": params.contains(a), "in_domain": bool(values.in_domain[i])}
            for i, (n, a) in enumerate(archs.items())}


def plot_front(study: Any, names: Sequence[str], front: list[dict[str, Any]], baselines: dict[str, Any], path: Path) -> Path:
    from optuna.trial import TrialState

    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    Y = np.array([t.values for t in done]) if done else np.zeros((0, len(names)))
    x_names = list(names[1:])
    fig, axes = plt.subplots(1, len(x_names), figsize=(4.4 * len(x_names), 4.0), squeeze=False)
    for ax, xn in zip(axes[0], x_names):
        j = names.index(xn)
        ax.scatter(Y[:, j], Y[:, 0], s=10, color="#bbbbbb", label="evaluated")
        fx = [r[xn] for r in front]
        fy = [r[names[0]] for r in front]
        ax.scatter(fx, fy, s=22, color="C3", label="front", zorder=3)
        for bname, b in baselines.items():
            ax.scatter(b["values"][xn], b["values"][names[0]], marker="*", s=120, zorder=4, label=bname)
        if Y.size and Y[:, j].min() > 0 and Y[:, j].max() / Y[:, j].min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(get_target(xn).label())
        ax.set_ylabel(get_target(names[0]).label())
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)


def plot_parallel(front: list[dict[str, Any]], names: Sequence[str], path: Path) -> Path:
    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2, 4.0))
    if front:
        Y = np.array([[r[o] for o in names] for r in front])
        lo, hi = Y.min(0), Y.max(0)
        Z = (Y - lo) / np.where(hi > lo, hi - lo, 1.0)
        for z in Z:
            ax.plot(range(len(names)), z, marker="o", alpha=0.7)
        for j, o in enumerate(names):
            ax.annotate(f"{hi[j]:.3g}", (j, 1.0), fontsize=7, ha="center", va="bottom")
            ax.annotate(f"{lo[j]:.3g}", (j, 0.0), fontsize=7, ha="center", va="top")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([get_target(o).label() for o in names], fontsize=8)
    ax.set_yticks([])
    ax.set_title(f"front members ({len(front)}), each objective scaled to the front's range", fontsize=9)
    return save_figure(fig, path)


def plot_hypervolume(history: dict[str, Any], path: Path) -> Path:
    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(history["n"], history["hypervolume"], marker=".")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (box of all evaluated values)")
    return save_figure(fig, path)
