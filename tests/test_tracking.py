"""MLflow and Optuna recording against real sqlite stores (no mocks)."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from protran_tune.platforms import Measurement
from protran_tune.runtime import Owner, open_storage, process_start
from protran_tune.space import Architecture, get_space
from protran_tune.tracking.mlflow_tracking import MlflowTracker
from protran_tune.tracking.optuna_tracking import StudyRecorder, create_study
from protran_tune.tracking.records import METRIC_NAMES, architecture_from_attr, architecture_params, objective_values

ARCHS = list(get_space("flexibert2").iter_samples(3, seed=1))


def make_measurement(platform: str = "plat-a", latency: float = 0.02, batch: int = 4, **kw) -> Measurement:
    trace = ((0.0, 10.0), (0.1, 30.0), (0.2, 35.0), (0.3, 12.0))
    fields = dict(
        platform=platform, device="dev", mode="inference", batch_size=batch, seq_len=32, repeats=12,
        latency_s=latency, latency_iqr_s=latency * 0.1, latency_ci_rel=0.02, source=f"measured:{platform}",
        energy_j=latency * 30, energy_above_idle_j=latency * 20, idle_power_w=10.0, peak_power_w=35.0,
        mean_power_w=30.0, energy_spread_rel=0.03, power_trace=trace, wall_time_s=1.5,
    )
    fields.update(kw)
    return Measurement(**fields)


@pytest.fixture()
def tracker(tmp_path: Path) -> MlflowTracker:
    return MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db", "exp")


def test_trial_run_is_nested_with_params_metrics_tags_and_artifacts(tracker: MlflowTracker, tmp_path: Path):
    parent = tracker.study_run("s1", params={"budget": 4})
    m = make_measurement()
    run_id = tracker.log_trial(study="s1", parent_run_id=parent, trial_number=0, arch=ARCHS[0], measurement=m,
                               platform="plat-a")
    run = tracker.client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["protran.arch_hash"] == ARCHS[0].content_hash()
    assert run.data.tags["protran.source"] == "measured:plat-a"
    assert run.data.tags["protran.trial_number"] == "0"
    assert run.data.params["n_layers"] == str(ARCHS[0].n_layers)
    assert run.data.params["l0_hidden"] == str(ARCHS[0].layers[0].hidden)
    assert run.data.params["batch_size"] == "4" and run.data.params["mode"] == "inference"
    assert math.isclose(run.data.metrics["latency_s"], 0.02 / 4)
    assert math.isclose(run.data.metrics["latency_batch_s"], 0.02)
    assert math.isclose(run.data.metrics["energy_above_idle_j"], 0.02 * 20 / 4)
    assert run.data.metrics["peak_power_w"] == 35.0
    assert "energy_spread_rel" in run.data.metrics and "latency_iqr_s" in run.data.metrics
    assert run.info.status == "FINISHED"
    names = {a.path for a in tracker.client.list_artifacts(run_id)}
    assert names == {"architecture.json", "power_trace.csv", "power_trace.png"}
    local = Path(tracker.client.download_artifacts(run_id, "power_trace.csv", str(tmp_path)))
    assert local.read_text().splitlines()[0] == "t_s,power_w" and len(local.read_text().splitlines()) == 5
    arch_json = Path(tracker.client.download_artifacts(run_id, "architecture.json", str(tmp_path)))
    assert Architecture.from_json(arch_json.read_text()) == ARCHS[0]


def test_logging_is_idempotent_and_half_logged_runs_are_replaced(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t1 = MlflowTracker(uri, "exp")
    parent = t1.study_run("s1")
    assert t1.log_trial(study="s1", parent_run_id=parent, trial_number=0, arch=ARCHS[0],
                        measurement=make_measurement(), platform="plat-a") is not None
    assert t1.log_trial(study="s1", parent_run_id=parent, trial_number=0, arch=ARCHS[0],
                        measurement=make_measurement(), platform="plat-a") is None
    # a run for trial 1 created but never finished (process killed mid-logging)
    half_logged_run(t1, "s1", 1, dead_owner())
    t2 = MlflowTracker(uri, "exp")  # a rerun: fresh cache
    assert t2.study_run("s1") == parent
    assert t2.logged_trials("s1") == {0}
    t2.log_trial(study="s1", parent_run_id=parent, trial_number=1, arch=ARCHS[1], measurement=make_measurement(),
                 platform="plat-a")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["exp"], filter_string="tags.`protran.role` = 'trial'")
    assert sorted(runs["tags.protran.trial_number"]) == ["0", "1"]


def dead_owner() -> Owner:
    """The owner record of a process that ran on this host and is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(socket.gethostname(), proc.pid, process_start(proc.pid))  # readable until reaped
    proc.wait()
    return owner


