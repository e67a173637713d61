"""Hardware-aware multi-objective search: hypervolume tools, pool mode, ParetoSampler, the live search and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from protran_tune.datasets import load_dataset
from protran_tune.search.hypervolume import ImprovementCells, Normaliser, hypervolume, pareto_mask
from protran_tune.search.methods import METHODS, make_sampler
from protran_tune.search.pool import pool_problem, run_pool_search
from protran_tune.space import Architecture
from protran_tune.space.parameterization import NasBenchBertParameters, get_parameterization
from protran_tune.surrogates import make_surrogate

H200 = ("glue", "latency_s", "energy_j", "peak_power_w")


# ----------------------------------------------------------------------------- hypervolume
def test_pareto_mask_and_hypervolume_by_hand() -> None:
    Z = np.array([[0.5, 0.5], [0.2, 0.8], [0.4, 0.4], [0.5, 0.5], [-0.1, 0.9]])
    assert list(pareto_mask(Z)) == [True, True, False, False, True]
    assert hypervolume(Z) == pytest.approx(0.5 * 0.5 + 0.2 * 0.3)  # the point below the origin adds nothing
    norm = Normaliser(("glue", "latency_s"), worst=(60.0, 0.01), best=(70.0, 0.0))
    np.testing.assert_allclose(norm.transform([[65.0, 0.005], [60.0, 0.01]]), [[0.5, 0.5], [0.0, 0.0]])


def test_expected_improvement_by_quadrature_equals_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    cells = ImprovementCells(rng.random((8, 3)) * 0.8, 3)
    mu, sd = rng.random((5, 3)), rng.random((5, 3)) * 0.2
    x, w = np.polynomial.hermite_e.hermegauss(32)
    exact = cells.expected_improvement(mu[:, :, None] + sd[:, :, None] * x, w / w.sum())
    draws = mu[None] + sd[None] * rng.standard_normal((100_000, 1, 3))
    np.testing.assert_allclose(exact, cells.improvement(draws).mean(0), rtol=0.02, atol=1e-4)
    point = np.array([[0.9, 0.9, 0.9]])
    assert cells.improvement(point)[0] == pytest.approx(hypervolume(np.vstack([cells_front := rng.random((0, 3)), point])) * 0 + (
        hypervolume(np.vstack([np.random.default_rng(0).random((8, 3)) * 0.8, point])) - hypervolume(np.random.default_rng(0).random((8, 3)) * 0.8)))


# ----------------------------------------------------------------------------- parameterisation
def test_nas_bench_bert_parameters_cover_the_table_and_round_trip() -> None:
    params = get_parameterization("nas-bench-bert")
    assert isinstance(params, NasBenchBertParameters) and params.size == 2 * (48**2 + 48**4)
    table = load_dataset("nas-bench-bert")
    for arch in table.archs:
        p = params.to_params(arch)
        assert params.from_params(p) == arch and set(p) == {k for k in p if params.is_param(k)}
        assert set(params.distributions(arch)) == set(p)
    assert not params.contains(Architecture.homogeneous(2, 512, 4, 1024))
    with pytest.raises(ValueError, match="parameter hidden=512 not allowed"):
        params.from_params({**params.to_params(table.archs[0]), "hidden": 512})
    rng = np.random.default_rng(0)
    assert all(params.contains(params.sample(rng)) for _ in range(50))


# ----------------------------------------------------------------------------- pool mode
@pytest.fixture(scope="module")
def problem():
    return pool_problem(load_dataset("protran-nasbench:h200"), H200)


def test_the_reference_point_is_fixed_before_the_search(problem) -> None:
    ref = problem.describe()["reference_point"]
    table = problem.table
    small = [i for i, a in enumerate(table.archs) if a.n_layers == 2 and a.layers[0].hidden == 128]
    assert ref["glue"]["reference"] == pytest.approx(np.median(table.metrics["glue"][small]))
    assert ref["latency_s"]["reference"] == table.metrics["latency_s"].max()
    assert ref["latency_s"]["ideal"] == table.metrics["latency_s"].min()
    assert 0 < problem.true_hv < 1 and problem.hv_of(range(len(table))) == pytest.approx(problem.true_hv)


def test_a_proposal_outside_the_table_goes_to_the_nearest_unevaluated_row(problem) -> None:
    table = problem.table
    assert problem.snap(table.archs[7], set()) == 7
    nearest_other = problem.snap(table.archs[7], {7})
    d = ((problem.F - problem.F[7]) ** 2).sum(1)
    d[7] = np.inf
    assert nearest_other == int(np.argmin(d))
    outside = Architecture.homogeneous(2, 128, 2, 512)  # BERT-Tiny: in the space, not in the table
    assert table.index_of(outside) is None and problem.snap(outside, set()) not in (None,)


@pytest.mark.parametrize("method", ["random", "tpe", "nsga2"])
def test_every_method_evaluates_distinct_rows_and_regret_only_falls(problem, method) -> None:
    run = run_pool_search(problem, make_sampler(method, seed=0, space="nas-bench-bert"), 15, 0, method)
    assert len(run.rows) == len(set(run.rows)) == 15 and run.snapped > 0
    assert all(a >= b - 1e-12 for a, b in zip(run.hv[1:], run.hv[:-1]))  # hypervolume never falls
    assert run.hv[-1] == pytest.approx(problem.hv_of(run.rows)) and run.hv[-1] <= problem.true_hv + 1e-12


def test_ours_proposes_unevaluated_rows_and_beats_random_on_this_table(problem) -> None:
    fast = {"accuracy": make_surrogate("gp", random_state=0, kernel="linear+matern", encoder="cost", warm_start=True),
            "hardware": make_surrogate("gp", random_state=0, kernel="linear+matern", encoder="cost", warm_start=True)}
    regrets = {}
    for method in ("ours", "random"):
        out = []
        for seed in (0,):
            sampler = make_sampler(method, seed=seed, space="nas-bench-bert", candidates=list(problem.table.archs),
                                   normaliser=problem.normaliser, surrogates=fast, n_startup_trials=8) if method == "ours" \
                else make_sampler(method, seed=seed, space="nas-bench-bert")
            run = run_pool_search(problem, sampler, 20, seed, method)
            if method == "ours":
                assert run.snapped == 0  # it proposes rows of the table
            out.append(problem.true_hv - run.hv[-1])
        regrets[method] = np.mean(out)
    assert regrets["ours"] < regrets["random"]


def test_constraints_reach_the_trials_and_the_front(problem) -> None:
    constrained = pool_problem(problem.table, ("glue", "latency_s"), constraints={"latency_s": ("<=", 2e-5)})
    assert 0 < constrained.feasible.mean() < 1
    study_run = run_pool_search(constrained, make_sampler("random", seed=0, space="nas-bench-bert"), 12, 0)
    feasible_rows = [r for r in study_run.rows if constrained.feasible[r]]
    assert study_run.hv[-1] == pytest.approx(constrained.hv_of(feasible_rows))


# ----------------------------------------------------------------------------- the live search
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protran_tune.cli", "search", *args], capture_output=True, text=True, cwd=cwd)


def test_live_search_records_the_study_mlflow_runs_outputs_and_checks_the_front(tmp_path: Path) -> None:
    table = load_dataset("protran-nasbench:cpu")
    records = tmp_path / "measured.jsonl"
    res = _cli("--objective", "glue:max", "--objective", "latency_s:min", "--constraint", "latency_s<=0.009",
               "--budget", "12", "--batch-size", "4", "--seed", "3", "--study", "s", "--verify", "none", "--out", "out",
               "--surrogate-param", "kernel=linear+matern", "--surrogate-param", "encoder=cost", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["n_evaluated"] == 12 and summary["front_size"] >= 1 and "front not verified" in summary["notes"][0]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/protran.db")
    assert study.metric_names == ["glue", "latency_s"] and len(study.trials) == 12
    t = study.trials[-1]
    assert set(t.user_attrs["sources"]) == {"glue", "latency_s"} and t.user_attrs["predicted_std"]["glue"] > 0
    assert list(t.constraints) == ["latency_s<=0.009"] and t.constraints["latency_s<=0.009"] == pytest.approx(t.values[1] - 0.009)
    front = json.loads((tmp_path / "out" / "front.json").read_text())
    assert all(r["latency_s"] <= 0.009 for r in front) and len(front) == summary["front_size"]
    for name in ("front.csv", "front_archs.jsonl", "front_2d.png", "parallel_coordinates.png", "hypervolume.png", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert (runs["tags.protran.role"] == "evaluation").sum() == 12
    parent = runs.loc[runs["tags.protran.role"] == "study", "run_id"].item()
    assert set(runs.loc[runs["tags.protran.role"] == "evaluation", "tags.mlflow.parentRunId"]) == {parent}
    # the front checked against measurements made elsewhere (records of `protran-tune measure`)
    from protran_tune.platforms.measurement import Measurement

    lines = []
    for r in front:
        arch = Architecture.from_json(r["architecture"])
        m = Measurement(platform="cpu", device="test", mode="inference", batch_size=1, seq_len=128, repeats=10,
                        latency_s=r["latency_s"] * 1.1, latency_iqr_s=0.0, latency_ci_rel=0.01, source="modelled:cpu-time",
                        energy_j=0.1, energy_above_idle_j=0.1, peak_power_w=20.0,
                        unavailable={k: "not in this test" for k in ("idle_power_w", "mean_power_w", "energy_spread_rel")})
        lines.append(json.dumps({"arch_hash": arch.content_hash(), "architecture": arch.to_dict(), "platform": "cpu",
                                 "status": "ok", "measurement": m.to_dict(), "workload": {"mode": "inference"}}))
    records.write_text("\n".join(lines) + "\n")
    res = _cli("--objective", "glue:max", "--objective", "latency_s:min", "--budget", "12", "--seed", "3", "--study", "s",
               "--verify", f"records:{records}", "--out", "out2", "--surrogate-param", "kernel=linear+matern",
               "--surrogate-param", "encoder=cost", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    checked = json.loads((tmp_path / "out2" / "verification.json").read_text())
    assert len(checked) == len(front) and all(c["gap"]["latency_s"] == pytest.approx(1 / 1.1 - 1) for c in checked)
    runs = mlflow.search_runs(search_all_experiments=True)
    assert (runs["tags.protran.role"] == "verification").sum() == len(front)
    assert table is not None


def test_search_refuses_bad_input_before_anything_starts(tmp_path: Path) -> None:
    cases = [
        (["--objective", "glue:min"], "is to maximize"),
        (["--objective", "glue"], "at least two distinct objectives"),
        (["--constraint", "energy_j<=1", "--objective", "glue", "--objective", "latency_s"], "must be one of the objectives"),
        (["--hardware", "somewhere"], "--hardware must be"),
        (["--accuracy", "guess"], "--accuracy must be one of"),
        (["--sampler", "bayes"], "invalid choice"),
        (["--surrogate-param", "depth=3"], "unknown parameter"),
        (["--study", " "], "--study must not be empty"),
    ]
    for args, message in cases:
        res = _cli(*args, "--out", "o", cwd=tmp_path)
        assert res.returncode == 2 and message in res.stderr, (args, res.stderr)
    assert not (tmp_path / "protran.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_every_method_is_an_optuna_sampler_over_the_same_parameters() -> None:
    params = get_parameterization("nas-bench-bert")
    for method in METHODS:
        sampler = make_sampler(method, seed=0, space=params, candidates=list(load_dataset("nas-bench-bert").archs[:30]))
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.set_metric_names(["glue", "params"])
        study.optimize(lambda t: (float(params.suggest(t).n_layers), float(t.number)), n_trials=3)
        assert all(set(t.params) == set(params.to_params(params.from_params(t.params))) for t in study.trials)
