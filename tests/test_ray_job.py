"""End to end: a Ray head on loopback (token auth), ``ray job submit`` of ``profile`` and of
``profile --tune``, then the study and the MLflow runs they produced. Stops only the head it started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from protran_tune.runtime import Owner, free_ports, ray_processes, stop_ray_processes
from protran_tune.tracking.records import METRIC_NAMES

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.ray, pytest.mark.slow]
AGENT_PORT_FLAGS = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                    "--metrics-export-port", "--ray-client-server-port")


@pytest.fixture()
def ray_head():
    if not (BIN / "ray").exists():
        pytest.skip("the ray CLI is not installed")
    temp_dir = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # short: Ray's socket paths are length-limited
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard, *agent_ports = free_ports(2 + len(AGENT_PORT_FLAGS))  # distinct: Ray refuses a port twice
    try:
        start = subprocess.run(
            [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--temp-dir", temp_dir,
             "--num-cpus", "2", "--resources", json.dumps({"platform:cpu": 1}), "--disable-usage-stats",
             # Ray's agents default to fixed ports (52365, ...): free ones, so other Rays on the machine don't clash
             *[arg for flag, port in zip(AGENT_PORT_FLAGS, agent_ports) for arg in (flag, str(port))]],
            env=env, capture_output=True, text=True, timeout=120)
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield {"env": env, "dashboard": f"http://127.0.0.1:{dashboard}", "gcs_port": gcs, "temp_dir": temp_dir}
    finally:
        stop_ray_processes(temp_dir, grace_s=3.0)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert ray_processes(temp_dir) == []


def submit(head: dict, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """``ray job submit ... -- protran-tune profile ...``; retried while the head's job agent starts."""
    deadline = time.time() + 60
    while True:
        res = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", head["dashboard"], "--working-dir", str(workdir), "--",
             "protran-tune", "profile", "--ray-address", "auto", "--quiet", *args],
            env=head["env"], capture_output=True, text=True, timeout=300)
        if "No available agent" not in res.stderr or time.time() > deadline:
            return res
        time.sleep(2)


