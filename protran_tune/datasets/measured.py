"""Tables of measurements: ``measure`` records as a table, and a table joined with another by architecture.

:func:`table_from_records` turns ``protran-tune measure`` records (one platform, one workload) into a
:class:`~protran_tune.datasets.table.Table` with, per architecture, the hardware targets per sequence
(``latency_s``, ``energy_j``, ``energy_above_idle_j``, ``peak_power_w``; a value the platform could not
measure is absent, never 0) and their relative spreads (``latency_s``: IQR / median of the timed
iterations; ``energy_j``: the energy window's sub-window spread). Each metric's source is
``<name> (<measurement source>)``, e.g. ``protran-nasbench:h200 (measured:nvml)`` or
``protran-nasbench:cpu (modelled:cpu-time)``. Repeated records of one architecture: the median.
:func:`join_tables` joins two tables on equal architectures, keeping the rows of the first.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protran_tune.datasets.table import Table, table_from_rows
from protran_tune.objectives.targets import ENERGY, ENERGY_ABOVE_IDLE, LATENCY, PEAK_POWER
from protran_tune.space import Architecture

#: latency and peak power are measured with a sensor; energy may be modelled (the meter's source says)
_MEASURED_WITH_LATENCY = (LATENCY.name,)


def _values(m: Any) -> dict[str, float | None]:
    return {LATENCY.name: m.latency_per_sequence_s, ENERGY.name: m.energy_per_sequence_j,
            ENERGY_ABOVE_IDLE.name: m.energy_above_idle_per_sequence_j, PEAK_POWER.name: m.peak_power_w}


def table_from_records(paths: Sequence[str | Path], *, name: str, meta: dict[str, Any] | None = None) -> Table:
    """A table of the ok records of ``measure`` output files (see module docstring)."""
    from protran_tune.platforms.measurement import Measurement
    from protran_tune.platforms.records import read_records

    groups: dict[str, list[Any]] = {}
    archs: dict[str, Architecture] = {}
    for path in paths:
        for _, rec in read_records(path):
            if rec.get("status") != "ok" or rec.get("measurement") is None:
                continue
            arch = Architecture.from_dict(rec["architecture"])
            key = arch.to_json()
            archs[key] = arch
            groups.setdefault(key, []).append(Measurement.from_dict(rec["measurement"]))
    rows = []
    workloads = set()
    for key, ms in groups.items():
        workloads.add((ms[0].platform, ms[0].device, ms[0].mode, ms[0].batch_size, ms[0].seq_len))
        metrics, sources, spread = {}, {}, {}
        for metric in (LATENCY.name, ENERGY.name, ENERGY_ABOVE_IDLE.name, PEAK_POWER.name):
            vals = [v for v in (_values(m)[metric] for m in ms) if v is not None and math.isfinite(v)]
            if not vals:
                continue
            metrics[metric] = statistics.median(vals)
            src = "measured:timer" if metric in _MEASURED_WITH_LATENCY else ms[0].source
            sources[metric] = f"{name} ({src})"
        lat = [m.latency_iqr_s / m.latency_s for m in ms if m.latency_s > 0]
        spread[LATENCY.name] = statistics.median(lat)
        en = [m.energy_spread_rel for m in ms if m.energy_spread_rel is not None]
        if en and ENERGY.name in metrics:
            spread[ENERGY.name] = statistics.median(en)
        rows.append((f"{name}:{archs[key].content_hash()}", {"id": archs[key].content_hash(), "architecture": archs[key].to_dict(),
                     "metrics": metrics, "sources": sources, "spread": spread}))
    if len(workloads) > 1:
        raise ValueError(f"records of more than one platform or workload: {sorted(workloads)}")
    info = dict(zip(("platform", "device", "mode", "batch_size", "seq_len"), next(iter(workloads)))) if workloads else {}
    return table_from_rows(rows, name=name, meta={**info, **(meta or {})})


def join_tables(left: Table, right: Table, *, name: str, meta: dict[str, Any] | None = None) -> Table:
    """Rows of ``left`` (its ids and order) with the metrics of both tables, joined on equal architectures.

    Rows of ``left`` without a match in ``right`` keep only ``left``'s metrics; metric names present in
    both are an error.
    """
    common = set(left.metrics) & set(right.metrics)
    if common:
        raise ValueError(f"tables {left.name!r} and {right.name!r} both have metric(s) {sorted(common)}")
    idx = [right.index_of(a) for a in left.archs]
    metrics = dict(left.metrics)
    spread = dict(left.spread)
    for k, col in right.metrics.items():
        metrics[k] = np.array([col[i] if i is not None else np.nan for i in idx])
    for k, col in right.spread.items():
        spread[k] = np.array([col[i] if i is not None else np.nan for i in idx])
    return Table(name=name, ids=left.ids, archs=left.archs, metrics=metrics, sources={**left.sources, **right.sources},
                 spread=spread, meta={**left.meta, **right.meta, **(meta or {}), "joined": [left.name, right.name]})

