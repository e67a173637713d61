"""Measurement records: the JSON lines that ``measure`` and :class:`PlatformPool` append and resume on.

A record is ``{"arch_hash", "architecture", "platform", "status": "ok"|"failed", "error",
"measurement": Measurement.to_dict() | None, "workload", "repeat"}``. Writers append one line per
architecture and flush it, so a killed run loses at most the line it was writing; readers repair that.
Needs neither Ray nor Optuna nor MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping


def record_key(record: Mapping[str, Any]) -> tuple:
    """Identity a rerun resumes on: ``(arch_hash, platform, mode, batch_size, seq_len, repeat)``."""
    w = record.get("workload") or {}
    return (record.get("arch_hash"), record.get("platform"), w.get("mode"), w.get("batch_size"),
            w.get("seq_len"), record.get("repeat", 0))


def read_records(path: str | Path, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every record of a JSON-lines results file, in file order (``[]`` if it is absent).

    A last line cut short by a crash mid-write is removed from the file (its architecture counts as not
    measured); a complete last record without its newline gets one. Any other malformed line is a
    ``ValueError`` naming the line. ``warn`` receives a message when the file was repaired.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
            with open(path, "ab") as fh:  # complete record without its newline: finish the line
                fh.write(b"\n")
        except json.JSONDecodeError:
            with open(path, "r+b") as fh:  # torn final write: drop it
                fh.truncate(cut)
            if warn is not None:
                warn(f"dropped a truncated last line of {path} (a writer was killed mid-line)")
        data = path.read_bytes()
    records = []
    for lineno, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("arch_hash"), str):
                raise ValueError("no arch_hash")
        except (json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: not a measurement record ({exc}); use another output file") from None
        records.append(record)
    return records
