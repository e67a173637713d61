"""Faults: ``kill -9`` of ``profile`` mid-study, then a rerun: nothing lost, nothing measured twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

TESTS = Path(__file__).resolve().parent


def profile_cmd(log: Path) -> list[str]:
    return [sys.executable, "-m", "protran_tune.cli", "profile", "--no-ray", "--quiet", "--no-report",
            "--plugin", "synthetic_platform", "--platform", "synthetic-test",
            "--platform-option", "sleep_s=0.5", "--platform-option", f"log_path={log}",
            "--study", "killed", "--budget", "9", "--seed-samples", "4", "--test-samples", "2"]


def completed(db: Path, study: str = "killed") -> int:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            row = con.execute(
                "select count(*) from trials t join studies s on t.study_id = s.study_id "
                "where s.study_name = ? and t.state = 'COMPLETE'", (study,)).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_kill_9_mid_study_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path: Path):
    log = tmp_path / "measured.log"
    env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(profile_cmd(log), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while completed(tmp_path / "protran.db") < 3 and time.time() < deadline:
            assert proc.poll() is None, "profile ended before it could be killed"
            time.sleep(0.2)
        assert completed(tmp_path / "protran.db") >= 3
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    storage = f"sqlite:///{tmp_path}/protran.db"
    before = {t.number: (t.user_attrs["arch_hash"], t.values)
              for t in optuna.load_study(study_name="killed", storage=storage).get_trials(states=(TrialState.COMPLETE,))}
    assert 3 <= len(before) < 9
    measured_before = log.read_text().splitlines()

    rerun = subprocess.run(profile_cmd(log), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    study = optuna.load_study(study_name="killed", storage=storage)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 9
    assert not study.get_trials(states=(TrialState.RUNNING,))
    # nothing lost: every trial completed before the kill is still there with the same values
    after = {t.number: (t.user_attrs["arch_hash"], t.values) for t in done}
    assert all(after[n] == v for n, v in before.items())
    # nothing twice: one COMPLETE trial per architecture; each architecture measured once, except at
    # most the one whose measurement the kill interrupted before it was recorded
    hashes = [h for h, _ in after.values()]
    assert len(set(hashes)) == len(hashes)
    calls = Counter(log.read_text().splitlines())
    assert sum(c - 1 for c in calls.values()) <= 1
    assert all(calls[h] >= 1 for h in hashes)
    assert len(measured_before) <= len(log.read_text().splitlines())
    # MLflow: exactly one finished nested run per finished trial, none half-logged
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["protran-tune"],
                              filter_string="tags.`protran.role` = 'trial' and tags.`protran.study` = 'killed'")
    finished = [t.number for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)
                and "architecture" in t.user_attrs]
    assert sorted(runs["tags.protran.trial_number"].astype(int)) == sorted(finished)
    assert set(runs["tags.protran.logged"]) == {"1"}
