"""Power trace of one measurement over time (the paper's Figs. 2 and 3).

The trace is :attr:`Measurement.power_trace` (``(t_s, watts)`` at the sensor's rate, ``t`` from the
start of the idle window). The figure draws it with the measured idle power as a dashed line, the
protocol's phases (``meta['phases']``: idle, warm-up, latency repeats, energy window) shaded, the
highest sample of the run marked, and the measurement's ``source`` in the title, so a modelled trace
(``modelled:cpu-time``) is never mistaken for a measured one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from protran_tune.reporting.figures import pyplot, save_figure
from protran_tune.platforms.measurement import Measurement
from protran_tune.reporting.data import PlatformData

PHASE_COLORS: dict[str, str] = {
    "idle": "#d9d9d9",
    "warmup": "#fde0b2",
    "latency": "#c6dbef",
    "energy_window": "#c7e9c0",
}
PHASE_LABELS: dict[str, str] = {
    "idle": "idle window",
    "warmup": "warm-up",
    "latency": "latency repeats",
    "energy_window": "energy window",
}


def run_window(m: Measurement) -> tuple[float, float] | None:
    """Start and end (s, trace time) of the run: warm-up start to energy-window end, from ``meta['phases']``.

    Without phases: from the first sample after the idle window (``t >= 0``) to the last sample, or
    ``None`` for an empty trace.
    """
    phases = m.meta.get("phases") if isinstance(m.meta, dict) else None
    if phases:
        spans = [tuple(v) for k, v in phases.items() if k != "idle" and isinstance(v, (list, tuple)) and len(v) == 2]
        if spans:
            return min(s for s, _ in spans), max(e for _, e in spans)
    if not m.power_trace:
        return None
    return max(0.0, m.power_trace[0][0]), m.power_trace[-1][0]


def peak_sample(m: Measurement) -> tuple[float, float]:
    """``(t_s, watts)`` of the highest trace sample inside :func:`run_window` (whole trace if none)."""
    if not m.power_trace:
        raise ValueError(f"measurement on {m.platform!r} has no power trace")
    window = run_window(m)
    in_run = [(t, w) for t, w in m.power_trace if window is None or window[0] <= t <= window[1]]
    return max(in_run or m.power_trace, key=lambda p: p[1])


def plot_power_trace(m: Measurement, path: str | Path, *, arch_hash: str | None = None, title: str | None = None) -> Path:
    """Write the power-vs-time figure of ``m`` to ``path`` (PNG).

    Raises:
        ValueError: the measurement has no power trace (``unavailable`` or a model without samples).
    """
    if not m.power_trace:
        reason = m.unavailable.get("peak_power_w") or f"source {m.source} recorded no samples"
        raise ValueError(f"measurement on {m.platform!r} has no power trace: {reason}")
    plt = pyplot()

    path = Path(path)
    ts = [t for t, _ in m.power_trace]
    ws = [w for _, w in m.power_trace]
    fig, ax = plt.subplots(figsize=(8.0, 4.2), dpi=120)
    phases = m.meta.get("phases") if isinstance(m.meta, dict) else None
    if phases:
        for name, span in phases.items():
            if isinstance(span, (list, tuple)) and len(span) == 2 and span[1] > span[0]:
                ax.axvspan(span[0], span[1], color=PHASE_COLORS.get(name, "#eeeeee"), alpha=0.7, lw=0,
                           label=PHASE_LABELS.get(name, name))
    else:
        window = run_window(m)
        if window:
            ax.axvspan(*window, color=PHASE_COLORS["latency"], alpha=0.7, lw=0, label="run")
    ax.plot(ts, ws, color="#08519c", lw=1.2, marker="." if len(ts) < 80 else None, ms=3, label="power")
    if m.idle_power_w is not None:
        ax.axhline(m.idle_power_w, color="0.3", ls="--", lw=1.0, label=f"idle {m.idle_power_w:.3g} W")
    else:
        reason = m.unavailable.get("idle_power_w", "not measured")
        ax.text(0.01, 0.97, f"no idle line: {reason}", transform=ax.transAxes, fontsize=7, va="top", color="0.3")
    t_peak, w_peak = peak_sample(m)
    ax.plot([t_peak], [w_peak], marker="v", color="#cb181d", ms=8, ls="none", label=f"peak {w_peak:.3g} W")
    right = t_peak > ts[0] + 0.8 * (ts[-1] - ts[0])
    ax.annotate(f"{w_peak:.3g} W", (t_peak, w_peak), textcoords="offset points", xytext=(-6 if right else 6, 6),
                ha="right" if right else "left", fontsize=8, color="#cb181d")
    ax.set_xlabel("time since start of idle window (s)")
    ax.set_ylabel("power (W)")
    ax.set_ylim(bottom=0, top=max(ws + [m.idle_power_w or 0.0]) * 1.15 or 1.0)
    ax.set_xlim(min(ts + [0.0]), max(ts))
    energy = f"{m.energy_j:.3g} J/batch" if m.energy_j is not None else "energy n/a"
    above = f" ({m.energy_above_idle_j:.3g} J above idle)" if m.energy_above_idle_j is not None and m.idle_power_w is not None else ""
    head = title or f"{m.platform} · {m.device} · {m.mode} · batch {m.batch_size}×{m.seq_len}"
    ident = f"arch {arch_hash} · " if arch_hash else ""
    ax.set_title(f"{head}\n{ident}latency {m.latency_s * 1e3:.3g} ms/batch · {energy}{above} · source: {m.source}",
                 fontsize=9)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def select_traces(datasets: Sequence[PlatformData], per_platform: int = 2,
                  arch_hashes: Sequence[str] = ()) -> list[tuple[PlatformData, str, Measurement]]:
    """Measurements with a power trace to plot: ``arch_hashes`` where given, else the first
    ``per_platform`` of each dataset (first record of each architecture)."""
    chosen = []
    wanted = set(arch_hashes)
    for d in datasets:
        taken: set[str] = set()
        for h, m in d.measurements:
            if not m.power_trace or h in taken:
                continue
            if wanted and h not in wanted:
                continue
            if not wanted and len(taken) >= per_platform:
                break
            taken.add(h)
            chosen.append((d, h, m))
    return chosen


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def power_trace_section(ctx: "ReportContext") -> "Section | None":
    """Report section: one power-trace figure per selected measurement.

    Options: ``traces_per_platform`` (default 2) and ``trace_archs`` (comma-separated hashes).
    """
    from protran_tune.reporting.report import Figure, Section

    per_platform = int(ctx.options.get("traces_per_platform", 2))
    wanted = [h for h in str(ctx.options.get("trace_archs", "")).split(",") if h]
    chosen = select_traces(ctx.measurements.datasets, per_platform, wanted)
    section = Section("Power traces (Figs. 2 and 3)")
    if not chosen:
        section.text = ("No power trace in these files (the original ProTran files keep only per-architecture "
                        "values; records measured with `--no-trace` drop the trace).")
        return section
    for d, h, m in chosen:
        path = ctx.figure_path(f"power_trace_{_slug(d.label)}_{h}.png")
        plot_power_trace(m, path, arch_hash=h)
        peak = f"peak {m.peak_power_w:.3g} W" if m.peak_power_w is not None else "peak n/a"
        idle = f"idle {m.idle_power_w:.3g} W" if m.idle_power_w is not None else "idle n/a"
        section.figures.append(Figure(path, f"{d.label}, architecture {h}: {peak}, {idle}, source {m.source}"))
    without = [d.label for d in ctx.measurements.datasets if not any(m.power_trace for _, m in d.measurements)]
    if without:
        section.text = f"No power trace for: {', '.join(without)}."
    return section


from protran_tune.reporting.report import ReportContext, Section, register_section  # noqa: E402

register_section("power-traces", power_trace_section, order=20)
