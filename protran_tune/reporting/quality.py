"""What the numbers are: which values are modelled rather than measured, which are missing, and how many
latencies missed their precision target.

:func:`measurement_notes` turns a set of :class:`~protran_tune.platforms.measurement.Measurement` s into
plain sentences; ``profile`` prints them under its final summary and stores them in its result, and the
``measurement-quality`` report section lists them per platform, so a modelled energy or a noisy latency
is never read as a precise measurement.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Sequence

from protran_tune.objectives.targets import ENERGY, PEAK_POWER
from protran_tune.platforms.measurement import Measurement

#: ``meta["stopped_by"]`` values of the measuring protocol that mean the CI target was not reached.
MISSED_PRECISION = ("max_repeats", "time_budget")


def _percent(x: float) -> str:
    return f"{x * 100:.3g}%"


def missed_precision(m: Measurement, target_ci_rel: float | None = None) -> bool:
    """Whether the latency of ``m`` stopped before its 95% CI half-width reached the target.

    The protocol records why it stopped repeating (``meta["stopped_by"]``: ``ci``, ``max_repeats`` or
    ``time_budget``); without that record the CI is compared with ``target_ci_rel`` (unknown: ``False``).
    """
    stopped_by = m.meta.get("stopped_by") if isinstance(m.meta, dict) else None
    if stopped_by is not None:
        return stopped_by in MISSED_PRECISION
    return target_ci_rel is not None and m.latency_ci_rel > target_ci_rel


def _source_notes(ms: Sequence[Measurement]) -> list[str]:
    notes = []
    n = len(ms)
    for source, k in sorted(Counter(m.source for m in ms).items()):
        share = f"all {n}" if k == n else f"{k} of {n}"
        if source.startswith("modelled:"):
            notes.append(f"energy and peak power of {share} architectures are modelled, not measured ({source}: no "
                         "energy sensor readable on this device; the model's parameters are in each measurement's "
                         "meta): read them as estimates")
        elif source.startswith("replay:"):
            notes.append(f"the values of {share} architectures are replayed from a recorded file ({source}), "
                         "not measured in this run")
    return notes


def _missing_notes(ms: Sequence[Measurement]) -> list[str]:
    notes = []
    for target, attr in ((ENERGY, "energy_j"), (PEAK_POWER, "peak_power_w")):
        missing = [m for m in ms if getattr(m, attr) is None]
        if missing:
            reason = missing[0].unavailable.get(attr, "no reason recorded")
            notes.append(f"{target.description} ({target.name}) is missing on {len(missing)} of {len(ms)} "
                         f"architectures: {reason}")
    return notes


def _precision_note(ms: Sequence[Measurement], target_ci_rel: float | None) -> list[str]:
    missed = [m for m in ms if missed_precision(m, target_ci_rel)]
    if not missed:
        return []
    cis = [m.latency_ci_rel for m in missed]
    target = f"the {_percent(target_ci_rel)} target" if target_ci_rel is not None else "its target"
    return [f"latency missed its precision target on {len(missed)} of {len(ms)} architectures: the 95% CI "
            f"half-width of the median stayed above {target} (median ±{_percent(statistics.median(cis))}, worst "
            f"±{_percent(max(cis))}); more repeats (--max-repeats, --latency-budget) or a quieter machine "
            "tighten it"]


def measurement_notes(measurements: Sequence[Measurement], target_ci_rel: float | None = None) -> list[str]:
    """Sentences on what ``measurements`` are: modelled or replayed values, missing quantities, and latencies
    that missed the precision target ``target_ci_rel`` (relative 95% CI half-width); empty when all is measured
    and precise."""
    ms = list(measurements)
    if not ms:
        return []
    return _source_notes(ms) + _missing_notes(ms) + _precision_note(ms, target_ci_rel)


def quality_section(ctx: Any) -> Any:
    """Report section: :func:`measurement_notes` per platform of the measurement records (``None`` if none)."""
    from protran_tune.reporting.report import Section

    lines = []
    for d in ctx.measurements.datasets:
        notes = measurement_notes([m for _, m in d.measurements], d.info.get("target_ci_rel"))
        lines += [f"- {d.label}: {note}." for note in notes]
    if not lines:
        return None
    return Section("What the numbers are", "\n".join(lines))


from protran_tune.reporting.report import register_section  # noqa: E402

register_section("measurement-quality", quality_section, order=10)
