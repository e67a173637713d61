"""The design space as Optuna define-by-run parameters (real Optuna storage)."""

from __future__ import annotations

import optuna
import pytest

from protran_tune.space import (
    architecture_to_params,
    get_space,
    params_to_architecture,
    ray_tune_define_by_run,
    suggest_architecture,
)
from protran_tune.space.search_space import optuna_distributions

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_define_by_run_is_conditional_and_round_trips(tmp_path) -> None:
    space = get_space("flexibert2")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    archs = {}

    def objective(trial: optuna.Trial) -> float:
        arch = suggest_architecture(trial, space)
        archs[trial.number] = arch
        return float(arch.n_layers)

    study.optimize(objective, n_trials=25)
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage)
    for trial in reloaded.trials:
        arch = archs[trial.number]
        assert space.contains(arch)
        # Only the layers that exist have parameters: conditional search space.
        assert {k for k in trial.params if k.startswith("l")} == {
            k for k in architecture_to_params(arch) if k.startswith("l")
        }
        assert not any(k.startswith(f"l{arch.n_layers}_") for k in trial.params)
        assert params_to_architecture(trial.params, space) == arch
    assert len({t.params["n_layers"] for t in reloaded.trials}) > 1


def test_enqueued_architecture_is_reproduced_exactly() -> None:
    space = get_space("flexibert2")
    arch = space.sample(11)
    study = optuna.create_study()
    study.enqueue_trial(architecture_to_params(arch))
    got = []
    study.optimize(lambda t: got.append(suggest_architecture(t, space)) or 0.0, n_trials=1)
    assert got == [arch]


def test_frozen_trial_with_distributions_is_accepted() -> None:
    space = get_space("flexibert2")
    arch = space.sample(5)
    trial = optuna.trial.create_trial(
        params=architecture_to_params(arch), distributions=optuna_distributions(arch, space), value=1.0
    )
    study = optuna.create_study()
    study.add_trial(trial)
    assert params_to_architecture(study.trials[0].params, space) == arch


def test_missing_params_and_out_of_space_values_raise() -> None:
    space = get_space("flexibert2")
    params = architecture_to_params(space.sample(2))
    params.pop("l0_hidden")
    with pytest.raises(ValueError, match="'l0_hidden' missing"):
        params_to_architecture(params, space)
    params = architecture_to_params(space.sample(2))
    params["l0_hidden"] = 300
    with pytest.raises(ValueError, match="hidden=300 not allowed"):
        params_to_architecture(params, space)


def test_ray_tune_define_by_run_returns_architecture_json() -> None:
    space = get_space("protran-table1")
    fn = ray_tune_define_by_run(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    out = fn(trial)
    arch = params_to_architecture(trial.params, space)
    assert out == {"architecture": arch.to_json()}
