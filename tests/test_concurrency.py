"""Concurrent ``profile`` processes on one study, process owners, the storage lock and Ray debris (issue 12).

Real processes throughout: ``profile`` runs as separate ``python -m protran_tune.cli`` processes on one
sqlite Optuna storage and one sqlite MLflow store; owners are real live, finished or reused processes;
``kill -9`` is a real SIGKILL. Measurements come from the ``synthetic-test`` platform, which appends each
measured architecture hash to a log file, so duplicate measurements are counted, not inferred.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from protran_tune.runtime import (
    RAY_OWNER_FILE,
    Owner,
    process_start,
    ray_processes,
    reap_ray_debris,
    sqlite_lock,
)

TESTS = Path(__file__).resolve().parent
ENV = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")},
       "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def profile_cmd(log: Path, study: str, budget: int, *extra: str, sleep_s: float = 0.3) -> list[str]:
    return [sys.executable, "-m", "protran_tune.cli", "profile", "--quiet", "--no-report",
            "--plugin", "synthetic_platform", "--platform", "synthetic-test",
            "--platform-option", f"sleep_s={sleep_s}", "--platform-option", f"log_path={log}",
            "--study", study, "--budget", str(budget), "--seed-samples", "3", "--test-samples", "3",
            "--threshold", "1e-12", *extra]


def count_trials(db: Path, study: str, state: str = "COMPLETE") -> int:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            row = con.execute("select count(*) from trials t join studies s on t.study_id = s.study_id "
                              "where s.study_name = ? and t.state = ?", (study, state)).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def dead_owner() -> Owner:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(socket.gethostname(), proc.pid, process_start(proc.pid))  # readable until reaped
    proc.wait()
    return owner


@pytest.fixture()
def sleeper():
    """A live process of this host (stopped at the end)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- owners and the lock
def test_owner_tells_live_dead_reused_and_remote_processes(sleeper):
    me = Owner.current()
    assert me.alive() is True and Owner.parse(str(me)) == me
    live = Owner(socket.gethostname(), sleeper.pid, process_start(sleeper.pid))
    assert live.alive() is True
    assert dead_owner().alive() is False
    assert Owner(live.host, live.pid, (live.start or 0) + 1).alive() is False  # the pid now names another process
    assert Owner("another-host", 1, 1).alive() is None  # unknown here: a heartbeat decides
    assert Owner.parse(f"{live.host}:{live.pid}") == Owner(live.host, live.pid)  # the older host:pid form
    assert Owner.parse("no owner") is None and Owner.parse(None) is None


def test_sqlite_lock_excludes_the_other_processes_of_the_host(tmp_path: Path):
    import fcntl

    uri = f"sqlite:///{tmp_path}/protran.db"
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom protran_tune.runtime import sqlite_lock\n"
         f"with sqlite_lock({uri!r}):\n    print('locked', flush=True)\n    sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert child.stdout.readline().strip() == "locked"
        with open(tmp_path / "protran.db.lock", "a") as fh:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            child.stdin.write("release\n")
            child.stdin.flush()
            assert child.wait(timeout=60) == 0
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        child.kill()
        child.wait()
    with sqlite_lock(uri), sqlite_lock(uri):  # re-entrant within a process
        pass
    with sqlite_lock("sqlite://"), sqlite_lock("postgresql://u@h/db"):  # nothing to lock: no-ops
        pass


