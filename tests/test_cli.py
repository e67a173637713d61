"""The product commands as users run them: help, exit codes, import, fit, dashboard."""

from __future__ import annotations

import json
import os
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
