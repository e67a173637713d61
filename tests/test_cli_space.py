"""``protran-tune space`` as a user runs it (subprocess, exit codes, JSON output)."""

from __future__ import annotations

import json
import subprocess
import sys

from protran_tune.space import get_space


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "protran_tune.cli", *args], capture_output=True, text=True, input=stdin, timeout=120
    )


def test_space_info_json_has_the_paper_counts() -> None:
    out = cli("space", "info", "--space", "flexibert2", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["feed_forward_op_types"] == 258
    assert info["attention_op_types"] == 21805
    assert info["n_architectures"] == get_space("flexibert2").n_architectures
    assert info["n_architectures_sci"] == "1.686e+88"


def test_unknown_space_is_a_one_line_error_with_exit_2() -> None:
    out = cli("space", "info", "--space", "nope")
    assert out.returncode == 2
    assert "unknown design space 'nope'" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_space_embed_reads_model_dicts_and_reports_bad_lines() -> None:
    arch = get_space("flexibert2").sample(0)
    good = json.dumps(arch.to_model_dict()) + "\n" + json.dumps({"architecture": arch.to_dict()}) + "\n"
    out = cli("space", "embed", "-", stdin=good)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0] == rows[1]
    assert rows[0]["embedding"] == get_space("flexibert2").embed(arch).tolist()
    bad = good + json.dumps({"l": 1, "o": [["sa_sdp_7"]], "h": [128], "f": [[256]]}) + "\n"
    out = cli("space", "embed", "-", stdin=bad)
    assert out.returncode == 2
    assert "-:3:" in out.stderr and "head size 7" in out.stderr
