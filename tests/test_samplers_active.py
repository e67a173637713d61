"""ActiveLearningSampler on real recorded measurements (pool-based replay) and under racing workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.base import clone

from protran_tune.samplers import ActiveLearningSampler
from protran_tune.samplers._base import INFO_ATTR, PARAMS_ATTR
from protran_tune.space import Architecture, architecture_to_params, get_space, params_to_architecture, suggest_architecture
from test_samplers import DIRECTIONS, SPACE, _archs
from test_samplers_support import ForestSurrogate, hardware_objective

optuna.logging.set_verbosity(optuna.logging.WARNING)
TARGETS = ("latency", "energy", "peak_power")


def _load_pool(path: Path) -> dict[str, tuple[Architecture, tuple[float, float, float]]]:
    """``{architecture JSON: (architecture, (latency, energy, peak power))}`` in recorded order."""
    pool = {}
    for record in json.loads(path.read_text()).values():
        arch = Architecture.from_model_dict(record["model_dict"])
        pool[arch.to_json()] = (arch, tuple(float(record["performance"][k]) for k in TARGETS))
    return pool


def _surrogate():
    from protran_tune.surrogates import make_surrogate

    return make_surrogate("bdt", random_state=0)


def _normalised_scores(model, X: np.ndarray) -> np.ndarray:
    _, std = model.predict(X, return_std=True)
    return (std / model.y_max_).sum(axis=1)


def test_replayed_dataset_queries_the_most_uncertain_pool_members_without_duplicates(measurement_files) -> None:
    path = next(p for p in measurement_files if "a100" in p.name)
    pool = _load_pool(path)
    space = get_space("flexibert2")
    archs = [a for a, _ in pool.values()]
    sampler = ActiveLearningSampler(_surrogate(), space, n_startup_trials=16, candidates=archs, seed=0)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    for arch in archs[:16]:  # the recorded Latin-hypercube seed
        study.enqueue_trial(architecture_to_params(arch))

    def replay(trial):
        arch = suggest_architecture(trial, space)
        return pool[arch.to_json()][1]  # KeyError if the sampler left the pool

    study.optimize(replay, n_trials=24)
    trials = study.trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    chosen = _archs(study)
    assert len(set(chosen)) == 24 and set(chosen) <= set(pool)
    assert chosen[:16] == [a.to_json() for a in archs[:16]]

    surrogate = sampler._surrogate
    percentiles, ratios = [], []
    for t in trials[16:]:
        info = t.system_attrs[INFO_ATTR]
        assert info["phase"] == "active" and info["n_train"] == t.number
        assert t.params == architecture_to_params(params_to_architecture(t.params))  # whole architecture
        # refit on exactly what the sampler saw, score the remaining pool by normalised std
        seen = trials[: t.number]
        E = np.stack([space.embed(Architecture.from_json(s.user_attrs["architecture"])) for s in seen])
        Y = np.array([s.values for s in seen])
        model = clone(surrogate).fit(sampler.inputs(E), Y)
        taken = {s.user_attrs["architecture"] for s in seen}
        rest = [j for j in pool if j not in taken]
        scores = _normalised_scores(model, sampler.inputs(np.stack([space.embed(pool[j][0]) for j in rest])))
        mine = scores[rest.index(params_to_architecture(t.params).to_json())]
        percentiles.append(float(np.mean(scores <= mine)))
        ratios.append(mine / float(np.mean(scores)))
    # every query is more uncertain than a random pool member would be on average
    assert min(ratios) > 1.0, ratios
    assert float(np.mean(percentiles)) > 0.9, percentiles


class _RacingSampler(ActiveLearningSampler):
    """Simulates another worker storing the same pick for a lower trial number at the same moment."""

    def __init__(self, *args, rival_trial_id: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rival_trial_id = rival_trial_id
        self.raced: dict | None = None

    def _store(self, study, trial, arch, info):
        params = super()._store(study, trial, arch, info)
        if self.rival_trial_id is not None and self.raced is None:
            study._storage.set_trial_system_attr(self.rival_trial_id, PARAMS_ATTR, params)
            self.raced = params
        return params


def test_racing_workers_on_one_pick_end_with_distinct_architectures() -> None:
    sampler = _RacingSampler(ForestSurrogate(), SPACE, n_startup_trials=3, n_candidates=64, seed=0)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    study.optimize(hardware_objective(SPACE), n_trials=3)
    rival = study._storage.create_new_trial(study._study_id)  # trial 3, RUNNING on "another worker"
    sampler.rival_trial_id = rival
    trial = study.ask()  # trial 4 picks, the rival stores the same pick, trial 4 must re-pick
    assert trial.number == 4 and sampler.raced is not None
    mine = study._storage.get_trial(trial._trial_id).system_attrs[PARAMS_ATTR]
    theirs = study._storage.get_trial(rival).system_attrs[PARAMS_ATTR]
    assert theirs == sampler.raced and mine != theirs
    assert study._storage.get_trial(trial._trial_id).system_attrs[INFO_ATTR]["phase"] == "active"


def test_running_trials_are_excluded_from_candidates() -> None:
    pool = [get_space(SPACE).sample(i) for i in range(6)]
    sampler = ActiveLearningSampler(ForestSurrogate(), SPACE, n_startup_trials=2, candidates=pool, seed=0)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    for arch in pool[:2]:
        study.enqueue_trial(architecture_to_params(arch))
    study.optimize(hardware_objective(SPACE), n_trials=2)
    running = [study.ask() for _ in range(4)]  # four workers hold trials at once
    picked = [study._storage.get_trial(t._trial_id).user_attrs["architecture"] for t in running]
    assert sorted(picked) == sorted(a.to_json() for a in pool[2:])
    with pytest.raises(RuntimeError, match="every candidate architecture is already in the study"):
        study.ask()
    assert study.trials[-1].state == TrialState.FAIL
