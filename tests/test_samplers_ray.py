"""The whole-architecture samplers under Ray Tune's OptunaSearch (one local Ray on 127.0.0.1)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from protran_tune.samplers import ActiveLearningSampler, LatinHypercubeSampler
from protran_tune.samplers._base import INFO_ATTR
from protran_tune.space import Architecture, ray_tune_define_by_run
import test_samplers_support
from test_samplers_support import SMALL_SPACE_YAML, ForestSurrogate, hardware_values

ray = pytest.importorskip("ray")
optuna.logging.set_verbosity(optuna.logging.WARNING)
METRICS = ["latency", "energy", "peak_power"]


def _trainable(config: dict) -> None:
    from ray import tune

    arch = Architecture.from_json(config["architecture"])
    tune.report(dict(zip(METRICS, hardware_values(arch))))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray owned by this module, through the product's own session helper."""
    from protran_tune.runtime import ray_session

    # trainables defined in test modules travel by value (the workers cannot import tests/)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(test_samplers_support)
    with ray_session(num_cpus=2) as info:
        assert info["started"]
        yield info


@pytest.fixture
def small_space(tmp_path: Path):
    """A small user space (few parameters per trial: the sqlite storage writes each one)."""
    from protran_tune.space import get_space

    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE_YAML)
    return get_space(str(path))


def _tune(sampler, space, tmp_path: Path, name: str, n: int) -> optuna.Study:
    from optuna.storages import RDBStorage
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    url = f"sqlite:///{tmp_path / 'tune.db'}"
    search = OptunaSearch(
        space=ray_tune_define_by_run(space), sampler=sampler, metric=METRICS, mode=["min"] * 3,
        storage=RDBStorage(url), study_name=name,
    )
    tuner = tune.Tuner(
        _trainable,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=n, max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray_results"), name=name, verbose=0),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    configs = sorted(r.config["architecture"] for r in results)
    study = optuna.load_study(study_name=name, storage=url)
    assert configs == sorted(t.user_attrs["architecture"] for t in study.trials)
    return study


def test_latin_hypercube_and_active_learning_under_optuna_search(local_ray, small_space, tmp_path: Path) -> None:
    lhs = LatinHypercubeSampler(small_space, n_points=3, seed=0)
    study = _tune(lhs, small_space, tmp_path, "lhs", 3)
    assert [t.user_attrs["architecture"] for t in study.trials] == [a.to_json() for a in lhs.architectures()]
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.values == pytest.approx(hardware_values(Architecture.from_json(t.user_attrs["architecture"])))

    active = ActiveLearningSampler(
        ForestSurrogate(), small_space, n_startup_trials=2, n_candidates=64, seed=0
    )
    study = _tune(active, small_space, tmp_path, "active", 4)
    phases = [t.system_attrs[INFO_ATTR]["phase"] for t in study.trials]
    assert phases == ["seed"] * 2 + ["active"] * 2
    archs = [t.user_attrs["architecture"] for t in study.trials]
    assert len(set(archs)) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
