"""``profile``: learn a platform's latency / energy / peak-power surrogate from few measurements.

Loop (ask/tell on an Optuna study, resumable):

1. a held-out set of ``test_samples`` random architectures is measured once (study ``<name>.holdout``);
2. the main study asks ``width`` architectures at a time (Latin-hypercube seed, then active learning),
   measures them (Ray actors or in process), records each trial in Optuna and MLflow;
3. after each batch a surrogate is fitted on the main study and scored on the held-out set; the loop
   stops when every normalised test MSE is below ``threshold`` (issue 4: 0.3%) or at ``budget``
   measured architectures or ``timeout_s``.

Resume: rerunning with the same study name continues. Measurements are written to the trial before
``tell``; RUNNING trials left by a killed process are completed from their stored measurement or, if
it never arrived, measured (their architecture is in the trial) — nothing is lost, nothing is measured
twice. Failures (out of memory, sensor error, actor death) are FAIL trials with ``fail_reason``; after
``max_failures`` failures in a row the run stops (``stop_reason="failures"``).

Concurrent runs: several processes may profile one study in one storage (two terminals, a Ray job
submitted twice). Each trial records its owner (host, pid, start time) and beats Optuna's trial
heartbeat while it is measured; a RUNNING trial is taken over only if its owner is dead (same host) or
silent for longer than the grace period. Claims (held-out architectures, new asks within the budget,
take-overs) are one step each under :func:`~protran_tune.runtime.sqlite_lock`, so no architecture is
measured twice and the budget holds; a process whose remaining budget is in flight elsewhere waits.

Pool platforms (``replay``: a recorded file) can measure only their records: the held-out set, the
Latin-hypercube seed (:class:`~protran_tune.samplers.PoolLatinHypercubeSampler`) and the active-learning
candidates are then drawn from the pool (:func:`platform_pool`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from protran_tune.objectives.targets import HARDWARE_TARGETS, get_target
from protran_tune.platforms import Workload
from protran_tune.runtime import (
    DEFAULT_MLFLOW_URI,
    DEFAULT_STORAGE,
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    Owner,
    sqlite_lock,
)
from protran_tune.tracking.records import architecture_from_attr
from protran_tune.space import Architecture, get_space
from protran_tune.space.search_space import params_to_architecture, suggest_architecture

log = logging.getLogger(__name__)
HOLDOUT_SUFFIX = ".holdout"
WAIT_S = 1.0  # poll interval while the rest of the budget is measured by other processes


@dataclass
class ProfileConfig:
    """Settings of one ``profile`` run (all recorded on the study and the MLflow parent run).

    Defaults are small so the README's main job finishes in minutes on a 2-core CPU: sequence length
    32 and batch size 1 on ``cpu``, 5-20 timed repeats within ``latency_budget_s`` (2 s, passed to
    platforms that take ``time_budget_s``), 16 seed + 16 active-learning architectures, 8 held out.
    """

    study_name: str = "profile-cpu"
    platform: str = "cpu"
    platform_options: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    space: str = "flexibert2"
    mode: str = "inference"
    batch_size: int | None = 1
    seq_len: int = 32
    max_repeats: int = 20
    min_repeats: int = 5
    target_ci_rel: float = 0.05
    latency_budget_s: float | None = 2.0
    seed_samples: int = 16
    budget: int = 32
    test_samples: int = 8
    threshold: float = 0.003
    surrogate: str = "bdt"
    surrogate_params: dict[str, Any] = field(default_factory=dict)
    acquisition: str = "uncertainty"
    seed: int = 0
    storage: str = DEFAULT_STORAGE
    mlflow_uri: str | None = DEFAULT_MLFLOW_URI
    experiment: str = "protran-tune"
    artifacts: bool = True
    use_ray: bool = True
    ray_address: str | None = None
    n_workers: int | None = None
    timeout_s: float | None = None
    report_dir: str | None = None
    progress: bool = True
    max_failures: int = 5

    def __post_init__(self) -> None:
        for name in ("seed_samples", "budget", "test_samples", "max_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "test_samples" else 1):
                raise ValueError(f"{name} must be an integer >= {2 if name == 'test_samples' else 1}, got {value!r}")
        if self.budget < self.seed_samples:
            raise ValueError(f"budget={self.budget} must be >= seed_samples={self.seed_samples}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold!r}")
        from protran_tune.samplers.acquisition import named_acquisition

        named_acquisition(self.acquisition)  # a clear error for an unknown query rule
        if not self.study_name or HOLDOUT_SUFFIX in self.study_name:
            raise ValueError(f"study_name must be non-empty and not contain {HOLDOUT_SUFFIX!r}, got {self.study_name!r}")

    def workload(self) -> Workload:
        return Workload(mode=self.mode, batch_size=self.batch_size, seq_len=self.seq_len,
                        max_repeats=self.max_repeats, min_repeats=min(self.min_repeats, self.max_repeats),
                        target_ci_rel=self.target_ci_rel, seed=self.seed)

    def make_surrogate(self) -> Any:
        """A fresh ``surrogate`` with ``surrogate_params`` (``ValueError`` names unknown parameters)."""
        from protran_tune.workflows.fit import make_regressor

        return make_regressor(self.surrogate, self.seed, self.space, **self.surrogate_params)


@dataclass
class ProfileResult:
    study_name: str
    n_measured: int
    n_failed: int
    n_test: int
    converged: bool
    stop_reason: str
    curve: list[dict[str, Any]]
    samples_to_convergence: dict[str, int | None]
    report_dir: str | None
    wall_time_s: float
    message: str | None = None  # why the run stopped, when that is a failure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- samplers
def platform_pool(cfg: ProfileConfig) -> list[Architecture] | None:
    """The distinct architectures the platform can measure (:meth:`Platform.pool`, e.g. the records of a
    ``replay`` file), or ``None`` when it measures any architecture."""
    from protran_tune.errors import UsageError
    from protran_tune.platforms.base import _REGISTRY, available_platforms

    if cfg.platform not in available_platforms():
        return None
    pool = _REGISTRY[cfg.platform].pool(**cfg.platform_options)
    if pool is None:
        return None
    distinct = list({a.content_hash(): a for a in pool}.values())
    if len(distinct) < cfg.test_samples + 2:
        raise UsageError(f"platform {cfg.platform!r} can measure {len(distinct)} architecture(s): too few for "
                         f"{cfg.test_samples} held out and 2 to learn from")
    return distinct


def build_sampler(cfg: ProfileConfig, pool: list[Architecture] | None = None) -> Any:
    """Latin-hypercube seed of ``seed_samples``, then active learning with the ``surrogate``; on a pool
    platform both draw from the pool less the held-out set (``pool``: :func:`platform_pool` if ``None``)."""
    from protran_tune.samplers import ActiveLearningSampler, LatinHypercubeSampler, PoolLatinHypercubeSampler
    from protran_tune.tracking.records import METRIC_NAMES

    pool = platform_pool(cfg) if pool is None else pool
    candidates = None
    if pool is None:
        seed_sampler = LatinHypercubeSampler(cfg.space, n_points=cfg.seed_samples, seed=cfg.seed)
    else:
        held = {a.content_hash() for a in holdout_architectures(cfg, pool)}
        candidates = [a for a in pool if a.content_hash() not in held]
        seed_sampler = PoolLatinHypercubeSampler(cfg.space, candidates, n_points=cfg.seed_samples, seed=cfg.seed)
    return ActiveLearningSampler(cfg.make_surrogate(), cfg.space, n_startup_trials=cfg.seed_samples,
                                 seed_sampler=seed_sampler, candidates=candidates, objective_names=METRIC_NAMES,
                                 seed=cfg.seed, acquisition=cfg.acquisition)


# --------------------------------------------------------------------------- helpers
def holdout_architectures(cfg: ProfileConfig, pool: list[Architecture] | None = None) -> list[Architecture]:
    """Deterministic held-out set: ``test_samples`` distinct random architectures (seeded) of the design
    space, or of the platform's pool (``pool``: :func:`platform_pool` if ``None``)."""
    pool = platform_pool(cfg) if pool is None else pool
    rng = np.random.default_rng([cfg.seed, 7919])
    if pool is not None:
        return [pool[i] for i in sorted(rng.choice(len(pool), cfg.test_samples, replace=False))]
    space = get_space(cfg.space)
    seen: dict[str, Architecture] = {}
    while len(seen) < cfg.test_samples:
        arch = space.sample(rng)
        seen.setdefault(arch.content_hash(), arch)
    return list(seen.values())


