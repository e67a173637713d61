"""The generic table format: one architecture per JSON line, with any named metrics.

Each line of a table file (JSON Lines) is an object::

    {"id": "...", "architecture": <Architecture dict or ProTran model_dict>,
     "metrics": {"<name>": number, ...}, "sources": {"<name>": "...", ...},
     "spread": {"<name>": number, ...}}            # optional: relative spread of a measured metric

Metric names are target names of :mod:`protran_tune.objectives.targets` (``glue``, ``latency_s``, ...)
or any other name (kept as data; only registered targets can be asked for as objectives). ``sources``
says where each number comes from (``nas-bench-bert``, ``protran-nasbench:h200``, ...). A metric may
be absent from some rows; asking for it as a target makes those rows an error (or, with
``on_error="skip"``, skipped and listed).

Errors name the file, the line and the field; nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from protran_tune.space import Architecture, get_space

ON_ERROR = ("raise", "skip")


class TableError(ValueError):
    """A bad table row or a bad request of a table (names the file, line and field)."""


@dataclass(frozen=True)
class Table:
    """Architectures with named metrics, in file order.

    Attributes:
        name: dataset name (``nas-bench-bert``) or the file stem.
        ids: record ids, one per row.
        archs: the architectures.
        metrics: ``{name: (n,) float64}``, NaN where a row lacks the metric.
        sources: ``{name: source}`` per metric (the set of a metric's sources joined by ``", "``).
        spread: ``{name: (n,) float64}`` relative spreads of measured metrics (NaN where absent).
        path: the file read, if any.
        skipped: ``[{"line", "id", "reason"}]`` of rows left out (``on_error="skip"``).
        meta: free-form facts about the table (citation, batch size, ...).
        where: ``file:line`` of each row (for messages), when read from a file.
    """

    name: str
    ids: tuple[str, ...]
    archs: tuple[Architecture, ...]
    metrics: dict[str, np.ndarray]
    sources: dict[str, str] = field(default_factory=dict)
    spread: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None
    skipped: tuple[dict[str, Any], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    where: tuple[str, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.archs) != n or any(len(v) != n for v in self.metrics.values()):
            raise TableError(f"table {self.name!r}: ids, archs and metric columns must have one entry per row")
        if not self._index:
            self._index.update({a.to_json(): i for i, a in enumerate(self.archs)})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics)

    def index_of(self, arch: Architecture) -> int | None:
        """Row of ``arch`` (equal architectures: same layers, heads as a multiset), or ``None``."""
        return self._index.get(arch.to_json())

    def values(self, targets: Sequence[str]) -> np.ndarray:
        """``(n, k)`` values of the metrics ``targets``; ``TableError`` names a missing metric or row."""
        from protran_tune.objectives.targets import canonical_name

        cols = []
        for t in targets:
            name = canonical_name(t)
            if name not in self.metrics:
                raise TableError(f"table {self.name!r} has no metric {name!r}; it has {self.metric_names}")
            col = self.metrics[name]
            missing = np.flatnonzero(~np.isfinite(col))
            if len(missing):
                first = missing[0]
                at = f"{self.where[first]}: " if self.where else ""
                raise TableError(
                    f"{at}field 'metrics.{name}' missing: {len(missing)} row(s) of table {self.name!r} lack metric "
                    f"{name!r} (first: id {self.ids[first]!r}); skip them with on_error='skip' (--on-error skip)"
                )
            cols.append(col)
        return np.column_stack(cols) if cols else np.zeros((len(self), 0))

    def lacking(self, targets: Sequence[str]) -> list[dict[str, Any]]:
        """``[{"line", "id", "reason"}]`` of the rows without a value of some metric in ``targets``."""
        from protran_tune.objectives.targets import canonical_name

        out = []
        for i in range(len(self)):
            absent = [canonical_name(t) for t in targets if not math.isfinite(self.metrics.get(canonical_name(t), [np.nan] * len(self))[i])]
            if absent:
                out.append({"line": self.where[i] if self.where else None, "id": self.ids[i],
                            "reason": f"field 'metrics' lacks {absent}"})
        return out

    def having(self, targets: Sequence[str]) -> "Table":
        """The rows with a finite value of every metric in ``targets``."""
        from protran_tune.objectives.targets import canonical_name

        names = [canonical_name(t) for t in targets]
        for name in names:
            if name not in self.metrics:
                raise TableError(f"table {self.name!r} has no metric {name!r}; it has {self.metric_names}")
        keep = np.ones(len(self), dtype=bool)
        for name in names:
            keep &= np.isfinite(self.metrics[name])
        return self.take(np.flatnonzero(keep))

    def take(self, rows: Sequence[int] | np.ndarray) -> "Table":
        """A new table of the given rows (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Table(
            name=self.name, ids=tuple(self.ids[i] for i in rows), archs=tuple(self.archs[i] for i in rows),
            metrics={k: v[rows] for k, v in self.metrics.items()}, sources=dict(self.sources),
            spread={k: v[rows] for k, v in self.spread.items()}, path=self.path, skipped=self.skipped, meta=dict(self.meta),
            where=tuple(self.where[i] for i in rows) if self.where else (),
        )

    def embeddings(self, space: str = "flexibert2") -> np.ndarray:
        """``(n, embedding_dim)`` int64 ProTran embeddings of the architectures in ``space``."""
        sp = get_space(space)
        return np.stack([sp.embed(a) for a in self.archs]).astype(np.int64)

    def info(self) -> dict[str, Any]:
        """``{"name", "records", "metrics", "sources", ...}`` (what ``datasets info --json`` prints)."""
        return {
            "name": self.name, "records": len(self), "metrics": self.metric_names, "sources": dict(self.sources),
            "path": str(self.path) if self.path else None, "skipped": list(self.skipped), **self.meta,
        }

    def rows(self) -> Iterable[dict[str, Any]]:
        """Records in the table format (JSON-ready dicts), file order."""
        for i, (rid, arch) in enumerate(zip(self.ids, self.archs)):
            metrics = {k: float(v[i]) for k, v in self.metrics.items() if math.isfinite(v[i])}
            row: dict[str, Any] = {
                "id": rid, "architecture": arch.to_dict(), "metrics": metrics,
                "sources": {k: self.sources[k] for k in metrics if k in self.sources},
            }
            spread = {k: float(v[i]) for k, v in self.spread.items() if math.isfinite(v[i])}
            if spread:
                row["spread"] = spread
            yield row


# --------------------------------------------------------------------------- building and reading
def table_from_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], *, name: str, path: Path | None = None, space: str | None = "flexibert2",
    on_error: str = "raise", meta: Mapping[str, Any] | None = None,
) -> Table:
    """A :class:`Table` of ``(where, row)`` pairs (``where``: ``file:line`` for messages)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    sp = get_space(space) if space is not None else None
    ids: list[str] = []
    wheres: list[str] = []
    archs: list[Architecture] = []
    values: list[dict[str, float]] = []
    spreads: list[dict[str, float]] = []
    sources: dict[str, set[str]] = {}
    skipped: list[dict[str, Any]] = []
    seen_ids: dict[str, str] = {}
    seen_archs: dict[str, str] = {}
    for where, row in rows:
        try:
            rid, arch, metrics, srcs, spread = _check_row(row, sp)
            if rid in seen_ids:
                raise TableError(f"field 'id': {rid!r} already used at {seen_ids[rid]}")
            key = arch.to_json()
            if key in seen_archs:
                raise TableError(f"field 'architecture': same architecture as {seen_archs[key]}")
        except TableError as exc:
            if on_error == "raise":
                raise TableError(f"{where}: {exc}") from None
            skipped.append({"line": where, "id": row.get("id") if isinstance(row, Mapping) else None, "reason": str(exc)})
            continue
        seen_ids[rid] = seen_archs[key] = where
        ids.append(rid)
        wheres.append(where)
        archs.append(arch)
        values.append(metrics)
        spreads.append(spread)
        for k, s in srcs.items():
            sources.setdefault(k, set()).add(s)
    names = list(dict.fromkeys(k for v in values for k in v))
    spread_names = list(dict.fromkeys(k for v in spreads for k in v))
    return Table(
        name=name, ids=tuple(ids), archs=tuple(archs),
        metrics={k: np.array([v.get(k, np.nan) for v in values], dtype=np.float64) for k in names},
        sources={k: ", ".join(sorted(sources[k])) for k in names if k in sources},
        spread={k: np.array([v.get(k, np.nan) for v in spreads], dtype=np.float64) for k in spread_names},
        path=path, skipped=tuple(skipped), meta=dict(meta or {}), where=tuple(wheres),
    )


def _number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TableError(f"field {field_name!r} must be a finite number, got {value!r}")
    return float(value)


def _check_row(row: Any, space: Any) -> tuple[str, Architecture, dict[str, float], dict[str, str], dict[str, float]]:
    if isinstance(row, TableError):  # a reader already found this row bad
        raise row
    if not isinstance(row, Mapping):
        raise TableError(f"a row must be a JSON object, got {type(row).__name__}")
    missing = [k for k in ("id", "architecture", "metrics") if k not in row]
    if missing:
        raise TableError(f"missing field(s) {missing}")
    unknown = set(row) - {"id", "architecture", "metrics", "sources", "spread"}
    if unknown:
        raise TableError(f"unknown field(s) {sorted(unknown)}")
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise TableError(f"field 'id' must be a string or integer, got {rid!r}")
    try:
        arch = Architecture.from_dict(row["architecture"])
        if space is not None:
            space.validate(arch)
    except ValueError as exc:
        raise TableError(f"field 'architecture': {exc}") from None
    out: list[dict[str, Any]] = []
    for key, convert in (("metrics", _number), ("sources", None), ("spread", _number)):
        value = row.get(key, {})
        if not isinstance(value, Mapping):
            raise TableError(f"field {key!r} must be an object {{name: value}}, got {type(value).__name__}")
        if convert is None:
            bad = [k for k, s in value.items() if not isinstance(s, str)]
            if bad:
                raise TableError(f"field 'sources.{bad[0]}' must be a string, got {value[bad[0]]!r}")
            out.append(dict(value))
        else:
            out.append({str(k): convert(v, f"{key}.{k}") for k, v in value.items()})
    if not out[0]:
        raise TableError("field 'metrics' holds no metric")
    return str(rid), arch, out[0], out[1], out[2]


def read_table(path: str | Path, *, name: str | None = None, space: str | None = "flexibert2", on_error: str = "raise",
               meta: Mapping[str, Any] | None = None) -> Table:
    """Read a table file (JSON Lines, see module docstring); ``TableError`` names file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table file {path} does not exist")

    def rows() -> Iterable[tuple[str, Any]]:
        with path.open() as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{lineno}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{path}:{lineno}", TableError(f"malformed JSON ({exc.msg})")

    table = table_from_rows(rows(), name=name or path.stem, path=path, space=space, on_error=on_error, meta=meta)
    if len(table) == 0:
        raise TableError(f"{path}: no valid row (skipped: {list(table.skipped)[:3]})")
    return table


def write_table(table: Table, path: str | Path) -> Path:
    """Write ``table`` in the table format (atomically: a temporary file renamed over ``path``)."""
    from protran_tune.errors import check_output_path

    path = check_output_path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w") as fh:
            for row in table.rows():
                fh.write(json.dumps(row, sort_keys=False) + "\n")
    except BaseException as exc:  # a full disk, an interrupt: no half-written file left behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the file the user gave
        raise
    tmp.replace(path)
    return path