def test_ray_job_submit_profile_and_tune(ray_head, tmp_path: Path):
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "README").write_text("working dir of the test job\n")
    storage, tracking = f"sqlite:///{tmp_path}/protran.db", f"sqlite:///{tmp_path}/mlflow.db"
    common = ["--storage", storage, "--mlflow-uri", tracking, "--seq-len", "16", "--max-repeats", "5",
              "--latency-budget", "0.5"]
    # the head listens on loopback only, and refuses a client without the token
    out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    gcs = [line for line in out.splitlines() if f":{ray_head['gcs_port']} " in line]
    assert gcs and all("127.0.0.1" in line for line in gcs), gcs
    no_token = {**ray_head["env"], "RAY_AUTH_TOKEN": "wrong-token"}
    denied = subprocess.run([str(BIN / "ray"), "job", "list", "--address", ray_head["dashboard"]],
                            env=no_token, capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0

    job = submit(ray_head, workdir, "--study", "job-al", "--budget", "4", "--seed-samples", "2",
                 "--test-samples", "2", *common, "--report-dir", str(tmp_path / "report"))
    assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout[-3000:] + job.stderr[-3000:]
    tune_job = submit(ray_head, workdir, "--tune", "--study", "job-tune", "--budget", "2", "--seed-samples", "2",
                      "--test-samples", "2", *common, "--no-report")
    assert tune_job.returncode == 0 and "succeeded" in tune_job.stdout, tune_job.stdout[-3000:] + tune_job.stderr[-3000:]

    for name, n in (("job-al", 4), ("job-al.holdout", 2), ("job-tune", 2), ("job-tune.holdout", 2)):
        study = optuna.load_study(study_name=name, storage=storage)
        done = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(done) == n, name
        assert study.metric_names == METRIC_NAMES
        for t in done:
            m = t.user_attrs["measurement"]
            assert m["platform"] == "cpu" and m["seq_len"] == 16 and m["batch_size"] == 1
            assert m["source"].startswith(("measured:", "modelled:"))
            assert t.values[0] == pytest.approx(m["latency_s"])
    assert optuna.load_study(study_name="job-tune", storage=storage).user_attrs["engine"] == "ray-tune"
    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'trial'")
    assert sorted(runs["tags.protran.study"].value_counts().items()) == [("job-al", 4), ("job-al.holdout", 2),
                                                                         ("job-tune", 2), ("job-tune.holdout", 2)]
    assert set(runs["tags.protran.platform"]) == {"cpu"} and (runs["status"] == "FINISHED").all()
    for plot in ("power_trace.png", "pairwise_distance.png", "learning_curve.png", "predicted_vs_real.png"):
        assert (tmp_path / "report" / plot).exists(), plot


def test_profile_starts_and_stops_its_own_local_ray_on_loopback(tmp_path: Path):
    """Default path: no address -> the command starts a private Ray (127.0.0.1, token auth) and stops it."""
    tests_dir = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(tests_dir) + os.pathsep + env.get("PYTHONPATH", "")
    before = set(Path("/tmp").glob("ptray-*"))
    res = subprocess.run(
        [sys.executable, "-m", "protran_tune.cli", "profile", "--plugin", "synthetic_platform", "--platform",
         "synthetic-test", "--study", "local", "--budget", "4", "--seed-samples", "2", "--test-samples", "2",
         "--no-report", "--quiet", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.splitlines()[-1])
    assert result["n_measured"] == 4 and result["n_test"] == 2
    study = optuna.load_study(study_name="local", storage=f"sqlite:///{tmp_path}/protran.db")
    # measured in a platform actor of the local Ray, whose node address is loopback
    nodes = [t.user_attrs["node"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(nodes) == 4 and {n["node_ip"] for n in nodes} == {"127.0.0.1"}
    # the private Ray is gone: its temp dir removed, none of its processes left
    after = set(Path("/tmp").glob("ptray-*"))
    assert after <= before


def test_profile_tune_is_the_same_search_held_out_set_convergence_and_report(tmp_path: Path):
    """``profile --tune`` on a local Ray: the held-out set, the learning curve, the stop at convergence and the
    report of the ask/tell loop; Ray Tune's own console output (and its vanishing results path) left out."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-m", "protran_tune.cli", "profile", "--tune", "--plugin", "synthetic_platform", "--platform",
         "synthetic-test", "--study", "tuned", "--budget", "8", "--seed-samples", "2", "--test-samples", "2",
         "--threshold", "0.9", "--report-dir", "rep", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.splitlines()[-1])
    # converged once the surrogate could be scored (4 measured, 2 held out), well before the budget of 8
    assert result["stop_reason"] == "converged" and result["converged"] and result["n_test"] == 2
    assert result["n_measured"] == 4 and [p["n_samples"] for p in result["curve"]] == [4]
    assert result["samples_to_convergence"] == {"latency_s": 4, "energy_j": 4, "peak_power_w": 4}
    assert result["report_dir"] == "rep"
    for name in ("summary.md", "learning_curve.png", "predicted_vs_real.png", "measurements.jsonl"):
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
    assert len((tmp_path / "rep" / "measurements.jsonl").read_text().splitlines()) == 6
    assert "View detailed results" not in res.stdout + res.stderr and "Configuration for experiment" not in res.stderr
    assert "profile tuned: [1/10] held-out" in res.stderr and "profile tuned: active learning" in res.stderr
    assert "Heartbeat of storage" not in res.stderr  # Tune's asks are heartbeat by the profile itself
    storage = f"sqlite:///{tmp_path}/protran.db"
    study = optuna.load_study(study_name="tuned", storage=storage)
    owners = {t.user_attrs.get("owner") for t in study.get_trials()}
    assert len(owners) == 1 and Owner.parse(owners.pop()).alive() is False  # every Tune trial owned by the profile
    assert study.user_attrs["engine"] == "ray-tune" and study.user_attrs["curve"] == result["curve"]
    assert [t.user_attrs["phase"] for t in study.get_trials(states=(TrialState.COMPLETE,))] == ["seed"] * 2 + ["active"] * 2
    assert len(optuna.load_study(study_name="tuned.holdout", storage=storage).get_trials(states=(TrialState.COMPLETE,))) == 2
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'trial'")
    assert sorted(runs["tags.protran.study"].value_counts().items()) == [("tuned", 4), ("tuned.holdout", 2)]


def test_profile_tune_records_failed_measurements_and_stops_after_max_failures(tmp_path: Path):
    """``profile --tune`` on a platform whose every measurement fails: each failure is a FAIL trial with its reason
    (not a Ray Tune error), and ``--max-failures`` stops the search with exit 1 and the reason, as the ask/tell loop."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-m", "protran_tune.cli", "profile", "--tune", "--plugin", "synthetic_platform", "--platform",
         "synthetic-test", "--platform-option", "fail_every=1", "--study", "failing", "--budget", "8",
         "--seed-samples", "2", "--test-samples", "2", "--max-failures", "3", "--no-report", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]
    result = json.loads(res.stdout.splitlines()[-1])
    assert result["stop_reason"] == "failures" and result["n_measured"] == 0 and result["n_failed"] == 1
    assert "protran-tune profile: stopped: 3 measurements in a row failed (max_failures=3)" in res.stderr
    assert "TuneError" not in res.stderr
    storage = f"sqlite:///{tmp_path}/protran.db"
    (trial,) = optuna.load_study(study_name="failing", storage=storage).get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"].startswith("MeasurementError: ")
