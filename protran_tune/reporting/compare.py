"""Cross-platform comparison normalised to a baseline platform (the paper's Fig. 4).

For every platform and metric (per-sequence latency, per-sequence energy, peak power) the comparison
is the **geometric mean over the architectures common to all datasets of value / baseline value**:
1.0 is the baseline, 0.1 a tenfold reduction. Architectures where either value is missing (the
platform did not measure that quantity) or the baseline value is zero are left out of that metric,
and the count used is reported.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from protran_tune.reporting.figures import pyplot, save_figure
from protran_tune.objectives.targets import get_target
from protran_tune.reporting.data import METRIC_LABELS, METRICS, PlatformData


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_platforms`.

    Attributes:
        baseline: label of the baseline platform.
        platforms: labels in plot order (baseline first).
        common: architecture hashes present in every dataset (sorted).
        ratios: ``{platform: {metric: geometric mean of value / baseline or None}}``.
        counts: ``{platform: {metric: architectures used}}``.
        per_arch: ``{platform: {metric: {arch_hash: ratio}}}``.
        baseline_values: ``{metric: geometric mean of the baseline's own values}`` (SI units).
    """

    baseline: str
    platforms: list[str]
    names: dict[str, str]
    common: list[str]
    ratios: dict[str, dict[str, float | None]]
    counts: dict[str, dict[str, int]]
    per_arch: dict[str, dict[str, dict[str, float]]]
    baseline_values: dict[str, float | None]


