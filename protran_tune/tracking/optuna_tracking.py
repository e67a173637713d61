"""Optuna recording: studies with named objectives, trials with the architecture and measurement.

A measured trial's values are ``[latency_s, energy_j, peak_power_w]`` per sequence (all minimised,
named with ``study.set_metric_names`` so optuna-dashboard shows them and the Pareto front). Its user
attrs hold ``architecture`` (JSON object), ``arch_hash``, ``platform``, ``source``, ``record_key``,
``measurement`` (the full :meth:`Measurement.to_dict`, power trace included) and ``summary``; a failed
trial holds ``fail_reason``.

Crash safety: the measurement is written to the trial's user attrs *before* ``tell``; a process killed
between the two leaves a RUNNING trial whose measurement ``profile`` completes on its next run without
measuring again.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from protran_tune.platforms.measurement import Measurement
from protran_tune.platforms.records import record_key
from protran_tune.space import Architecture
from protran_tune.space.search_space import optuna_distributions
from protran_tune.tracking.records import METRIC_NAMES, measurement_summary, objective_values

ROLE_ATTR = "protran:role"


def create_study(storage: Any, study_name: str, sampler: optuna.samplers.BaseSampler | None = None,
                 load_if_exists: bool = True, user_attrs: Mapping[str, Any] | None = None) -> optuna.Study:
    """A 3-objective minimisation study named ``[latency_s, energy_j, peak_power_w]``."""
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                directions=["minimize"] * len(METRIC_NAMES), load_if_exists=load_if_exists)
    if study.metric_names != METRIC_NAMES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(METRIC_NAMES))
    for key, value in (user_attrs or {}).items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def trial_attrs(arch: Architecture, m: Measurement | None, platform: str, workload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """User attrs recorded on a trial (architecture, hash, platform, record key, measurement)."""
    attrs: dict[str, Any] = {"architecture": arch.to_json(), "arch_hash": arch.content_hash(), "platform": platform}
    if m is not None:
        attrs.update(measurement=m.to_dict(include_trace=True), summary=measurement_summary(m), source=m.source)
    attrs["record_key"] = record_key({**attrs, "workload": workload}, measured=True)
    return attrs


class StudyRecorder:
    """Writes measurements into an Optuna study (ask/tell trials, added trials).

    Args:
        study: the study written to.
        storage: the storage it lives in (the ``optuna.storages.BaseStorage`` or URL it was created with).
            User attrs of a RUNNING trial known by its number only (asked earlier, or by a process that
            died) are written through the storage's public API: a study hands out no such trial.
    """

    def __init__(self, study: optuna.Study, storage: BaseStorage | str) -> None:
        from protran_tune.runtime import open_storage

        self.study = study
        self.storage = open_storage(storage) if isinstance(storage, str) else storage
        self._study_id = self.storage.get_study_id_from_name(study.study_name)

    def trial_id(self, number: int) -> int:
        """The storage's id of trial ``number`` (what storage-level calls such as heartbeats take)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def set_trial_attrs(self, number: int, attrs: Mapping[str, Any]) -> None:
        """Set user attrs of unfinished trial ``number`` (a finished trial's attrs cannot change)."""
        trial_id = self.trial_id(number)
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)

    def complete(self, number: int, arch: Architecture, m: Measurement, platform: str) -> FrozenTrial:
        """Record ``m`` on RUNNING trial ``number`` and tell it COMPLETE (or FAIL if an objective is missing)."""
        try:
            values = objective_values(m)
        except ValueError as exc:
            return self.fail(number, arch, str(exc), platform, measurement=m)
        self.set_trial_attrs(number, trial_attrs(arch, m, platform))
        return self.study.tell(number, values, skip_if_finished=True)

    def fail(self, number: int, arch: Architecture, reason: str, platform: str, workload: Mapping[str, Any] | None = None,
             measurement: Measurement | None = None) -> FrozenTrial:
        """Tell RUNNING trial ``number`` FAIL with ``fail_reason``; the study goes on."""
        attrs = trial_attrs(arch, measurement, platform, workload)
        attrs["fail_reason"] = reason
        self.set_trial_attrs(number, attrs)
        return self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def add(self, arch: Architecture, m: Measurement | None, platform: str, space: Any = "flexibert2",
            error: str | None = None, workload: Mapping[str, Any] | None = None,
            extra_attrs: Mapping[str, Any] | None = None) -> FrozenTrial:
        """Add an already measured (or failed) architecture as a finished trial (``import``)."""
        attrs = trial_attrs(arch, m, platform, workload)
        attrs.update(extra_attrs or {})
        values = None
        state = TrialState.FAIL
        if m is not None:
            try:
                values, state = objective_values(m), TrialState.COMPLETE
            except ValueError as exc:
                error = str(exc)
        if state == TrialState.FAIL:
            attrs["fail_reason"] = error or "measurement failed"
        from protran_tune.space.search_space import architecture_to_params

        trial = optuna.trial.create_trial(
            params=architecture_to_params(arch), distributions=optuna_distributions(arch, space),
            values=values, state=state, user_attrs=attrs,
        )
        self.study.add_trial(trial)
        return self.study.get_trials(deepcopy=False)[-1]
