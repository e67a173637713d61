"""The generic table format, the shipped datasets, the NAS-Bench-BERT loader and the ``datasets`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protran_tune.datasets import (
    TableError,
    list_datasets,
    load_dataset,
    load_recorded,
    protran_measurement_files,
    read_table,
    write_table,
)
from protran_tune.datasets.nasbench import architecture_from_config, config_from_architecture, load_nasbench_bert
from protran_tune.datasets.registry import dataset_path
from protran_tune.space import Architecture, get_space

NB_FILE = dataset_path("nas-bench-bert")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protran_tune.cli", *args], capture_output=True, text=True, cwd=cwd)


# ----------------------------------------------------------------------------- NAS-Bench-BERT
def test_all_500_nasbench_records_map_validate_and_round_trip() -> None:
    records = json.loads(NB_FILE.read_text())
    assert len(records) == 500
    space = get_space("flexibert2")
    for r in records:
        overrides = r["hparams"]["model_hparam_overrides"]
        arch = architecture_from_config(overrides["hidden_size"], overrides["nas_config"]["encoder_layers"])
        space.validate(arch)
        assert config_from_architecture(arch) == {"hidden_size": overrides["hidden_size"], "nas_config": overrides["nas_config"]}
        assert Architecture.from_dict(arch.to_dict()) == arch == Architecture.from_model_dict(arch.to_model_dict())
        assert space.decode(space.embed(arch)) == arch
        layer = overrides["nas_config"]["encoder_layers"][0]
        assert arch.layers[0].n_heads == layer["num_operation_heads"]
        assert arch.layers[0].feed_forward == (layer["feed_forward_dimension"],) * layer["num_feed_forward"]


def test_the_table_merges_the_nine_architectures_trained_twice() -> None:
    table = load_dataset("nas-bench-bert")
    records = json.loads(NB_FILE.read_text())
    assert len(table) == 491 and table.meta["n_records"] == 500 and len(table.meta["replicates"]) == 9
    by_id = {r["id"]: r["scores"] for r in records}
    rep = table.meta["replicates"][0]
    row = table.ids.index("+".join(rep["ids"]))
    first, second = (by_id[int(i[2:])] for i in rep["ids"])
    assert table.metrics["glue"][row] == pytest.approx((first["glue"] + second["glue"]) / 2)
    assert table.metrics["sst2"][row] == pytest.approx((first["sst"] + second["sst"]) / 2)
    assert set(table.metric_names) == {"glue", "cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"}
    assert all(s == "nas-bench-bert" for s in table.sources.values())


def test_a_bad_nasbench_record_is_named_or_skipped(tmp_path: Path) -> None:
    records = json.loads(NB_FILE.read_text())[:5]
    records[2]["hparams"]["model_hparam_overrides"]["nas_config"]["encoder_layers"][1]["operation_type"] = "XX"
    path = tmp_path / "nb.json"
    path.write_text(json.dumps(records))
    with pytest.raises(TableError, match=r"nb.json\[2\]: .*encoder_layers\[1\]: operation XX/"):
        load_nasbench_bert(path)
    table = load_nasbench_bert(path, on_error="skip")
    assert len(table) == 4 and table.skipped[0]["line"].endswith("[2]") and "XX" in table.skipped[0]["reason"]


def test_config_from_architecture_refuses_what_nasbench_cannot_express() -> None:
    with pytest.raises(ValueError, match="one op"):
        config_from_architecture(Architecture.from_dict({"layers": [{"hidden": 128, "heads": ["sa-sdp", "c-5"], "feed_forward": [512]}]}))
    with pytest.raises(ValueError, match="one hidden size"):
        config_from_architecture(Architecture.from_dict({"layers": [
            {"hidden": 128, "heads": ["sa-sdp"], "feed_forward": [512]}, {"hidden": 256, "heads": ["sa-sdp"], "feed_forward": [512]}]}))


# ----------------------------------------------------------------------------- shipped datasets
def test_every_shipped_dataset_loads_with_its_metrics_and_sources() -> None:
    names = list_datasets()
    assert {"nas-bench-bert", "protran:gpu_a100", "protran-nasbench:h200", "protran-nasbench:cpu"} <= set(names)
    assert len([n for n in names if n.startswith("protran:")]) == 7
    for name in names:
        table = load_dataset(name)
        assert len(table) > 10 and table.sources and set(table.sources) <= set(table.metric_names)
    for name in ("protran-nasbench:h200", "protran-nasbench:cpu"):
        table = load_dataset(name)
        assert len(table) == 491 and np.isfinite(table.values(["glue", "latency_s", "energy_j", "peak_power_w"])).all()
        assert table.sources["glue"] == "nas-bench-bert" and table.sources["latency_s"].startswith(name)
    assert "modelled" in load_dataset("protran-nasbench:cpu").sources["energy_j"]
    assert "measured:nvml" in load_dataset("protran-nasbench:h200").sources["energy_j"]


def test_protran_datasets_equal_the_recorded_files_in_order() -> None:
    for path in protran_measurement_files():
        recorded = load_recorded(path)
        table = load_dataset(recorded.source)
        assert table.ids == recorded.keys and table.archs == recorded.archs
        np.testing.assert_array_equal(table.values(["latency_s", "energy_j", "peak_power_w"]), recorded.Y_raw)
    assert (dataset_path("protran:gpu_a100").parent / "LICENSE").read_text().startswith("BSD 3-Clause")
    assert "CC BY" in (NB_FILE.parent / "LICENSE-CC-BY-4.0.txt").read_text()[:2000] or "Attribution" in (NB_FILE.parent / "LICENSE-CC-BY-4.0.txt").read_text()


# ----------------------------------------------------------------------------- the generic format
def _row(i: int, **metrics: float) -> dict:
    arch = Architecture.homogeneous(2, 128, 2, (512, 1024, 2048, 256)[i % 4], op=("sa-sdp", "l-dft", "c-9", "sa-wma")[i % 4])
    return {"id": f"r{i}", "architecture": arch.to_dict(),
            "metrics": metrics, "sources": {k: "test" for k in metrics}}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_a_table_round_trips_through_its_file(tmp_path: Path) -> None:
    table = load_dataset("protran-nasbench:cpu")
    out = write_table(table, tmp_path / "cpu.jsonl")
    again = read_table(out)
    assert again.ids == table.ids and again.archs == table.archs and again.sources == table.sources
    for name in table.metric_names:
        np.testing.assert_array_equal(again.metrics[name], table.metrics[name])
    np.testing.assert_array_equal(again.spread["latency_s"], table.spread["latency_s"])


@pytest.mark.parametrize("bad, message", [
    ('{"id": "x", "architecture"', "2: malformed JSON"),
    ({"id": "x", "metrics": {"glue": 1}}, "2: missing field\\(s\\) \\['architecture'\\]"),
    ({**_row(1, glue=1.0), "metrics": {"glue": "high"}}, "2: field 'metrics.glue' must be a finite number, got 'high'"),
    ({**_row(1, glue=1.0), "metrics": {"glue": float("nan")}}, "2: field 'metrics.glue' must be a finite number"),
    ({**_row(1, glue=1.0), "architecture": Architecture.homogeneous(2, 100, 2, 512).to_dict()},
     "2: field 'architecture': .*hidden=100 not allowed in space 'flexibert2'"),
    ({**_row(1, glue=1.0), "id": "r0"}, "2: field 'id': 'r0' already used"),
    ({**_row(0, glue=2.0), "id": "other"}, "2: field 'architecture': same architecture as"),
    ({**_row(1, glue=1.0), "colour": "red"}, "2: unknown field\\(s\\) \\['colour'\\]"),
])
def test_bad_rows_name_the_file_line_and_field_or_are_skipped_and_listed(tmp_path: Path, bad, message) -> None:
    path = _write(tmp_path / "t.jsonl", [_row(0, glue=1.0), bad, _row(2, glue=3.0)])
    with pytest.raises(TableError, match=f"t.jsonl:{message}"):
        read_table(path)
    table = read_table(path, on_error="skip")
    assert table.ids == ("r0", "r2") and len(table.skipped) == 1 and table.skipped[0]["line"].endswith(":2")


def test_a_row_lacking_a_target_is_an_error_naming_its_line_or_is_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [_row(0, glue=1.0, sst2=2.0), _row(1, glue=1.5), _row(2, glue=3.0, sst2=1.0)])
    table = read_table(path)
    np.testing.assert_array_equal(table.values(["glue"])[:, 0], [1.0, 1.5, 3.0])
    with pytest.raises(TableError, match="t.jsonl:2: field 'metrics.sst2' missing"):
        table.values(["sst2"])
    assert [x["id"] for x in table.lacking(["sst2"])] == ["r1"]
    assert table.having(["sst2"]).ids == ("r0", "r2")
    with pytest.raises(ValueError, match="unknown target 'glu'"):
        table.values(["glu"])


# ----------------------------------------------------------------------------- the command
def test_datasets_command_lists_describes_and_exports(tmp_path: Path) -> None:
    res = cli("datasets", "list", "--json")
    assert res.returncode == 0 and "nas-bench-bert" in json.loads(res.stdout)
    res = cli("datasets", "info", "nas-bench-bert", "--json")
    info = json.loads(res.stdout)
    assert info["name"] == "nas-bench-bert" and info["records"] == 491 and "glue" in info["metrics"]
    assert info["sources"]["glue"] == "nas-bench-bert"
    res = cli("datasets", "export", "protran:gpu_a100", "--out", str(tmp_path / "a100.jsonl"))
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "a100.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 239 and set(first) == {"id", "architecture", "metrics", "sources"}
    assert set(first["metrics"]) == {"latency_s", "energy_j", "peak_power_w"}
    assert read_table(tmp_path / "a100.jsonl").ids == load_dataset("protran:gpu_a100").ids
    res = cli("datasets", "info", "no-such-table")
    assert res.returncode == 2 and "neither a shipped dataset" in res.stderr
    res = cli("datasets", "export", "nas-bench-bert", "--out", str(tmp_path))
    assert res.returncode == 2 and "is a directory" in res.stderr
