"""Measurement files as platform datasets: our JSON-lines records and the original ProTran JSON files.

Two formats are read:

* **records** (``protran-tune measure`` / :class:`~protran_tune.cluster.pool.PlatformPool` output):
  one JSON object per line with ``arch_hash``, ``platform``, ``status`` and ``measurement``
  (:meth:`Measurement.to_dict`). Failed records are counted and left out. One file may hold several
  platforms or modes; each becomes its own dataset, labelled ``<platform>`` (``<platform>:training``
  for training). Repeated measurements of one architecture are reduced to their median.
* **protran** (``results_<device>_b<batch>_r<runs>.json`` of the original work): one JSON object keyed
  by model hash, values ``{"model_dict", "performance": {"latency", "energy", "peak_power"}}``, values
  per sequence. Labelled ``<device>`` from the file name (``gpu_a100``). Architectures are identified
  by :meth:`Architecture.content_hash` of their ``model_dict``, so they match our records.

Every dataset holds, per architecture, per-sequence ``latency_s``, ``energy_j`` (total: idle
included, as the original recorded it) and ``peak_power_w``; ``None`` where the platform did not
measure it. Two datasets with the same label from different files are told apart by ``@<file stem>``.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from protran_tune.datasets.protran import PERFORMANCE_KEYS
from protran_tune.objectives.targets import HARDWARE_TARGETS, get_target
from protran_tune.platforms.measurement import Measurement
from protran_tune.space import Architecture

METRICS: tuple[str, ...] = HARDWARE_TARGETS
METRIC_LABELS: dict[str, str] = {m: get_target(m).description for m in METRICS}

#: Devices of the original measurement files (``results_<device>_b..._r....json``).
PROTRAN_DEVICES: dict[str, str] = {
    "gpu_a100": "Nvidia A100 GPU",
    "cpu_m1-pro": "Apple M1 Pro CPU",
    "gpu_m1-pro": "Apple M1 Pro GPU",
    "cpu_rpi": "Raspberry Pi CPU",
    "npu_ncs": "Intel Neural Compute Stick 2",
    "cpu_jetson-nano": "Nvidia Jetson Nano CPU",
    "gpu_jetson-nano": "Nvidia Jetson Nano GPU",
}
_PROTRAN_NAME = re.compile(r"^results_(?P<device>.+)_b(?P<batch>\d+)_r(?P<runs>\d+)$")


@dataclass
class PlatformData:
    """Measurements of one platform from one file.

    Attributes:
        label: name used in figures and for ``--baseline``.
        path: the file it came from.
        kind: ``records`` or ``protran``.
        values: ``{arch_hash: {"latency_s": s, "energy_j": J, "peak_power_w": W}}`` per sequence (``None`` = not
            measured).
        measurements: ``[(arch_hash, Measurement)]`` of every ok record, in file order (records only).
        info: device, batch size, sources and counts, for the summary.
    """

    label: str
    path: Path
    kind: str
    values: dict[str, dict[str, float | None]]
    measurements: list[tuple[str, Measurement]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        device = self.info.get("device")
        return f"{self.label} ({device})" if device and device != self.label else self.label


@dataclass
class LoadedMeasurements:
    """Datasets of a set of files plus the files skipped (with the reason)."""

    datasets: list[PlatformData]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.datasets]

    def get(self, label: str) -> PlatformData:
        for d in self.datasets:
            if d.label == label:
                return d
        raise ValueError(f"unknown platform {label!r}: the measurement files hold {self.labels}")


def _finite_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite non-negative number or null, got {value!r}")
    return float(value)


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _load_protran(path: Path, data: Mapping[str, Any]) -> PlatformData:
    match = _PROTRAN_NAME.match(path.stem)
    device = match["device"] if match else path.stem
    values: dict[str, dict[str, float | None]] = {}
    for key, entry in data.items():
        where = f"{path}: record {key!r}"
        if not isinstance(entry, Mapping) or "model_dict" not in entry or "performance" not in entry:
            raise ValueError(f"{where} needs 'model_dict' and 'performance' (ProTran results format)")
        try:
            arch_hash = Architecture.from_model_dict(entry["model_dict"]).content_hash()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        perf = entry["performance"]
        if not isinstance(perf, Mapping):
            raise ValueError(f"{where}: 'performance' must be an object, got {perf!r}")
        values[arch_hash] = {m: _finite_or_none(perf.get(key), f"{where}: performance.{key}")
                             for m, key in zip(METRICS, PERFORMANCE_KEYS)}
    info = {
        "device": PROTRAN_DEVICES.get(device, device),
        "batch_size": int(match["batch"]) if match else None,
        "source": "original ProTran measurement (whole-script wall time, total power)",
        "records": len(values),
    }
    return PlatformData(label=device, path=path, kind="protran", values=values, info=info)


def _load_records(path: Path) -> list[PlatformData]:
    from protran_tune.platforms.records import read_records

    groups: dict[str, dict[str, Any]] = {}
    for lineno, record in read_records(path, repair=False, require=("status",)):  # reports never repair
        where = f"{path}:{lineno}"
        platform = record.get("platform") or "unknown"
        mode = (record.get("workload") or {}).get("mode", "inference")
        if record["status"] != "ok" or record.get("measurement") is None:
            label = platform if mode == "inference" else f"{platform}:{mode}"
            groups.setdefault(label, {"rows": {}, "measurements": [], "failed": 0})["failed"] += 1
            continue
        try:
            m = Measurement.from_dict(record["measurement"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: bad measurement ({exc})") from None
        label = m.platform if m.mode == "inference" else f"{m.platform}:{m.mode}"
        group = groups.setdefault(label, {"rows": {}, "measurements": [], "failed": 0})
        group["rows"].setdefault(record["arch_hash"], []).append(m.objectives())
        group.setdefault("target_ci_rel", set()).add((record.get("workload") or {}).get("target_ci_rel"))
        group["measurements"].append((record["arch_hash"], m))
    datasets = []
    for label, group in groups.items():
        if not group["measurements"]:
            continue
        values = {
            h: {metric: _median_or_none([r[metric] for r in rows]) for metric in METRICS}
            for h, rows in group["rows"].items()
        }
        ms = [m for _, m in group["measurements"]]
        info = {
            "device": ms[0].device,
            "batch_size": sorted({m.batch_size for m in ms}),
            "seq_len": sorted({m.seq_len for m in ms}),
            "source": ", ".join(sorted({m.source for m in ms})),
            "records": len(ms),
            "failed": group["failed"],
            # the latency precision asked for (relative 95% CI half-width), when all records asked the same
            "target_ci_rel": next(iter(group["target_ci_rel"])) if len(group["target_ci_rel"]) == 1 else None,
        }
        datasets.append(PlatformData(label, path, "records", values, group["measurements"], info))
    if not datasets:
        raise ValueError(f"{path}: no successful measurement record")
    return datasets


def load_measurement_file(path: str | Path) -> list[PlatformData]:
    """Datasets of one file (records or ProTran format); ``ValueError`` names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"measurement file {path} does not exist")
    text = path.read_text()
    if not text.strip():
        raise ValueError(f"{path}: empty file")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSON lines (or malformed: reported line by line)
    if isinstance(whole, dict) and "arch_hash" not in whole:
        if {"max_latency", "max_energy", "max_peak_power"} & set(whole):
            raise ValueError(f"{path}: a normaliser file (max values), not measurements")
        return [_load_protran(path, whole)]
    return _load_records(path)


def load_measurements(paths: Iterable[str | Path]) -> LoadedMeasurements:
    """All datasets of ``paths``; ProTran ``*.max_values.json`` normaliser files are skipped and noted.

    Labels that repeat across files get ``@<file stem>`` appended (each such dataset).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no measurement files given")
    datasets: list[PlatformData] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.name.endswith(".max_values.json"):
            skipped.append((path, "normaliser file of the original loop, not measurements"))
            continue
        datasets.extend(load_measurement_file(path))
    counts: dict[str, int] = {}
    for d in datasets:
        counts[d.label] = counts.get(d.label, 0) + 1
    for d in datasets:
        if counts[d.label] > 1:
            d.label = f"{d.label}@{d.path.stem}"
    if len({d.label for d in datasets}) != len(datasets):
        raise ValueError(f"the same platform appears twice in one file set: {[d.label for d in datasets]}")
    return LoadedMeasurements(datasets, skipped)
