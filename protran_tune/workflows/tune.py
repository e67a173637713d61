"""``profile --tune``: the same search through Ray Tune.

``Tuner`` with ``OptunaSearch(space=ray_tune_define_by_run(space), sampler=ActiveLearningSampler(...),
metric=["latency_s", "energy_j", "peak_power_w"], mode=["min"] * 3, storage=<the study storage>)``:
each Tune trial holds one unit of ``platform:<name>`` (one measurement per device at a time) and
measures its architecture on that device; the study lives in the shared storage, so a rerun continues
it and optuna-dashboard shows it live. After the run every finished trial gets its measurement (user
attrs) and its MLflow run, failures their reason. The held-out convergence check belongs to the
ask/tell loop (:mod:`protran_tune.workflows.profile`); this path runs a fixed ``budget``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from protran_tune.platforms import Measurement, Workload, get_platform
from protran_tune.space import Architecture
from protran_tune.tracking.records import METRIC_NAMES, objective_values
from protran_tune.workflows.profile import ProfileConfig, ProfileResult, build_sampler, platform_options


def _measure_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Tune trainable: measure ``config["architecture"]`` on the platform this trial's resource names."""
    import importlib

    for module in config.get("plugins", ()):
        importlib.import_module(module)
    from protran_tune.workflows.executors import describe_error

    arch = Architecture.from_json(config["architecture"])
    try:
        platform = get_platform(config["platform"], **config.get("platform_options", {}))
        try:
            m = platform.measure(arch, Workload(**config["workload"]))
        finally:
            platform.close()
        values = dict(zip(METRIC_NAMES, objective_values(m)))  # a missing objective fails the trial
    except Exception as exc:  # recorded as a failed trial with its reason; the study goes on
        return {"error": describe_error(exc)}
    return {**values, "measurement_json": m.to_json()}


def tune_profile(cfg: ProfileConfig) -> ProfileResult:
    """Run ``budget`` measurements through Ray Tune (local Ray on loopback, or ``ray_address``)."""
    import optuna
    from optuna.trial import TrialState

    from protran_tune.runtime import open_storage, ray_session
    from protran_tune.space.search_space import ray_tune_define_by_run
    from protran_tune.tracking.mlflow_tracking import MlflowTracker
    from protran_tune.tracking.optuna_tracking import create_study

    t0 = time.perf_counter()
    storage = open_storage(cfg.storage)
    tracker = MlflowTracker(cfg.mlflow_uri, cfg.experiment, artifacts=cfg.artifacts) if cfg.mlflow_uri else None
    options = platform_options(cfg)
    workload = cfg.workload()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    attrs = {"platform": cfg.platform, "space": cfg.space, "workload": workload.to_dict(), "engine": "ray-tune"}
    study = create_study(storage, cfg.study_name, user_attrs=attrs)
    n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    remaining = max(0, cfg.budget - n_done)
    resources = {f"platform:{cfg.platform}": float(cfg.n_workers or 1)}
    if remaining:
        with ray_session(cfg.ray_address, num_cpus=os.cpu_count(), resources=resources):
            from ray import tune

            results_dir = tempfile.mkdtemp(prefix="protran-tune-")

            searcher = _recording_searcher(
                cfg, space=ray_tune_define_by_run(cfg.space), metric=list(METRIC_NAMES), mode=["min"] * len(METRIC_NAMES),
                sampler=build_sampler(cfg), study_name=cfg.study_name, storage=storage,
            )
            trainable = tune.with_resources(_run_trainable, {"cpu": 1, f"platform:{cfg.platform}": 1})
            tuner = tune.Tuner(
                trainable,
                param_space={"platform": cfg.platform, "platform_options": options, "plugins": list(cfg.plugins),
                             "workload": workload.to_dict()},
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining,
                                            max_concurrent_trials=cfg.n_workers or None),
                run_config=tune.RunConfig(name=cfg.study_name, storage_path=results_dir, verbose=0),
            )
            try:
                tuner.fit()
            finally:
                shutil.rmtree(results_dir, ignore_errors=True)  # everything worth keeping is in Optuna and MLflow
    _record_tune_results(study, tracker, cfg)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return ProfileResult(
        study_name=cfg.study_name, n_measured=states.count(TrialState.COMPLETE), n_failed=states.count(TrialState.FAIL),
        n_test=0, converged=False, stop_reason="budget", curve=[], samples_to_convergence={}, report_dir=None,
        wall_time_s=time.perf_counter() - t0,
    )


def _run_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report(_measure_trial(config))


def _recording_searcher(cfg: ProfileConfig, **kwargs: Any) -> Any:
    """``OptunaSearch`` that writes each measurement (or failure reason) to its trial before ``tell``."""
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from protran_tune.tracking.optuna_tracking import trial_attrs

    class RecordingOptunaSearch(OptunaSearch):
        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            arch = None
            try:
                arch = Architecture.from_json(self._captured_architecture(ot_trial))
            except Exception:  # noqa: BLE001 - no architecture: Optuna's own bookkeeping only
                pass
            result = result or {}
            if arch is not None and result.get("measurement_json"):
                m = Measurement.from_dict(json.loads(result["measurement_json"]))
                for key, value in trial_attrs(arch, m, cfg.platform).items():
                    ot_trial.set_user_attr(key, value)
            elif arch is not None:
                reason = result.get("error") or "the Tune trial raised (see the Ray Tune logs)"
                for key, value in {**trial_attrs(arch, None, cfg.platform, cfg.workload().to_dict()),
                                   "fail_reason": reason}.items():
                    ot_trial.set_user_attr(key, value)
                if result.get("error"):
                    self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                    self._completed_trials.add(trial_id)
                    return None
            return super().on_trial_complete(trial_id, result, error)

        @staticmethod
        def _captured_architecture(ot_trial: Any) -> str:
            from protran_tune.space.search_space import params_to_architecture

            return params_to_architecture(ot_trial.params).to_json()

    return RecordingOptunaSearch(**kwargs)


def _record_tune_results(study: Any, tracker: Any, cfg: ProfileConfig) -> None:
    """One MLflow run per finished trial (idempotent: trials logged before are skipped)."""
    if tracker is None:
        return
    parent = tracker.study_run(cfg.study_name, tags={"protran.platform": cfg.platform, "protran.engine": "ray-tune"})
    tracker.log_untracked_trials(study, parent, workload=cfg.workload().to_dict(),
                                 extra_tags={"protran.engine": "ray-tune"})
    tracker.finish_study(parent)
