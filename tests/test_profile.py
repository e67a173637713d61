"""``profile`` workflow in process: budget, convergence, failures, tracking and the report folder.

The workflow (sampling, recording, resuming) is under test here, so measurements come from the
``synthetic-test`` platform (tests/synthetic_platform.py); real platforms are exercised by the Ray job
test and the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

import synthetic_platform  # noqa: F401  (registers "synthetic-test")
from protran_tune.tracking.records import METRIC_NAMES
from protran_tune.workflows.profile import HOLDOUT_SUFFIX, ProfileConfig, build_sampler, holdout_architectures, profile


def config(tmp_path: Path, **kw) -> ProfileConfig:
    base = dict(study_name="p1", platform="synthetic-test", use_ray=False, budget=8, seed_samples=5, test_samples=4,
                storage=f"sqlite:///{tmp_path}/protran.db", mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db",
                report_dir=str(tmp_path / "report"), progress=False, surrogate="bdt")
    base.update(kw)
    return ProfileConfig(**base)


def trial_runs(tmp_path: Path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    return mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'trial'")


def test_profile_measures_to_budget_and_records_everything(tmp_path: Path):
    cfg = config(tmp_path)
    result = profile(cfg)
    assert result.stop_reason == "budget" and result.n_measured == 8 and result.n_test == 4
    study = optuna.load_study(study_name="p1", storage=cfg.storage)
    assert study.metric_names == METRIC_NAMES
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 8
    assert len({t.user_attrs["arch_hash"] for t in done}) == 8
    assert [t.user_attrs["phase"] for t in done].count("seed") == 5
    holdout = optuna.load_study(study_name="p1" + HOLDOUT_SUFFIX, storage=cfg.storage)
    assert {t.user_attrs["arch_hash"] for t in holdout.trials} == {a.content_hash() for a in holdout_architectures(cfg)}
    # the learning curve: one point per batch once 4 architectures are measured, up to the budget
    assert [p["n_samples"] for p in result.curve] == list(range(4, 9))
    assert study.user_attrs["curve"] == result.curve
    runs = trial_runs(tmp_path)
    assert len(runs) == 12  # 8 trials + 4 held out, one nested run each
    parents = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.role` = 'study'")
    assert set(parents["tags.protran.study"]) == {"p1", "p1" + HOLDOUT_SUFFIX}
    main_parent = parents.loc[parents["tags.protran.study"] == "p1", "run_id"].item()
    assert (runs["tags.mlflow.parentRunId"] == main_parent).sum() == 8
    assert set(runs["params.platform"]) == {"synthetic-test"} and set(runs["params.seq_len"]) == {"32"}
    client = mlflow.MlflowClient()
    history = client.get_metric_history(main_parent, "test_mse_latency_s")
    assert [h.step for h in history] == list(range(4, 9))
    report = Path(result.report_dir)
    for name in ("power_trace.png", "pairwise_distance.png", "learning_curve.png", "predicted_vs_real.png",
                 "summary.md", "measurements.jsonl"):
        assert (report / name).stat().st_size > 0, name
    assert len((report / "measurements.jsonl").read_text().splitlines()) == 12


def test_profile_stops_when_the_held_out_error_converges(tmp_path: Path):
    result = profile(config(tmp_path, budget=30, seed_samples=5, threshold=0.5, report_dir=None))
    assert result.converged and result.stop_reason == "converged"
    assert result.n_measured == 5  # converged as soon as the seed was in: threshold 0.5 is loose on purpose
    assert all(v is not None and v <= 5 for v in result.samples_to_convergence.values())


def test_failing_trials_are_recorded_with_their_reason_and_the_study_goes_on(tmp_path: Path):
    synthetic_platform.SyntheticPlatform.calls = 0
    cfg = config(tmp_path, platform_options={"fail_every": 3}, report_dir=None)
    result = profile(cfg)
    study = optuna.load_study(study_name="p1", storage=cfg.storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert result.n_measured == 8 and result.n_failed == len(failed) >= 2
    for t in failed:
        assert "out of memory" in t.user_attrs["fail_reason"] and "architecture" in t.user_attrs
    runs = trial_runs(tmp_path)
    failed_runs = runs[runs["status"] == "FAILED"]
    # failures of the main study and of the held-out set alike
    assert len(failed_runs) == len(failed) + (4 - result.n_test)
    assert failed_runs["tags.protran.error"].str.contains("out of memory").all()


def test_rerun_after_completion_measures_nothing(tmp_path: Path):
    log = tmp_path / "calls.log"
    cfg = config(tmp_path, platform_options={"log_path": str(log)}, report_dir=None)
    profile(cfg)
    n_calls = len(log.read_text().splitlines())
    assert n_calls == 12
    again = profile(config(tmp_path, platform_options={"log_path": str(log)}, report_dir=None))
    assert again.n_measured == 8 and len(log.read_text().splitlines()) == n_calls
    assert len(trial_runs(tmp_path)) == 12
    # a larger budget continues the same study
    more = profile(config(tmp_path, budget=10, platform_options={"log_path": str(log)}, report_dir=None))
    assert more.n_measured == 10 and len(log.read_text().splitlines()) == n_calls + 2


def test_bad_config_is_a_clear_value_error():
    with pytest.raises(ValueError, match="budget=4 must be >= seed_samples=16"):
        ProfileConfig(budget=4)
    with pytest.raises(ValueError, match="threshold"):
        ProfileConfig(threshold=2.0)


def test_surrogate_parameters_reach_the_sampler_and_are_recorded(tmp_path: Path):
    params = {"kernel": "linear+matern", "encoder": "cost", "maxiter": 20}
    cfg = config(tmp_path, surrogate="gp", surrogate_params=params, report_dir=None, threshold=1e-12)
    result = profile(cfg)
    assert result.n_measured == 8
    study = optuna.load_study(study_name="p1", storage=cfg.storage)
    assert study.user_attrs["surrogate_params"] == params
    assert [t.user_attrs["phase"] for t in study.trials].count("seed") == 5  # then the GP chose 3
    assert {k: build_sampler(cfg)._surrogate.get_params()[k] for k in params} == params
    mlflow.set_tracking_uri(cfg.mlflow_uri)
    parent = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.study` = 'p1' and tags.`protran.role` = 'study'")
    assert parent["params.surrogate_params"].item() == '{"encoder": "cost", "kernel": "linear+matern", "maxiter": 20}'
    assert study.user_attrs["acquisition"] == "uncertainty" and parent["params.acquisition"].item() == "uncertainty"
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['depth'\] for surrogate 'gp'"):
        profile(config(tmp_path, study_name="p2", surrogate="gp", surrogate_params={"depth": 3}))


def test_variance_reduction_acquisition_drives_the_gp_study(tmp_path: Path):
    cfg = config(tmp_path, surrogate="gp", surrogate_params={"encoder": "cost", "maxiter": 20},
                 acquisition="variance-reduction", report_dir=None, threshold=1e-12)
    result = profile(cfg)
    assert result.n_measured == 8
    study = optuna.load_study(study_name="p1", storage=cfg.storage)
    assert study.user_attrs["acquisition"] == "variance-reduction"
    assert [t.user_attrs["phase"] for t in study.trials].count("active") == 3
    mlflow.set_tracking_uri(cfg.mlflow_uri)
    parent = mlflow.search_runs(experiment_names=["protran-tune"], filter_string="tags.`protran.study` = 'p1' and tags.`protran.role` = 'study'")
    assert parent["params.acquisition"].item() == "variance-reduction"
    with pytest.raises(ValueError, match="acquisition must be one of"):
        ProfileConfig(acquisition="greedy")
    # a surrogate without posterior covariances is refused before anything is measured
    with pytest.raises(ValueError, match="needs a GP surrogate"):
        profile(config(tmp_path, study_name="p2", acquisition="variance-reduction"))
    assert "p2" not in optuna.get_all_study_names(cfg.storage)


# --------------------------------------------------------------------------- pool platforms and failures
def test_profile_on_a_replay_platform_proposes_only_from_its_file(tmp_path: Path):
    """Issue 12.1a: every architecture profiled on ``replay`` is a record of its file (held out, seed, active)."""
    from protran_tune.datasets import load_recorded, protran_measurement_files
    from protran_tune.samplers import PoolLatinHypercubeSampler
    from protran_tune.workflows.profile import platform_pool

    path = next(f for f in protran_measurement_files() if "rpi" in f.name)  # batch size 1, as profile's default
    file_hashes = {a.content_hash() for a in load_recorded(path).archs}
    cfg = config(tmp_path, platform="replay", platform_options={"dataset": str(path)}, budget=12, seed_samples=5,
                 report_dir=None, threshold=1e-9)
    result = profile(cfg)
    assert result.stop_reason == "budget" and result.n_measured == 12 and result.n_failed == 0 and result.n_test == 4
    study = optuna.load_study(study_name="p1", storage=cfg.storage)
    holdout = optuna.load_study(study_name="p1" + HOLDOUT_SUFFIX, storage=cfg.storage)
    assert {t.state for t in study.trials + holdout.trials} == {TrialState.COMPLETE}
    train = [t.user_attrs["arch_hash"] for t in study.trials]
    held = {t.user_attrs["arch_hash"] for t in holdout.trials}
    assert set(train) | held <= file_hashes and not set(train) & held and len(set(train)) == 12
    assert {t.user_attrs["source"] for t in study.trials} == {f"replay:{path.name}"}
    phases = [t.user_attrs["phase"] for t in study.trials]
    assert phases == ["seed"] * 5 + ["active"] * 7
    # the seed is the Latin hypercube snapped to the pool (less the held-out records), in its order
    pool = platform_pool(cfg)
    seed_rows = PoolLatinHypercubeSampler(cfg.space, [a for a in pool if a.content_hash() not in held],
                                          n_points=5, seed=cfg.seed).order()[:5]
    assert train[:5] == [a.content_hash() for a in seed_rows]


def test_replay_profile_stops_when_the_file_is_used_up(tmp_path: Path):
    from protran_tune.datasets import load_recorded, protran_measurement_files

    path = next(f for f in protran_measurement_files() if "npu_ncs" in f.name)  # 21 records
    n_records = len({a.content_hash() for a in load_recorded(path).archs})
    cfg = config(tmp_path, platform="replay", platform_options={"dataset": str(path)}, budget=40, seed_samples=4,
                 report_dir=None, threshold=1e-9)
    result = profile(cfg)
    assert result.stop_reason == "exhausted" and result.n_failed == 0
    assert result.n_measured + result.n_test == n_records  # every record measured once, none twice


def test_a_platform_failing_every_measurement_stops_after_max_failures(tmp_path: Path):
    """Issue 12.1b: failed trials do not count toward the budget, so a run of failures must end it."""
    cfg = config(tmp_path, platform_options={"fail_every": 1}, max_failures=3, report_dir=None)
    result = profile(cfg)
    assert result.stop_reason == "failures" and result.n_measured == 0
    assert result.message.startswith("3 measurements in a row failed (max_failures=3); the last: MeasurementError: "
                                     "CUDA out of memory")
    trials = optuna.load_study(study_name="p1" + HOLDOUT_SUFFIX, storage=cfg.storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # stopped in the held-out phase already
    assert "p1" in optuna.get_all_study_names(cfg.storage)


def test_failures_with_successes_between_them_do_not_stop_the_run(tmp_path: Path):
    synthetic_platform.SyntheticPlatform.calls = 0
    result = profile(config(tmp_path, platform_options={"fail_every": 2}, max_failures=2, report_dir=None, threshold=1e-12))
    assert result.stop_reason == "budget" and result.n_measured == 8 and result.n_failed >= 3


def test_max_failures_on_the_command_line_exits_1_with_the_reason(tmp_path: Path, capsys, monkeypatch):
    from protran_tune.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["profile", "--no-ray", "--quiet", "--no-report", "--platform", "synthetic-test", "--platform-option",
            "fail_every=1", "--study", "f", "--budget", "4", "--seed-samples", "2", "--test-samples", "2"]
    assert main([*args, "--max-failures", "4"]) == 1
    err = capsys.readouterr().err
    assert "protran-tune profile: stopped: 4 measurements in a row failed (max_failures=4)" in err
    assert "out of memory" in err
    with pytest.raises(SystemExit) as exc:
        main([*args, "--max-failures", "0"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="max_failures must be an integer >= 1"):
        ProfileConfig(max_failures=0)
