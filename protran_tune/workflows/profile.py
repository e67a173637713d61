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
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from protran_tune.objectives.targets import ENERGY, HARDWARE_TARGETS, LATENCY, get_target
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
        if not self.study_name or not self.study_name.strip() or HOLDOUT_SUFFIX in self.study_name:
            raise ValueError(f"study_name must be non-empty and not contain {HOLDOUT_SUFFIX!r}, got {self.study_name!r}")
        for name in ("timeout_s", "latency_budget_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
        if self.n_workers is not None and (isinstance(self.n_workers, bool) or not isinstance(self.n_workers, int)
                                           or self.n_workers < 1):
            raise ValueError(f"n_workers must be a positive integer or None, got {self.n_workers!r}")
        self.check_components()

    def check_components(self) -> None:
        """Fail now, before Ray or any measurement starts, on a bad workload, design space, surrogate (name or
        parameters) or a query rule the surrogate cannot serve."""
        from protran_tune.samplers.acquisition import named_acquisition
        from protran_tune.surrogates import make_surrogate

        self.workload()
        get_space(self.space)
        named_acquisition(self.acquisition, make_surrogate(self.surrogate, self.seed, default_space=self.space,
                                                          **self.surrogate_params))

    def workload(self) -> Workload:
        return Workload(mode=self.mode, batch_size=self.batch_size, seq_len=self.seq_len,
                        max_repeats=self.max_repeats, min_repeats=min(self.min_repeats, self.max_repeats),
                        target_ci_rel=self.target_ci_rel, seed=self.seed)


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
    notes: list[str] = field(default_factory=list)  # what the numbers are: modelled energy, missed precision
    message: str | None = None  # why the run stopped, when that is a failure

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- samplers
def platform_pool(cfg: ProfileConfig) -> list[Architecture] | None:
    """The distinct architectures the platform can measure (:meth:`Platform.pool`, e.g. the records of a
    ``replay`` file), or ``None`` when it measures any architecture."""
    from protran_tune.errors import UsageError
    from protran_tune.platforms.base import available_platforms, platform_class

    if cfg.platform not in available_platforms():
        return None
    pool = platform_class(cfg.platform).pool(**cfg.platform_options)
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
    from protran_tune.surrogates import make_surrogate
    from protran_tune.tracking.records import METRIC_NAMES

    pool = platform_pool(cfg) if pool is None else pool
    candidates = None
    if pool is None:
        seed_sampler = LatinHypercubeSampler(cfg.space, n_points=cfg.seed_samples, seed=cfg.seed)
    else:
        held = {a.content_hash() for a in holdout_architectures(cfg, pool)}
        candidates = [a for a in pool if a.content_hash() not in held]
        seed_sampler = PoolLatinHypercubeSampler(cfg.space, candidates, n_points=cfg.seed_samples, seed=cfg.seed)
    surrogate = make_surrogate(cfg.surrogate, cfg.seed, default_space=cfg.space, **cfg.surrogate_params)
    return ActiveLearningSampler(surrogate, cfg.space, n_startup_trials=cfg.seed_samples,
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


def _beats(storage: Any) -> bool:
    """Whether ``storage`` keeps Optuna trial heartbeats (:func:`~protran_tune.runtime.open_storage` with an interval)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


def _silent_trials(storage: Any, study_name: str) -> set[int]:
    """Numbers of the study's RUNNING trials whose heartbeat is older than the storage's grace period (none
    without heartbeats). Optuna lists them only through ``_get_stale_trial_ids``: its public
    ``fail_stale_trials`` fails them, where ``profile`` takes them over."""
    if not _beats(storage):
        return set()
    ids = storage._get_stale_trial_ids(storage.get_study_id_from_name(study_name))
    return {storage.get_trial_number_from_id(i) for i in ids}


@contextlib.contextmanager
def quiet_ask() -> Iterator[None]:
    """Quiet Optuna's note that trial heartbeats are meant for ``Study.optimize``: ``profile`` beats its
    asked trials itself (:class:`_Heartbeat`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class _Heartbeat:
    """Beats Optuna's trial heartbeat for this process's RUNNING trials every ``interval_s`` seconds (a
    daemon thread), so that other processes, on any host, see them alive; a no-op without heartbeats."""

    def __init__(self, storage: Any, interval_s: float) -> None:
        self.storage = storage if _beats(storage) else None
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

    def __getstate__(self) -> dict[str, Any]:
        """A copy beats nothing (Ray Tune pickles its searcher, whose callbacks hold the profiler)."""
        return {"storage": self.storage, "interval_s": self.interval_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["storage"], state["interval_s"])  # type: ignore[misc]


class Progress:
    """Progress on stderr: a bar in a terminal; elsewhere (``ray job submit``, CI, a log file) plain lines,
    one per phase and one per architecture, so a long run is never silent."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.desc, self.total, self.done = desc, total, initial
        self.bar = None
        self.lines = False
        self._phase: str | None = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="arch", dynamic_ncols=True, file=self.stream)
        else:
            self.lines = enabled

    def _print(self, text: str) -> None:
        if self.lines:
            print(f"{self.desc}: {text}", file=self.stream, flush=True)

    def phase(self, name: str, text: str) -> None:
        """Announce phase ``name`` (held-out, seed, active) the first time it is entered."""
        if name != self._phase:
            self._phase = name
            self._print(text)

    def record(self, phase: str, arch: Architecture, outcome: Any) -> None:
        """One architecture of ``phase`` done: a measurement counts (a held-out failure too: it is not retried)."""
        m = outcome.measurement
        if m is not None or phase == "held-out":
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
        if m is None:
            what = f"FAILED: {outcome.error}"
        else:
            per = {LATENCY.name: "/seq", ENERGY.name: "/seq"}
            values = ", ".join(f"{k} {v:.4g} {get_target(k).unit}{per.get(k, '')}"
                               for k, v in m.objectives().items() if v is not None)
            what = f"{values} [{m.source}], took {m.wall_time_s or 0:.1f} s"
        self._print(f"[{self.done}/{self.total}] {phase} {arch.content_hash()}: {what}")

    def postfix(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

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
        self.storage = storage
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
        self.heartbeat = _Heartbeat(storage, HEARTBEAT_INTERVAL_S)
        self.recorder = StudyRecorder(self.study, storage)
        self.holdout_recorder = StudyRecorder(self.holdout, storage)
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

    def _claim(self, recorder: Any, number: int, attrs: dict[str, Any]) -> None:
        """Make this process the owner of RUNNING trial ``number`` (with ``attrs``) and beat its heartbeat."""
        recorder.set_trial_attrs(number, {"owner": self.owner, **attrs})
        self.heartbeat.add(recorder.trial_id(number))

    def _release(self, recorder: Any, number: int) -> None:
        """Stop beating the heartbeat of trial ``number`` (finished)."""
        self.heartbeat.discard(recorder.trial_id(number))

    def _stale(self, study: Any) -> list[Any]:
        """RUNNING trials whose owner is gone: dead (this host) or silent past the heartbeat grace period."""
        silent = _silent_trials(self.storage, study.study_name)
        out = []
        for t in study.get_trials(deepcopy=False, states=(self._running(),)):
            owner = Owner.parse(t.user_attrs.get("owner"))
            if owner is None or owner.alive() is False or t.number in silent:
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
            recorder.set_trial_attrs(number, {"node": outcome.node})
        if outcome.measurement is not None:
            frozen = recorder.complete(number, arch, outcome.measurement, self.cfg.platform)
        else:
            frozen = recorder.fail(number, arch, outcome.error or "measurement failed", self.cfg.platform,
                                   workload=self.workload.to_dict())
        ok = frozen.state.name == "COMPLETE"
        self._release(recorder, number)
        if self.tracker is not None and run_id is not None:
            self.tracker.log_trial(
                study=study_name, parent_run_id=run_id, trial_number=number, arch=arch,
                measurement=outcome.measurement if ok else None, platform=self.cfg.platform,
                workload=self.workload.to_dict(), error=frozen.user_attrs.get("fail_reason"),
                extra_tags={"protran.phase": frozen.user_attrs.get("phase", "")},
            )
        self.note_outcome(ok, frozen.user_attrs.get("fail_reason"))
        if not ok:
            log.warning("trial %d of %s failed: %s", number, study_name, frozen.user_attrs.get("fail_reason"))
        return ok

    def note_outcome(self, ok: bool, reason: str | None = None) -> None:
        """Count a measurement's outcome toward the failures in a row (:meth:`failed_out`)."""
        if ok:
            self.failures.clear()
        else:
            self.failures.append(str(reason))

    def failed_out(self) -> str | None:
        """Why the run must stop after ``max_failures`` failures in a row, else ``None``."""
        if len(self.failures) < self.cfg.max_failures:
            return None
        return (f"{len(self.failures)} measurements in a row failed (max_failures={self.cfg.max_failures}); "
                f"the last: {self.failures[-1]}")

    def _reconcile_tracking(self) -> None:
        """Log finished trials that never reached MLflow (process killed between tell and logging); those
        whose owner may still log them are left to it."""
        if self.tracker is None:
            return
        with self._lock():
            for study, run_id in ((self.study, self.parent_run), (self.holdout, self.holdout_run)):
                self.tracker.log_untracked_trials(study, run_id, workload=self.workload.to_dict(), refresh=True,
                                                  skip=self._busy_elsewhere)

    def _recover(self, study: Any, recorder: Any, run_id: str | None) -> int:
        """Finish RUNNING trials of gone owners (:meth:`_stale`): from their stored measurement or by
        measuring them. They are taken over under the lock, so no two processes finish one."""
        from optuna.trial import TrialState

        from protran_tune.platforms.measurement import Measurement
        from protran_tune.workflows.executors import Outcome

        with self._lock():
            stale = self._stale(study)
            for t in stale:
                self._claim(recorder, t.number, {})
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
                self._release(recorder, t.number)
                continue
            self._claim(recorder, t.number, {"architecture": arch.to_json(), "arch_hash": arch.content_hash()})
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
    def measure_holdout(self, progress: Progress) -> None:
        """Measure the held-out architectures not measured, failed or in flight yet (by architecture hash)."""
        self._recover(self.holdout, self.holdout_recorder, self.holdout_run)
        archs = holdout_architectures(self.cfg, self.pool)
        todo = [a for a in archs if a.content_hash() not in self._holdout_taken()]
        if todo:
            progress.phase("held-out", f"held-out set: measuring {len(todo)} of {self.cfg.test_samples} random "
                                       "architectures (the surrogate's test set)")
        while self.failed_out() is None:
            claimed = self._claim_holdout(archs)
            if not claimed:
                return
            for (number, arch), outcome in zip(claimed, self.executor.measure([a for _, a in claimed])):
                self._record(self.holdout_recorder, self.holdout_run, self.holdout.study_name, number, arch, outcome)
                progress.record("held-out", arch, outcome)

    def _holdout_taken(self) -> set[str]:
        """Hashes of the held-out architectures measured, failed or in flight (held by a trial)."""
        from optuna.trial import TrialState

        return {t.user_attrs.get("arch_hash") for t in self.holdout.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING))}

    def _claim_holdout(self, archs: list[Architecture]) -> list[tuple[int, Architecture]]:
        """Up to ``width`` held-out architectures no trial holds yet, each in a new trial owned by this process."""
        with self._lock(), quiet_ask():
            taken = self._holdout_taken()
            claimed = []
            for arch in [a for a in archs if a.content_hash() not in taken][:self.executor.width]:
                trial = self.holdout.ask()
                self._claim(self.holdout_recorder, trial.number, {"architecture": arch.to_json(),
                                                                  "arch_hash": arch.content_hash(), "phase": "holdout"})
                claimed.append((trial.number, arch))
            return claimed

    def _claim_batch(self, phase: str) -> list[tuple[int, Architecture]] | None:
        """Ask up to ``width`` new architectures of ``phase`` (seed, active) within the budget, counting trials in
        flight anywhere; ``[]`` when the rest of the budget is in flight, ``None`` when nothing new is left to ask."""
        from optuna.trial import TrialState

        with self._lock(), quiet_ask():
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
            asked = [a for a in (self._ask(phase) for _ in range(min(self.executor.width, free))) if a is not None]
            return asked or None

    def _ask(self, phase: str) -> tuple[int, Architecture] | None:
        """Ask one new architecture of ``phase``; duplicates of measured ones are PRUNED (never measured twice)."""
        from optuna.trial import TrialState

        measured = {t.user_attrs.get("arch_hash") for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))}
        for _ in range(20):
            trial = self.study.ask()
            arch = suggest_architecture(trial, self.cfg.space)
            h = arch.content_hash()
            self._claim(self.recorder, trial.number, {"architecture": arch.to_json(), "arch_hash": h, "phase": phase})
            if h in measured:
                trial.set_user_attr("duplicate_of", h)
                self.study.tell(trial, state=TrialState.PRUNED)
                self._release(self.recorder, trial.number)
                continue
            return trial.number, arch
        return None

    def evaluate(self) -> Any | None:
        """Fit the surrogate on the main study and score it on the held-out set (``None`` if too few)."""
        from optuna.trial import TrialState

        from protran_tune.surrogates import make_surrogate
        from protran_tune.workflows.fit import dataset_from_trials, fit_and_evaluate

        train = dataset_from_trials(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        test = dataset_from_trials(self.holdout.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if len(train) < 4 or len(test) < 2:
            return None
        cfg = self.cfg
        surrogate = make_surrogate(cfg.surrogate, cfg.seed, default_space=cfg.space, **cfg.surrogate_params)
        return fit_and_evaluate(surrogate, cfg.space, train, test)

    def progress(self) -> Progress:
        """Progress of this run (bar or lines on stderr; nothing when ``cfg.progress`` is off)."""
        cfg = self.cfg
        done = self.n_measured() + min(cfg.test_samples, self._states(self.holdout).get("COMPLETE", 0))
        return Progress(cfg.progress, cfg.budget + cfg.test_samples, done, f"profile {cfg.study_name}")

    def enter_phase(self, progress: Progress) -> str:
        """``seed`` or ``active`` by the architectures measured so far; announced on entry."""
        cfg = self.cfg
        if self.n_measured() < cfg.seed_samples:
            progress.phase("seed", f"seed: {cfg.seed_samples} Latin-hypercube architectures")
            return "seed"
        progress.phase("active", f"active learning: {cfg.surrogate} surrogate, {cfg.acquisition} queries, until "
                                 f"every held-out test MSE < {cfg.threshold:g} or {cfg.budget} measured")
        return "active"

    def stop_reason(self, evaluation: Any | None, t0: float, should_stop: Callable[[], bool] | None = None) -> str | None:
        """Why to stop now (``failures``, ``converged``, ``budget``, ``timeout``, ``stopped``), or ``None`` to go on."""
        cfg = self.cfg
        if self.failed_out() is not None:
            return "failures"
        n_measured = self.n_measured()
        if evaluation is not None and n_measured >= cfg.seed_samples and evaluation.converged(cfg.threshold):
            return "converged"
        if n_measured >= cfg.budget:
            return "budget"
        if cfg.timeout_s is not None and time.perf_counter() - t0 > cfg.timeout_s:
            return "timeout"
        if should_stop is not None and should_stop():
            return "stopped"
        return None

    def score(self, curve: list[dict[str, Any]], progress: Progress) -> Any | None:
        """Evaluate the surrogate on the held-out set; a new point goes on ``curve``, the study and MLflow."""
        evaluation = self.evaluate()
        if evaluation is not None:
            point = evaluation.curve_point()
            if not curve or curve[-1]["n_samples"] != point["n_samples"]:
                curve.append(point)
                self.study.set_user_attr("curve", curve)
                if self.tracker is not None:
                    self.tracker.log_study_metrics(self.parent_run, evaluation.metrics(), step=evaluation.n_train)
            progress.postfix(mse=f"{max(point['test_mse'].values()):.4f}")
        return evaluation

    def run(self, should_stop: Callable[[], bool] | None = None) -> ProfileResult:
        """Held-out set, then the search until a stop reason (budget, convergence, failures, ``should_stop``)."""
        t0 = time.perf_counter()
        self._reconcile_tracking()
        self._recover(self.study, self.recorder, self.parent_run)
        curve: list[dict[str, Any]] = list(self.study.user_attrs.get("curve", []))
        progress = self.progress()
        try:
            self.measure_holdout(progress)
            evaluation = self.evaluate()
            stop_reason = self.stop_reason(evaluation, t0, should_stop)
            if stop_reason is None:
                stop_reason = self._search(curve, progress, evaluation, t0, should_stop)
        finally:
            progress.close()
        return self.result(stop_reason, curve, t0)

    def _search(self, curve: list[dict[str, Any]], progress: Progress, evaluation: Any | None, t0: float,
                should_stop: Callable[[], bool] | None) -> str:
        """Measure the main study batch by batch in this process; returns the stop reason."""
        while True:
            phase = self.enter_phase(progress)
            asked = self._claim_batch(phase)
            if asked is None:
                return "exhausted"
            if not asked:  # the rest of the budget is in flight in other processes: wait for it
                time.sleep(WAIT_S)
                self._recover(self.study, self.recorder, self.parent_run)
            else:
                outcomes = self.executor.measure([arch for _, arch in asked])
                for (n, a), o in zip(asked, outcomes):
                    self._record(self.recorder, self.parent_run, self.cfg.study_name, n, a, o)
                    progress.record(phase, a, o)
                evaluation = self.score(curve, progress)
            if (stop_reason := self.stop_reason(evaluation, t0, should_stop)) is not None:
                return stop_reason

    def result(self, stop_reason: str, curve: list[dict[str, Any]], t0: float) -> ProfileResult:
        """The run's :class:`ProfileResult` (also stored on the study), with notes on what the numbers are."""
        from protran_tune.reporting.quality import measurement_notes

        states = self._states(self.study)
        result = ProfileResult(
            study_name=self.cfg.study_name, n_measured=states.get("COMPLETE", 0), n_failed=states.get("FAIL", 0),
            n_test=self._states(self.holdout).get("COMPLETE", 0), converged=stop_reason == "converged",
            stop_reason=stop_reason, curve=curve, samples_to_convergence=_samples_to_convergence(curve, self.cfg.threshold),
            report_dir=None, wall_time_s=time.perf_counter() - t0,
            notes=measurement_notes(self.measurements(), self.cfg.target_ci_rel),
            message=self.failed_out() if stop_reason == "failures" else None,
        )
        self.study.set_user_attr("result", {k: v for k, v in result.to_dict().items() if k != "curve"})
        return result

    def measurements(self) -> list[Any]:
        """The :class:`Measurement` of every COMPLETE trial, main study and held-out set."""
        from optuna.trial import TrialState

        from protran_tune.platforms.measurement import Measurement

        trials = [t for study in (self.study, self.holdout)
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        return [Measurement.from_dict(t.user_attrs["measurement"]) for t in trials if t.user_attrs.get("measurement")]


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
    """``cfg.platform_options`` plus ``time_budget_s`` for platforms that accept it (torch platforms).

    Options the platform's constructor does not take are a ``UsageError`` now, not in a Ray actor later.
    """
    import inspect

    from protran_tune.errors import UsageError
    from protran_tune.platforms.base import available_platforms, platform_class

    options = dict(cfg.platform_options)
    if cfg.platform not in available_platforms():
        return options
    cls = platform_class(cfg.platform)
    inits = [inspect.signature(k.__init__).parameters for k in cls.__mro__ if "__init__" in vars(k) and k is not object]
    named = {n for params in inits for n, p in params.items()
             if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if inits and not any(p.kind == p.VAR_KEYWORD for p in inits[0].values()):
        named = {n for n in inits[0] if n != "self"}
    unknown = sorted(set(options) - named)
    if unknown:
        raise UsageError(f"platform {cfg.platform!r} takes no option {', '.join(unknown)} (--platform-option); "
                         f"its options: {', '.join(sorted(named)) or 'none'}")
    if cfg.latency_budget_s is not None and "time_budget_s" not in options and "time_budget_s" in named:
        options["time_budget_s"] = float(cfg.latency_budget_s)
    return options


def profile(cfg: ProfileConfig, profiler_class: type[Profiler] | None = None) -> ProfileResult:
    """Run ``profile`` with embedded defaults: storage, MLflow, local Ray (or ``--no-ray``).

    ``profiler_class`` runs the search (default :class:`Profiler`, the ask/tell loop; ``profile --tune`` passes
    :class:`~protran_tune.workflows.tune.TuneProfiler`).
    """
    from protran_tune.runtime import open_storage, ray_session
    from protran_tune.tracking.mlflow_tracking import MlflowTracker
    from protran_tune.workflows.executors import InProcessExecutor, RayExecutor

    for module in cfg.plugins:
        importlib.import_module(module)
    cfg.platform_options = platform_options(cfg)
    storage = open_storage(cfg.storage, HEARTBEAT_INTERVAL_S, HEARTBEAT_GRACE_S)
    tracker = MlflowTracker(cfg.mlflow_uri, cfg.experiment, artifacts=cfg.artifacts) if cfg.mlflow_uri else None
    workload = cfg.workload()

    def go(executor: Any) -> ProfileResult:
        profiler = (profiler_class or Profiler)(cfg, executor, tracker, storage)
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

    if not cfg.use_ray:
        return go(InProcessExecutor(cfg.platform, workload, cfg.platform_options))
    resources = {f"platform:{cfg.platform}": float(cfg.n_workers or 1)}
    with ray_session(cfg.ray_address, num_cpus=os.cpu_count(), resources=resources):
        return go(RayExecutor(cfg.platform, workload, cfg.platform_options, cfg.n_workers, cfg.plugins))
