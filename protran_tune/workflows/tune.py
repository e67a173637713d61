"""``profile --tune``: the same search as ``profile``, through Ray Tune.

The held-out set is measured first (platform actors, as in the ask/tell loop); then a ``Tuner`` with
``OptunaSearch(space=ray_tune_define_by_run(space), sampler=ActiveLearningSampler(...), metric=["latency_s",
"energy_j", "peak_power_w"], mode=["min"] * 3, storage=<the study storage>)`` measures the main study: each
Tune trial holds one unit of ``platform:<name>`` (one measurement per device at a time, as many in flight as
the platform has units) and measures its architecture on that device. As each trial completes, its
measurement (or failure reason) is written to the Optuna trial and MLflow, the surrogate is scored on the
held-out set (learning curve) and the search stops proposing once the held-out error converges, at the
``budget`` or the timeout; the report is the ask/tell loop's. The study lives in the shared storage, so a rerun
continues it and optuna-dashboard shows it live. Ray Tune's own console output and results folder are left
out: everything worth keeping is in Optuna, MLflow and the report. Unlike the ask/tell loop, a failed Tune
trial counts toward the budget (Tune runs a fixed number of trials); as in the loop, ``max_failures`` failures
in a row stop the search, and each trial records its owner and beats its heartbeat while Tune measures it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator

from protran_tune.errors import UsageError
from protran_tune.platforms import Measurement, Workload, get_platform
from protran_tune.space import Architecture
from protran_tune.tracking.records import METRIC_NAMES, objective_values
from protran_tune.workflows.executors import Outcome
from protran_tune.workflows.profile import (
    Profiler,
    ProfileConfig,
    ProfileResult,
    Progress,
    build_sampler,
    profile,
    quiet_ask,
)


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
        # NaN objectives: Tune requires the search metrics in every result, a failed one included
        return {**{name: float("nan") for name in METRIC_NAMES}, "error": describe_error(exc)}
    return {**values, "measurement_json": m.to_json()}


def _run_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report(_measure_trial(config))


def tune_profile(cfg: ProfileConfig) -> ProfileResult:
    """Run ``profile`` through Ray Tune (local Ray on loopback, or ``ray_address``): held-out set, learning
    curve, convergence and report as in :func:`~protran_tune.workflows.profile.profile`."""
    if not cfg.use_ray:
        raise UsageError("profile through Ray Tune needs Ray: use_ray=False (--no-ray) cannot be combined with it")
    return profile(cfg, profiler_class=TuneProfiler)


class TuneProfiler(Profiler):
    """:class:`Profiler` whose main study is searched by Ray Tune instead of the ask/tell loop."""

    def __init__(self, cfg: ProfileConfig, executor: Any, tracker: Any | None, storage: Any) -> None:
        super().__init__(cfg, executor, tracker, storage)
        self.study.set_user_attr("engine", "ray-tune")
        if tracker is not None and self.parent_run:
            tracker.client.set_tag(self.parent_run, "protran.engine", "ray-tune")

    def _search(self, curve: list[dict[str, Any]], progress: Progress, evaluation: Any | None, t0: float,
                should_stop: Callable[[], bool] | None) -> str:
        """Measure the main study through a ``Tuner``; returns the stop reason."""
        from ray import tune

        from protran_tune.space.search_space import ray_tune_define_by_run

        cfg = self.cfg
        width = self.executor.width
        self.executor.close()  # the Tune trials take the platform's resource units now
        state: dict[str, Any] = {"stop": None}

        def proposing() -> str | None:
            """Called before each proposal: the phase of the next trial, or ``None`` to stop proposing."""
            return None if state["stop"] else self.enter_phase(progress)

        def asked(number: int, phase: str) -> None:
            """A trial was asked: this process owns it and beats its heartbeat while Tune measures it."""
            self._claim(self.recorder, number, {"phase": phase})

        def completed(number: int, phase: str, arch: Architecture, outcome: Outcome) -> None:
            self._release(self.recorder, number)
            self.note_outcome(outcome.measurement is not None, outcome.error)
            progress.record(phase, arch, outcome)
            self._reconcile_tracking()  # logs the trial just told to MLflow
            state["stop"] = self.stop_reason(self.score(curve, progress), t0, should_stop)

        searcher = _profile_search(
            proposing, asked, completed, cfg, space=ray_tune_define_by_run(cfg.space), metric=list(METRIC_NAMES),
            mode=["min"] * len(METRIC_NAMES), sampler=build_sampler(cfg, self.pool), study_name=cfg.study_name,
            storage=self.storage,
        )
        trainable = tune.with_resources(_run_trainable, {"cpu": 1, f"platform:{cfg.platform}": 1})
        results_dir = tempfile.mkdtemp(prefix="protran-tune-")
        tuner = tune.Tuner(
            trainable,
            param_space={"platform": cfg.platform, "platform_options": cfg.platform_options,
                         "plugins": list(cfg.plugins), "workload": self.workload.to_dict()},
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=max(1, cfg.budget - self.n_measured()),
                                        max_concurrent_trials=width),
            run_config=tune.RunConfig(name=cfg.study_name, storage_path=results_dir, verbose=0),
        )
        try:
            with _quiet_tune():
                tuner.fit()
        finally:
            shutil.rmtree(results_dir, ignore_errors=True)  # everything worth keeping is in Optuna, MLflow, the report
        self._reconcile_tracking()
        return state["stop"] or self.stop_reason(self.evaluate(), t0, should_stop) or "budget"


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Ray Tune without its console output (experiment table, "View detailed results here: <a folder removed
    when the run ends>"): ``profile`` prints its own progress. ``RAY_AIR_NEW_OUTPUT=0`` selects Tune's classic
    reporter, which ``verbose=0`` silences."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _profile_search(proposing: Callable[[], str | None], asked: Callable[[int, str], None],
                    completed: Callable[[int, str, Architecture, Outcome], None], cfg: ProfileConfig, **kwargs: Any) -> Any:
    """``OptunaSearch`` that asks ``proposing`` before each proposal (``None``: finished), hands each new trial's
    number and phase to ``asked``, writes each measurement (or failure reason) to its trial before ``tell``, then
    hands the outcome to ``completed``."""
    from optuna.trial import TrialState
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    from protran_tune.tracking.optuna_tracking import trial_attrs

    class ProfileSearch(OptunaSearch):
        def suggest(self, trial_id: str) -> dict | str | None:
            phase = proposing()
            if phase is None:
                return Searcher.FINISHED
            with quiet_ask():
                config = super().suggest(trial_id)
            asked(self._ot_trials[trial_id].number, phase)
            return config

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or trial_id in self._completed_trials:
                return super().on_trial_complete(trial_id, result, error)
            try:
                arch = Architecture.from_json(self._captured_architecture(ot_trial))
            except Exception:  # noqa: BLE001 - no architecture: Optuna's own bookkeeping only
                return super().on_trial_complete(trial_id, result, error)
            result = result or {}
            m = Measurement.from_dict(json.loads(result["measurement_json"])) if result.get("measurement_json") else None
            reason = result.get("error") or "the Ray Tune trial raised (its worker died or the trainable failed)"
            attrs = trial_attrs(arch, m, cfg.platform) if m is not None else {
                **trial_attrs(arch, None, cfg.platform, cfg.workload().to_dict()), "fail_reason": reason}
            for key, value in attrs.items():
                ot_trial.set_user_attr(key, value)
            if m is None and result.get("error"):
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                self._completed_trials.add(trial_id)
            else:
                super().on_trial_complete(trial_id, result, error)
            completed(ot_trial.number, ot_trial.user_attrs.get("phase", "active"), arch, Outcome(m, None if m else reason))

        @staticmethod
        def _captured_architecture(ot_trial: Any) -> str:
            from protran_tune.space.search_space import params_to_architecture

            return params_to_architecture(ot_trial.params, cfg.space).to_json()

    return ProfileSearch(**kwargs)
