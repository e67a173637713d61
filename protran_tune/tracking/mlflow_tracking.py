"""MLflow logging: one parent run per study, one nested run per trial, surrogates as models.

Runs carry tags in the ``protran.`` namespace so cross-platform comparisons are plain
``mlflow.search_runs(filter_string="tags.`protran.role` = 'trial'")`` queries:

* ``protran.role``: ``study`` (parent), ``trial`` (one measured architecture) or ``surrogate``;
* ``protran.study``, ``protran.platform``, ``protran.source``, ``protran.trial_number``,
  ``protran.arch_hash``, ``protran.state`` (``COMPLETE`` / ``FAIL``), ``protran.error``.

Logging is idempotent per ``(study, trial number)``: a trial already logged completely is skipped, a
half-logged one (process killed mid-logging) is deleted and logged again. Several processes may log one
study at once: a trial run records its owner (tags ``protran.owner.host``, ``.pid``, ``.start``) and a
heartbeat (``protran.heartbeat``, Unix seconds, renewed while it logs), and a half-logged run is stale,
and deleted, only if its owner is dead (same host, process gone) or its heartbeat is older than
``grace_period_s``. Uses ``MlflowClient`` and ``log_batch`` (one round trip for params, metrics and tags).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from protran_tune.platforms.measurement import Measurement
from protran_tune.runtime import (
    DEFAULT_MLFLOW_URI,
    HEARTBEAT_GRACE_S,
    Owner,
    check_tracking_uri,
    sqlite_lock,
    sqlite_path,
    tune_sqlite,
)
from protran_tune.space import Architecture
from protran_tune.tracking.records import (
    architecture_from_attr,
    architecture_params,
    measurement_metrics,
    trace_csv,
    workload_params,
)

DEFAULT_EXPERIMENT = "protran-tune"
_DONE_TAG = "protran.logged"
_HEARTBEAT_TAG = "protran.heartbeat"
_OWNER_TAGS = ("protran.owner.host", "protran.owner.pid", "protran.owner.start")
_MAX_PARAM_LEN = 6000


def quiet_mlflow_logs() -> None:
    """Keep MLflow's sqlite store from announcing table creation and upgrades at INFO ("Creating initial MLflow
    database tables...", "Updating database tables") on every new database: warnings and errors still show."""
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