def geometric_mean(values: Sequence[float]) -> float:
    """``exp(mean(log(values)))``; ``ValueError`` for an empty or non-positive input."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or np.any(arr <= 0) or not np.all(np.isfinite(arr)):
        raise ValueError(f"geometric mean needs positive finite values, got {values!r}")
    return float(np.exp(np.mean(np.log(arr))))


def compare_platforms(datasets: Sequence[PlatformData], baseline: str) -> Comparison:
    """Normalise every dataset to ``baseline`` on their common architectures.

    Raises:
        ValueError: unknown baseline (lists the known labels), fewer than two datasets, or no
            architecture common to all datasets.
    """
    labels = [d.label for d in datasets]
    if baseline not in labels:
        raise ValueError(f"unknown baseline platform {baseline!r}: the measurement files hold {labels}")
    if len(datasets) < 2:
        raise ValueError(f"a comparison needs at least two platforms, got {labels}")
    common_set = set.intersection(*(set(d.values) for d in datasets))
    if not common_set:
        raise ValueError(f"no architecture is common to all of {labels}: nothing to compare")
    common = sorted(common_set)
    base = next(d for d in datasets if d.label == baseline)
    order = [base] + [d for d in datasets if d.label != baseline]
    ratios: dict[str, dict[str, float | None]] = {}
    counts: dict[str, dict[str, int]] = {}
    per_arch: dict[str, dict[str, dict[str, float]]] = {}
    for d in order:
        ratios[d.label], counts[d.label], per_arch[d.label] = {}, {}, {}
        for metric in METRICS:
            r = {}
            for h in common:
                v, b = d.values[h][metric], base.values[h][metric]
                if v is not None and b is not None and b > 0 and v > 0:
                    r[h] = v / b
            per_arch[d.label][metric] = r
            counts[d.label][metric] = len(r)
            ratios[d.label][metric] = geometric_mean(list(r.values())) if r else None
    baseline_values = {}
    for metric in METRICS:
        vals = [base.values[h][metric] for h in common if (base.values[h][metric] or 0) > 0]
        baseline_values[metric] = geometric_mean(vals) if vals else None
    return Comparison(
        baseline=baseline, platforms=[d.label for d in order], names={d.label: d.display_name for d in order},
        common=common, ratios=ratios, counts=counts, per_arch=per_arch, baseline_values=baseline_values,
    )


def plot_comparison(comparison: Comparison, path: str | Path, *, title: str | None = None) -> Path:
    """Grouped bars (one group per metric, one bar per platform) of the ratios on a log axis; PNG."""
    plt = pyplot()

    path = Path(path)
    platforms = comparison.platforms
    n = len(platforms)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(9.0, 2.0 + 0.45 * n * len(METRICS)), 5.6), dpi=120)
    colors = plt.get_cmap("tab10")
    present = [v for p in platforms for v in comparison.ratios[p].values() if v is not None]
    lo, hi = min(present + [1.0]), max(present + [1.0])
    for i, p in enumerate(platforms):
        xs, hs = [], []
        for j, metric in enumerate(METRICS):
            value = comparison.ratios[p][metric]
            x = j - 0.4 + width * (i + 0.5)
            if value is None:
                ax.text(x, 1.0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="0.4")
                continue
            xs.append(x)
            hs.append(value)
        label = f"{comparison.names[p]}" + (" — baseline" if p == comparison.baseline else "")
        # bars start at 1 (the baseline), up for "more than baseline", down for "less"
        bars = ax.bar(xs, [h - 1.0 for h in hs], width * 0.92, bottom=1.0, color=colors(i % 10),
                      edgecolor="black", linewidth=0.4, label=label)
        for bar, h in zip(bars, hs):
            text = _format_ratio(h)
            y = h * (1.08 if h >= 1 else 0.92)
            ax.text(bar.get_x() + bar.get_width() / 2, y, text, ha="center", va="bottom" if h >= 1 else "top",
                    fontsize=7, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(lo / 10.0, hi * 12.0)  # room for the value labels
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(METRICS)))
    ax.set_xticklabels([METRIC_LABELS[m] for m in METRICS])
    ax.set_ylabel(f"relative to {comparison.baseline} (log scale)")
    ax.set_title(textwrap.fill(title or (
        f"Platforms relative to {comparison.names[comparison.baseline]}: geometric mean over "
        f"{len(comparison.common)} common architectures"
    ), 90), fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(n, 3), frameon=False)
    return save_figure(fig, path)


def _format_ratio(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.1f}×"
    return f"{value:.3g}×"


def comparison_table(comparison: Comparison) -> str:
    """Markdown table of the ratios (and the architectures each is based on)."""
    head = "| platform | " + " | ".join(f"{METRIC_LABELS[m]} (×)" for m in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 1)]
    for p in comparison.platforms:
        cells = []
        for m in METRICS:
            v, n = comparison.ratios[p][m], comparison.counts[p][m]
            cells.append("n/a" if v is None else f"{v:.4g} (n={n})")
        rows.append(f"| {comparison.names[p]} | " + " | ".join(cells) + " |")
    base = comparison.baseline_values
    units = {m: get_target(m).unit for m in METRICS}
    rows.append("")
    rows.append(
        f"Baseline {comparison.baseline}: geometric means "
        + ", ".join(f"{METRIC_LABELS[m]} {base[m]:.4g} {units[m]}" for m in METRICS if base[m] is not None and math.isfinite(base[m]))
        + "."
    )
    return "\n".join(rows)


def comparison_section(ctx: "ReportContext") -> "Section | None":
    """Report section: the normalised comparison (baseline ``ctx.baseline`` or the first dataset); ``None`` for a
    single platform."""
    from protran_tune.reporting.report import Figure, Section

    datasets = ctx.measurements.datasets
    if len(datasets) < 2:  # nothing to compare (e.g. the report of one profile run): leave the section out
        return None
    section = Section("Platforms relative to a baseline (Fig. 4)")
    baseline = ctx.baseline or datasets[0].label
    if not set.intersection(*(set(d.values) for d in datasets)):
        section.text = (f"No architecture was measured on all of {[d.label for d in datasets]}: give files "
                        "that share architectures (e.g. the 16 Latin-hypercube seed models) to compare them.")
        return section
    comparison = compare_platforms(datasets, baseline)
    path = plot_comparison(comparison, ctx.figure_path(f"platform_comparison_vs_{baseline}.png".replace("/", "-")))
    section.text = (
        f"Geometric mean over the {len(comparison.common)} architectures common to all files of each "
        f"platform's value divided by {baseline}'s (1 = baseline, below 1 = less). Latency and energy "
        "per sequence; energy is total (idle included) as the original files record it.\n\n"
        + comparison_table(comparison)
    )
    section.figures.append(Figure(path, f"latency, energy and peak power relative to {baseline}"))
    return section


from protran_tune.reporting.report import ReportContext, Section, register_section  # noqa: E402

register_section("platform-comparison", comparison_section, order=40)
