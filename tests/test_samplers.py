"""Every whole-architecture sampler through the generic checks Optuna applies to its own samplers.

Adapted from optuna's tests/samplers_tests/test_samplers.py where they apply to samplers that
propose whole architectures: pickling, reseed_rng, NaN/inf values, failing trials, fixed and
partially fixed parameters, direct ``sample_independent`` calls, non-architecture parameters
(delegated to an explicit independent sampler, else an error), storages and study reloads.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers import PartialFixedSampler, RandomSampler
from optuna.trial import TrialState

from protran_tune.samplers import (
    ActiveLearningSampler,
    HaltonSampler,
    HammerslySampler,
    LatinHypercubeSampler,
    PoolLatinHypercubeSampler,
    QMCArchitectureSampler,
    RandomArchitectureSampler,
    SobolSampler,
)
from protran_tune.samplers._base import INFO_ATTR, PARAMS_ATTR
from protran_tune.samplers.pareto import ParetoSampler
from protran_tune.space import architecture_to_params, get_space, params_to_architecture, suggest_architecture
from protran_tune.space.search_space import optuna_distributions
from protran_tune.surrogates import make_surrogate
from test_samplers_support import SMALL_SPACE_YAML, ForestSurrogate, hardware_objective, hardware_values

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = "protran-table1"
DIRECTIONS = ["minimize"] * 3

FACTORIES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "lhs": lambda space=SPACE, **kw: LatinHypercubeSampler(space, n_points=8, seed=0, **kw),
    "sobol": lambda space=SPACE, **kw: SobolSampler(space, n_points=8, seed=0, **kw),
    "halton": lambda space=SPACE, **kw: HaltonSampler(space, n_points=8, seed=0, **kw),
    "hammersly": lambda space=SPACE, **kw: HammerslySampler(space, n_points=8, seed=0, **kw),
    "random": lambda space=SPACE, **kw: RandomArchitectureSampler(space, n_points=8, seed=0, **kw),
    "pool-lhs": lambda space=SPACE, **kw: PoolLatinHypercubeSampler(
        space, list(get_space(space).iter_samples(40, seed=3)), n_points=8, seed=0, **kw
    ),
    "active": lambda space=SPACE, **kw: ActiveLearningSampler(
        ForestSurrogate(random_state=0), space, n_startup_trials=3, n_candidates=64, seed=0, **kw
    ),
    "pareto": lambda space=SPACE, **kw: ParetoSampler(
        space, n_startup_trials=3, n_candidates=64, seed=0, surrogates={"accuracy": ForestSurrogate(random_state=0)}, **kw
    ),
}
parametrize_sampler = pytest.mark.parametrize("make", list(FACTORIES.values()), ids=list(FACTORIES))


def _study(sampler, storage=None, **kw) -> optuna.Study:
    return optuna.create_study(directions=DIRECTIONS, sampler=sampler, storage=storage, **kw)


def _archs(study: optuna.Study, states=(TrialState.COMPLETE,)) -> list[str]:
    return [t.user_attrs["architecture"] for t in study.get_trials(states=states)]


@parametrize_sampler
def test_proposes_whole_valid_architectures_and_records_them(make) -> None:
    study = _study(make())
    study.optimize(hardware_objective(SPACE), n_trials=6)
    space = get_space(SPACE)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        arch = params_to_architecture(t.params, space)  # valid member of the space
        assert t.params == architecture_to_params(arch)  # every param of the architecture, nothing else
        assert t.user_attrs["architecture"] == arch.to_json()
        assert t.system_attrs[PARAMS_ATTR] == t.params
        assert t.values == pytest.approx(hardware_values(arch))
    assert len(set(_archs(study))) == 6


@parametrize_sampler
def test_pickled_sampler_proposes_the_same_architectures(make) -> None:
    sampler = make()
    restored = pickle.loads(pickle.dumps(sampler))
    a, b = _study(sampler), _study(restored)
    a.optimize(hardware_objective(SPACE), n_trials=5)
    b.optimize(hardware_objective(SPACE), n_trials=5)
    assert _archs(a) == _archs(b)
    # and after use, too (fitted state and caches pickle)
    c = _study(pickle.loads(pickle.dumps(sampler)))
    c.optimize(hardware_objective(SPACE), n_trials=5)
    assert _archs(c) == _archs(a)


@parametrize_sampler
def test_reseed_rng_keeps_the_shared_sequence_and_reseeds_the_independent_sampler(make) -> None:
    independent = RandomSampler(seed=1)
    sampler = make(independent_sampler=independent)
    state = independent._rng.rng.get_state()
    expected = independent._rng.rng.bytes(8)
    independent._rng.rng.set_state(state)
    sampler.reseed_rng()
    assert independent._rng.rng.bytes(8) != expected
    reference = _study(make())
    reference.optimize(hardware_objective(SPACE), n_trials=5)
    study = _study(sampler)
    study.optimize(hardware_objective(SPACE), n_trials=5)
    assert _archs(study) == _archs(reference)


@parametrize_sampler
def test_nan_values_fail_inf_values_complete_and_sampling_continues(make) -> None:
    objective = hardware_objective(SPACE)

    def flaky(trial):
        values = objective(trial)
        if trial.number in (1, 4):
            return (math.nan, values[1], values[2])
        if trial.number == 2:
            return (math.inf, values[1], values[2])
        return values

    study = _study(make())
    study.optimize(flaky, n_trials=8)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 2 and states.count(TrialState.COMPLETE) == 6
    assert all(PARAMS_ATTR in t.system_attrs for t in study.trials)
    assert len(set(_archs(study))) == 6
    info = study.trials[-1].system_attrs[INFO_ATTR]
    if info.get("phase") == "active":
        assert info["n_train"] == 4 and info.get("n_skipped_nonfinite", 1) == 1  # the count: ActiveLearningSampler


@parametrize_sampler
def test_failing_objective_leaves_a_failed_trial_with_its_architecture(make) -> None:
    objective = hardware_objective(SPACE)

    def failing(trial):
        values = objective(trial)
        if trial.number == 1:
            raise RuntimeError("measurement failed")
        return values

    study = _study(make())
    study.optimize(failing, n_trials=6, catch=(RuntimeError,))
    failed = study.trials[1]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["architecture"] == params_to_architecture(failed.params).to_json()
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 5
    with pytest.raises(RuntimeError):
        _study(make()).optimize(failing, n_trials=3)


@parametrize_sampler
def test_other_parameters_go_to_a_seeded_random_sampler_with_one_warning(make, caplog) -> None:
    def with_lr(trial):
        values = hardware_objective(SPACE)(trial)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        return values[0] * (1 + lr), values[1], values[2]

    def lrs(sampler) -> list[float]:
        study = _study(sampler)
        study.optimize(with_lr, n_trials=6)
        assert all(PARAMS_ATTR in t.system_attrs for t in study.trials)  # architecture params stay ours
        return [t.params["lr"] for t in study.trials]

    optuna.logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            first = lrs(make())
    finally:
        optuna.logging.disable_propagation()
    assert all(1e-5 <= lr <= 1e-1 and type(lr) is float for lr in first) and len(set(first)) == 6
    assert sum("'lr' is not an architecture parameter" in r.getMessage() for r in caplog.records) == 1
    assert lrs(make()) == first  # RandomSampler(seed): the same seed, the same values
    explicit = lrs(make(independent_sampler=RandomSampler(seed=123)))
    assert explicit != first


@parametrize_sampler
def test_a_relative_independent_sampler_samples_the_other_parameters_jointly(make) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        independent = optuna.samplers.TPESampler(multivariate=True, n_startup_trials=2, seed=0)
    sampler = make(independent_sampler=independent)

    def with_xy(trial):
        values = hardware_objective(SPACE)(trial)
        return values[0] * (1 + trial.suggest_float("x", 0, 1) + trial.suggest_float("y", 0, 1)), values[1], values[2]

    study = _study(sampler)
    study.optimize(with_xy, n_trials=4)
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    assert "n_layers" in independent.infer_relative_search_space(study, frozen)
    assert set(sampler.infer_relative_search_space(study, frozen)) == {"x", "y"}  # architecture parameters stay ours
    x = trial.suggest_float("x", 0, 1)
    assert trial._relative_params is not None and trial._relative_params["x"] == x  # drawn jointly by TPE
    chosen = study._storage.get_trial_system_attrs(trial._trial_id)[PARAMS_ATTR]
    mixed = {"n_layers": CategoricalDistribution([2, 4, 6, 8, 10, 12]), "z": FloatDistribution(-1, 1)}
    got = sampler.sample_relative(study, frozen, mixed)
    assert got["n_layers"] == chosen["n_layers"] and -1 <= got["z"] <= 1 and type(got["z"]) is float


@pytest.mark.parametrize("name", ["active", "pareto"])
def test_values_of_trials_that_suggest_no_architecture_are_not_learned(name: str) -> None:
    study = _study(FACTORIES[name]())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the seed set runs out
        study.optimize(lambda t: (t.suggest_float("x", 0, 1),) * 3, n_trials=5)  # the proposals go unused
        assert all(t.system_attrs[INFO_ATTR]["phase"] != "active" for t in study.trials)
        study.optimize(hardware_objective(SPACE), n_trials=5)
    phases = [t.system_attrs[INFO_ATTR]["phase"] for t in study.trials[5:]]
    assert phases[:2] != ["active"] * 2 and phases[-1] == "active"
    assert study.trials[-1].system_attrs[INFO_ATTR]["n_train"] == 4  # the trials that evaluated an architecture


@pytest.mark.parametrize("metric_names", [None, ["score"]])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_pareto_sampler_learns_generic_objectives_in_the_study_direction(direction: str, metric_names) -> None:
    space = get_space(SPACE)
    pool = list(space.iter_samples(40, seed=1))
    middle = [a for a in pool if a.n_layers in (6, 8)][:6]
    study = optuna.create_study(direction=direction, sampler=ParetoSampler(SPACE, candidates=pool, n_startup_trials=6, seed=0))
    if metric_names:
        study.set_metric_names(metric_names)
    for arch in middle:
        study.enqueue_trial(architecture_to_params(arch))
    study.optimize(lambda t: float(suggest_architecture(t, SPACE).n_layers), n_trials=7)
    info = study.trials[-1].system_attrs[INFO_ATTR]
    assert info["phase"] == "active" and list(info["predicted_mean"]) == (metric_names or ["objective0"])
    left = [a.n_layers for a in pool if a not in middle]
    assert study.trials[-1].params["n_layers"] == (max(left) if direction == "maximize" else min(left))


@parametrize_sampler
def test_a_parameter_outside_the_chosen_architecture_is_an_error(make) -> None:
    study = _study(make())
    trial = study.ask()
    n_layers = trial.suggest_categorical("n_layers", [2, 4, 6, 8, 10, 12])
    with pytest.raises(ValueError, match=f"'l{n_layers}_hidden' does not belong to the architecture"):
        trial.suggest_categorical(f"l{n_layers}_hidden", [128, 256])
    with pytest.raises(ValueError, match="not in the objective's distribution"):
        trial.suggest_categorical("l0_hidden", [4096, 8192])


@parametrize_sampler
def test_direct_sample_independent_decides_the_whole_architecture_lazily(make) -> None:
    # optuna's generic tests call sample_independent on a bare trial (no before_trial)
    study = _study(make())
    trial_id = study._storage.create_new_trial(study._study_id)
    trial = study._storage.get_trial(trial_id)
    sampler = study.sampler
    first = sampler.sample_independent(study, trial, "n_layers", CategoricalDistribution([2, 4, 6, 8, 10, 12]))
    params = study._storage.get_trial_system_attrs(trial_id)[PARAMS_ATTR]
    assert params["n_layers"] == first
    arch = params_to_architecture(params, SPACE)
    dists = optuna_distributions(arch, SPACE)
    fresh = study._storage.get_trial(trial_id)
    got = {name: sampler.sample_independent(study, fresh, name, dist) for name, dist in dists.items()}
    assert got == params


@parametrize_sampler
def test_enqueued_and_partially_fixed_parameters_are_honoured(make) -> None:
    space = get_space(SPACE)
    full = space.sample(5)
    study = _study(make())
    study.enqueue_trial(architecture_to_params(full))
    study.enqueue_trial({"n_layers": 2, "l0_n_heads": 4, "l1_head0": "c-9"})
    study.optimize(hardware_objective(SPACE), n_trials=2)
    assert study.trials[0].user_attrs["architecture"] == full.to_json()
    t = study.trials[1]
    assert t.params["n_layers"] == 2 and t.params["l0_n_heads"] == 4 and t.params["l1_head0"] == "c-9"
    assert t.user_attrs["architecture"] == params_to_architecture(t.params, space).to_json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = PartialFixedSampler({"l0_hidden": 128, "n_layers": 4}, study.sampler)
    study.optimize(hardware_objective(SPACE), n_trials=3)
    for t in study.trials[2:]:
        assert t.params["l0_hidden"] == 128 and t.params["n_layers"] == 4
        assert t.user_attrs["architecture"] == params_to_architecture(t.params, space).to_json()


@parametrize_sampler
def test_parallel_threads_propose_no_duplicates(make) -> None:
    study = _study(make())
    study.optimize(hardware_objective(SPACE), n_trials=8, n_jobs=2)
    archs = _archs(study)
    assert len(archs) == 8 and len(set(archs)) == 8


@pytest.fixture
def small_space(tmp_path: Path):
    """A small user space (about 13 parameters per trial): sqlite writes every parameter."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE_YAML)
    return get_space(str(path))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
