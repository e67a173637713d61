"""Measurement records: the JSON lines that ``measure`` and the cluster pool append and resume on.

A record is ``{"arch_hash", "architecture", "platform", "status": "ok"|"failed", "error", "repeat",
"measurement": Measurement.to_dict() | None, "workload", "finished_at"}``. Writers append one line per
architecture (:func:`finish_record`: flushed and fsynced), so a killed run loses at most the line it was
writing; :func:`read_records` repairs that for writers and skips it for read-only readers (reports).
Needs neither Ray nor Optuna nor MLflow.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from protran_tune.platforms.base import Platform, Workload
from protran_tune.space import Architecture

#: ``(line number, record)`` as :func:`read_records` returns them.
NumberedRecord = tuple[int, dict[str, Any]]
_HINT = "; use another output file"  # a writer's file holds something else


def record_key(record: Mapping[str, Any], *, measured: bool = False) -> str:
    """Identity of a record: ``"<arch_hash>|<platform>|<mode>|<batch_size>|<seq_len>"``, plus ``"|r<repeat>"``
    for a repeat after the first.

    By default the workload is the one requested (``record["workload"]``), so a rerun with
    ``--batch-size auto`` finds its records: what ``measure`` and the pool resume on. ``measured=True``
    takes mode, batch size and sequence length from the record's measurement where it has one and leaves
    the repeat out: what a study de-duplicates on (``import``, the ``record_key`` trial attr).
    """
    w = dict(record.get("workload") or {})
    m = record.get("measurement")
    if measured and m:
        w = {k: m.get(k) for k in ("mode", "batch_size", "seq_len")}
    fields = (record.get("arch_hash"), record.get("platform"), w.get("mode") or "inference", w.get("batch_size"),
              w.get("seq_len"))
    key = "|".join(map(str, fields))
    repeat = 0 if measured else record.get("repeat") or 0
    return f"{key}|r{repeat}" if repeat else key


def read_records(
    path: str | Path,
    *,
    repair: bool = True,
    warn: Callable[[str], None] | None = None,
    require: Sequence[str] = (),
    missing_ok: bool = True,
) -> list[NumberedRecord]:
    """``(line number, record)`` of every record of a JSON-lines results file, in file order.

    Args:
        repair: a writer's mode (``measure``, the pool): a last line cut short by a crash mid-write is
            removed from the file (its architecture counts as not measured) and a complete last record
            without its newline gets one. ``False``: read-only (reports, ``fit``, ``import``): the file is
            never changed and a torn last line, which a running writer may still be finishing, is skipped.
        warn: receives a message when a torn last line was dropped or skipped.
        require: fields every record must have besides ``arch_hash`` (a string).
        missing_ok: an absent file is ``[]``; else ``FileNotFoundError``.

    Raises:
        ValueError: a malformed line or a record without a required field, naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise FileNotFoundError(f"measurement file {path} does not exist")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = _end_of_file(path, data, repair, warn)
    records = []
    fields = ("arch_hash", *require)
    for lineno, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg}){_HINT if repair else ''}") from None
        if not (isinstance(record, dict) and isinstance(record.get("arch_hash"), str) and all(f in record for f in require)):
            needs = " and ".join(repr(f) for f in fields)
            raise ValueError(f"{path}:{lineno}: not a measurement record (needs {needs}){_HINT if repair else ''}")
        records.append((lineno, record))
    return records


def _end_of_file(path: Path, data: bytes, repair: bool, warn: Callable[[str], None] | None) -> bytes:
    """``data`` with its unterminated last line finished (complete record) or dropped (torn write); with
    ``repair`` the file is changed the same way."""
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except json.JSONDecodeError:
        if repair:
            with open(path, "r+b") as fh:  # torn final write: drop it
                fh.truncate(cut)
        if warn is not None:
            done = "dropped it" if repair else "left it out"
            warn(f"{path}: the last line is truncated (a writer was killed mid-line or is still writing); {done}")
        return data[:cut]
    if repair:
        with open(path, "ab") as fh:  # complete record without its newline: finish the line
            fh.write(b"\n")
    return data + b"\n"


def measurement_record(platform: Platform, arch: Architecture, workload: Workload, *, repeat: int = 0,
                       include_trace: bool = True) -> dict[str, Any]:
    """Measure ``arch`` and return its record (one JSON line; :func:`finish_record` adds ``finished_at``).

    ``error`` is ``None`` or ``"<ExceptionType>: message"``. A :class:`MeasurementError` (out of memory,
    sensor unreadable, ...) or any other exception raised by the platform gives a failed record instead
    of propagating, so one architecture never stops a batch.
    """
    record: dict[str, Any] = {
        "arch_hash": arch.content_hash(), "architecture": arch.to_dict(), "platform": platform.name,
        "status": "ok", "error": None, "repeat": repeat, "measurement": None, "workload": workload.to_dict(),
    }
    try:
        record["measurement"] = platform.measure(arch, workload).to_dict(include_trace=include_trace)
    except Exception as exc:  # noqa: BLE001 - MeasurementError, or a platform bug: recorded, the batch goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    return record


def finish_record(record: dict[str, Any], fh: IO[str] | None = None) -> dict[str, Any]:
    """Stamp ``finished_at`` (UTC) on ``record`` and, with ``fh``, append it as one line, flushed and
    fsynced (a killed writer loses at most that line); returns it."""
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if fh is not None:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return record


def records_to_skip(path: str | Path, retry_failed: bool = False,
                    warn: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Records of ``path`` a resumed run does not measure again, by :func:`record_key`: every ok record,
    and failed ones unless ``retry_failed`` (a torn last line is cut off the file first)."""
    return {record_key(r): r for _, r in read_records(path, warn=warn)
            if r.get("status") == "ok" or not retry_failed}