def half_logged_run(tracker: MlflowTracker, study: str, number: int, owner: Owner, heartbeat: float | None = None) -> str:
    """A trial run as ``log_trial`` creates it, before its ``protran.logged`` tag (its owner mid-logging or killed)."""
    tags = {"protran.role": "trial", "protran.study": study, "protran.trial_number": str(number),
            "protran.owner.host": owner.host, "protran.owner.pid": str(owner.pid),
            "protran.owner.start": str(owner.start or ""), "protran.heartbeat": str(heartbeat or time.time())}
    return tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id


def test_start_up_cleanup_deletes_only_half_logged_runs_whose_owner_is_gone(tmp_path: Path):
    """Issue 12.2: a second process must not delete the run a live process is still writing."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t1 = MlflowTracker(uri, "exp")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = Owner(socket.gethostname(), sleeper.pid, process_start(sleeper.pid))
        runs = {
            "live": half_logged_run(t1, "s", 0, live),
            "dead": half_logged_run(t1, "s", 1, dead_owner()),
            "reused pid": half_logged_run(t1, "s", 2, Owner(live.host, live.pid, (live.start or 0) + 1)),
            "other host, beating": half_logged_run(t1, "s", 3, Owner("elsewhere", 1, 1)),
            "other host, silent": half_logged_run(t1, "s", 4, Owner("elsewhere", 1, 1), time.time() - 3600),
            "live, silent": half_logged_run(t1, "s", 5, live, time.time() - 3600),
        }
        assert live.alive() is True
        t2 = MlflowTracker(uri, "exp")  # another process starting on the study
        assert t2.logged_trials("s") == set()
        stages = {name: t2.client.get_run(run_id).info.lifecycle_stage for name, run_id in runs.items()}
        assert stages == {"live": "active", "dead": "deleted", "reused pid": "deleted",
                          "other host, beating": "active", "other host, silent": "deleted", "live, silent": "deleted"}
        # the live owner goes on writing its run (MLflow refuses writes to a deleted run)
        t1.client.log_param(runs["live"], "still", "writing")
        t1.client.set_tag(runs["live"], "protran.logged", "1")
        assert t2.logged_trials("s", refresh=True) == {0}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_failed_trial_is_a_failed_run_with_its_reason(tracker: MlflowTracker):
    parent = tracker.study_run("s1")
    run_id = tracker.log_trial(study="s1", parent_run_id=parent, trial_number=3, arch=ARCHS[0], measurement=None,
                               platform="plat-a", workload={"mode": "training", "batch_size": 8, "seq_len": 64},
                               error="MeasurementError: out of memory at batch size 8")
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["protran.error"].startswith("MeasurementError: out of memory")
    assert run.data.tags["protran.state"] == "FAIL"
    assert run.data.params["mode"] == "training" and run.data.params["batch_size"] == "8"
    assert run.data.metrics == {}


def test_cross_platform_comparison_with_search_runs(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "compare")
    latencies = {"plat-a": [0.010, 0.020, 0.040], "plat-b": [0.030, 0.050, 0.090]}
    for platform, values in latencies.items():
        parent = tracker.study_run(f"profile-{platform}")
        for i, (arch, lat) in enumerate(zip(ARCHS, values)):
            tracker.log_trial(study=f"profile-{platform}", parent_run_id=parent, trial_number=i, arch=arch,
                              measurement=make_measurement(platform, latency=lat), platform=platform)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["compare"], filter_string="tags.`protran.role` = 'trial'")
    assert len(runs) == 6
    table = runs.pivot(index="tags.protran.arch_hash", columns="tags.protran.platform", values="metrics.latency_batch_s")
    ratio = (table["plat-b"] / table["plat-a"]).reindex([a.content_hash() for a in ARCHS])
    np.testing.assert_allclose(ratio.to_numpy(), [3.0, 2.5, 2.25])
    only_b = mlflow.search_runs(experiment_names=["compare"],
                                filter_string="tags.`protran.platform` = 'plat-b' and metrics.latency_batch_s > 0.04")
    assert len(only_b) == 2


def test_optuna_study_has_named_objectives_and_trial_attrs(tmp_path: Path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = create_study(storage, "s1", user_attrs={"platform": "plat-a"})
    assert study.metric_names == METRIC_NAMES
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 3
    rec = StudyRecorder(study, storage)
    m = make_measurement()
    number = study.ask().number
    frozen = rec.complete(number, ARCHS[0], m, "plat-a")
    assert frozen.state == TrialState.COMPLETE
    assert frozen.values == objective_values(m) == [m.latency_per_sequence_s, m.energy_per_sequence_j, 35.0]
    assert architecture_from_attr(frozen.user_attrs["architecture"]) == ARCHS[0]
    assert Measurement.from_dict(frozen.user_attrs["measurement"]) == m
    assert frozen.user_attrs["summary"]["source"] == "measured:plat-a"
    reloaded = optuna.load_study(study_name="s1", storage=storage)
    assert reloaded.metric_names == METRIC_NAMES and reloaded.user_attrs["platform"] == "plat-a"


def test_missing_objective_fails_the_trial_with_the_reason(tmp_path: Path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = create_study(storage, "s1")
    m = make_measurement(energy_j=None, energy_above_idle_j=None,
                         unavailable={"energy_j": "no energy sensor", "energy_above_idle_j": "no energy sensor"})
    frozen = StudyRecorder(study, storage).complete(study.ask().number, ARCHS[0], m, "plat-a")
    assert frozen.state == TrialState.FAIL
    assert "energy_j" in frozen.user_attrs["fail_reason"] and "no energy sensor" in frozen.user_attrs["fail_reason"]


def test_attrs_of_a_running_trial_known_by_number_are_written_through_the_storage(tmp_path: Path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = create_study(storage, "s1")
    asked = study.ask()  # by another process, say: only its number is known here
    other = create_study(storage, "s2")
    other.ask()
    rec = StudyRecorder(optuna.load_study(study_name="s1", storage=storage), open_storage(storage))
    rec.set_trial_attrs(asked.number, {"node": {"hostname": "n1"}, "owner": "n1:42"})
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert [t.user_attrs for t in running] == [{"node": {"hostname": "n1"}, "owner": "n1:42"}]
    assert other.trials[0].user_attrs == {}  # same trial number in another study: untouched
    frozen = rec.complete(asked.number, ARCHS[0], make_measurement(), "plat-a")
    assert frozen.state == TrialState.COMPLETE and frozen.user_attrs["owner"] == "n1:42"
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # a finished trial's attrs cannot change
        rec.set_trial_attrs(asked.number, {"owner": "late"})


def test_untracked_finished_trials_are_logged_from_what_they_recorded(tracker: MlflowTracker, tmp_path: Path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = create_study(storage, "s1")
    rec = StudyRecorder(study, storage)
    m = make_measurement()
    logged_before = study.ask()
    rec.complete(logged_before.number, ARCHS[0], m, "plat-a")
    failed = study.ask()
    failed.set_user_attr("phase", "active")
    rec.fail(failed.number, ARCHS[1], "MeasurementError: out of memory", "plat-a")
    study.tell(study.ask(), state=TrialState.FAIL)  # no architecture: nothing to log
    added = rec.add(ARCHS[2], make_measurement(latency=0.04), "plat-a")  # as ``import`` adds one
    parent = tracker.study_run("s1")
    tracker.log_trial(study="s1", parent_run_id=parent, trial_number=logged_before.number, arch=ARCHS[0],
                      measurement=m, platform="plat-a")
    workload = {"mode": "training", "batch_size": 8, "seq_len": 64}
    assert tracker.log_untracked_trials(study, parent, workload=workload, extra_tags={"protran.engine": "e"}) == 2
    assert tracker.log_untracked_trials(study, parent) == 0  # idempotent
    runs = {int(r.data.tags["protran.trial_number"]): r for r in tracker.client.search_runs(
        [tracker.experiment_id], filter_string="tags.`protran.role` = 'trial'")}
    assert sorted(runs) == [logged_before.number, failed.number, added.number]
    bad = runs[failed.number]
    assert bad.info.status == "FAILED" and bad.data.tags["protran.error"] == "MeasurementError: out of memory"
    assert bad.data.tags["protran.phase"] == "active" and bad.data.tags["protran.engine"] == "e"
    assert bad.data.params["mode"] == "training" and bad.data.params["batch_size"] == "8"
    good = runs[added.number]
    assert good.info.status == "FINISHED" and "protran.phase" not in good.data.tags
    assert good.data.tags["protran.arch_hash"] == ARCHS[2].content_hash() and good.data.tags["protran.platform"] == "plat-a"
    assert math.isclose(good.data.metrics["latency_batch_s"], 0.04) and good.data.params["batch_size"] == "4"


def test_architecture_params_are_flat_strings():
    params = architecture_params(ARCHS[0])
    assert all(isinstance(v, str) for v in params.values())
    assert params["hidden_sizes"] == ",".join(map(str, ARCHS[0].hidden_sizes))
    assert len(params) <= 100  # MLflow's per-batch limit
