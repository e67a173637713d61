"""``protran-tune measure`` end to end, in a subprocess, on the real CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protran_tune.space import Architecture

A = Architecture.homogeneous(2, 128, 2, 256)
B = Architecture.homogeneous(2, 128, 4, 256, op="c-5")
WIDE = Architecture.homogeneous(2, 256, 2, 256)
FAST = ["--batch-size", "2", "--seq-len", "16", "--min-repeats", "3", "--max-repeats", "6", "--target-ci", "0.2",
        "--warmup", "1", "-o", "energy=model", "-o", "idle_window_s=0.2", "-o", "energy_window_s=0.3"]

PLUGIN = '''
"""A CPU platform whose hidden-256 models ask for a petabyte: a real allocation failure."""
import torch
from protran_tune.models import build_model
from protran_tune.platforms import register_platform
from protran_tune.platforms.torch_platforms import CPUPlatform


class Hungry(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(30522, 8)

    def forward(self, ids, **kw):
        return self.embed(ids).mean() + torch.empty(2**50, dtype=torch.uint8)[0]


def factory(arch, workload):
    if arch.layers[0].hidden == 256:
        return Hungry()
    return build_model(arch, task="classification")


@register_platform("cpu-small-memory")
class SmallMemoryCPU(CPUPlatform):
    def __init__(self, **kw):
        super().__init__(model_factory=factory, **kw)
'''


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protran_tune.platforms.worker", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_measure_writes_records_and_resumes(tmp_path: Path) -> None:
    archs = tmp_path / "archs.jsonl"
    archs.write_text(
        json.dumps(A.to_dict()) + "\n"  # an Architecture dict
        + "# a comment line\n\n"
        + json.dumps({"name": "conv", "architecture": B.to_model_dict()}) + "\n"  # a wrapped ProTran model_dict
    )
    out = tmp_path / "res" / "out.jsonl"
    first = _run("--platform", "cpu", "--archs", str(archs), "--out", str(out), *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    recs = _lines(out)
    assert [r["arch_hash"] for r in recs] == [A.content_hash(), B.content_hash()]
    for r in recs:
        assert set(r) >= {"arch_hash", "architecture", "platform", "status", "error", "measurement", "workload"}
        assert r["status"] == "ok" and r["error"] is None and r["platform"] == "cpu"
        assert Architecture.from_dict(r["architecture"]).content_hash() == r["arch_hash"]
        m = r["measurement"]
        assert m["source"] == "modelled:cpu-time" and m["batch_size"] == 2 and m["latency_s"] > 0
        assert r["workload"]["seq_len"] == 16 and r["workload"]["mode"] == "inference"
    assert "[2/2]" in first.stderr

    # a killed run leaves a truncated line: it is dropped, and nothing is measured again
    with open(out, "a") as fh:
        fh.write('{"arch_hash": "0123456789abcdef", "archi')
    second = _run("--platform", "cpu", "--archs", str(archs), "--out", str(out), *FAST, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 to measure" in second.stderr and "truncated" in second.stderr
    assert _lines(out) == recs

    # a different mode is a different record
    third = _run("--platform", "cpu", "--archs", str(archs), "--out", str(out), "--mode", "training", "--limit", "1", *FAST, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert [r["workload"]["mode"] for r in _lines(out)] == ["inference", "inference", "training"]


def test_failed_measurement_is_recorded_and_exit_code_is_1(tmp_path: Path) -> None:
    plugin = tmp_path / "small_memory.py"
    plugin.write_text(PLUGIN)
    archs = tmp_path / "archs.jsonl"
    archs.write_text(json.dumps(WIDE.to_dict()) + "\n" + json.dumps(A.to_dict()) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["--plugin", str(plugin), "--platform", "cpu-small-memory", "--archs", str(archs), "--out", str(out), *FAST]
    run = _run(*args, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    failed, good = _lines(out)
    assert failed["status"] == "failed" and failed["measurement"] is None
    assert "MeasurementError" in failed["error"] and "out of memory" in failed["error"]
    assert good["status"] == "ok"
    assert "FAILED" in run.stderr
    # resuming skips both, still reports the recorded failure
    again = _run(*args, cwd=tmp_path)
    assert again.returncode == 1 and "0 to measure" in again.stderr
    assert len(_lines(out)) == 2


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ('{"layers": [}\n', [], "archs.jsonl:1: malformed JSON"),
        (json.dumps({"layers": [{"hidden": 128, "heads": ["x-1"], "feed_forward": [256]}]}) + "\n", [], "unknown head op"),
        (json.dumps(Architecture.homogeneous(2, 100, 2, 256).to_dict()) + "\n", [], "hidden=100 not allowed"),
        (json.dumps(A.to_dict()) + "\n", ["--platform", "tpu"], "unknown platform"),
        (json.dumps(A.to_dict()) + "\n", ["--batch-size", "many"], "--batch-size"),
        ("\n", [], "holds no architecture"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, content: str, extra: list[str], message: str) -> None:
    archs = tmp_path / "archs.jsonl"
    archs.write_text(content)
    args = ["--platform", "cpu", "--archs", str(archs), "--out", str(tmp_path / "o.jsonl"), *extra]
    run = _run(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o.jsonl").exists() or not (tmp_path / "o.jsonl").read_text()


def test_recorded_dataset_file_is_accepted(tmp_path: Path) -> None:
    from protran_tune.commands.measure import read_architectures

    data = {"h1": {"model_dict": A.to_model_dict(), "performance": {}}, "h2": {"model_dict": B.to_model_dict()}}
    path = tmp_path / "results_x.json"
    path.write_text(json.dumps(data, indent=1))
    assert [a.content_hash() for a in read_architectures(path)] == [A.content_hash(), B.content_hash()]
