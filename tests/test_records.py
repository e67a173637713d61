"""Measurement records: the one key, the one reader (writer and read-only modes), measuring into a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protran_tune.platforms import Workload, get_platform
from protran_tune.platforms.records import (
    finish_record,
    measurement_record,
    read_records,
    record_key,
    records_to_skip,
)
from protran_tune.space import get_space

import synthetic_platform  # noqa: F401  (registers "synthetic-test")

ARCHS = list(get_space("flexibert2").iter_samples(2, seed=3))
AUTO = {"mode": "inference", "batch_size": None, "seq_len": 16}


def test_record_key_is_the_requested_workload_and_the_repeat_or_what_was_measured():
    record = {"arch_hash": "h", "platform": "cpu", "workload": AUTO, "repeat": 0,
              "measurement": {"mode": "inference", "batch_size": 64, "seq_len": 16}}
    assert record_key(record) == "h|cpu|inference|None|16"  # a rerun with --batch-size auto finds it
    assert record_key({**record, "repeat": 2}) == "h|cpu|inference|None|16|r2"
    # what a study de-duplicates on (the ``record_key`` trial attr): the measured batch, repeats folded
    assert record_key({**record, "repeat": 2}, measured=True) == "h|cpu|inference|64|16"
    failed = {"arch_hash": "h", "platform": "cpu", "workload": {"batch_size": 8, "seq_len": 16}, "measurement": None}
    assert record_key(failed, measured=True) == "h|cpu|inference|8|16"


def test_writer_mode_drops_a_torn_last_line_and_bad_lines_are_errors(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"arch_hash": "a"}\n{"arch_hash": "b"}\n{"arch_ha')
    warnings: list[str] = []
    assert [(n, r["arch_hash"]) for n, r in read_records(out, warn=warnings.append)] == [(1, "a"), (2, "b")]
    assert out.read_text() == '{"arch_hash": "a"}\n{"arch_hash": "b"}\n' and warnings[0].endswith("dropped it")
    out.write_text('{"arch_hash": "a"}\n{"arch_hash": "c"}')  # complete, only its newline missing
    assert [r["arch_hash"] for _, r in read_records(out)] == ["a", "c"]
    assert out.read_text().endswith('"c"}\n')
    out.write_text('{"arch_hash": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2: not JSON .*use another output file"):
        read_records(out)


def test_read_only_mode_never_changes_the_file(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    text = '{"arch_hash": "a", "status": "ok"}\n{"arch_hash": "b", "status": "ok"}\n{"arch_ha'
    out.write_text(text)
    warnings: list[str] = []
    records = read_records(out, repair=False, warn=warnings.append, require=("status",))
    assert [r["arch_hash"] for _, r in records] == ["a", "b"] and warnings[0].endswith("left it out")
    assert out.read_text() == text  # a writer may still be finishing that line
    out.write_text(text[: -len('{"arch_ha')].rstrip("\n"))
    assert [r["arch_hash"] for _, r in read_records(out, repair=False)] == ["a", "b"]
    assert not out.read_text().endswith("\n")


def test_required_fields_and_a_missing_file(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"arch_hash": "a", "status": "ok"}\n{"arch_hash": "b"}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2: not a measurement record \(needs 'arch_hash' and 'status'\)$"):
        read_records(out, repair=False, require=("status",))
    assert read_records(tmp_path / "absent.jsonl") == []
    with pytest.raises(FileNotFoundError, match="absent.jsonl does not exist"):
        read_records(tmp_path / "absent.jsonl", missing_ok=False)


def test_measured_and_failed_records_are_appended_and_resumed_on(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    workload = Workload(batch_size=2, seq_len=16)
    platform = get_platform("synthetic-test", fail_hashes=(ARCHS[1].content_hash(),))
    with open(out, "a") as fh:
        ok = finish_record(measurement_record(platform, ARCHS[0], workload, include_trace=False), fh)
        failed = finish_record(measurement_record(platform, ARCHS[1], workload, repeat=1), fh)
    assert ok["status"] == "ok" and ok["measurement"]["power_trace"] == [] and ok["finished_at"]
    assert failed["status"] == "failed" and failed["error"].startswith("MeasurementError: CUDA out of memory")
    assert [json.loads(line) for line in out.read_text().splitlines()] == [ok, failed]
    assert set(records_to_skip(out)) == {record_key(ok), record_key(failed)}
    assert set(records_to_skip(out, retry_failed=True)) == {record_key(ok)}


def test_a_report_reads_a_file_a_writer_is_still_appending_to_without_changing_it(tmp_path: Path):
    from protran_tune.reporting import load_measurement_file

    out = tmp_path / "r.jsonl"
    platform = get_platform("synthetic-test")
    with open(out, "a") as fh:
        for arch in ARCHS:
            finish_record(measurement_record(platform, arch, Workload(batch_size=2, seq_len=16)), fh)
        fh.write(json.dumps({"arch_hash": "next", "status": "ok"})[:12])  # the next line, half written
    text = out.read_text()
    (dataset,) = load_measurement_file(out)
    assert sorted(dataset.values) == sorted(a.content_hash() for a in ARCHS) and dataset.label == "synthetic-test"
    assert out.read_text() == text


def test_measuring_core_and_cluster_package_import_without_ray():
    code = (
        "import sys; import protran_tune.platforms, protran_tune.platforms.records, protran_tune.reporting; "
        "import protran_tune.cluster, protran_tune.cluster.raycompat; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