@contextlib.contextmanager
def _asking() -> Iterator[None]:
    """Quiet Optuna's note that trial heartbeats are meant for ``Study.optimize``: ``profile`` beats its
    asked trials itself (:class:`_Heartbeat`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class _Heartbeat:
    """Beats Optuna's trial heartbeat for this process's RUNNING trials every ``interval_s`` seconds (a
    daemon thread), so that other processes, on any host, see them alive; a no-op without heartbeats."""

    def __init__(self, storage: Any, interval_s: float) -> None:
        from optuna.storages._heartbeat import is_heartbeat_enabled

        self.storage = storage if is_heartbeat_enabled(storage) else None
        self.interval_s = interval_s
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        if self.storage is None:
            return
        self.storage.record_heartbeat(trial_id)
        self.trial_ids.add(trial_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="protran-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, trial_id: int) -> None:
        self.trial_ids.discard(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            for trial_id in list(self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next interval
                    log.debug("heartbeat of trial %d failed: %s", trial_id, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _Progress:
    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="arch", dynamic_ncols=True)

    def update(self, n: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- the workflow
class Profiler:
    """Runs one :class:`ProfileConfig`; ``executor`` measures batches (see :mod:`.executors`)."""

    def __init__(self, cfg: ProfileConfig, executor: Any, tracker: Any | None, storage: Any) -> None:
        import optuna

        from protran_tune.tracking.optuna_tracking import StudyRecorder, create_study

        self.cfg = cfg
        self.executor = executor
        self.tracker = tracker
        self.workload = cfg.workload()
        self.owner = str(Owner.current())
        self.pool = platform_pool(cfg)
        self.failures: list[str] = []  # reasons of the failures in a row, up to now
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        attrs = {"platform": cfg.platform, "space": cfg.space, "workload": self.workload.to_dict(),
                 "surrogate": cfg.surrogate, "surrogate_params": cfg.surrogate_params, "acquisition": cfg.acquisition,
                 "threshold": cfg.threshold}
        with self._lock():
            self.study = create_study(storage, cfg.study_name, sampler=build_sampler(cfg, self.pool), user_attrs=attrs)
            self.holdout = create_study(storage, cfg.study_name + HOLDOUT_SUFFIX,
                                        sampler=optuna.samplers.RandomSampler(seed=cfg.seed),
                                        user_attrs={**attrs, "role": "holdout", "main_study": cfg.study_name})
        self.heartbeat = _Heartbeat(self.study._storage, HEARTBEAT_INTERVAL_S)
        self.recorder = StudyRecorder(self.study)
        self.holdout_recorder = StudyRecorder(self.holdout)
        self.parent_run: str | None = None
        self.holdout_run: str | None = None
        if tracker is not None:
            params = {"platform": cfg.platform, "space": cfg.space, "surrogate": cfg.surrogate,
                      "surrogate_params": json.dumps(cfg.surrogate_params, sort_keys=True), "acquisition": cfg.acquisition,
                      "seed_samples": cfg.seed_samples, "budget": cfg.budget, "test_samples": cfg.test_samples,
                      "threshold": cfg.threshold, "seed": cfg.seed, **{k: v for k, v in self.workload.to_dict().items()}}
            tags = {"protran.platform": cfg.platform}
            self.parent_run = tracker.study_run(cfg.study_name, params=params, tags=tags)
            self.holdout_run = tracker.study_run(cfg.study_name + HOLDOUT_SUFFIX, params=params,
                                                 tags={**tags, "mlflow.parentRunId": self.parent_run})

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self.heartbeat.close()

    # ------------------------------------------------------------- ownership
    def _lock(self) -> Any:
        """Claims are one step among the processes sharing the storage (see the module docstring)."""
        return sqlite_lock(self.cfg.storage)

    def _claim(self, study: Any, trial_id: int, attrs: dict[str, Any]) -> None:
        """Make this process the owner of RUNNING trial ``trial_id`` (with ``attrs``) and beat its heartbeat."""
        storage = study._storage
        for key, value in {"owner": self.owner, **attrs}.items():
            storage.set_trial_user_attr(trial_id, key, value)
        self.heartbeat.add(trial_id)

    def _stale(self, study: Any) -> list[Any]:
        """RUNNING trials whose owner is gone: dead (this host) or silent past the heartbeat grace period."""
        from optuna.storages._heartbeat import is_heartbeat_enabled

        silent = set(study._storage._get_stale_trial_ids(study._study_id)) if is_heartbeat_enabled(study._storage) else set()
        out = []
        for t in study.get_trials(deepcopy=False, states=(self._running(),)):
            owner = Owner.parse(t.user_attrs.get("owner"))
            if owner is None or owner.alive() is False or t._trial_id in silent:
                out.append(t)
        return out

    def _busy_elsewhere(self, trial: Any) -> bool:
        """Whether a finished trial's owner may still log it to MLflow itself (a live process other than
        this one, or one on another host that finished it within the grace period)."""
        import datetime

        owner = Owner.parse(trial.user_attrs.get("owner"))
        if owner is None or str(owner) == self.owner:
            return False
        alive = owner.alive()
        if alive is None:
            done = trial.datetime_complete or datetime.datetime.now()
            return (datetime.datetime.now() - done).total_seconds() < HEARTBEAT_GRACE_S
        return alive

    # ------------------------------------------------------------- counting
    def _states(self, study: Any) -> dict[str, int]:
        from collections import Counter

        return dict(Counter(t.state.name for t in study.get_trials(deepcopy=False)))

    def n_measured(self) -> int:
        return self._states(self.study).get("COMPLETE", 0)

    # ------------------------------------------------------------- recording
    def _record(self, recorder: Any, run_id: str | None, study_name: str, number: int, arch: Architecture,
                outcome: Any) -> bool:
        if getattr(outcome, "node", None):
            recorder._set_attrs(number, {"node": outcome.node})
        if outcome.measurement is not None:
            frozen = recorder.complete(number, arch, outcome.measurement, self.cfg.platform)
        else:
            frozen = recorder.fail(number, arch, outcome.error or "measurement failed", self.cfg.platform,
                                   workload=self.workload.to_dict())
        ok = frozen.state.name == "COMPLETE"
        self.heartbeat.discard(frozen._trial_id)
        if self.tracker is not None and run_id is not None:
            self._log_trial(study_name, run_id, frozen)
        if ok:
            self.failures.clear()
        else:
            self.failures.append(str(frozen.user_attrs.get("fail_reason")))
            log.warning("trial %d of %s failed: %s", number, study_name, frozen.user_attrs.get("fail_reason"))
        return ok

    def failed_out(self) -> str | None:
        """Why the run must stop after ``max_failures`` failures in a row, else ``None``."""
        if len(self.failures) < self.cfg.max_failures:
            return None
        return (f"{len(self.failures)} measurements in a row failed (max_failures={self.cfg.max_failures}); "
                f"the last: {self.failures[-1]}")

    def _log_trial(self, study_name: str, run_id: str, frozen: Any) -> None:
        from protran_tune.platforms.measurement import Measurement

        data = frozen.user_attrs.get("measurement") if frozen.state.name == "COMPLETE" else None
        arch = architecture_from_attr(frozen.user_attrs["architecture"])
        self.tracker.log_trial(
            study=study_name, parent_run_id=run_id, trial_number=frozen.number, arch=arch,
            measurement=Measurement.from_dict(data) if data else None, platform=self.cfg.platform,
            workload=self.workload.to_dict(), error=frozen.user_attrs.get("fail_reason"),
            extra_tags={"protran.phase": frozen.user_attrs.get("phase", "")},
        )

    def _reconcile_tracking(self) -> None:
        """Log finished trials that never reached MLflow (process killed between tell and logging); those
        whose owner may still log them are left to it."""
        if self.tracker is None:
            return
        with self._lock():
            for study, run_id in ((self.study, self.parent_run), (self.holdout, self.holdout_run)):
                logged = self.tracker.logged_trials(study.study_name, refresh=True)
                for t in study.get_trials(deepcopy=False):
                    if (t.state.name in ("COMPLETE", "FAIL") and t.number not in logged and "architecture" in t.user_attrs
                            and not self._busy_elsewhere(t)):
                        self._log_trial(study.study_name, run_id, t)

    def _recover(self, study: Any, recorder: Any, run_id: str | None) -> int:
        """Finish RUNNING trials of gone owners (:meth:`_stale`): from their stored measurement or by
        measuring them. They are taken over under the lock, so no two processes finish one."""
        from optuna.trial import TrialState

        from protran_tune.platforms.measurement import Measurement
        from protran_tune.workflows.executors import Outcome

        with self._lock():
            stale = self._stale(study)
            for t in stale:
                self._claim(study, t._trial_id, {})
        done = 0
        to_measure = []
        for t in stale:
            if t.user_attrs.get("measurement") is not None:
                arch = architecture_from_attr(t.user_attrs["architecture"])
                self._record(recorder, run_id, study.study_name, t.number, arch,
                             Outcome(Measurement.from_dict(t.user_attrs["measurement"])))
                done += 1
                continue
            try:
                arch = (architecture_from_attr(t.user_attrs["architecture"]) if "architecture" in t.user_attrs
                        else params_to_architecture(t.params, self.cfg.space))
            except ValueError:  # killed between ask and suggest: nothing was measured, nothing to keep
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                self.heartbeat.discard(t._trial_id)
                continue
            self._claim(study, t._trial_id, {"architecture": arch.to_json(), "arch_hash": arch.content_hash()})
            to_measure.append((t.number, arch))
        for i in range(0, len(to_measure), self.executor.width):
            chunk = to_measure[i:i + self.executor.width]
            for (number, arch), outcome in zip(chunk, self.executor.measure([a for _, a in chunk])):
                self._record(recorder, run_id, study.study_name, number, arch, outcome)
                done += 1
        return done

    @staticmethod
    def _running() -> Any:
        from optuna.trial import TrialState

        return TrialState.RUNNING

    # ------------------------------------------------------------- phases
    def measure_holdout(self, progress: _Progress) -> None:
        """Measure the held-out architectures not measured, failed or in flight yet (by architecture hash)."""
        self._recover(self.holdout, self.holdout_recorder, self.holdout_run)
        archs = holdout_architectures(self.cfg, self.pool)
        while self.failed_out() is None:
            claimed = self._claim_holdout(archs)
            if not claimed:
                return
            for (number, arch), outcome in zip(claimed, self.executor.measure([a for _, a in claimed])):
                self._record(self.holdout_recorder, self.holdout_run, self.holdout.study_name, number, arch, outcome)
                progress.update(1)

    def _claim_holdout(self, archs: list[Architecture]) -> list[tuple[int, Architecture]]:
        """Up to ``width`` held-out architectures no trial holds yet, each in a new trial owned by this process."""
        from optuna.trial import TrialState

        with self._lock(), _asking():
            taken = {t.user_attrs.get("arch_hash") for t in self.holdout.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING))}
            claimed = []
            for arch in [a for a in archs if a.content_hash() not in taken][:self.executor.width]:
                trial = self.holdout.ask()
                self._claim(self.holdout, trial._trial_id, {"architecture": arch.to_json(), "arch_hash": arch.content_hash(),
                                                           "phase": "holdout"})
                claimed.append((trial.number, arch))
            return claimed

    def _claim_batch(self) -> list[tuple[int, Architecture]] | None:
        """Ask up to ``width`` new architectures within the budget, counting trials in flight anywhere;
        ``[]`` when the rest of the budget is in flight, ``None`` when nothing new is left to ask."""
        from optuna.trial import TrialState

        with self._lock(), _asking():
            trials = self.study.get_trials(deepcopy=False)
            free = self.cfg.budget - sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in trials)
            if free <= 0:
                return []
            if self.pool is not None:  # pool rows neither held out nor in the study (any state but FAIL)
                out = {a.content_hash() for a in holdout_architectures(self.cfg, self.pool)}
                out |= {t.user_attrs.get("arch_hash") for t in trials if t.state != TrialState.FAIL}
                free = min(free, sum(a.content_hash() not in out for a in self.pool))
                if free <= 0:
                    return None
            asked = [a for a in (self._ask() for _ in range(min(self.executor.width, free))) if a is not None]
            return asked or None

    def _ask(self) -> tuple[int, Architecture] | None:
        """Ask one new architecture; duplicates of measured ones are PRUNED (never measured twice)."""
        from optuna.trial import TrialState

        measured = {t.user_attrs.get("arch_hash") for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))}
        for _ in range(20):
            trial = self.study.ask()
            arch = suggest_architecture(trial, self.cfg.space)
            h = arch.content_hash()
            phase = "seed" if self.n_measured() < self.cfg.seed_samples else "active"
            self._claim(self.study, trial._trial_id, {"architecture": arch.to_json(), "arch_hash": h, "phase": phase})
            if h in measured:
                trial.set_user_attr("duplicate_of", h)
                self.study.tell(trial, state=TrialState.PRUNED)
                self.heartbeat.discard(trial._trial_id)
                continue
            return trial.number, arch
        return None

    def evaluate(self) -> Any | None:
        """Fit the surrogate on the main study and score it on the held-out set (``None`` if too few)."""
        from optuna.trial import TrialState

        from protran_tune.workflows.fit import dataset_from_trials, fit_and_evaluate

        train = dataset_from_trials(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        test = dataset_from_trials(self.holdout.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if len(train) < 4 or len(test) < 2:
            return None
        return fit_and_evaluate(self.cfg.make_surrogate(), self.cfg.space,
                                train, test)

    def run(self, should_stop: Callable[[], bool] | None = None) -> ProfileResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        self._reconcile_tracking()
        self._recover(self.study, self.recorder, self.parent_run)
        curve: list[dict[str, Any]] = list(self.study.user_attrs.get("curve", []))
        n_measured = self.n_measured()
        progress = _Progress(cfg.progress, cfg.budget + cfg.test_samples,
                             n_measured + min(cfg.test_samples, self._states(self.holdout).get("COMPLETE", 0)),
                             f"profile {cfg.platform}")
        stop_reason = "budget"
        converged = False
        try:
            self.measure_holdout(progress)
            evaluation = self.evaluate()
            while True:
                n_measured = self.n_measured()
                if self.failed_out() is not None:
                    stop_reason = "failures"
                    break
                if evaluation is not None and n_measured >= cfg.seed_samples and evaluation.converged(cfg.threshold):
                    converged, stop_reason = True, "converged"
                    break
                if n_measured >= cfg.budget:
                    stop_reason = "budget"
                    break
                if cfg.timeout_s is not None and time.perf_counter() - t0 > cfg.timeout_s:
                    stop_reason = "timeout"
                    break
                if should_stop is not None and should_stop():
                    stop_reason = "stopped"
                    break
                asked = self._claim_batch()
                if asked is None:
                    stop_reason = "exhausted"
                    break
                if not asked:  # the rest of the budget is in flight in other processes: wait for it
                    time.sleep(WAIT_S)
                    self._recover(self.study, self.recorder, self.parent_run)
                    continue
                outcomes = self.executor.measure([arch for _, arch in asked])
                ok = sum(self._record(self.recorder, self.parent_run, cfg.study_name, n, a, o)
                         for (n, a), o in zip(asked, outcomes))
                progress.update(ok)
                evaluation = self.evaluate()
                if evaluation is not None:
                    point = evaluation.curve_point()
                    if not curve or curve[-1]["n_samples"] != point["n_samples"]:
                        curve.append(point)
                        self.study.set_user_attr("curve", curve)
                        if self.tracker is not None:
                            self.tracker.log_study_metrics(self.parent_run, evaluation.metrics(), step=evaluation.n_train)
                    progress.update(0, mse=f"{max(point['test_mse'].values()):.4f}")
        finally:
            progress.close()
        states = self._states(self.study)
        result = ProfileResult(
            study_name=cfg.study_name, n_measured=states.get("COMPLETE", 0), n_failed=states.get("FAIL", 0),
            n_test=self._states(self.holdout).get("COMPLETE", 0), converged=converged, stop_reason=stop_reason,
            curve=curve, samples_to_convergence=_samples_to_convergence(curve, cfg.threshold),
            report_dir=None, wall_time_s=time.perf_counter() - t0,
            message=self.failed_out() if stop_reason == "failures" else None,
        )
        self.study.set_user_attr("result", {k: v for k, v in result.to_dict().items() if k != "curve"})
        return result


def _samples_to_convergence(curve: list[dict[str, Any]], threshold: float) -> dict[str, int | None]:
    from protran_tune.objectives.scoring import samples_to_convergence

    if not curve:
        return {t: None for t in HARDWARE_TARGETS}
    return samples_to_convergence(curve, threshold, HARDWARE_TARGETS)["samples_to_convergence"]


# --------------------------------------------------------------------------- outputs
def export_measurements(study: Any, path: Path, holdout: bool = False) -> int:
    """Write the study's finished trials as ``measure`` JSONL records; returns the count."""
    from optuna.trial import TrialState

    n = 0
    with path.open("a") as fh:
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if "architecture" not in t.user_attrs:
                continue
            record = {
                "arch_hash": t.user_attrs.get("arch_hash"),
                "architecture": architecture_from_attr(t.user_attrs["architecture"]).to_dict(),
                "platform": t.user_attrs.get("platform"), "status": "ok" if t.state == TrialState.COMPLETE else "failed",
                "error": t.user_attrs.get("fail_reason"), "measurement": t.user_attrs.get("measurement")
                if t.state == TrialState.COMPLETE else None,
                "workload": study.user_attrs.get("workload"), "study": study.study_name, "trial": t.number,
                "split": "holdout" if holdout else t.user_attrs.get("phase", "train"),
            }
            fh.write(json.dumps(record) + "\n")
            n += 1
    return n


