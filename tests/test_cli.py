"""The product commands as users run them: help, exit codes, import, fit, dashboard."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest

from protran_tune.cli import main
from protran_tune.runtime import free_port

TESTS = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "protran_tune.cli"]


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_records(path: Path, n: int = 10, platform: str = "synthetic-test", fail: int = 1) -> list[dict]:
    """``measure``-format records from the synthetic platform (the last ``fail`` ones failed)."""
    import synthetic_platform
    from protran_tune.platforms import Workload
    from protran_tune.space import get_space

    plat = synthetic_platform.SyntheticPlatform()
    wl = Workload(batch_size=2, seq_len=32)
    records = []
    for i, arch in enumerate(get_space("flexibert2").iter_samples(n, seed=3)):
        ok = i < n - fail
        m = plat.measure(arch, wl) if ok else None
        records.append({"arch_hash": arch.content_hash(), "architecture": arch.to_dict(), "platform": platform,
                        "status": "ok" if ok else "failed", "error": None if ok else "MeasurementError: out of memory",
                        "measurement": m.to_dict() if m else None, "workload": wl.to_dict()})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


@pytest.mark.parametrize("command", ["profile", "fit", "import", "dashboard"])
def test_help(command: str, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: protran-tune {command}" in out and "--storage" in out


@pytest.mark.parametrize("args, message", [
    (["profile", "--no-ray", "--storage", "sqlite:///no/such/dir/p.db"], "directory"),
    (["profile", "--no-ray", "--storage", "redis://localhost/0"], "scheme 'redis' is not supported"),
    (["profile", "--no-ray", "--mlflow-uri", "file:./mlruns"], "file store is not supported"),
    (["profile", "--no-ray", "--mlflow-uri", "http://127.0.0.1:{port}"], "unreachable"),
    (["profile", "--no-ray", "--platform", "nonesuch"], "unknown platform 'nonesuch'"),
    (["profile", "--no-ray", "--budget", "4"], "budget=4 must be >= seed_samples=16"),
    (["profile", "--ray-address", "127.0.0.1:{port}", "--storage", "sqlite:///p.db"], "could not connect to Ray cluster"),
    (["import", "missing.jsonl"], "does not exist"),
    (["fit", "--study", "nonesuch"], "study 'nonesuch' not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = str(free_port())
    code = main([a.replace("{port}", port) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if "protran-tune" in line]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--budget", "-3"])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_import_is_idempotent_and_tracks_every_record(tmp_path: Path):
    records = write_records(tmp_path / "m.jsonl")
    first = run_cli("import", "m.jsonl", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1]) == {"added": {"measurements-synthetic-test": 10}, "skipped": 0,
                                                          "failed_records": 1}
    second = run_cli("import", "m.jsonl", "--json", cwd=tmp_path)
    assert json.loads(second.stdout.splitlines()[-1]) == {"added": {}, "skipped": 10, "failed_records": 0}
    study = optuna.load_study(study_name="measurements-synthetic-test", storage=f"sqlite:///{tmp_path}/protran.db")
    assert len(study.trials) == 10
    ok = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert {t.user_attrs["arch_hash"] for t in ok} == {r["arch_hash"] for r in records[:-1]}
    first_ok = next(t for t in ok if t.user_attrs["arch_hash"] == records[0]["arch_hash"])
    m = records[0]["measurement"]
    np.testing.assert_allclose(first_ok.values, [m["latency_s"] / 2, m["energy_j"] / 2, m["peak_power_w"]])
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed[0].user_attrs["fail_reason"] == "MeasurementError: out of memory"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'trial'")
    assert len(runs) == 10 and (runs["status"] == "FAILED").sum() == 1


def test_fit_logs_a_loadable_pyfunc_model_with_test_metrics(tmp_path: Path):
    records = write_records(tmp_path / "m.jsonl", n=14, fail=0)
    res = run_cli("fit", "--measurements", "m.jsonl", "--surrogate", "bdt", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [report] = json.loads(res.stdout.splitlines()[-1])
    assert report["n_train"] + report["n_test"] == 14 and report["n_test"] >= 2
    assert set(k for k in report["metrics"] if k.startswith("test_mse_")) == {
        "test_mse_latency_s", "test_mse_energy_j", "test_mse_peak_power_w"}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    run = mlflow.get_run(report["run_id"])
    assert run.data.tags["protran.role"] == "surrogate"
    assert run.data.metrics["test_mse_latency_s"] == pytest.approx(report["metrics"]["test_mse_latency_s"])
    model = mlflow.pyfunc.load_model(f"runs:/{report['run_id']}/surrogate")
    import pandas as pd

    frame = pd.DataFrame({"architecture": [json.dumps(r["architecture"]) for r in records[:3]]})
    pred = model.predict(frame)
    assert list(pred.columns) == ["latency_s", "latency_s_std", "energy_j", "energy_j_std", "peak_power_w", "peak_power_w_std"]
    truth = np.array([r["measurement"]["latency_s"] / 2 for r in records[:3]])
    assert np.all(pred["latency_s"].to_numpy() > 0)
    assert np.all(np.abs(np.log(pred["latency_s"].to_numpy() / truth)) < np.log(3))  # trained on them: same scale


def test_fit_takes_surrogate_parameters(tmp_path: Path):
    write_records(tmp_path / "m.jsonl", n=14, fail=0)
    args = ["--surrogate-param", "kernel=linear+matern", "--surrogate-param", "encoder=cost", "--surrogate-param", "maxiter=20"]
    res = run_cli("fit", "--measurements", "m.jsonl", "--surrogate", "gp", *args, "--json", "--out", "models", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [report] = json.loads(res.stdout.splitlines()[-1])
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    assert json.loads(mlflow.get_run(report["run_id"]).data.params["surrogate_params"]) == {
        "kernel": "linear+matern", "encoder": "cost", "maxiter": 20}
    import pickle

    with (tmp_path / "models" / "surrogate-gp.pkl").open("rb") as fh:
        saved = pickle.load(fh)
    assert saved.surrogate.get_params()["kernel"] == "linear+matern" and saved.surrogate.get_params()["maxiter"] == 20
    bad = run_cli("fit", "--measurements", "m.jsonl", "--surrogate", "bdt", "--surrogate-param", "kernel=rbf",
                  "--no-mlflow", cwd=tmp_path)
    assert bad.returncode == 2 and "kernel" in bad.stderr


def test_dashboard_serves_the_study_on_loopback(tmp_path: Path):
    write_records(tmp_path / "m.jsonl", n=4, fail=0)
    assert run_cli("import", "m.jsonl", "--no-mlflow", cwd=tmp_path).returncode == 0
    port = free_port()
    proc = subprocess.Popen([*CLI, "dashboard", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        body = None
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        [summary] = body["study_summaries"]
        assert summary["study_name"] == "measurements-synthetic-test"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=10) as r:
            detail = json.loads(r.read())
        assert detail["objective_names"] == ["latency_s", "energy_j", "peak_power_w"]
        assert len(detail["trials"]) == 4
        out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        listening = [line for line in out.splitlines() if f":{port} " in line]
        assert listening and all("127.0.0.1" in line for line in listening)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


# --------------------------------------------------------------------------- bad input, before anything starts
CHECK_BEFORE_START = r"""
import contextlib, io, json, sys
from protran_tune.cli import main

results = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(["profile", *args])
        except SystemExit as exc:  # argparse
            code = exc.code
    results.append({"code": code, "err": err.getvalue()})
print(json.dumps({"results": results, "ray_imported": "ray" in sys.modules}))
"""


def test_profile_refuses_bad_input_before_starting_ray_or_storage(tmp_path: Path):
    (tmp_path / "a-file").write_text("not a folder\n")
    cases = [
        (["--surrogate", "nosuch"], "invalid choice: 'nosuch'"),
        (["--surrogate-param", "foo=bar"], "unknown parameter(s) ['foo'] for surrogate 'bdt'"),
        (["--space", "nosuch.yaml"], "cannot read design space file nosuch.yaml"),
        (["--workers", "0"], "expected a positive integer, got 0"),
        (["--timeout", "-5"], "expected a positive number, got -5"),
        (["--latency-budget", "0"], "expected a positive number, got 0"),
        (["--study", ""], "--study must be a non-empty name"),
        (["--platform-option", "foo=1"], "platform 'cpu' takes no option foo"),
        (["--acquisition", "variance-reduction"], "variance-reduction needs a GP surrogate"),
        (["--tune", "--no-ray"], "--tune runs the search on Ray Tune"),
        (["--report-dir", "a-file"], "--report-dir a-file is a file"),
    ]
    res = subprocess.run([sys.executable, "-c", CHECK_BEFORE_START, json.dumps([a for a, _ in cases])], cwd=tmp_path,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.splitlines()[-1])
    for (args, message), got in zip(cases, out["results"]):
        assert got["code"] == 2, (args, got)
        lines = [line for line in got["err"].strip().splitlines() if "error:" in line]
        assert len(lines) == 1 and message in lines[0], (args, got["err"])
        assert "Traceback" not in got["err"]
    assert not out["ray_imported"]  # no Ray was started (nor imported) for any of them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no study storage, MLflow database or report


# --------------------------------------------------------------------------- outputs
def test_outputs_that_cannot_be_written_fail_at_once_in_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archs = tmp_path / "archs.jsonl"
    assert main(["space", "sample", "-n", "1", "--seed", "0"]) == 0
    archs.write_text(capsys.readouterr().out)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x\n")
    write_records(tmp_path / "m.jsonl", n=4, fail=0)
    cases = [
        (["measure", "--platform", "cpu", "--archs", str(archs), "--out", "folder"], "--out folder is a directory"),
        (["measure", "--platform", "cpu", "--archs", str(archs), "--out", "a-file/x.jsonl"], "cannot create directory a-file"),
        (["report", "-m", "m.jsonl", "--out", "a-file"], "--out a-file is a file"),
        (["fit", "--measurements", "m.jsonl", "--no-mlflow", "--out", "a-file/models"], "cannot create it"),
        (["datasets", "export", "protran:cpu_rpi", "--out", "/dev/null"], "--out /dev/null is not a regular file"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "archs.jsonl", "folder", "m.jsonl"]


def test_a_write_that_fails_midway_is_one_line_and_leaves_no_partial_file(tmp_path: Path):
    import resource

    def small_files() -> None:  # files above 2 kB cannot be written (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    res = subprocess.run([*CLI, "datasets", "export", "protran:cpu_rpi", "--out", "rpi.jsonl"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert res.returncode == 2
    assert res.stderr.strip() == "protran-tune datasets: error: File too large: rpi.jsonl", res.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_closed_pipe_ends_the_output_quietly(tmp_path: Path):
    script = f"{sys.executable} -m protran_tune.cli space sample -n 3000 --method random | head -1; echo ${{PIPESTATUS[0]}}"
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    first, status = res.stdout.splitlines()
    assert "architecture" in json.loads(first)
    assert status == "141"  # as a Unix tool killed by SIGPIPE
    assert res.stderr == ""


def test_dashboard_serves_beyond_loopback_only_when_allowed(capsys):
    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "without authentication" in err and "--allow-remote" in err and len(err.strip().splitlines()) == 1
    # allowed: a clear warning first (the bad storage then stops it before anything listens)
    assert main(["dashboard", "--host", "0.0.0.0", "--allow-remote", "--storage", "redis://localhost/0"]) == 2
    err = capsys.readouterr().err
    assert "warning: serving on 0.0.0.0:8080 without authentication" in err and "scheme 'redis'" in err
    from protran_tune.commands.dashboard import is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "10.1.2.3", "example.org")] == [
        True, True, True, True, False, False, False]


# --------------------------------------------------------------------------- progress, notes and report of profile
def profile_cli(tmp_path: Path, study: str, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("profile", "--plugin", "synthetic_platform", "--platform", "synthetic-test", "--no-ray", "--study",
                   study, "--budget", "5", "--seed-samples", "4", "--test-samples", "2", *extra, cwd=tmp_path)


def test_profile_prints_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path):
    res = profile_cli(tmp_path, "lines", "--no-report")
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("profile lines: ")]
    archs = [line for line in lines if re.match(r"profile lines: \[\d+/7\] (held-out|seed|active) [0-9a-f]{16}: ", line)]
    assert len(archs) == 7 and "latency_s" in archs[0] and "[modelled:synthetic-test]" in archs[0]
    assert [line.split(": ")[1].split(":")[0] for line in lines if line not in archs] == [
        "held-out set", "seed", "active learning"]  # one line per phase, in order
    assert [int(re.search(r"\[(\d+)/7\]", a).group(1)) for a in archs] == list(range(1, 8))
    # MLflow's table creation and pyfunc type-hint warning no longer show
    assert "Creating initial MLflow database tables" not in res.stderr and "Updating database tables" not in res.stderr
    assert "type hints" not in res.stderr
    quiet = profile_cli(tmp_path, "quiet", "--no-report", "--quiet")
    assert quiet.returncode == 0 and "profile quiet:" not in quiet.stderr


def test_profile_summary_and_report_say_what_the_numbers_are(tmp_path: Path):
    res = profile_cli(tmp_path, "notes", "--target-ci", "0.005", "--report-dir", "rep")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.splitlines()
    assert out[0].startswith("study notes: 5 measured, 0 failed, 2 held out; stop: budget; held-out test MSE")
    assert re.search(r"samples to convergence latency_s (\d+|not reached), energy_j", out[0])
    assert out[1] == ("note: energy and peak power of all 7 architectures are modelled, not measured "
                      "(modelled:synthetic-test: no energy sensor readable on this device; the model's parameters are "
                      "in each measurement's meta): read them as estimates")
    assert out[2].startswith("note: latency missed its precision target on 7 of 7 architectures: the 95% CI "
                             "half-width of the median stayed above the 0.5% target")
    assert out[3] == "report: rep"
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "## What the numbers are" in summary and "missed its precision target on 7 of 7" in summary
    assert "{'" not in summary and "samples to convergence (held-out test MSE below 0.003): latency_s" in summary
    assert "Platforms relative to a baseline" not in summary  # one platform: nothing to compare
    saved = json.loads((tmp_path / "rep" / "profile_result.json").read_text())
    assert saved["notes"] == [line[len("note: "):] for line in out[1:3]]


# --------------------------------------------------------------------------- one name per thing
@pytest.mark.parametrize("command", ["profile", "fit", "replay"])
def test_surrogate_choices_are_the_available_surrogates(command: str, capsys, monkeypatch):
    from protran_tune.surrogates import available_surrogates

    monkeypatch.setenv("COLUMNS", "400")  # no line break inside a name such as protran-adaboost

    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"surrogate: {', '.join(available_surrogates())}" in help_text


def test_platform_option_is_one_name_with_option_as_alias(tmp_path: Path, capsys):
    plugin = "synthetic_platform"  # tests/ is on the path
    assert main(["space", "sample", "-n", "2", "--seed", "1"]) == 0
    (tmp_path / "archs.jsonl").write_text(capsys.readouterr().out)
    for flag in ("--platform-option", "--option", "-o"):
        log = tmp_path / f"{flag.strip('-')}.log"
        args = ["measure", "--plugin", plugin, "--platform", "synthetic-test", "--archs", str(tmp_path / "archs.jsonl"),
                "--out", str(tmp_path / f"{flag.strip('-')}.jsonl"), "--quiet", flag, f"log_path={log}"]
        assert main(args) == 0
        assert len(log.read_text().splitlines()) == 2, flag  # the option reached the platform
    with pytest.raises(SystemExit):
        main(["measure", "--help"])
    assert "--platform-option KEY=VALUE, --option KEY=VALUE, -o KEY=VALUE" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["bench_replay.py", "bench_al_vs_random.py"])
def test_benchmarks_use_the_product_names_with_the_old_ones_as_aliases(script: str):
    res = subprocess.run([sys.executable, str(TESTS.parent / "benchmarks" / script), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    for new, old in (("--surrogate", "--regressor"), ("--surrogate-params", "--regressor-params"),
                     ("--acquisition", "--strategy")):
        assert re.search(rf"{new} \S+, {old} \S+", text), (new, text)
