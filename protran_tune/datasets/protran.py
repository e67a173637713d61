"""Recorded ProTran measurement files: loading with validation (the replay pool).

A file (``results_<device>_b<batch>_r<runs>.json``, shipped as datasets ``protran:<device>``, see
``files/protran/README.md``) is a JSON object
keyed by an md5 of the model; each value holds ``model_dict``, ``model_type``, ``embedding`` (a
string of the 37-dim ProTran embedding) and ``performance`` (``latency`` s, ``energy`` J per sequence,
``peak_power`` W). Insertion order is the original query order (the first 16 records are the shared
Latin-hypercube seed) and is kept. A ``<stem>.max_values.json`` beside the file (``max_latency``,
``max_energy``, ``max_peak_power``: twice the maximum of the 16 seed records, the normaliser the
original loop used) is read into ``recorded_normaliser``.

Every record is checked: the model_dict parses to an :class:`~protran_tune.space.Architecture` of the
space, its embedding equals the recorded one, the measurements are finite and positive, keys are
unique and no architecture appears twice. A bad record raises ``ValueError`` naming the file and the
key (``on_error="raise"``, the default) or is skipped and listed in ``skipped`` with the reason
(``on_error="skip"``); it is never dropped silently.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from protran_tune.objectives.targets import HARDWARE_TARGETS, get_target
from protran_tune.space import Architecture, get_space

#: the keys of a record's ``performance`` object, in the order of :data:`HARDWARE_TARGETS`
PERFORMANCE_KEYS: tuple[str, ...] = ("latency", "energy", "peak_power")
ON_ERROR = ("raise", "skip")
if TYPE_CHECKING:
    from protran_tune.datasets.table import Table

_NAME = re.compile(r"^results_(?P<device>.+)_b(?P<batch>\d+)_r(?P<runs>\d+)$")


@dataclass(frozen=True)
class RecordedDataset:
    """A validated recorded measurement file.

    Attributes:
        path: the file.
        device: device name from the file name (``gpu_a100``, ...), else the file stem.
        batch_size: batch size from the file name (``None`` if it does not follow the pattern).
        runs: repeats from the file name (``None`` likewise).
        keys: record keys in file (= original query) order, valid records only.
        archs: the architectures, same order.
        embeddings: ``(n, embedding_dim)`` int64 ProTran embeddings.
        Y_raw: ``(n, 3)`` per-sequence latency (s), energy (J) and peak power (W).
        model_types: the recorded ``model_type`` of each record.
        skipped: ``[{"key": ..., "reason": ...}]`` of records left out (``on_error="skip"``).
        space: name of the design space the embeddings belong to.
        recorded_normaliser: ``(3,)`` the original loop's normaliser (s, J, W) from ``<stem>.max_values.json``,
            ``None`` without that file.
    """

    path: Path
    device: str
    batch_size: int | None
    runs: int | None
    keys: tuple[str, ...]
    archs: tuple[Architecture, ...]
    embeddings: np.ndarray
    Y_raw: np.ndarray
    model_types: tuple[str, ...]
    skipped: tuple[dict[str, str], ...] = ()
    space: str = "flexibert2"
    recorded_normaliser: np.ndarray | None = None
    _index: dict[tuple[int, ...], int] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def normaliser(self) -> np.ndarray:
        """``(3,)`` maximum of each target over the dataset (the normaliser of ``Y``)."""
        return self.Y_raw.max(axis=0)

    @property
    def Y(self) -> np.ndarray:
        """``(n, 3)`` targets divided by their maximum over the dataset (values in (0, 1])."""
        return self.Y_raw / self.normaliser

    def index_of(self, arch_or_embedding: Architecture | np.ndarray) -> int | None:
        """Row of an architecture (or embedding) in the file, or ``None``."""
        if isinstance(arch_or_embedding, Architecture):
            e = get_space(self.space).embed(arch_or_embedding)
        else:
            e = np.asarray(arch_or_embedding, dtype=np.int64)
        return self._index.get(tuple(int(v) for v in e))

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "device": self.device,
            "batch_size": self.batch_size,
            "runs": self.runs,
            "n_records": len(self),
            "normaliser": dict(zip(HARDWARE_TARGETS, self.normaliser.tolist())),
            "skipped": list(self.skipped),
        }

    @property
    def source(self) -> str:
        """``protran:<device>``: the name of this file's numbers in tables and results."""
        return f"protran:{self.device}"

    def to_table(self) -> "Table":
        """The file as a generic :class:`~protran_tune.datasets.table.Table` (file order kept; metrics
        ``latency_s``, ``energy_j``, ``peak_power_w`` per sequence)."""
        from protran_tune.datasets.table import Table

        meta: dict[str, Any] = {}
        if self.recorded_normaliser is not None:
            meta["recorded_normaliser"] = dict(zip(HARDWARE_TARGETS, self.recorded_normaliser.tolist()))
        return Table(
            name=self.source, ids=self.keys, archs=self.archs,
            metrics={t: self.Y_raw[:, j].copy() for j, t in enumerate(HARDWARE_TARGETS)},
            sources={t: self.source for t in HARDWARE_TARGETS}, path=self.path, skipped=self.skipped,
            meta={"device": self.device, "batch_size": self.batch_size, "runs": self.runs,
                  "citation": "S. Tuli and N. K. Jha, ProTran/EdgeTran (JHA-Lab/protran, BSD-3-Clause)", **meta},
        )


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_record(key: str, value: Any, space: Any) -> tuple[Architecture, np.ndarray, list[float], str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    missing = {"model_dict", "embedding", "performance"} - set(value)
    if missing:
        raise ValueError(f"missing field(s) {sorted(missing)}")
    try:
        arch = Architecture.from_model_dict(value["model_dict"])
        emb = space.embed(arch)
    except ValueError as exc:
        raise ValueError(f"model_dict: {exc}") from None
    recorded = value["embedding"]
    try:
        rec = json.loads(recorded) if isinstance(recorded, str) else recorded
        rec = np.asarray(rec)
        if rec.shape != emb.shape or not np.array_equal(rec, rec.astype(np.int64)):
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValueError(f"embedding must be a list of {len(emb)} integers, got {str(recorded)[:80]!r}") from None
    if not np.array_equal(rec.astype(np.int64), emb):
        diff = np.flatnonzero(rec.astype(np.int64) != emb)
        raise ValueError(
            f"recorded embedding disagrees with the model_dict at position(s) {diff.tolist()}: "
            f"recorded {rec[diff].tolist()}, model_dict gives {emb[diff].tolist()}"
        )
    perf = value["performance"]
    if not isinstance(perf, Mapping):
        raise ValueError(f"performance must be an object with {list(PERFORMANCE_KEYS)}, got {perf!r}")
    ys = []
    for name in PERFORMANCE_KEYS:
        v = perf.get(name)
        unit = get_target(name).unit
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"performance[{name!r}] must be a number ({unit}), got {v!r}")
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"performance[{name!r}] must be finite and positive ({unit}), got {v!r}")
        ys.append(float(v))
    return arch, emb, ys, str(value.get("model_type", ""))