@pytest.mark.parametrize("name", ["lhs", "active"])
def test_study_reload_continues_the_sequence_without_duplicates(kind: str, name: str, small_space, tmp_path: Path) -> None:
    if kind == "sqlite":
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    objective = hardware_objective(small_space)
    one_go = _study(FACTORIES[name](small_space))
    one_go.optimize(objective, n_trials=6)
    study = _study(FACTORIES[name](small_space), storage=storage, study_name="s")
    study.optimize(objective, n_trials=3)
    reloaded = optuna.load_study(study_name="s", storage=storage, sampler=FACTORIES[name](small_space))
    reloaded.optimize(objective, n_trials=3)
    assert _archs(reloaded) == _archs(one_go)
    assert len(set(_archs(reloaded))) == 6


_WORKER = textwrap.dedent(
    """
    import sys, optuna
    sys.path[:0] = [{root!r}, {root!r} + "/tests"]
    from protran_tune.samplers import LatinHypercubeSampler
    from test_samplers_support import hardware_objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * 3, storage={storage!r}, study_name="shared",
                                load_if_exists=True, sampler=LatinHypercubeSampler({space!r}, n_points=6))
    study.optimize(hardware_objective({space!r}), n_trials=int(sys.argv[1]))
    """
)


def test_two_processes_share_one_latin_hypercube_through_sqlite(small_space, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    script = tmp_path / "worker.py"
    root = str(Path(__file__).resolve().parents[1])
    script.write_text(_WORKER.format(root=root, storage=storage, space=str(tmp_path / "small.yaml")))
    for n in ("2", "4"):  # seed=None: the first process stores the seed, the second adopts it
        out = subprocess.run([sys.executable, str(script), n], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="shared", storage=storage)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    seeds = [v for k, v in attrs.items() if k.startswith("protran:qmc_seed:lhs")]
    assert len(seeds) == 1
    expected = LatinHypercubeSampler(small_space, n_points=6, seed=seeds[0]).architectures()
    assert [t.user_attrs["architecture"] for t in study.trials] == [a.to_json() for a in expected]
    assert [t.system_attrs[INFO_ATTR]["index"] for t in study.trials] == list(range(6))


def test_qmc_sampler_warns_past_its_points_and_keeps_proposing_valid_architectures() -> None:
    study = _study(LatinHypercubeSampler(SPACE, n_points=3, seed=0))
    with pytest.warns(UserWarning, match="trial 3 is past the 3 points of the lhs set"):
        study.optimize(hardware_objective(SPACE), n_trials=5)
    assert [t.system_attrs[INFO_ATTR]["method"] for t in study.trials] == ["lhs"] * 3 + ["random-fallback"] * 2
    assert len(set(_archs(study))) == 5


def test_qmc_sampler_redraws_duplicates_in_a_tiny_space(tmp_path: Path) -> None:
    path = tmp_path / "micro.yaml"
    path.write_text(
        "layers: [1]\nhidden_sizes: [8, 16]\nnum_heads: [1]\nhead_ops: [sa-sdp, l-dft]\n"
        "feed_forward_dims: [16]\nfeed_forward_stacks: [1]\n"
    )
    space = get_space(str(path))  # 4 architectures
    study = _study(LatinHypercubeSampler(space, n_points=4, seed=0))
    study.optimize(hardware_objective(space), n_trials=4)
    assert len(set(_archs(study))) == 4


def test_active_learning_learns_whatever_objectives_the_study_has() -> None:
    # one objective, no metric names
    study = optuna.create_study(sampler=ActiveLearningSampler(ForestSurrogate(), SPACE, n_startup_trials=2, n_candidates=32, seed=0))
    study.optimize(lambda t: hardware_values(suggest_architecture(t, SPACE))[0], n_trials=4)
    info = study.trials[-1].system_attrs[INFO_ATTR]
    assert info["phase"] == "active" and list(info["predicted_mean"]) == ["objective0"]
    # the names profile gives its studies, and an extra objective: all of them are learned
    study = optuna.create_study(directions=["maximize"] + DIRECTIONS, sampler=ActiveLearningSampler(
        ForestSurrogate(), SPACE, n_startup_trials=2, n_candidates=32, seed=0))
    study.set_metric_names(["accuracy", "latency_s", "energy_j", "peak_power_w"])
    study.optimize(lambda t: (0.5,) + hardware_values(suggest_architecture(t, SPACE)), n_trials=4)
    info = study.trials[-1].system_attrs[INFO_ATTR]
    assert info["phase"] == "active" and list(info["predicted_mean"]) == ["accuracy", "latency_s", "energy_j", "peak_power_w"]
    # objective_names picks some of them by metric name; a missing one is a clear error
    picked = ActiveLearningSampler(ForestSurrogate(), SPACE, n_startup_trials=2, n_candidates=32, seed=0,
                                   objective_names=("latency_s",))
    study = optuna.create_study(directions=["maximize"] + DIRECTIONS, sampler=picked)
    study.set_metric_names(["accuracy", "latency_s", "energy_j", "peak_power_w"])
    study.optimize(lambda t: (0.5,) + hardware_values(suggest_architecture(t, SPACE)), n_trials=4)
    assert list(study.trials[-1].system_attrs[INFO_ATTR]["predicted_mean"]) == ["latency_s"]
    missing = ActiveLearningSampler(ForestSurrogate(), SPACE, n_startup_trials=2, seed=0, objective_names=("glue",))
    study = optuna.create_study(directions=DIRECTIONS, sampler=missing)
    study.set_metric_names(["latency_s", "energy_j", "peak_power_w"])
    with pytest.raises(ValueError, match="lack \\['glue'\\]"):
        study.optimize(lambda t: hardware_values(suggest_architecture(t, SPACE)), n_trials=1)
    assert study.trials[-1].state == TrialState.FAIL  # no zombie RUNNING trial


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown sampling method"):
        QMCArchitectureSampler(SPACE, method="grid")
    with pytest.raises(ValueError, match="n_points must be a positive integer"):
        LatinHypercubeSampler(SPACE, n_points=0)
    with pytest.raises(ValueError, match="seed_sampler's space"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, seed_sampler=LatinHypercubeSampler("flexibert2"))
    with pytest.raises(ValueError, match="whole-architecture sampler"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, seed_sampler=RandomSampler())
    with pytest.raises(ValueError, match="fit\\(X, Y\\) and predict"):
        ActiveLearningSampler(object(), SPACE)
    with pytest.raises(ValueError, match="n_candidates must be an integer >= 1"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, n_candidates=0)
    with pytest.raises(ValueError, match="objective_names"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, objective_names=("latency", "latency"))


def test_float_distribution_for_an_architecture_name_is_an_error() -> None:
    study = _study(LatinHypercubeSampler(SPACE, n_points=4, seed=0))
    trial_id = study._storage.create_new_trial(study._study_id)
    with pytest.raises(ValueError, match="not in the objective's distribution"):
        study.sampler.sample_independent(study, study._storage.get_trial(trial_id), "n_layers", FloatDistribution(0, 1))


def test_surrogate_by_name_follows_the_sampler_space(small_space) -> None:
    pytest.importorskip("protran_tune.surrogates.bdt")
    sampler = ActiveLearningSampler("bdt", small_space, n_startup_trials=3, n_candidates=32, seed=0)
    assert get_space(sampler._surrogate.space) == small_space
    study = _study(sampler)
    study.optimize(hardware_objective(small_space), n_trials=5)
    assert [t.system_attrs[INFO_ATTR]["phase"] for t in study.trials] == ["seed"] * 3 + ["active"] * 2
    assert len(set(_archs(study))) == 5


def test_a_custom_acquisition_replaces_select_queries() -> None:
    calls = []

    def first_candidate(surrogate, X, k=1, normaliser=None):
        calls.append(X.shape)
        return np.array([0])

    sampler = ActiveLearningSampler(ForestSurrogate(), SPACE, n_startup_trials=2, n_candidates=16, seed=0, acquisition=first_candidate)
    study = _study(sampler)
    study.optimize(hardware_objective(SPACE), n_trials=4)
    from protran_tune.space import FeatureEncoder

    n_features = FeatureEncoder(SPACE).n_features_
    assert len(calls) == 2 and all(n <= 16 and d == n_features for n, d in calls)  # dense features
    assert [t.system_attrs[INFO_ATTR]["phase"] for t in study.trials] == ["seed"] * 2 + ["active"] * 2
    assert study.trials[-1].system_attrs[INFO_ATTR]["acquisition"] == "first_candidate"
    with pytest.raises(ValueError, match="acquisition must be one of"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, acquisition="max")
    with pytest.raises(ValueError, match="acquisition must be a query rule name or callable"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, acquisition=3)
    with pytest.raises(ValueError, match="needs a GP surrogate"):
        ActiveLearningSampler(ForestSurrogate(), SPACE, acquisition="variance-reduction")


def test_variance_reduction_acquisition_by_name(small_space) -> None:
    pytest.importorskip("botorch")
    from protran_tune.samplers.acquisition import select_queries

    sp = get_space(small_space)
    pool = list(sp.iter_samples(30, seed=4))
    params = {"encoder": "cost", "maxiter": 10, "random_state": 0, "space": small_space}
    sampler = ActiveLearningSampler(make_surrogate("gp", **params), small_space, n_startup_trials=3,
                                    candidates=pool, seed=0, acquisition="variance-reduction")
    study = _study(sampler)
    study.optimize(hardware_objective(small_space), n_trials=4)
    assert study.trials[-1].system_attrs[INFO_ATTR]["phase"] == "active"
    assert study.trials[-1].system_attrs[INFO_ATTR]["acquisition"] == "variance-reduction"
    # the fourth proposal is the variance-reduction pick of a GP fitted on the first three trials
    seen = [sp.embed(params_to_architecture(t.params, sp)) for t in study.trials[:3]]
    gp = make_surrogate("gp", **params).fit(np.stack(seen).astype(float), np.array([t.values for t in study.trials[:3]]))
    left = [a for a in pool if not any(np.array_equal(sp.embed(a), e) for e in seen)]
    pick = select_queries(gp, np.stack([sp.embed(a) for a in left]).astype(float), k=1, method="variance-reduction")[0]
    assert np.array_equal(sp.embed(params_to_architecture(study.trials[3].params, sp)), sp.embed(left[pick]))


def test_pool_seed_takes_the_latin_hypercube_rows_of_its_pool_then_the_rest_and_nothing_else() -> None:
    from protran_tune.samplers.qmc import lhs_pool_rows

    space = get_space(SPACE)
    pool = list({a.content_hash(): a for a in space.iter_samples(12, seed=5)}.values())
    sampler = PoolLatinHypercubeSampler(SPACE, pool, n_points=4, seed=0)
    E = np.stack([space.embed(a) for a in pool])
    assert sampler.order()[:4] == [pool[i] for i in lhs_pool_rows(E, 4, np.random.default_rng(0), space)]
    assert sorted(a.to_json() for a in sampler.order()) == sorted(a.to_json() for a in pool)
    study = _study(sampler)
    study.optimize(hardware_objective(SPACE), n_trials=len(pool))
    assert _archs(study) == [a.to_json() for a in sampler.order()]
    with pytest.raises(RuntimeError, match="every architecture of the pool"):
        study.optimize(hardware_objective(SPACE), n_trials=1)
