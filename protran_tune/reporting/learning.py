"""Learning curves of the surrogates (the paper's Figs. 6 and 7) from replay results.

* :func:`plot_learning_curves` — test MSE on normalised targets vs number of samples, one line per
  label (regressor or strategy), median over seeds with the inter-quartile band, one panel per measure,
  the convergence threshold drawn (Fig. 6);
* :func:`plot_predicted_vs_real` — predicted vs measured values on the held-out test set with ±1σ
  error bars, one panel per measure (Fig. 7).

Inputs are replay results as written by ``protran-tune replay`` (dicts with ``curve`` and
``final_predictions``). The report section ``learning-curves`` draws both from
``--option replay=RESULT.json[,RESULT2.json...]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from protran_tune.objectives.targets import HARDWARE_TARGETS as MEASURES
from protran_tune.reporting.figures import pyplot, save_figure


def curve_matrix(results: Sequence[Mapping[str, Any]], measure: str, key: str = "test_mse") -> tuple[np.ndarray, np.ndarray]:
    """Sample counts ``(m,)`` common to all results and values ``(n_results, m)`` of ``key[measure]``."""
    if not results:
        raise ValueError("no replay results given")
    counts = sorted(set.intersection(*[{p["n_samples"] for p in r["curve"]} for r in results]))
    if not counts:
        raise ValueError("the replay results share no sample count")
    values = np.array(
        [[{p["n_samples"]: p[key][measure] for p in r["curve"]}[n] for n in counts] for r in results], dtype=float
    )
    return np.asarray(counts), values


def plot_learning_curves(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    measures: Sequence[str] = MEASURES,
    threshold: float | None = 0.003,
    title: str = "",
) -> Path:
    """Fig. 6: median test MSE (IQR band over seeds) vs samples per label; returns ``path``."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for label, results in curves.items():
            n, v = curve_matrix(results, measure)
            med = np.median(v, 0)
            (line,) = ax.plot(n, med, marker="o", ms=2.5, lw=1.4, label=f"{label} (n={len(results)})")
            if len(results) > 1:
                ax.fill_between(n, np.percentile(v, 25, 0), np.percentile(v, 75, 0), color=line.get_color(), alpha=0.15)
        if threshold is not None:
            ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax.set_yscale("log")
        ax.set_xlabel("samples (seed + queries)")
        ax.set_ylabel(f"test MSE, normalised {measure}")
        ax.set_title(measure)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=130)


def plot_predicted_vs_real(
    predictions: Mapping[str, Any], path: str | Path, measures: Sequence[str] = MEASURES, title: str = "",
    units: Mapping[str, str] | None = None,
) -> Path:
    """Fig. 7: predicted vs real on the held-out test set, ±1σ bars, one panel per measure; returns ``path``.

    ``predictions``: ``y_true``, ``y_pred`` and ``y_std`` ``(n_test, len(measures))``: a replay result's
    ``final_predictions`` (normalised values) or ``profile``'s ``predictions.json`` (physical units, named
    per measure in ``units``; a measure without a unit reads "normalised").
    """
    plt = pyplot()

    y, mu, sd = (np.asarray(predictions[k], dtype=float) for k in ("y_true", "y_pred", "y_std"))
    fig, axes = plt.subplots(1, len(measures), figsize=(4.0 * len(measures), 3.8), squeeze=False)
    for j, (ax, measure) in enumerate(zip(axes[0], measures)):
        unit = (units or {}).get(measure, "normalised")
        err = sd[:, j] if np.isfinite(sd[:, j]).all() else None
        ax.errorbar(y[:, j], mu[:, j], yerr=err, fmt="o", ms=3, lw=0.6, alpha=0.8, capsize=0)
        lo, hi = float(min(y[:, j].min(), mu[:, j].min())), float(max(y[:, j].max(), mu[:, j].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mse = float(np.mean((mu[:, j] - y[:, j]) ** 2))
        ax.set_title(f"{measure}: test MSE {mse:.2g}")
        ax.set_xlabel(f"real {measure} ({unit})")
        ax.set_ylabel(f"predicted {measure} ({unit})")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=130)


def learning_section(ctx: Any) -> Any:
    """Report section: Figs. 6/7 from ``--option replay=FILE[,FILE...]`` (replay results)."""
    from protran_tune.reporting.report import Figure, Section

    spec = ctx.options.get("replay")
    if not spec:
        return None
    results = [json.loads(Path(p).read_text()) for p in str(spec).split(",") if p]
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        c = r["config"]
        by_label.setdefault(f"{c['regressor']}/{c['strategy']}", []).append(r)
    fig6 = plot_learning_curves(by_label, ctx.figure_path("learning_curves.png"))
    fig7 = plot_predicted_vs_real(results[0]["final_predictions"], ctx.figure_path("predicted_vs_real.png"))
    lines = ["| run | samples | " + " | ".join(f"MSE {m}" for m in MEASURES) + " | samples to convergence |", "|---|---|---|---|---|---|"]
    for label, rs in by_label.items():
        for r in rs:
            last = r["curve"][-1]
            conv = ", ".join(f"{k}: {v}" for k, v in r["samples_to_convergence"].items())
            lines.append(f"| {label} seed {r['config']['seed']} | {last['n_samples']} | "
                         + " | ".join(f"{last['test_mse'][m]:.3g}" for m in MEASURES) + f" | {conv} |")
    return Section(
        "Surrogate learning curves",
        "\n".join(lines),
        [Figure(fig6, "Test MSE on normalised targets vs samples (median, IQR over seeds)"),
         Figure(fig7, "Predicted vs real on the held-out test set (±1σ)")],
    )


try:  # registering needs the report module; plotting alone does not
    from protran_tune.reporting.report import register_section

    register_section("learning-curves", learning_section, order=60)
except ImportError:  # pragma: no cover
    pass
