"""The report a ``profile`` run leaves behind: the reporting module's sections plus the profile's own.

``profile`` writes ``measurements.jsonl`` (``measure`` records), ``profile_result.json`` (learning
curve in the replay format) and ``predictions.json`` (held-out predicted vs real). The report is
:func:`protran_tune.reporting.build_report` on the measurements (power traces, platform comparison,
...) followed by a profile section with ``power_trace.png`` (traces of measured architectures from
the fastest to the slowest), ``pairwise_distance.png`` (diversity of the seed, active and held-out
architectures), ``learning_curve.png`` and ``predicted_vs_real.png``, all linked from ``summary.md``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from protran_tune.objectives.targets import HARDWARE_TARGETS
from protran_tune.platforms.records import read_records
from protran_tune.reporting.figures import pyplot, save_figure
from protran_tune.reporting.learning import plot_predicted_vs_real

log = logging.getLogger(__name__)
TARGETS = HARDWARE_TARGETS


def plot_power_traces(records: list[dict[str, Any]], out: Path, max_traces: int = 6) -> Path | None:
    plt = pyplot()
    ok = [r for r in records if r.get("measurement") and r["measurement"].get("power_trace")]
    if not ok:
        return None
    ok.sort(key=lambda r: r["measurement"]["latency_s"])
    picks = [ok[i] for i in np.unique(np.linspace(0, len(ok) - 1, min(max_traces, len(ok))).astype(int))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for r in picks:
        t, w = np.asarray(r["measurement"]["power_trace"]).T
        ax.plot(t, w, lw=1, label=f"{r['arch_hash'][:8]} ({r['measurement']['latency_s'] * 1e3:.1f} ms/batch)")
    idle = picks[0]["measurement"].get("idle_power_w")
    if idle is not None:
        ax.axhline(idle, ls="--", c="grey", lw=0.8, label="idle")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"Power traces on {picks[0]['platform']} [{picks[0]['measurement']['source']}]")
    ax.legend(fontsize=7)
    return save_figure(fig, out / "power_trace.png")


def plot_pairwise_distance(records: list[dict[str, Any]], out: Path, space: str = "flexibert2") -> Path | None:
    """Box plot of pairwise distances of the architectures' normalised embeddings, per phase (Fig. 5 style)."""
    from scipy.spatial.distance import pdist

    from protran_tune.space import Architecture, get_space

    sp = get_space(space)
    groups: dict[str, list[np.ndarray]] = {}
    for r in records:
        try:
            e = sp.embed(Architecture.from_dict(r["architecture"]))
        except ValueError:
            continue
        groups.setdefault(r.get("split") or "all", []).append(e)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return None
    allE = np.vstack([np.vstack(v) for v in groups.values()]).astype(float)
    scale = np.maximum(allE.max(0) - allE.min(0), 1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    names = sorted(groups)
    ax.boxplot([pdist(np.vstack(groups[k]) / scale) for k in names], tick_labels=[f"{k} (n={len(groups[k])})" for k in names])
    ax.set_ylabel("pairwise distance (normalised embedding)")
    ax.set_title("Diversity of measured architectures")
    return save_figure(fig, out / "pairwise_distance.png")


def plot_learning_curve(result: dict[str, Any], out: Path, threshold: float | None = None) -> Path | None:
    curve = result.get("curve") or []
    if not curve:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    n = [p["n_samples"] for p in curve]
    for name in TARGETS:
        ax.plot(n, [max(p["test_mse"][name], 1e-12) for p in curve], marker="o", ms=3, label=name)
    if threshold:
        ax.axhline(threshold, ls="--", c="grey", lw=0.8, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("measured architectures")
    ax.set_ylabel("held-out test MSE (normalised)")
    ax.set_title("Learning curve")
    ax.legend(fontsize=8)
    return save_figure(fig, out / "learning_curve.png")


def _plot_predictions(pred: dict[str, Any], out: Path) -> Path | None:
    """Held-out predicted vs real in physical units (``predictions.json``), ``None`` without predictions."""
    if not pred:
        return None
    targets = pred.get("targets", TARGETS)
    return plot_predicted_vs_real(pred, out / "predicted_vs_real.png", targets, units=dict(zip(targets, pred.get("units", []))),
                                  title=f"Held-out predicted vs real ({pred.get('regressor', '')}, ±1 std)")


def format_samples_to_convergence(samples: dict[str, int | None]) -> str:
    """``latency_s 12, energy_j not reached, ...`` (``none`` when there is no curve)."""
    return ", ".join(f"{k} {'not reached' if v is None else v}" for k, v in samples.items()) or "none"


def make_report(out_dir: Path, *, measurements: Path, profile_result: Path, predictions: Path, title: str) -> list[Path]:
    """Draw the profile plots into ``out_dir``, add the reporting module's output, write ``summary.md``."""
    records = [r for _, r in read_records(measurements, repair=False)]
    result = json.loads(profile_result.read_text()) if profile_result.exists() else {}
    pred = json.loads(predictions.read_text()) if predictions.exists() else {}
    plots = [p for p in (
        plot_power_traces(records, out_dir),
        plot_pairwise_distance(records, out_dir),
        plot_learning_curve(result, out_dir, result.get("threshold")),
        _plot_predictions(pred, out_dir),
    ) if p is not None]
    from protran_tune.reporting import build_report

    head = build_report([measurements], out_dir).summary.read_text()
    lines = [head.rstrip(), "", f"## Profile: {title}", "",
             f"- measured: {result.get('n_measured')} (failed {result.get('n_failed')}), held out: {result.get('n_test')}",
             f"- stop: {result.get('stop_reason')} (converged: {result.get('converged')}); samples to convergence "
             f"(held-out test MSE below {result.get('threshold')}): "
             f"{format_samples_to_convergence(result.get('samples_to_convergence') or {})}", ""]
    final = result.get("final", {})
    if final:
        lines += ["| measure | test MSE | Kendall tau | within 10% |", "|---|---|---|---|"]
        for name in TARGETS:
            lines.append(f"| {name} | {final.get(f'test_mse_{name}', float('nan')):.5f} | "
                         f"{final.get(f'kendall_tau_{name}', float('nan')):.3f} | {final.get(f'within_10pct_{name}', float('nan')):.2f} |")
        lines.append("")
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return plots