class MlflowTracker:
    """Log a study and its trials to MLflow.

    Args:
        tracking_uri: MLflow tracking URI (default ``sqlite:///mlflow.db``); checked at construction.
        experiment: experiment name; all studies of all platforms share it by default so they compare.
        artifacts: ``False`` skips artifacts (architecture JSON, power-trace CSV/PNG); params, metrics and
            tags are always logged.
        grace_period_s: seconds without a heartbeat after which a half-logged run of a live (or
            unknown, other-host) owner is stale.

    A sqlite store is created, and the experiment and parent runs looked up or created, under
    :func:`~protran_tune.runtime.sqlite_lock`, so processes starting together don't race.
    """

    def __init__(self, tracking_uri: str = DEFAULT_MLFLOW_URI, experiment: str = DEFAULT_EXPERIMENT,
                 artifacts: bool = True, grace_period_s: float = HEARTBEAT_GRACE_S) -> None:
        from mlflow.tracking import MlflowClient

        quiet_mlflow_logs()
        self.tracking_uri = check_tracking_uri(tracking_uri)
        if self.tracking_uri.startswith("sqlite:"):
            tune_sqlite()
        self.artifacts = artifacts
        self.grace_period_s = float(grace_period_s)
        self.owner = Owner.current()
        try:
            with sqlite_lock(self.tracking_uri):  # opening a new store creates its tables
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=self._artifact_root())
                else:
                    self.experiment_id = exp.experiment_id
        except Exception as exc:
            from protran_tune.errors import UsageError

            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise UsageError(f"MLflow tracking URI {tracking_uri!r} is unusable: {first}") from None
        self.experiment = experiment
        self._logged: dict[str, set[int]] = {}

    def _artifact_root(self) -> str | None:
        """Artifacts next to a sqlite database (``<dir>/mlartifacts``), else the server's default."""
        if self.tracking_uri.startswith("sqlite:"):
            path = sqlite_path(self.tracking_uri)
            if path is not None:
                return (path.resolve().parent / "mlartifacts").as_uri()
        return None

    # ----------------------------------------------------------------- parent run
    def study_run(self, study: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Id of the study's parent run, created on first use (a rerun, or a concurrent process, reuses it)."""
        with sqlite_lock(self.tracking_uri):
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`protran.role` = 'study' and tags.`protran.study` = '{_quote(study)}'",
                max_results=1, order_by=["attributes.start_time ASC"],
            )
            if runs:
                run_id = runs[0].info.run_id
                if runs[0].info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                return run_id
            all_tags = {"protran.role": "study", "protran.study": study, "mlflow.runName": study}
            all_tags.update(tags or {})
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=study)
            if params:
                self._log(run.info.run_id, params=params)
            return run.info.run_id

    def finish_study(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def log_study_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        self._log(run_id, metrics={k: float(v) for k, v in metrics.items()}, step=step)

    # ----------------------------------------------------------------- trials
    def logged_trials(self, study: str, refresh: bool = False) -> set[int]:
        """Trial numbers of ``study`` already logged completely (cached after the first query, or
        queried again with ``refresh``). Half-logged runs of dead owners are deleted on the way."""
        if study not in self._logged or refresh:
            done: set[int] = set()
            half: list[Any] = []
            page = None
            while True:
                runs = self.client.search_runs(
                    [self.experiment_id],
                    filter_string=(f"tags.`protran.role` = 'trial' and tags.`protran.study` = '{_quote(study)}'"),
                    max_results=1000, page_token=page,
                )
                for run in runs:
                    if run.data.tags.get(_DONE_TAG) == "1":
                        done.add(int(run.data.tags.get("protran.trial_number", -1)))
                    else:
                        half.append(run)
                page = runs.token
                if not page:
                    break
            for run in half:  # half-logged (owner killed mid-logging): drop it, log again
                if int(run.data.tags.get("protran.trial_number", -1)) not in done and self.is_stale(run):
                    self._delete(run.info.run_id)
            self._logged[study] = done
        return self._logged[study]

    def is_stale(self, run: Any) -> bool:
        """Whether a half-logged trial run is abandoned: its owner is dead (this host, process gone) or
        its heartbeat is older than ``grace_period_s`` (runs of older versions: their start time)."""
        tags = run.data.tags
        owner = Owner.parse(":".join(tags.get(t, "") for t in _OWNER_TAGS).rstrip(":"))
        if owner is not None and owner.alive() is False:
            return True
        try:
            beat = float(tags[_HEARTBEAT_TAG])
        except (KeyError, ValueError):
            beat = (run.info.start_time or 0) / 1000.0
        return time.time() - beat > self.grace_period_s

    def _delete(self, run_id: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_run(run_id)
        except MlflowException:  # deleted by another process meanwhile
            pass

    def log_trial(
        self,
        *,
        study: str,
        parent_run_id: str,
        trial_number: int,
        arch: Architecture,
        measurement: Measurement | None,
        platform: str,
        workload: Mapping[str, Any] | None = None,
        error: str | None = None,
        source_tag: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> str | None:
        """Log one trial as a nested run; returns its run id, or ``None`` if it was logged before.

        ``measurement=None`` with ``error`` logs a failed trial (status ``FAILED``, tag ``protran.error``).
        """
        if trial_number in self.logged_trials(study):
            return None
        arch_hash = arch.content_hash()
        tags = {
            "mlflow.parentRunId": parent_run_id,
            "mlflow.runName": f"{study}/trial-{trial_number}",
            "protran.role": "trial",
            "protran.study": study,
            "protran.platform": platform,
            "protran.trial_number": str(trial_number),
            "protran.arch_hash": arch_hash,
            "protran.state": "COMPLETE" if measurement is not None else "FAIL",
            "protran.source": source_tag or (measurement.source if measurement is not None else "failed"),
            **dict(zip(_OWNER_TAGS, (self.owner.host, str(self.owner.pid), str(self.owner.start or "")))),
            _HEARTBEAT_TAG: f"{time.time():.3f}",
        }
        tags.update(extra_tags or {})
        if error:
            tags["protran.error"] = error[:5000]
        params: dict[str, Any] = architecture_params(arch)
        params["platform"] = platform
        if workload:
            params.update({k: v for k, v in workload.items() if k in ("mode", "batch_size", "seq_len")})
        metrics: dict[str, float] = {}
        if measurement is not None:
            params.update(workload_params(measurement))
            metrics = measurement_metrics(measurement)
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=tags["mlflow.runName"])
        run_id = run.info.run_id
        beat = _Beat(self.client, run_id, self.grace_period_s / 4)
        self._log(run_id, params=params, metrics=metrics)
        if self.artifacts:
            beat()
            self.client.log_text(run_id, json.dumps(arch.to_dict(), indent=1), "architecture.json")
            if measurement is not None and measurement.power_trace:
                beat()
                self.client.log_text(run_id, trace_csv(measurement), "power_trace.csv")
                from protran_tune.reporting.power import plot_power_trace

                with tempfile.TemporaryDirectory() as tmp:
                    png = plot_power_trace(measurement, Path(tmp) / "power_trace.png", arch_hash=arch_hash,
                                           title=f"{study} trial {trial_number}")
                    beat()
                    self.client.log_artifact(run_id, str(png))
        self.client.set_tag(run_id, _DONE_TAG, "1")
        self.client.set_terminated(run_id, status="FINISHED" if measurement is not None else "FAILED")
        self.logged_trials(study).add(trial_number)
        return run_id

    def log_nested_run(self, parent_run_id: str | None, run_name: str, *, role: str, arch: Architecture | None = None,
                       params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
                       tags: Mapping[str, str] | None = None) -> str:
        """One finished run under ``parent_run_id`` (tag ``protran.role`` = ``role``): architecture params and
        JSON artifact, ``params``, ``metrics`` and ``tags``; returns its id (search evaluations and checks)."""
        all_tags = {"protran.role": role, "mlflow.runName": run_name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if arch is not None:
            all_tags["protran.arch_hash"] = arch.content_hash()
        run_id = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name).info.run_id
        self._log(run_id, params={**(architecture_params(arch) if arch is not None else {}), **(params or {})}, metrics=metrics)
        if self.artifacts and arch is not None:
            self.client.log_text(run_id, json.dumps(arch.to_dict(), indent=1), "architecture.json")
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def log_untracked_trials(self, study: Any, parent_run_id: str, *, workload: Mapping[str, Any] | None = None,
                             extra_tags: Mapping[str, str] | None = None, refresh: bool = False,
                             skip: Callable[[Any], bool] | None = None) -> int:
        """Log each finished trial of the Optuna ``study`` that has no complete run yet, from what the trial
        recorded; returns how many were logged.

        For trials logged after the fact: a process killed between ``tell`` and logging, an interrupted
        ``import``, the Ray Tune path. A trial's user attrs give the architecture, measurement, platform and
        failure reason, its ``phase`` the tag ``protran.phase``; trials without an ``architecture`` are left out.
        ``refresh`` queries the logged runs again (other processes log the study too, see :meth:`logged_trials`);
        ``skip(trial)`` leaves a trial out (one whose owner, another live process, may still log it).
        """
        logged = self.logged_trials(study.study_name, refresh=refresh)
        count = 0
        for t in study.get_trials(deepcopy=False):
            if t.state.name not in ("COMPLETE", "FAIL") or t.number in logged or "architecture" not in t.user_attrs:
                continue
            if skip is not None and skip(t):
                continue
            data = t.user_attrs.get("measurement") if t.state.name == "COMPLETE" else None
            tags = {"protran.phase": t.user_attrs["phase"]} if "phase" in t.user_attrs else {}
            self.log_trial(study=study.study_name, parent_run_id=parent_run_id, trial_number=t.number,
                           arch=architecture_from_attr(t.user_attrs["architecture"]),
                           measurement=Measurement.from_dict(data) if data else None,
                           platform=t.user_attrs.get("platform", ""), workload=workload,
                           error=t.user_attrs.get("fail_reason"), extra_tags={**tags, **(extra_tags or {})})
            count += 1
        return count

    # ----------------------------------------------------------------- helpers
    def _log(self, run_id: str, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
             step: int = 0) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        param_list = [Param(str(k), str(v)[:_MAX_PARAM_LEN]) for k, v in (params or {}).items()]
        metric_list = [Metric(str(k), float(v), now, step) for k, v in (metrics or {}).items()]
        for i in range(0, max(len(param_list), len(metric_list), 1), 100):  # MLflow: <= 100 params per batch
            self.client.log_batch(run_id, metrics=metric_list[i:i + 100], params=param_list[i:i + 100])


class _Beat:
    """Renews a run's heartbeat tag when more than ``every_s`` seconds passed since the last one."""

    def __init__(self, client: Any, run_id: str, every_s: float) -> None:
        self.client, self.run_id, self.every_s, self.last = client, run_id, every_s, time.time()

    def __call__(self) -> None:
        if time.time() - self.last > self.every_s:
            self.last = time.time()
            self.client.set_tag(self.run_id, _HEARTBEAT_TAG, f"{self.last:.3f}")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