def load_recorded(path: str | Path, space: str = "flexibert2", on_error: str = "raise") -> RecordedDataset:
    """Load and validate a recorded measurement file (see module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: malformed JSON, or (``on_error="raise"``) a bad record, naming its key;
            also when fewer than 2 valid records remain.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recorded measurement file {path} does not exist")
    try:
        data = json.loads(path.read_text(), object_pairs_hook=_reject_duplicate_keys)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid measurement file: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by model hash, got {type(data).__name__}")
    sp = get_space(space)
    keys, archs, embs, ys, types, skipped = [], [], [], [], [], []
    seen: dict[tuple[int, ...], str] = {}
    for key, value in data.items():
        try:
            arch, emb, y, mtype = _check_record(key, value, sp)
            t = tuple(int(v) for v in emb)
            if t in seen:
                raise ValueError(f"same architecture as record {seen[t]!r}")
        except ValueError as exc:
            if on_error == "raise":
                raise ValueError(f"{path.name}: record {key!r}: {exc}") from None
            skipped.append({"key": key, "reason": str(exc)})
            continue
        seen[t] = key
        keys.append(key)
        archs.append(arch)
        embs.append(emb)
        ys.append(y)
        types.append(mtype)
    if len(keys) < 2:
        raise ValueError(f"{path}: only {len(keys)} valid record(s); need at least 2 (skipped: {skipped})")
    match = _NAME.match(path.stem)
    return RecordedDataset(
        path=path,
        device=match["device"] if match else path.stem,
        batch_size=int(match["batch"]) if match else None,
        runs=int(match["runs"]) if match else None,
        keys=tuple(keys),
        archs=tuple(archs),
        embeddings=np.stack(embs).astype(np.int64),
        Y_raw=np.asarray(ys, dtype=np.float64),
        model_types=tuple(types),
        skipped=tuple(skipped),
        space=space,
        recorded_normaliser=read_max_values(path),
        _index={tuple(int(v) for v in e): i for i, e in enumerate(embs)},
    )


def read_max_values(path: str | Path) -> np.ndarray | None:
    """``(3,)`` normaliser of the measurement file ``path`` from ``<stem>.max_values.json`` (latency s,
    energy J, peak power W), or ``None`` when there is no such file; ``ValueError`` names a bad one."""
    nfile = Path(path).with_name(Path(path).stem + ".max_values.json")
    if not nfile.is_file():
        return None
    try:
        data = json.loads(nfile.read_text())
        values = [data[f"max_{name}"] for name in PERFORMANCE_KEYS]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{nfile}: expected max_latency, max_energy, max_peak_power ({exc!r})") from None
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"{nfile}: the max values must be finite positive numbers, got {values}")
    return np.asarray(values, dtype=np.float64)


def recorded_files(directory: str | Path) -> list[Path]:
    """The measurement files of a directory (``results_*.json`` without ``*.max_values.json``), sorted."""
    d = Path(directory)
    return sorted(p for p in d.glob("results_*.json") if not p.name.endswith(".max_values.json"))