def write_outputs(profiler: Profiler, result: ProfileResult, out_dir: Path) -> Path:
    """Measurements, curve and held-out predictions into ``out_dir``, then the report's plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meas = out_dir / "measurements.jsonl"
    meas.unlink(missing_ok=True)
    export_measurements(profiler.study, meas)
    export_measurements(profiler.holdout, meas, holdout=True)
    evaluation = profiler.evaluate()
    summary = {**result.to_dict(), "threshold": profiler.cfg.threshold, "platform": profiler.cfg.platform}
    if evaluation is not None:
        summary["final"] = evaluation.metrics()
        (out_dir / "predictions.json").write_text(json.dumps({
            "targets": list(HARDWARE_TARGETS), "units": [get_target(t).unit for t in HARDWARE_TARGETS],
            "y_true": evaluation.y_true.tolist(), "y_pred": evaluation.y_pred.tolist(),
            "y_std": evaluation.y_std.tolist(), "regressor": profiler.cfg.surrogate,
        }))
    (out_dir / "profile_result.json").write_text(json.dumps(summary, indent=1))
    from protran_tune.workflows.report_bridge import make_report

    make_report(out_dir, measurements=meas, profile_result=out_dir / "profile_result.json",
                predictions=out_dir / "predictions.json", title=f"profile {profiler.cfg.study_name}")
    return out_dir


def platform_options(cfg: ProfileConfig) -> dict[str, Any]:
    """``cfg.platform_options`` plus ``time_budget_s`` for platforms that accept it (torch platforms)."""
    import inspect

    from protran_tune.platforms.base import _REGISTRY, available_platforms

    options = dict(cfg.platform_options)
    if cfg.latency_budget_s is not None and "time_budget_s" not in options and cfg.platform in available_platforms():
        cls = _REGISTRY[cfg.platform]
        accepts = any("time_budget_s" in inspect.signature(k.__init__).parameters for k in cls.__mro__
                      if "__init__" in vars(k))
        if accepts:
            options["time_budget_s"] = float(cfg.latency_budget_s)
    return options


def profile(cfg: ProfileConfig) -> ProfileResult:
    """Run ``profile`` with embedded defaults: storage, MLflow, local Ray (or ``--no-ray``)."""
    from protran_tune.runtime import open_storage, ray_session
    from protran_tune.tracking.mlflow_tracking import MlflowTracker
    from protran_tune.workflows.executors import InProcessExecutor, RayExecutor

    storage = open_storage(cfg.storage, HEARTBEAT_INTERVAL_S, HEARTBEAT_GRACE_S)
    tracker = MlflowTracker(cfg.mlflow_uri, cfg.experiment, artifacts=cfg.artifacts) if cfg.mlflow_uri else None
    workload = cfg.workload()

    def go(executor: Any) -> ProfileResult:
        profiler = Profiler(cfg, executor, tracker, storage)
        status = "FAILED"
        try:
            result = profiler.run()
            if cfg.report_dir:
                result.report_dir = str(write_outputs(profiler, result, Path(cfg.report_dir)))
            status = "FINISHED"
            return result
        finally:
            profiler.close()
            executor.close()
            if tracker is not None and profiler.parent_run:
                tracker.finish_study(profiler.holdout_run, status)
                tracker.finish_study(profiler.parent_run, status)

    for module in cfg.plugins:
        importlib.import_module(module)
    cfg.platform_options = platform_options(cfg)
    if not cfg.use_ray:
        return go(InProcessExecutor(cfg.platform, workload, cfg.platform_options))
    resources = {f"platform:{cfg.platform}": float(cfg.n_workers or 1)}
    with ray_session(cfg.ray_address, num_cpus=os.cpu_count(), resources=resources):
        return go(RayExecutor(cfg.platform, workload, cfg.platform_options, cfg.n_workers, cfg.plugins))