# --------------------------------------------------------------------------- concurrent profiles
@pytest.mark.slow
@pytest.mark.parametrize("n, start", [(3, "together"), (2, "staggered")])
def test_concurrent_profiles_crash_never_measure_twice_and_hold_the_budget(tmp_path: Path, n: int, start: str):
    """Issue 12.2: 2-3 ``profile`` processes on one study: 0 crashes, 0 duplicates, the budget holds."""
    log, db, budget = tmp_path / "measured.log", tmp_path / "protran.db", 8
    procs = []
    for i in range(n):
        if start == "staggered" and procs:  # the next one joins a study in progress (its tables exist)
            deadline = time.time() + 240
            while count_trials(db, "c.holdout") < 1 and time.time() < deadline and procs[0].poll() is None:
                time.sleep(0.2)
        procs.append(subprocess.Popen(profile_cmd(log, "c", budget, sleep_s=1.0 if start == "staggered" else 0.3),
                                      cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=540) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        assert "stop: budget" in out, out
    # 0 duplicates: each architecture measured once; the budget holds exactly
    calls = Counter(log.read_text().split())
    assert max(calls.values()) == 1
    storage = f"sqlite:///{db}"
    main = optuna.load_study(study_name="c", storage=storage)
    holdout = optuna.load_study(study_name="c.holdout", storage=storage)
    done = main.get_trials(states=(TrialState.COMPLETE,))
    held = holdout.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == budget and len(held) == 3 and len(calls) == budget + 3
    assert not main.get_trials(states=(TrialState.RUNNING, TrialState.FAIL))
    assert not holdout.get_trials(states=(TrialState.RUNNING, TrialState.FAIL))
    assert {t.user_attrs["arch_hash"] for t in done + held} == set(calls)
    # MLflow: one parent run per study, one finished run per trial, nothing deleted under a live writer
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'trial'")
    assert sorted(runs["tags.protran.study"].value_counts().items()) == [("c", budget), ("c.holdout", 3)]
    assert set(runs["tags.protran.logged"]) == {"1"} and (runs["status"] == "FINISHED").all()
    parents = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'study'")
    assert sorted(parents["tags.protran.study"]) == ["c", "c.holdout"]


# --------------------------------------------------------------------------- Ray debris
def fake_ray_dir(root: Path, name: str, owner: Owner | None, session_pid: int | None = None) -> Path:
    path = root / f"ptray-{name}"
    (path / "logs").mkdir(parents=True)
    if owner is not None:
        (path / RAY_OWNER_FILE).write_text(str(owner))
    if session_pid is not None:
        (path / f"session_2026-01-01_00-00-00_000000_{session_pid}").mkdir()
    return path


def test_reaping_stops_and_removes_only_debris_of_dead_owners(tmp_path: Path, sleeper):
    live = Owner(socket.gethostname(), sleeper.pid, process_start(sleeper.pid))
    dead = fake_ray_dir(tmp_path, "dead", dead_owner())
    # a stand-in for a Ray agent left behind: holds a log file of the folder open, as Ray's agents do
    agent = subprocess.Popen([sys.executable, "-c", f"f = open({str(dead / 'logs' / 'agent.out')!r}, 'a')\n"
                              "import time\ntime.sleep(600)"])
    kept = {fake_ray_dir(tmp_path, "live", live), fake_ray_dir(tmp_path, "unknown", None),
            fake_ray_dir(tmp_path, "session-live", None, session_pid=sleeper.pid)}
    old = fake_ray_dir(tmp_path, "session-dead", None, session_pid=dead_owner().pid)
    try:
        deadline = time.time() + 60
        while agent.pid not in ray_processes(dead) and time.time() < deadline:  # until it has opened the file
            time.sleep(0.1)
        assert ray_processes(dead) == [agent.pid]
        assert sorted(reap_ray_debris(tmp_path)) == sorted([dead, old])
        assert agent.wait(timeout=60) is not None  # stopped by the reaper
        assert set(tmp_path.glob("ptray-*")) == kept
    finally:
        agent.kill()
        agent.wait()


def owned_ray_dir(pid: int) -> Path | None:
    for path in Path("/tmp").glob("ptray-*"):
        owner = Owner.parse((path / RAY_OWNER_FILE).read_text().strip()) if (path / RAY_OWNER_FILE).exists() else None
        if owner is not None and owner.pid == pid and owner.host == socket.gethostname():
            return path
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_kill_9_leaves_ray_debris_that_the_next_start_reaps(tmp_path: Path):
    """Issue 12.3: ``kill -9`` of ``profile`` leaves Ray processes and ``/tmp/ptray-*``; the next start cleans them."""
    log = tmp_path / "measured.log"
    cmd = profile_cmd(log, "k", 6)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while count_trials(tmp_path / "protran.db", "k.holdout") < 1 and time.time() < deadline:
            assert proc.poll() is None, "profile ended before it could be killed"
            time.sleep(0.2)
        debris = owned_ray_dir(proc.pid)
        assert debris is not None
        ray_pids = [Owner(socket.gethostname(), p, process_start(p)) for p in ray_processes(debris)]
        assert ray_pids
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert debris.is_dir()  # the killed process could not clean up

    rerun = subprocess.run([*cmd, "--json"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=540)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not debris.exists()
    assert not [o for o in ray_pids if o.alive()]
    assert owned_ray_dir(os.getpid()) is None
    result = json.loads(rerun.stdout.splitlines()[-1])
    assert result["n_measured"] == 6 and result["n_test"] == 3
    calls = Counter(log.read_text().split())
    assert sum(c - 1 for c in calls.values()) <= 1  # at most the measurement the kill interrupted


def test_free_ports_are_distinct_and_bindable() -> None:
    """Ports drawn together never repeat (Ray refuses one port for two components), and each can be bound."""
    import socket

    from protran_tune.runtime import LOOPBACK, free_ports

    ports = free_ports(32)
    assert len(set(ports)) == 32
    for port in ports:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))
